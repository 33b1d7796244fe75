"""Compiling the kernels ahead of time: :func:`warmup` and what it reports.

The library's numba kernels compile on first use and are cached on disk
(``cache=True``), so only the first process on a machine pays the compile. A
service that must answer its first request quickly, or a container image that
should start warm, runs :func:`warmup` (``allocator warmup``) once beforehand: it
makes small, representative calls of every public entry point, so each kernel
compiles for exactly the argument types the library passes it, and reports what
compiled and how long each took. A process started afterwards on the same cache
loads every kernel and compiles nothing. See ``docs/deployment.md``.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["STEPS", "WarmupReport", "WarmupStep", "warmup"]

logger = logging.getLogger("allocator")


@dataclass(frozen=True)
class WarmupStep:
    """One entry point exercised by :func:`warmup`."""

    name: str
    wall_s: float
    cpu_s: float
    #: ``(kernel, signature, seconds, cpu_seconds)`` per kernel compiled in the step.
    compiled: tuple[tuple[str, str, float, float], ...]


@dataclass(frozen=True)
class WarmupReport:
    """What :func:`warmup` ran and compiled.

    ``num_compiled == 0`` means every kernel came from the cache.
    """

    steps: tuple[WarmupStep, ...]
    wall_s: float
    cpu_s: float
    #: Where numba's cache lives for the library's kernels (None: cache off).
    cache_path: str | None

    @property
    def num_compiled(self) -> int:
        """Kernel signatures compiled (cache misses) during the warm-up."""
        return sum(len(s.compiled) for s in self.steps)

    @property
    def compile_s(self) -> float:
        """Seconds spent compiling, summed over kernels."""
        return sum(c[2] for s in self.steps for c in s.compiled)

    def summary(self) -> str:
        """One line per step and one per compiled kernel, slowest first."""
        lines = [
            f"warm-up: {len(self.steps)} steps in {self.wall_s:.1f} s wall, "
            f"{self.cpu_s:.1f} s CPU; {self.num_compiled} kernel signatures compiled "
            f"({self.compile_s:.1f} s), cache: {self.cache_path or 'off'}"
        ]
        for step in self.steps:
            lines.append(
                f"  {step.name:<13} {step.wall_s:7.2f} s wall {step.cpu_s:7.2f} s CPU  "
                f"{len(step.compiled)} compiled"
            )
            for name, _, seconds, cpu in sorted(step.compiled, key=lambda c: -c[3]):
                lines.append(f"      {cpu:7.2f} s CPU {seconds:7.2f} s wall  {name}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (counts are integers)."""
        return {
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "num_compiled": self.num_compiled,
            "compile_s": self.compile_s,
            "cache_path": self.cache_path,
            "steps": [
                {
                    "name": s.name,
                    "wall_s": s.wall_s,
                    "cpu_s": s.cpu_s,
                    "compiled": [
                        {"kernel": k, "signature": sig, "seconds": sec, "cpu_seconds": cpu}
                        for k, sig, sec, cpu in s.compiled
                    ],
                }
                for s in self.steps
            ],
        }


# -- the representative calls ----------------------------------------------------
# Small inputs built the way users build them (builders, names, Python lists, numpy
# arrays of the default dtypes); the public functions normalise them, so the kernels
# see the same types as in real use.


def _scenario() -> Any:
    from allocator.scenarios import department_store

    return department_store(
        num_stores=3,
        num_dcs=1,
        num_skus=40,
        walk_in_units=40.0,
        online_orders=30.0,
        marketplace_orders=10.0,
        history_days=14,
    ).build(0)


def _network() -> Any:
    from allocator.network import Network

    net = Network()
    for channel in ("store", "online", "marketplace"):
        net.add_channel(channel)
    net.add_location("S1", kind="store", lat=31.23, lon=121.47, same_day_radius_km=8.0)
    net.add_location("S2", kind="store", lat=31.25, lon=121.50, pick_capacity=20)
    net.add_location(
        "DC", kind="warehouse", lat=31.10, lon=121.80, channels=("online", "marketplace")
    )
    for k in range(4):
        net.add_sku(f"K{k}", price=10.0 + k, unit_cost=5.0)
    return net.build()


def _stocked(network: Any) -> Any:
    from allocator.ledger import Ledger

    ledger = Ledger(network)
    sku, loc = np.meshgrid(np.arange(network.num_skus), np.arange(network.num_locations))
    ledger.receive(sku.ravel(), loc.ravel(), 20)
    return ledger


