"""Batch jobs on a Dask cluster give the single-process results.

The cluster is started here: ``distributed.LocalCluster(n_workers=2,
threads_per_worker=1, processes=True)``, its workers warmed once (numba cache
loads). Sizes are small; nothing here times anything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator import Ledger, Network, NetworkData
from allocator.bench.distributed import same_plan
from allocator.channels import ChannelForecast, allocate_channels
from allocator.distributed import block_partitions, sku_partitions
from allocator.exceptions import MissingDependencyError, ValidationError
from allocator.replenishment import (
    Forecast,
    MinMaxPolicy,
    OptimalPoissonPolicy,
    OrderUpToPolicy,
    ReorderPointPolicy,
    replenish,
)

distributed = pytest.importorskip("distributed")


def _cluster(workers: int = 2) -> Any:
    return distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        memory_limit=0,
    )


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    from allocator.bench.distributed import warm_kernels
    from allocator.workers import warm_workers

    # Compile here first: the workers then load every kernel variant they need
    # from the cache instead of compiling (and caching) variants themselves.
    warm_kernels()
    with _cluster() as cluster, distributed.Client(cluster) as c:
        warm_workers(c)
        yield c


def _case(
    seed: int, num_skus: int, num_locations: int, density: float
) -> tuple[NetworkData, Ledger, np.ndarray]:
    rng = np.random.default_rng(seed)
    net = Network()
    for ch in ("store", "online", "marketplace"):
        net.add_channel(ch)
    for i in range(num_locations):
        net.add_location(f"L{i}", kind="store", lat=31.0 + 0.04 * i, lon=121.0 + 0.03 * i)
    for k in range(num_skus):
        net.add_sku(f"A{k}", price=float(rng.uniform(5, 50)), unit_cost=float(rng.uniform(1, 9)))
    data = net.build()
    led = Ledger(data)
    sku, loc = np.nonzero(rng.random((num_skus, num_locations)) < density)
    if sku.size == 0:
        sku, loc = np.array([0]), np.array([0])
    order = rng.permutation(sku.size)  # a SKU's positions scattered over the rows
    led.receive(sku[order], loc[order], rng.integers(1, 50, sku.size))
    n = led.num_positions
    some = rng.choice(n, size=max(1, n // 6), replace=False)
    led.reserve(
        np.asarray(led.position_sku)[some],
        np.asarray(led.position_location)[some],
        1,
        channel=rng.integers(0, 3, some.size),
    )
    hist = rng.poisson(rng.uniform(0.0, 5.0, (n, 1)), (n, 21))
    return data, led, hist


# ------------------------------------------------------------------- partitions
def test_sku_partitions_keep_each_sku_whole_and_rows_ascending() -> None:
    rng = np.random.default_rng(1)
    sku = rng.integers(0, 50, 1000)
    parts = sku_partitions(sku, 50, 4)
    rows = np.concatenate(parts)
    assert np.array_equal(np.sort(rows), np.arange(1000))
    owner = {}
    for p, r in enumerate(parts):
        assert np.all(np.diff(r) > 0)
        for s in np.unique(sku[r]).tolist():
            assert owner.setdefault(s, p) == p
    assert len(parts) == 4 and max(map(len, parts)) < 2 * min(map(len, parts))


def test_block_partitions_are_whole_chunks() -> None:
    blocks = block_partitions(10_000, 3, align=4096)
    assert [int(b[0]) for b in blocks] == [0, 4096, 8192]
    assert [int(b[0]) for b in block_partitions(10_000, 2, align=4096)] == [0, 4096]
    assert int(blocks[-1][-1]) == 9999
    assert block_partitions(0, 3) == []


# ------------------------------------------------------------------ identity
POLICIES = [
    OrderUpToPolicy(service_level=0.9),
    ReorderPointPolicy(order_quantity=6, fill_rate=0.95),
    MinMaxPolicy(order_cost=20.0, holding_cost=0.05, distribution="poisson"),
    OptimalPoissonPolicy(20.0, 0.05, 2.0),
]


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 10_000),
    num_skus=st.integers(1, 12),
    num_locations=st.integers(1, 6),
    density=st.floats(0.2, 1.0),
    policy=st.sampled_from(POLICIES),
    budget=st.sampled_from([None, 0.0, 150.0]),
    partitions=st.integers(1, 5),
    per_position=st.booleans(),
)
def test_replenish_on_the_cluster_is_identical(
    client: Any,
    seed: int,
    num_skus: int,
    num_locations: int,
    density: float,
    policy: Any,
    budget: float | None,
    partitions: int,
    per_position: bool,
) -> None:
    net, led, hist = _case(seed, num_skus, num_locations, density)
    n = led.num_positions
    rng = np.random.default_rng(seed + 1)
    kwargs: dict[str, Any] = {
        "policy": policy,
        "budget": budget,
        "lead_time": 3,
        "transfer_cost": 0.2,
        "transfer_cost_per_km": 0.05,
    }
    if per_position:
        kwargs.update(
            lead_time=rng.integers(1, 6, n).astype(float),
            on_order=np.where(rng.random(n) < 0.3, 20, 0),
            shelf_max=rng.integers(-1, 80, num_skus),  # per SKU
            pack=2,
            moq=4,
        )
    single = replenish(net, led, hist, **kwargs)
    remote = replenish(net, led, hist, client=client, partitions=partitions, **kwargs)
    assert same_plan(single, remote)
    assert remote.timings["partitions"] <= partitions


def test_replenish_from_a_forecast_and_per_position_policy_fields(client: Any) -> None:
    net, led, _ = _case(3, 8, 5, 0.8)
    n = led.num_positions
    rng = np.random.default_rng(0)
    fc = Forecast(rng.gamma(1.0, 2.0, n), rng.gamma(1.0, 1.0, n))
    policy = ReorderPointPolicy(order_quantity=rng.integers(1, 9, n), service_level=0.9)
    single = replenish(net, led, fc, policy=policy, budget=80.0)
    remote = replenish(net, led, fc, policy=policy, budget=80.0, client=client, partitions=3)
    assert same_plan(single, remote)
    assert single.num_buys + single.num_transfers > 0


def test_the_first_bad_row_is_the_same_on_the_cluster(client: Any) -> None:
    # SKUs without a price cannot value transfers: the first needy one is named.
    net = Network()
    net.add_channel("store")
    for i in range(3):
        net.add_location(f"L{i}", kind="store", lat=31.0 + 0.1 * i, lon=121.0)
    for k in range(6):
        net.add_sku(f"A{k}", price=None if k >= 2 else 10.0)
    data = net.build()
    led = Ledger(data)
    for k in range(6):
        led.receive([k, k], [0, 1], [1, 90])
    fc = Forecast(np.full(12, 4.0), np.full(12, 1.0))
    errors = []
    for kw in ({}, {"client": client, "partitions": 3}):
        with pytest.raises(ValidationError) as info:
            replenish(data, led, fc, **kw)  # type: ignore[arg-type]
        errors.append((info.value.field, info.value.row, str(info.value)))
    assert errors[0] == errors[1]
    assert errors[0][0] == "stockout_cost"


def test_budget_spans_partitions_exactly(client: Any) -> None:
    net, led, hist = _case(11, 30, 4, 0.9)
    for budget in (0.0, 50.0, 400.0, 1e9):
        single = replenish(net, led, hist, budget=budget, transfers=False)
        remote = replenish(net, led, hist, budget=budget, transfers=False, client=client)
        assert same_plan(single, remote)
        assert remote.spent == single.spent and remote.unfunded == single.unfunded


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 10_000),
    caps=st.sampled_from([None, {"marketplace": 0.3}, {"online": 5}]),
    floors=st.sampled_from([None, {"store": 1}]),
    service=st.sampled_from([None, 0.9]),
    partitions=st.integers(1, 4),
)
def test_allocate_channels_on_the_cluster_is_identical(
    client: Any,
    seed: int,
    caps: Any,
    floors: Any,
    service: float | None,
    partitions: int,
) -> None:
    import dataclasses

    from allocator._kernels import channels as KC

    # more than one kernel chunk, so that several blocks really run
    net, led, _ = _case(seed, 2 * KC.CHUNK // 5 + 3, 5, 1.0)
    n = led.num_positions
    rng = np.random.default_rng(seed)
    fc = ChannelForecast.normal(rng.gamma(1.0, 3.0, (n, 3)), rng.gamma(1.0, 4.0, (n, 3)))
    kw: dict[str, Any] = {
        "margin": {"store": 3.0, "online": 2.0, "marketplace": 1.5},
        "unsold_cost": 0.3,
        "caps": caps,
        "floors": floors,
        "service_level": service,
        "detail": True,
    }
    a = allocate_channels(net, led, fc, **kw)
    b = allocate_channels(net, led, fc, client=client, partitions=partitions, **kw)
    for f in dataclasses.fields(a):
        if f.name in ("runtime", "network"):
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True), f.name
        elif f.name == "detail_arrays":
            assert all(np.array_equal(p, q) for p, q in zip(x, y, strict=True))
        else:
            assert x == y, f.name


def test_sweep_and_compare_on_the_cluster_match_and_report_intervals(client: Any) -> None:
    from allocator.scenarios import department_store
    from allocator.simulation import capacity_sweep, compare

    scenario = department_store(num_stores=3, num_dcs=1, num_skus=40, online_orders=30.0)
    kw: dict[str, Any] = {"days": 2, "seeds": [0, 1, 2], "keep_log": False}
    local = capacity_sweep(scenario, (1.0, 2.0), **kw)
    remote = capacity_sweep(scenario, (1.0, 2.0), client=client, **kw)
    for la, ra in zip(local.by_seed, remote.by_seed, strict=True):
        for x, y in zip(la, ra, strict=True):
            dx, dy = x.kpis.as_dict(), y.kpis.as_dict()
            dx.pop("ledger_events_per_s")
            dy.pop("ledger_events_per_s")
            assert dx.keys() == dy.keys()
            assert all(dx[k] == dy[k] or (np.isnan(dx[k]) and np.isnan(dy[k])) for k in dx)
    assert "CI, 3 seeds" in remote.summary()
    iv = remote.intervals()["volume x1"]["orders"]
    assert iv.n == 3 and iv.low <= iv.mean <= iv.high
    orders = [r.kpis.orders for r in remote.by_seed[0]]
    assert iv.mean == pytest.approx(np.mean(orders))
    both = compare(scenario, ("greedy",), client=client, **kw)
    assert both.seeds == (0, 1, 2) and len(both.by_seed["greedy"]) == 3
    assert both.results["greedy"].kpis.orders == local.by_seed[0][0].kpis.orders
    frame = both.intervals_frame()
    assert set(frame.columns) >= {"policy", "kpi", "mean", "low", "high", "seeds"}


# ------------------------------------------------------------- killed worker
class _KillFirstTask(distributed.WorkerPlugin):
    """Kill the worker process a moment after it starts the first task whose key
    starts with ``prefix`` (once per cluster: a marker file records it)."""

    def __init__(self, prefix: str, marker: str) -> None:
        self.prefix = prefix
        self.marker = marker

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish != "executing" or not str(key).startswith(self.prefix):
            return
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return
        os.close(fd)
        pid = os.getpid()
        threading.Timer(0.05, os.kill, (pid, signal.SIGKILL)).start()


def test_a_killed_worker_is_retried_with_the_same_result(tmp_path: Path) -> None:
    net, led, hist = _case(5, 60, 6, 0.8)
    kwargs: dict[str, Any] = {"budget": 300.0, "transfer_cost": 0.1}
    single = replenish(net, led, hist, **kwargs)
    with _cluster() as cluster, distributed.Client(cluster) as c:
        c.register_plugin(_KillFirstTask("replenish-", str(tmp_path / "killed")))
        remote = replenish(net, led, hist, client=c, partitions=4, **kwargs)
    assert (tmp_path / "killed").exists()  # a worker really died mid-task
    assert remote.timings["retries"] >= 1
    assert same_plan(single, remote)


# ------------------------------------------------------------ without Dask
def test_without_dask_the_library_works_and_names_the_extra(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        for name in ("dask", "distributed"):
            sys.modules[name] = None  # as if not installed: importing raises ImportError
        import numpy as np
        from allocator import Ledger, Network
        from allocator.exceptions import MissingDependencyError
        from allocator.replenishment import replenish
        net = Network()
        net.add_channel("store")
        net.add_location("S1", kind="store", lat=0.0, lon=0.0)
        net.add_sku("A", price=5.0, unit_cost=2.0)
        data = net.build()
        led = Ledger(data)
        led.receive("A", "S1", 3)
        plan = replenish(data, led, np.array([[2, 3, 1, 4]]))
        assert plan.num_buys == 1, plan.summary()
        try:
            replenish(data, led, np.array([[2, 3, 1, 4]]), scheduler="tcp://127.0.0.1:1")
        except MissingDependencyError as exc:
            assert isinstance(exc, ImportError)
            print(exc)
        else:
            raise SystemExit("no error")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pip install 'allocator[distributed]'" in proc.stdout


def test_the_single_process_path_does_not_import_dask() -> None:
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from allocator import Ledger, Network
        import allocator.channels, allocator.simulation
        from allocator.replenishment import replenish
        net = Network()
        net.add_channel("store")
        net.add_location("S1", kind="store", lat=0.0, lon=0.0)
        net.add_sku("A", price=5.0, unit_cost=2.0)
        data = net.build()
        led = Ledger(data)
        led.receive("A", "S1", 3)
        replenish(data, led, np.array([[2, 3, 1, 4]]))
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed")))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]"


def test_connect_rejects_both_and_bad_types() -> None:
    from allocator.distributed import connect

    with pytest.raises(ValidationError) as info, connect(object(), "tcp://x:1"):
        pass
    assert info.value.field == "scheduler"
    assert issubclass(MissingDependencyError, ImportError)


def test_progress_reports_partitions(client: Any) -> None:
    net, led, hist = _case(2, 10, 4, 0.9)
    seen: list[tuple[str, int, int]] = []
    replenish(net, led, hist, client=client, partitions=3, progress=lambda *a: seen.append(a))
    stages = [s for s, _, _ in seen]
    assert "partitions" in stages and stages[-1] == "done"


def test_bench_distributed_quick_reports_its_keys() -> None:
    import argparse

    from allocator.bench import distributed as bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    out = bench.run(parser.parse_args(["--quick"]))
    assert out["identical"] is True
    for key in (
        "replenish_speedup",
        "sweep_speedup",
        "per_partition_s",
        "overhead_s",
        "cores_available",
    ):
        assert out[key] > 0, key
    assert out["partitions"] == 2 and out["retries"] == 0
