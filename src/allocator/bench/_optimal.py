"""``allocator bench sourcing --method optimal``: batch sourcing quality and time.

For each instance of a fixed, seeded set (1,000 orders x 100 locations and 10,000
orders x 300 locations; ``--quick``: 300 x 30) it reports, side by side:

* greedy: cost, packages, split rate, time;
* optimal (``time_limit`` 5 s / 60 s, gap target 1 % / 2 %): cost, proven lower
  bound, gap, time (model build and solve apart), packages, split rate;
* the same instance as a plain MIP (integer units per order line and location,
  binary packages, every stock and capacity row) solved by ``scipy.optimize.milp``
  (HiGHS) under a longer limit, as the same-run reference.

JIT compile time is measured on a tiny instance first and reported apart.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from allocator.events import Events
from allocator.ledger import Ledger
from allocator.network import NetworkData
from allocator.sourcing import Orders, Sourcer

__all__ = ["INSTANCES", "make_wave", "milp_reference", "run"]

#: (orders, locations, time limit s, gap target, MILP limit s)
INSTANCES = ((1_000, 100, 5.0, 0.01, 60.0), (10_000, 300, 60.0, 0.02, 180.0))
QUICK = ((300, 30, 2.0, 0.01, 20.0),)


def make_wave(
    num_orders: int,
    num_locations: int,
    seed: int = 0,
    num_skus: int = 3_000,
    dc_capacity: int = -1,
) -> tuple[NetworkData, Ledger, Orders]:
    """A regional network and one wave of orders.

    Locations cluster around cities; 1 in 25 is a DC carrying 60 % of the catalogue
    with deep stock, the rest are stores carrying a popularity-biased 6 % with 1-6
    units and a pick capacity of 25 units per wave. Orders have 1-5 lines (1-2 units)
    over a Zipf-like catalogue; 85 % ship, 10 % pick up in store, 5 % same day.
    """
    rng = np.random.default_rng(seed)
    n_dc = max(2, num_locations // 25)
    n_cities = max(2, num_locations // 12)
    city_lat = rng.uniform(23.0, 40.0, n_cities)
    city_lon = rng.uniform(104.0, 121.0, n_cities)
    home = rng.integers(0, n_cities, num_locations)
    lat = city_lat[home] + rng.normal(0, 0.06, num_locations)
    lon = city_lon[home] + rng.normal(0, 0.06, num_locations)
    is_store = np.arange(num_locations) >= n_dc
    kind = np.where(is_store, "store", "warehouse")
    network = NetworkData.from_arrays(
        channels=["store", "online"],
        location_name=[f"{'S' if s else 'DC'}-{i:04d}" for i, s in enumerate(is_store)],
        location_kind=kind,
        lat=lat,
        lon=lon,
        sku_name=[f"SKU-{i:05d}" for i in range(num_skus)],
        sku_price=np.round(rng.uniform(15, 120, num_skus), 2),
        same_day_radius_km=np.where(is_store & (rng.random(num_locations) < 0.5), 12.0, 0.0),
        pick_capacity=np.where(is_store, 25, dc_capacity),
        cost_multiplier=np.where(is_store, 1.4, 1.0),
    )
    weight = 1.0 / (np.arange(num_skus) + 20.0)
    weight /= weight.sum()
    dc_skus = [rng.choice(num_skus, int(num_skus * 0.6), replace=False) for _ in range(n_dc)]
    per_store = max(1, int(num_skus * 0.06))
    store_skus = [
        rng.choice(num_skus, per_store, replace=False, p=weight)
        for _ in range(num_locations - n_dc)
    ]
    sku = np.concatenate(dc_skus + store_skus)
    loc = np.concatenate(
        [np.full(len(s), i) for i, s in enumerate(dc_skus)]
        + [np.full(len(s), n_dc + i) for i, s in enumerate(store_skus)]
    )
    deep = loc < n_dc
    qty = np.where(deep, rng.integers(5, 40, sku.shape[0]), rng.integers(1, 7, sku.shape[0]))
    ledger = Ledger(network, capacity=sku.shape[0] + 16)
    ledger.apply(Events.receive(sku, loc, qty))
    n_lines = rng.integers(1, 6, num_orders)
    order = np.repeat(np.arange(1, num_orders + 1), n_lines)
    line_sku = np.concatenate([rng.choice(num_skus, k, replace=False, p=weight) for k in n_lines])
    service = rng.choice(3, num_orders, p=[0.85, 0.10, 0.05])
    stores = np.flatnonzero(is_store)
    pickup = np.where(service == 1, rng.choice(stores, num_orders), -1)
    anchor = rng.choice(stores, num_orders)
    o_lat = lat[anchor] + rng.normal(0, 0.05, num_orders)
    o_lon = lon[anchor] + rng.normal(0, 0.05, num_orders)
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


def milp_reference(problem: Any, time_limit: float) -> dict[str, Any]:
    """The plain MIP of the whole batch solved by ``scipy.optimize.milp`` (HiGHS)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    from allocator.sourcing.optimal.mip import mip_arrays
    from allocator.sourcing.optimal.model import build_model

    t0 = time.perf_counter()
    model = build_model(problem)
    every_con = np.ones(model.s_rhs.shape[0], dtype=np.bool_)
    every_loc = model.cap < (1 << 59)
    a = mip_arrays(
        model,
        np.arange(model.num_entries, dtype=np.int64),
        np.arange(model.num_orders, dtype=np.int64),
        every_con,
        every_loc,
    )
    integrality = np.zeros(a.obj.shape[0])
    integrality[: a.num_integer] = 1
    build_s = time.perf_counter() - t0
    res = milp(
        a.obj,
        constraints=LinearConstraint(a.matrix, a.row_lo, a.row_hi),
        bounds=Bounds(a.var_lo, a.var_hi),
        integrality=integrality,
        options={"time_limit": float(time_limit), "disp": False},
    )
    seconds = time.perf_counter() - t0
    has = res.x is not None
    bound = getattr(res, "mip_dual_bound", None)
    return {
        "milp_cost": float(res.fun) + a.offset if has else None,
        "milp_bound": float(bound) + a.offset if bound is not None and np.isfinite(bound) else None,
        "milp_status": "optimal"
        if res.status == 0
        else ("time_limit" if res.status == 1 else f"status_{res.status}"),
        "milp_seconds": seconds,
        "milp_build_s": build_s,
        "milp_variables": int(a.obj.shape[0]),
        "milp_rows": int(a.row_lo.shape[0]),
    }


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per instance (see the module docstring)."""
    t0 = time.perf_counter()
    net, ledger, orders = make_wave(30, 12, seed=99, num_skus=60)
    Sourcer(net).source(ledger, orders, method="optimal", time_limit=30.0)
    compile_s = time.perf_counter() - t0
    skip_milp = bool(getattr(args, "no_milp", False))
    rows = []
    for n_orders, n_locs, limit, gap, milp_limit in QUICK if args.quick else INSTANCES:
        net, ledger, orders = make_wave(n_orders, n_locs, seed=args.seed)
        sourcer = Sourcer(net)
        t = time.perf_counter()
        greedy = sourcer.source(ledger, orders)
        greedy_s = time.perf_counter() - t
        t = time.perf_counter()
        plan = sourcer.source(ledger, orders, method="optimal", time_limit=limit, gap=gap)
        seconds = time.perf_counter() - t
        row: dict[str, Any] = {
            "orders": n_orders,
            "locations": n_locs,
            "lines": orders.num_lines,
            "positions": ledger.num_positions,
            "time_limit": limit,
            "gap_target": gap,
            "greedy_cost": greedy.objective,
            "greedy_seconds": greedy_s,
            "greedy_packages": int(greedy.packages.sum()),
            "greedy_split_rate": float(greedy.split.mean()),
            "greedy_fill_rate": greedy.fill_rate,
            "cost": plan.objective,
            "lower_bound": plan.lower_bound,
            "gap": plan.gap,
            "greedy_gap": (greedy.objective - plan.lower_bound) / greedy.objective,
            "saving_vs_greedy": 1.0 - plan.objective / greedy.objective,
            "status": plan.status.slug,
            "seconds": seconds,
            "build_s": plan.build_s,
            "solve_s": plan.solve_s,
            "packages": int(plan.packages.sum()),
            "split_rate": float(plan.split.mean()),
            "fill_rate": plan.fill_rate,
            "compile_s": compile_s,
        }
        if skip_milp:
            row.update(milp_cost=None, milp_seconds=None, milp_status="skipped")
        else:
            problem = sourcer.prepare(ledger, orders)
            row.update(milp_reference(problem, milp_limit))
            row["milp_time_limit"] = milp_limit
        rows.append(row)
    return rows