def _ledger() -> None:
    from allocator.events import Events
    from allocator.ledger import Ledger

    network = _network()
    ledger = _stocked(network)
    ledger.receive("K0", "S1", 5)
    ledger.sale("K0", "S1", 1, channel="store")
    hold = ledger.reserve("K1", "S1", 2, channel="online", expires_at=100)
    ledger.commit(hold.id, 1)
    other = ledger.reserve(["K2", "K3"], ["S2", "S2"], [1, 1], channel="marketplace")
    ledger.release(int(other.ids[0]))
    ledger.transfer("K0", "S2", "S1", 2)
    ledger.transfer_in("K0", "S1", 2)
    ledger.adjust("K3", "DC", 7)
    ledger.expire(200)
    ledger.apply(
        Events.concat(
            [
                Events.set_fence("K0", "S1", "store", 2, network=network),
                Events.set_cap("K0", "S1", "marketplace", 3, network=network),
                Events.set_safety("K0", "S1", 1, network=network),
            ]
        ).linked()
    )
    ledger.available("K0", "S1", "online")
    ledger.available(["K0", "K1"], ["S1", "S2"], "store")
    ledger.available_all()
    ledger.position_index("K0", "S1")
    ledger.position_index(["K0", "K1"], ["S1", "S2"])
    ledger.totals()
    ledger.state_digest()
    ledger.open_reservations()
    ledger.stock_snapshot()
    ledger.reservation(hold)
    ledger.result_of([1, 2])
    # a count below what is reserved: the reservations at risk are reported
    ledger.reserve("K2", "S1", 3, channel="online")
    ledger.adjust("K2", "S1", 1)
    # growth past the initial capacities rehashes the position and id tables
    from allocator.network import NetworkData

    wide = NetworkData.from_arrays(
        channels=["store"],
        location_name=["A", "B"],
        location_kind="store",
        lat=[0.0, 0.1],
        lon=[0.0, 0.1],
        sku_name=[f"W{k}" for k in range(600)],
    )
    small = Ledger(wide, capacity=2, reservation_capacity=2, event_capacity=2)
    sku, loc = np.meshgrid(np.arange(600), np.arange(2))
    for k in range(3):
        small.receive(sku.ravel(), loc.ravel(), 1 + k)


def _journal() -> None:
    import asyncio

    from allocator.journal import open_ledger, verify_journal

    network = _network()
    with tempfile.TemporaryDirectory(prefix="allocator-warmup-") as tmp:
        path = Path(tmp) / "warmup.db"
        ledger = open_ledger(path, network)
        ledger.receive("K0", "S1", 5)
        hold = ledger.reserve("K0", "S1", 2, channel="online")
        asyncio.run(ledger.reserve_async("K0", "S1", 1, channel="online"))
        ledger.commit(hold)
        ledger.snapshot()
        ledger.close()
        ledger = open_ledger(path)
        ledger.receive("K1", "S2", 3)
        with open_ledger(path, readonly=True) as reader:
            ledger.receive("K1", "S2", 1)
            reader.refresh()
        ledger.close()
        verify_journal(path)


def _orders(network: Any) -> Any:
    from allocator.sourcing import Orders

    return Orders.from_lines(
        order=[1, 1, 2, 3, 4],
        sku=["K0", "K1", "K2", "K3", "K0"],
        qty=[1, 2, 1, 1, 3],
        channel="online",
        service=["ship", "ship", "pickup", "same_day", "ship"],
        pickup_location=[None, None, "S1", None, None],
        lat=[31.24, 31.24, np.nan, 31.23, 31.20],
        lon=[121.48, 121.48, np.nan, 121.47, 121.60],
        network=network,
    )


def _sourcing() -> None:
    from allocator.sourcing import CostModel, Sourcer, nearby, reserve_plan, source

    network = _network()
    ledger = _stocked(network)
    orders = _orders(network)
    plan = source(network, ledger, orders)
    source(network, ledger, orders, max_splits=1)
    Sourcer(network, CostModel(split_penalty=2.0)).source(ledger, orders)
    nearby(network, ledger, ["K0", "K1"], 31.24, 121.48, channel="online", k=2)
    reserve_plan(ledger, plan, expires_at=3_600)


def _optimal() -> None:
    from allocator.sourcing import methods, source

    if "optimal" not in methods():
        return
    network = _network()
    ledger = _stocked(network)
    # a long limit: the first call compiles the kernels inside it, and a limit that ran
    # out there would leave the later phases (construction, Lagrangian passes) unseen
    source(network, ledger, _orders(network), method="optimal", time_limit=600.0)


def _channels() -> None:
    from allocator.channels import ChannelForecast, allocate_channels

    network = _network()
    ledger = _stocked(network)
    ledger.reserve("K0", "S1", 1, channel="online")
    mean = np.full((ledger.num_positions, network.num_channels), 2.0)
    for fc in (ChannelForecast.normal(mean, 1.5 * mean), ChannelForecast.poisson(mean)):
        allocate_channels(network, ledger, fc, margin=1.0)
        allocate_channels(
            network,
            ledger,
            fc,
            margin=np.ones((network.num_skus, network.num_channels)),
            unsold_cost=0.1,
            floors={"store": 1},
            caps={"marketplace": 0.3},
            service_level=0.9,
            detail=True,
        )
        allocate_channels(network, ledger, fc, margin=1.0, caps={"marketplace": 2})


