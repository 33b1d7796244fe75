"""``allocator bench distributed``: the nightly replenishment and a seed sweep on a
Dask cluster, beside the single-process run measured in the same invocation.

Replenishment with transfers over 2,000,000 positions (1,000 locations x 10,000
SKUs, 20 % stocked) and 28 days of sales history: once in this process, then on a
local cluster of ``--workers`` worker processes (one thread each), partitioned by
SKU; the plans must be identical. Then a capacity sweep of ``--sweep-seeds`` seeds,
each seed a scenario of its own, first in this process, then one cell per task.

Figures: ``replenish_speedup`` and ``sweep_speedup`` (single-process wall time over
cluster wall time), ``identical``, ``per_partition_s`` (mean compute seconds of a
partition on its worker), ``overhead_s`` (cluster wall time not spent in the
slowest partition: validation and columns on the driver, scatter, scheduling,
result transfer, merge and the global budget step), the parts of that overhead,
and a 1-worker run for the scaling model (``--one-worker``). ``cores_available``
says how many cores the workers really got together (a busy loop on each at once:
2.0 on an idle 2-core machine), since other jobs on a shared machine take their
share. Numba compilation or cache loading, on the driver and on every worker, is
timed apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time
from typing import Any

import numpy as np

DESCRIPTION = (
    "replenishment (2M positions x 28 days) and an 8-seed sweep on Dask, beside one process"
)

__all__ = ["DESCRIPTION", "add_arguments", "run", "same_plan", "warm_kernels"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes")
    parser.add_argument("--scheduler", default=None, help="use this cluster instead of a local one")
    parser.add_argument("--locations", type=int, default=1_000)
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--density", type=float, default=0.2)
    parser.add_argument("--periods", type=int, default=28)
    parser.add_argument("--partitions", type=int, default=None)
    parser.add_argument("--one-worker", action="store_true", help="also time 1 worker")
    parser.add_argument("--sweep-seeds", type=int, default=8)
    parser.add_argument("--sweep-stores", type=int, default=20)
    parser.add_argument("--sweep-skus", type=int, default=3_000)
    parser.add_argument("--sweep-days", type=int, default=21)
    parser.add_argument("--skip-replenish", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--seed", type=int, default=0)


def _network(rng: np.random.Generator, num_locations: int, num_skus: int) -> Any:
    from allocator.network import Network

    net = Network()
    for channel in ("store", "online"):
        net.add_channel(channel)
    lat = rng.uniform(30.0, 32.0, num_locations)
    lon = rng.uniform(120.0, 122.0, num_locations)
    for i in range(num_locations):
        net.add_location(f"L{i:04d}", kind="store", lat=float(lat[i]), lon=float(lon[i]))
    price = rng.uniform(5.0, 80.0, num_skus)
    for k in range(num_skus):
        net.add_sku(f"SKU-{k:05d}", price=float(price[k]), unit_cost=float(price[k] * 0.45))
    return net.build()


def replenish_case(
    seed: int, num_locations: int, num_skus: int, density: float, periods: int
) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """A stocked network: (network, ledger, history, on_order). Positions are created
    in random order, as a ledger fills over time (a SKU's rows are scattered)."""
    from allocator.ledger import Ledger

    rng = np.random.default_rng(seed)
    network = _network(rng, num_locations, num_skus)
    sku, loc = np.nonzero(rng.random((num_skus, num_locations)) < density)
    order = rng.permutation(sku.size)
    sku, loc = sku[order], loc[order]
    ledger = Ledger(network, capacity=sku.size)
    ledger.receive(sku, loc, rng.integers(1, 60, sku.size))
    n = ledger.num_positions
    rates = rng.gamma(0.8, 2.5, n)
    history = rng.poisson(rates[:, None], (n, periods)).astype(np.int64)
    on_order = np.where(rng.random(n) < 0.2, rng.integers(5, 40, n), 0).astype(np.int64)
    return network, ledger, history, on_order


def _replenish_kwargs(on_order: np.ndarray) -> dict[str, Any]:
    return {
        "lead_time": 5,
        "review_period": 1,
        "pack": 2,
        "on_order": on_order,
        "transfer_cost": 0.5,
        "transfer_cost_per_km": 0.05,
        "budget": 2.0e6,
    }


def warm_kernels() -> None:
    """Compile (or load from the numba cache) the kernels of the batch jobs."""
    from allocator.channels import ChannelForecast, allocate_channels
    from allocator.replenishment import replenish
    from allocator.scenarios import department_store
    from allocator.simulation import simulate

    network, ledger, history, on_order = replenish_case(0, 4, 6, 0.9, 14)
    replenish(network, ledger, history, **_replenish_kwargs(on_order))
    n = ledger.num_positions
    fc = ChannelForecast.poisson(np.full((n, network.num_channels), 2.0))
    allocate_channels(network, ledger, fc, margin=1.0, caps={"online": 0.5})
    simulate(
        department_store(num_stores=3, num_dcs=1, num_skus=50, online_orders=40.0),
        days=1,
        keep_log=False,
    )


def same_plan(a: Any, b: Any) -> bool:
    """Every array of two plans equal (values, dtype, shape) and every figure equal."""
    for f in dataclasses.fields(a):
        if f.name in ("timings", "network", "policy"):
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            if x.shape != y.shape or x.dtype != y.dtype:
                return False
            if not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
                return False
        elif x != y:
            return False
    return True


def _same_runs(a: Any, b: Any) -> bool:
    from allocator.simulation.seeds import SPEED_KPIS

    for ra, rb in zip(a, b, strict=True):
        ka, kb = ra.kpis.as_dict(), rb.kpis.as_dict()
        for key, value in ka.items():
            if key in SPEED_KPIS:
                continue
            other = kb[key]
            if not (value == other or (math.isnan(value) and math.isnan(other))):
                return False
    return True


def _spin(seconds: float = 0.5) -> tuple[float, float]:
    """Busy Python loop for about ``seconds`` of CPU: (wall, CPU) seconds."""
    t0, c0 = time.perf_counter(), time.process_time()
    x = 0
    while time.process_time() - c0 < seconds:
        for i in range(10_000):
            x += i
    return time.perf_counter() - t0, time.process_time() - c0


def cores_available(client: Any) -> float:
    """Cores the workers get together while all of them compute: the CPU seconds of
    one busy loop per worker over the wall time of the slowest (2.0 for 2 workers on
    an idle 2-core machine; less when other jobs share it)."""
    workers = list(client.scheduler_info()["workers"])
    futures = [client.submit(_spin, pure=False, workers=[w]) for w in workers]
    got = [f.result() for f in futures]
    return float(sum(cpu for _, cpu in got) / max(wall for wall, _ in got))


def _cluster(args: argparse.Namespace, workers: int) -> tuple[Any, Any]:
    from distributed import Client, LocalCluster

    if args.scheduler:
        return None, Client(args.scheduler)
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        memory_limit=0,
    )
    return cluster, Client(cluster)


