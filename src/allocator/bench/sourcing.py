"""``allocator bench sourcing``: greedy sourcing throughput and latency, and ``nearby``.

A synthetic national network: DCs carrying half the catalogue each, stores carrying a
small, popularity-biased share; orders of 1-5 lines over a Zipf-like catalogue, 80 %
ship, 12 % pick-up, 8 % same-day. Figures, each beside its same-run baseline:

* batch: ``source()`` with the ledger's per-SKU position index built first (cold:
  the build time is added) and already cached (warm), against the pure-Python
  reference (``allocator._reference.sourcing``, its index built outside the timing)
  on a subset of the same orders;
* single-order calls through a warm ``Sourcer``: p50/p99 latency, wall clock and the
  calling thread's CPU time (the wall-clock tail includes waiting for a core);
* ``nearby`` per call, against a brute-force scan (distance to every location, then
  the ledger's availability of every location).

JIT compilation is done, and timed, on a tiny instance before any measurement.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from allocator._reference.sourcing import reference_index, reference_source
from allocator.bench import median_time
from allocator.events import Events
from allocator.ledger import Ledger
from allocator.network import NetworkData
from allocator.sourcing import Orders, Sourcer, haversine_km, nearby
from allocator.sourcing.indexes import PositionIndex

DESCRIPTION = "greedy sourcing (batch, single order, nearby) vs pure Python and brute force"

__all__ = ["DESCRIPTION", "add_arguments", "make_instance", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", default="greedy", help="sourcing method (default greedy)")
    parser.add_argument("--locations", type=int, default=1_000)
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--single", type=int, default=2_000, help="single-order calls timed")
    parser.add_argument(
        "--reference-orders",
        type=int,
        default=500,
        help="orders given to the pure-Python reference",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for smoke tests")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-milp", action="store_true", help="optimal: skip the scipy MILP reference"
    )


def make_instance(
    num_locations: int, num_skus: int, num_orders: int, seed: int = 0
) -> tuple[NetworkData, Ledger, Orders]:
    """A seeded network, a stocked ledger and a batch of orders."""
    rng = np.random.default_rng(seed)
    n_dc = max(1, num_locations // 100)
    n_cities = max(1, num_locations // 50)
    city_lat = rng.uniform(22.0, 40.0, n_cities)
    city_lon = rng.uniform(103.0, 121.0, n_cities)
    home = rng.integers(0, n_cities, num_locations)
    lat = np.clip(city_lat[home] + rng.normal(0, 0.08, num_locations), -90, 90)
    lon = np.clip(city_lon[home] + rng.normal(0, 0.08, num_locations), -180, 180)
    kind = np.where(np.arange(num_locations) < n_dc, "warehouse", "store")
    is_store = kind == "store"
    network = NetworkData.from_arrays(
        channels=["store", "online", "marketplace"],
        location_name=[
            f"{'DC' if k == 'warehouse' else 'Store'}-{i:04d}" for i, k in enumerate(kind)
        ],
        location_kind=kind,
        lat=lat,
        lon=lon,
        sku_name=[f"SKU-{i:06d}" for i in range(num_skus)],
        sku_price=np.round(rng.uniform(5, 200, num_skus), 2),
        same_day_radius_km=np.where(is_store & (rng.random(num_locations) < 0.5), 15.0, 0.0),
        pick_capacity=np.where(is_store, 400, -1),
        cost_multiplier=np.where(is_store, 1.4, 1.0),
    )
    # popularity: rank r has weight 1 / (r + 10)
    weight = 1.0 / (np.arange(num_skus) + 10.0)
    weight /= weight.sum()
    dc_skus = [rng.choice(num_skus, num_skus // 2, replace=False) for _ in range(n_dc)]
    per_store = max(1, num_skus // 200)
    store_skus = [
        rng.choice(num_skus, per_store, replace=False, p=weight)
        for _ in range(num_locations - n_dc)
    ]
    sku = np.concatenate(dc_skus + store_skus)
    loc = np.concatenate(
        [np.full(len(s), i) for i, s in enumerate(dc_skus)]
        + [np.full(len(s), n_dc + i) for i, s in enumerate(store_skus)]
    )
    qty = rng.integers(1, 20, sku.shape[0])
    ledger = Ledger(network, capacity=sku.shape[0] + 16)
    ledger.apply(Events.receive(sku, loc, qty))
    # orders
    n_lines = rng.integers(1, 6, num_orders)
    order = np.repeat(np.arange(1, num_orders + 1), n_lines)
    line_sku = np.empty(order.shape[0], dtype=np.int64)
    start = 0
    for n in n_lines.tolist():
        line_sku[start : start + n] = rng.choice(num_skus, n, replace=False, p=weight)
        start += n
    service = rng.choice(3, num_orders, p=[0.80, 0.12, 0.08])
    stores = np.flatnonzero(is_store)
    pickup = np.where(service == 1, rng.choice(stores, num_orders), -1)
    anchor = rng.choice(stores, num_orders)
    o_lat = np.clip(lat[anchor] + rng.normal(0, 0.05, num_orders), -90, 90)
    o_lon = np.clip(lon[anchor] + rng.normal(0, 0.05, num_orders), -180, 180)
    rep = order - 1
    orders = Orders.from_lines(
        order=order,
        sku=line_sku,
        qty=rng.integers(1, 3, order.shape[0]),
        channel=1,
        lat=np.where(service[rep] == 1, np.nan, o_lat[rep]),
        lon=np.where(service[rep] == 1, np.nan, o_lon[rep]),
        service=service[rep],
        pickup_location=pickup[rep],
    )
    return network, ledger, orders


def run(args: argparse.Namespace) -> Any:
    """Greedy figures (a dict); with ``--method optimal`` one row per instance of
    :mod:`allocator.bench._optimal` (a list)."""
    if args.method == "optimal":
        from allocator.bench import _optimal

        return _optimal.run(args)
    if args.quick:
        args.locations, args.skus, args.orders = 60, 2_000, 400
        args.single, args.reference_orders = 100, 100
    t0 = time.perf_counter()
    tiny_net, tiny_ledger, tiny_orders = make_instance(20, 50, 20, seed=args.seed)
    Sourcer(tiny_net).source(tiny_ledger, tiny_orders, method=args.method)
    nearby(tiny_net, tiny_ledger, [0, 1], 30.0, 110.0, channel=1)
    compile_s = time.perf_counter() - t0

    network, ledger, orders = make_instance(args.locations, args.skus, args.orders, args.seed)
    n = orders.num_orders

    # batch: the per-SKU position index is built on the first call for a ledger and
    # cached until the ledger gains positions; "cold" counts that build, "warm" not
    sourcer = Sourcer(network)
    t0 = time.perf_counter()
    PositionIndex.from_ledger(ledger)
    index_s = time.perf_counter() - t0
    sourcer.positions(ledger)
    warm_s = median_time(lambda: sourcer.source(ledger, orders, method=args.method))
    batch_s = warm_s + index_s
    plan = sourcer.source(ledger, orders, method=args.method)

    # pure-Python reference on a prefix of the same orders
    m = min(args.reference_orders, n)
    subset = orders.take(np.arange(m))
    ref_index = reference_index(ledger)
    ref_s = median_time(
        lambda: reference_source(network, ledger, subset, index=ref_index), repeat=1
    )
    kern_sub_s = median_time(lambda: sourcer.source(ledger, subset, method=args.method))

    # single-order latency
    k = min(args.single, n)
    singles = [orders.take([i]) for i in range(k)]
    lat_ms = np.empty(k)
    # CPU time of the calling thread too: on a shared machine the wall-clock tail
    # holds the time spent waiting for a core, which the CPU figure leaves out
    cpu_ms = np.empty(k)
    for i, one in enumerate(singles):
        c = time.thread_time()
        t = time.perf_counter()
        sourcer.source(ledger, one, method=args.method)
        lat_ms[i] = (time.perf_counter() - t) * 1e3
        cpu_ms[i] = (time.thread_time() - c) * 1e3

    # nearby vs a brute-force scan
    rng = np.random.default_rng(args.seed + 7)
    calls = 500 if not args.quick else 100
    qs = rng.integers(0, min(200, network.num_skus), calls)
    anchor = rng.integers(0, network.num_locations, calls)
    pts = np.column_stack((network.lat[anchor] + 0.01, network.lon[anchor] + 0.01))
    t = time.perf_counter()
    for s, (la, lo) in zip(qs.tolist(), pts.tolist(), strict=True):
        sourcer.nearby(ledger, s, la, lo, channel=1, k=3)
    nearby_us = (time.perf_counter() - t) / calls * 1e6
    all_locs = np.arange(network.num_locations)
    t = time.perf_counter()
    for s, (la, lo) in zip(qs.tolist(), pts.tolist(), strict=True):
        d = haversine_km(network.lat, network.lon, la, lo)
        a = ledger.available(np.full(all_locs.shape[0], s), all_locs, 1)
        ok = (a > 0) & network.serves[:, 1] & ~network.excluded
        cand = np.flatnonzero(ok)
        cand[np.argsort(d[cand], kind="stable")[:3]]
    scan_us = (time.perf_counter() - t) / calls * 1e6

    ref_rate = m / ref_s
    sub_rate = m / kern_sub_s
    return {
        "method": args.method,
        "locations": network.num_locations,
        "skus": network.num_skus,
        "positions": ledger.num_positions,
        "orders": n,
        "lines": orders.num_lines,
        "compile_s": compile_s,
        "orders_per_s": n / batch_s,
        "orders_per_s_warm_index": n / warm_s,
        "index_build_s": index_s,
        "fill_rate": plan.fill_rate,
        "split_share": float(plan.split.mean()),
        "reference_orders": m,
        "reference_orders_per_s": ref_rate,
        "kernel_orders_per_s_same_subset": sub_rate,
        "speedup_vs_reference": sub_rate / ref_rate,
        "p50_ms": float(np.percentile(lat_ms, 50)),
        "p99_ms": float(np.percentile(lat_ms, 99)),
        "p50_cpu_ms": float(np.percentile(cpu_ms, 50)),
        "p99_cpu_ms": float(np.percentile(cpu_ms, 99)),
        "nearby_us": nearby_us,
        "nearby_scan_us": scan_us,
        "nearby_speedup_vs_scan": scan_us / nearby_us,
    }