def _replenishment() -> None:
    from allocator.replenishment import (
        MinMaxPolicy,
        OptimalPoissonPolicy,
        OrderUpToPolicy,
        ReorderPointPolicy,
        croston,
        exponential_smoothing,
        moving_average,
        optimal_ss,
        replenish,
    )

    network = _network()
    ledger = _stocked(network)
    rng = np.random.default_rng(0)
    history = rng.poisson(1.5, (ledger.num_positions, 28))
    moving_average(history, 7)
    exponential_smoothing(history)
    croston(history)
    for policy in (
        OrderUpToPolicy(service_level=0.95),
        ReorderPointPolicy(order_quantity=10, service_level=0.9),
        MinMaxPolicy(order_cost=5.0, holding_cost=0.1, fill_rate=0.95),
        OptimalPoissonPolicy(),
    ):
        replenish(network, ledger, history, policy=policy, lead_time=3)
    from allocator.ledger import Ledger

    low = Ledger(network)  # little stock: purchases are suggested and the budget binds
    low.receive(np.arange(network.num_skus), 0, 1)
    replenish(
        network,
        low,
        history[: low.num_positions],
        lead_time=5,
        pack=6,
        moq=12,
        shelf_max=120,
        budget=30.0,  # binding: purchases are funded by value per unit of money
        transfer_cost=0.4,
        transfer_cost_per_km=0.05,
        on_order=np.zeros(low.num_positions, dtype=np.int64),
    )
    replenish(network, ledger, history, transfers=False)
    optimal_ss(np.array([0.5, 1.0]), 5, 15.0, 0.05, 2.0)


def _simulation() -> None:
    from allocator.simulation import simulate
    from allocator.sourcing import methods

    data = _scenario()
    for method in ("greedy", "optimal"):
        if method not in methods():
            continue
        options = {"time_limit": 2.0} if method == "optimal" else {}
        simulate(data, sourcing=method, days=2, sourcing_options=options, keep_log=False)


#: The steps of :func:`warmup`, in order: ``(name, function)``.
STEPS: tuple[tuple[str, Callable[[], None]], ...] = (
    ("ledger", _ledger),
    ("journal", _journal),
    ("sourcing", _sourcing),
    ("optimal", _optimal),
    ("channels", _channels),
    ("replenishment", _replenishment),
    ("simulation", _simulation),
)


def warmup(
    steps: Sequence[str] | None = None,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> WarmupReport:
    """Compile every kernel the library uses, for the argument types it passes.

    Runs small representative calls of each public entry point (``STEPS``); each
    kernel that is not in numba's cache yet compiles and is written to it.

    Parameters
    ----------
    steps
        Names from :data:`STEPS` to run (default: all of them).
    progress
        Called as ``progress(step, done, total)`` before each step.

    Returns
    -------
    WarmupReport
        Per step: wall and CPU seconds and the kernels it compiled, with the
        seconds each took. A second run on the same cache compiles nothing.

    Examples
    --------
    >>> import allocator
    >>> report = allocator.warmup(["ledger"])  # doctest: +SKIP
    >>> print(report.summary())  # doctest: +SKIP
    """
    from allocator import _kernels

    chosen = [s for s in STEPS if steps is None or s[0] in steps]
    unknown = sorted(set(steps or ()) - {s[0] for s in STEPS})
    if unknown:
        from allocator.exceptions import ValidationError

        raise ValidationError(
            f"unknown warm-up steps {unknown}; expected some of {[s[0] for s in STEPS]}",
            field="steps",
            code="unknown_step",
        )
    done: list[WarmupStep] = []
    w0, c0 = time.perf_counter(), time.process_time()
    for i, (name, run) in enumerate(chosen):
        if progress is not None:
            progress(name, i, len(chosen))
        first = len(_kernels.COMPILE_LOG)
        ws, cs = time.perf_counter(), time.process_time()
        run()
        new = _kernels.COMPILE_LOG[first:]
        done.append(
            WarmupStep(
                name=name,
                wall_s=time.perf_counter() - ws,
                cpu_s=time.process_time() - cs,
                compiled=tuple((c.name, c.signature, c.seconds, c.cpu_seconds) for c in new),
            )
        )
        logger.info("warm-up %s: %d kernels compiled", name, len(new))
    cache = None
    for kernel in _kernels.KERNELS:
        cache = getattr(kernel.stats, "cache_path", None) or cache
    return WarmupReport(
        steps=tuple(done),
        wall_s=time.perf_counter() - w0,
        cpu_s=time.process_time() - c0,
        cache_path=cache,
    )
