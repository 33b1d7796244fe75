"""``allocator bench channels``: channel split of every position against same-run baselines.

Builds a ledger of ``--positions`` positions (1,000 locations x N/1,000 SKUs), each
with sellable stock drawn from a Poisson distribution, normal demand forecasts for
three channels (store, online, marketplace) and a display floor of one unit in store.
It times :func:`allocator.allocate_channels` end to end (``allocate_first_s``: the
first call, which fills memory the process has never used; ``allocate_s``: the median
of ``--repeat`` calls, each after the previous result was dropped, as a service
re-running the split would) and, on a sample of the same positions, a
scipy-vectorised reference: the same
unit-by-unit marginal greedy, one unit per position per numpy round, with
``scipy.special.erfc`` for the probabilities
(``reference_agreement`` is the share of sampled positions where its fences equal
the kernel's). ``kernel_s`` times the kernel alone on the same arrays (``agree``: its
fences equal those of the public call). The JIT compile (or cache load) time is
reported apart. Beside each wall time, ``*_cpu_s`` is the CPU time the process used
(all its threads, ``time.process_time``), a steadier figure when other jobs share the
machine; ``load_average`` is the 1-minute load before and after the run. Exact
equality with the pure-Python twin is checked in the tests.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

DESCRIPTION = "channel split (fences per channel) of N positions x 3 channels vs scipy"

CHANNELS = ("store", "online", "marketplace")
MARGIN = np.array([10.0, 8.0, 6.0])
UNSOLD = np.array([2.0, 2.0, 2.0])
FLOORS = np.array([1, 0, 0])
SCALE = np.array([2.0, 1.5, 1.0])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--positions", type=int, default=10_000_000, help="positions")
    parser.add_argument("--stock", type=float, default=10.0, help="mean sellable units")
    parser.add_argument(
        "--reference-positions",
        type=int,
        default=300_000,
        help="sample size for the scipy-vectorised reference",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="numba threads (default: all cores)")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke test")


def _timed(fn: Any, repeat: int) -> tuple[float, float]:
    """Median wall time and median CPU time (all threads of this process) of ``fn()``."""
    wall, cpu = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)), float(np.median(cpu))


def _build(npos: int, stock: float, seed: int) -> tuple[Any, Any, Any]:
    from allocator.channels import ChannelForecast
    from allocator.events import Events
    from allocator.ledger import Ledger
    from allocator.network import NetworkData

    nloc = 1000 if npos >= 1000 else 1
    nsku = -(-npos // nloc)
    data = NetworkData.from_arrays(
        channels=CHANNELS,
        location_name=[f"L{i}" for i in range(nloc)],
        location_kind="store",
        lat=np.zeros(nloc),
        lon=np.zeros(nloc),
        sku_name=[f"S{i}" for i in range(nsku)],
    )
    rng = np.random.default_rng(seed)
    ledger = Ledger(data, capacity=npos)
    pos = np.arange(npos, dtype=np.int64)
    qty = rng.poisson(stock, npos).astype(np.int64) + 1
    ledger.apply(Events.receive(pos // nloc, pos % nloc, qty))
    mean = rng.gamma(1.5, 1.0, size=(npos, len(CHANNELS))) * SCALE
    forecast = ChannelForecast.normal(mean, 1.5 * mean)
    return data, ledger, forecast


def _scipy_reference(
    mean: np.ndarray, var: np.ndarray, sellable: np.ndarray, floor: np.ndarray
) -> np.ndarray:
    """The marginal greedy, vectorised over positions with numpy and scipy."""
    from scipy import special

    npos, nc = mean.shape
    sd = np.sqrt(var)
    q = np.zeros((npos, nc), dtype=np.int64)
    left = sellable.astype(np.int64).copy()
    for c in range(nc):
        give = np.minimum(floor[c], left)
        q[:, c] = give
        left -= give
    active = np.flatnonzero(left > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        while active.size:
            qa = q[active]
            z = (qa + 0.5 - mean[active]) / sd[active] * 0.7071067811865476
            s = np.where(
                sd[active] > 0, 0.5 * special.erfc(z), (qa + 0.5 < mean[active]).astype(np.float64)
            )
            value = (MARGIN + UNSOLD) * s - UNSOLD
            best = np.argmax(value, axis=1)
            ok = value[np.arange(active.size), best] > 0
            rows = active[ok]
            q[rows, best[ok]] += 1
            left[rows] -= 1
            active = rows[left[rows] > 0]
    return q


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numba

    from allocator._kernels import channels as K
    from allocator.channels import allocate_channels

    if args.threads:
        numba.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    npos = 20_000 if args.quick else args.positions
    ref_n = min(npos, 5_000 if args.quick else args.reference_positions)
    repeat = 1 if args.quick else args.repeat

    t0 = time.perf_counter()
    data, ledger, forecast = _build(npos, args.stock, args.seed)
    build_s = time.perf_counter() - t0
    kwargs: dict[str, Any] = {"margin": MARGIN, "unsold_cost": UNSOLD, "floors": FLOORS}

    # Compile (or load from the cache) with the argument types of the public call.
    t0 = time.perf_counter()
    tiny = _build(2, args.stock, args.seed)
    allocate_channels(tiny[0], tiny[1], tiny[2], **kwargs)
    compile_s = time.perf_counter() - t0

    result: list[Any] = []

    def call() -> None:
        result.clear()  # drop the previous result first: its memory is reused
        result.append(allocate_channels(data, ledger, forecast, **kwargs))

    allocate_first_s, allocate_first_cpu_s = _timed(call, 1)
    allocate_s, allocate_cpu_s = _timed(call, repeat)
    alloc = result[-1]

    mean, var = forecast.mean, forecast.var
    sample = np.random.default_rng(args.seed + 1).choice(npos, ref_n, replace=False)
    sample.sort()
    reserved = ledger.reserved_by_channel[sample].sum(axis=1)
    sellable = np.maximum(ledger.on_hand[sample] - ledger.safety_stock[sample] - reserved, 0)
    refs: list[Any] = []
    reference_s, reference_cpu_s = _timed(
        lambda: refs.append(_scipy_reference(mean[sample], var[sample], sellable, FLOORS)),
        1,
    )
    ref = refs[-1]
    reference_agreement = float((ref == alloc.allocated[sample]).all(axis=1).mean())

    # The kernel alone, on the arrays allocate_channels passes it (outputs allocated once).
    nchunks = K.num_chunks(npos)
    none = np.empty((0, 3), np.int64)
    out = (
        np.empty((npos, 3), np.int64),
        none[:, 0],
        none,
        np.empty((0, 3)),
        none,
        np.empty((nchunks, K.NUM_TOTALS, 3)),
        np.empty((nchunks, K.NUM_COUNTS), np.int64),
    )
    kernel_s, kernel_cpu_s = _timed(
        lambda: K.allocate(
            K.DIST_NORMAL,
            mean,
            var,
            ledger.on_hand,
            ledger.safety_stock,
            ledger.reserved_by_channel,
            np.broadcast_to(FLOORS, (npos, 3)),
            ledger.cap,
            MARGIN.reshape(1, 3),
            UNSOLD.reshape(1, 3),
            np.broadcast_to(np.zeros(1, np.int64), (npos,)),
            *out,
        ),
        repeat,
    )
    agree = bool(np.array_equal(out[0], alloc.fence))

    positions_per_s = npos / allocate_s
    reference_positions_per_s = ref_n / reference_s
    return {
        "positions": npos,
        "channels": len(CHANNELS),
        "mean_sellable": alloc.total_sellable / npos,
        "mean_fenced": float(alloc.channel_allocated.sum()) / npos,
        "threads": int(numba.get_num_threads()),
        "load_average": [load_before, os.getloadavg()[0]],
        "build_s": build_s,
        "compile_s": compile_s,
        "allocate_first_s": allocate_first_s,
        "allocate_first_cpu_s": allocate_first_cpu_s,
        "allocate_s": allocate_s,
        "allocate_cpu_s": allocate_cpu_s,
        "kernel_s": kernel_s,
        "kernel_cpu_s": kernel_cpu_s,
        "kernel_positions_per_s": npos / kernel_s,
        "positions_per_s": positions_per_s,
        "reference_positions": ref_n,
        "reference_s": reference_s,
        "reference_cpu_s": reference_cpu_s,
        "cpu_speedup": (reference_cpu_s / ref_n) / (allocate_cpu_s / npos),
        "reference_positions_per_s": reference_positions_per_s,
        "speedup": positions_per_s / reference_positions_per_s,
        "reference_agreement": reference_agreement,
        "agree": agree,
        "target_s": 3.0,
        "meets_target": bool(allocate_s * 10_000_000 / npos < 3.0),
        "meets_target_cpu": bool(allocate_cpu_s * 10_000_000 / npos < 3.0),
    }