def _replenish_on(
    client: Any, case: tuple[Any, ...], partitions: int | None
) -> tuple[Any, float, dict[str, Any]]:
    from allocator.replenishment import replenish
    from allocator.workers import warm_workers

    network, ledger, history, on_order = case
    t0 = time.perf_counter()
    warm = warm_workers(client)
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan = replenish(
        network,
        ledger,
        history,
        client=client,
        partitions=partitions,
        **_replenish_kwargs(on_order),
    )
    wall = time.perf_counter() - t0
    return plan, wall, {"warm_s": warm_s, "warm": warm}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from allocator import distributed as D
    from allocator.workers import warm_workers

    D._distributed()  # a clear error naming the extra when Dask is missing
    from allocator.replenishment import replenish
    from allocator.scenarios import department_store
    from allocator.simulation import capacity_sweep

    if args.quick:
        nloc, nsku, periods = 30, 300, args.periods
        seeds, stores, skus, days = 2, 3, 60, 2
    else:
        nloc, nsku, periods = args.locations, args.skus, args.periods
        seeds, stores, skus, days = (
            args.sweep_seeds,
            args.sweep_stores,
            args.sweep_skus,
            args.sweep_days,
        )
    out: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "workers": args.workers,
        "load_before": list(os.getloadavg()),
    }
    t0 = time.perf_counter()
    warm_kernels()
    out["jit_compile_s"] = time.perf_counter() - t0

    cluster, client = _cluster(args, args.workers)
    try:
        t0 = time.perf_counter()
        out["worker_warm_s"] = max(float(v.rstrip("s")) for v in warm_workers(client).values())
        out["cluster_start_and_warm_s"] = time.perf_counter() - t0
        out["cores_available"] = cores_available(client)
        if not args.skip_replenish:
            t0 = time.perf_counter()
            case = replenish_case(args.seed, nloc, nsku, args.density, periods)
            out["case_build_s"] = time.perf_counter() - t0
            network, ledger, history, on_order = case
            t0, c0 = time.perf_counter(), time.process_time()
            single = replenish(network, ledger, history, **_replenish_kwargs(on_order))
            single_s = time.perf_counter() - t0
            single_cpu = time.process_time() - c0
            plan, wall, _ = _replenish_on(client, case, args.partitions)
            tm = plan.timings
            out.update(
                {
                    "positions": ledger.num_positions,
                    "periods": periods,
                    "transfer_lines": plan.num_transfers,
                    "purchase_lines": plan.num_buys,
                    "replenish_single_s": single_s,
                    "replenish_single_plan_s": single.timings["plan_s"],
                    "replenish_single_cpu_s": single_cpu,
                    "replenish_cluster_s": wall,
                    "replenish_speedup": single_s / wall,
                    "identical": same_plan(single, plan),
                    "partitions": int(tm["partitions"]),
                    "per_partition_s": tm["partition_sum_s"] / tm["partitions"],
                    "per_partition_max_s": tm["partition_max_s"],
                    "per_partition_cpu_s": tm["partition_cpu_sum_s"] / tm["partitions"],
                    "overhead_s": wall - tm["partition_max_s"],
                    "prepare_s": tm["prepare_s"],
                    "partition_cut_s": tm["partition_s"],
                    "scatter_s": tm["scatter_s"],
                    "cluster_s": tm["cluster_s"],
                    "merge_s": tm["merge_s"],
                    "finish_s": tm["finish_s"],
                    "retries": int(tm["retries"]),
                }
            )
        if not args.skip_sweep:
            scenario = department_store(
                name="sweep",
                num_stores=stores,
                num_dcs=1,
                num_skus=skus,
                online_orders=60.0 * stores,
                marketplace_orders=20.0 * stores,
            )
            seed_list = list(range(seeds))
            t0 = time.perf_counter()
            local = capacity_sweep(scenario, (1.0,), days=days, seeds=seed_list, keep_log=False)
            sweep_single = time.perf_counter() - t0
            t0 = time.perf_counter()
            remote = capacity_sweep(
                scenario, (1.0,), days=days, seeds=seed_list, keep_log=False, client=client
            )
            sweep_cluster = time.perf_counter() - t0
            out.update(
                {
                    "sweep_seeds": seeds,
                    "sweep_days": days,
                    "sweep_single_s": sweep_single,
                    "sweep_cluster_s": sweep_cluster,
                    "sweep_speedup": sweep_single / sweep_cluster,
                    "sweep_identical": _same_runs(
                        (local.by_seed or ((),))[0], (remote.by_seed or ((),))[0]
                    ),
                }
            )
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

    if args.one_worker and not args.skip_replenish and not args.scheduler:
        cluster, client = _cluster(args, 1)
        try:
            plan1, wall1, _ = _replenish_on(client, case, 1)
            out["replenish_1_worker_s"] = wall1
            out["replenish_1_worker_identical"] = same_plan(single, plan1)
            out["per_partition_1_worker_s"] = plan1.timings["partition_max_s"]
            out["overhead_1_worker_s"] = wall1 - plan1.timings["partition_max_s"]
        finally:
            client.close()
            cluster.close()
    out["load_after"] = list(os.getloadavg())
    if "identical" in out and "sweep_identical" in out:
        out["identical"] = bool(out["identical"] and out["sweep_identical"])
    return out
