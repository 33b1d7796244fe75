"""``allocator bench simulate``: a 90-day run of a national-size chain, timed by part.

Default size: 100 stores + 3 DCs, 20,000 SKUs, 90 days from day 250 of the year
(crossing the 11.11 peak), 15,000 own online and 5,000 marketplace orders a day,
greedy sourcing, nightly replenishment (purchases every night, transfers between
locations weekly), daily channel fences. The target is <= 10 minutes.

Figures: total seconds (wall; and the process's CPU seconds, which a shared
machine disturbs less) and seconds per simulated day, split by component (ledger,
sourcing, replenishment, channels, demand generation, other), orders and events,
with JIT compilation (a one-day run of a tiny scenario first) reported apart. The
same-run baseline of the ledger figure: the logged events of the first simulated
day replayed into a fresh ledger in one batch, against the rate the loop achieves
applying them wave by wave in small batches.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from allocator.ledger import Ledger
from allocator.scenarios import department_store
from allocator.simulation import COMPONENTS, simulate

DESCRIPTION = "capacity-planning simulation: 100 stores + 3 DCs, 20k SKUs, 90 days"

__all__ = ["DESCRIPTION", "add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stores", type=int, default=100)
    parser.add_argument("--dcs", type=int, default=3)
    parser.add_argument("--skus", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--online-orders", type=float, default=15_000.0)
    parser.add_argument("--marketplace-orders", type=float, default=5_000.0)
    parser.add_argument("--sourcing", default="greedy", help="sourcing method (default greedy)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for smoke tests")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        stores, dcs, skus, days = 6, 1, 300, 3
        online, market = 200.0, 60.0
    else:
        stores, dcs, skus, days = args.stores, args.dcs, args.skus, args.days
        online, market = args.online_orders, args.marketplace_orders
    scale = stores / 20
    scenario = department_store(
        name="bench",
        num_stores=stores,
        num_dcs=dcs,
        num_skus=skus,
        online_orders=online,
        marketplace_orders=market,
        # DCs pick what the online channels ask for on an ordinary day (+10 %)
        dc_pick_capacity=int(1.1 * (online + market) * 2.1 * 1.2 / max(dcs, 1)),
        transfer_every_days=7,
        start_day_of_year=250,
        radius_km=30.0 * max(1.0, scale**0.5),
    )
    # JIT compilation, apart: a one-day run of a tiny scenario
    t0 = time.perf_counter()
    simulate(
        department_store(num_stores=3, num_dcs=1, num_skus=50, online_orders=40.0),
        days=1,
        sourcing=args.sourcing,
        keep_log=False,
    )
    compile_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    data = scenario.build(args.seed)
    build_s = time.perf_counter() - t0
    cpu0 = time.process_time()
    result = simulate(data, sourcing=args.sourcing, days=days, keep_log=False)
    cpu_s = time.process_time() - cpu0
    total = result.timings["total"]

    # same-run baseline: day one's logged events replayed into a fresh ledger at once
    first = simulate(data, sourcing=args.sourcing, days=1)
    assert first.log is not None
    events = first.log.to_events()
    fresh = Ledger(data.network, capacity=data.num_positions + 16)
    t1 = time.perf_counter()
    fresh.apply(events)
    replay_rate = len(events) / (time.perf_counter() - t1)

    k = result.kpis
    figures: dict[str, Any] = {
        "stores": stores,
        "dcs": dcs,
        "skus": skus,
        "positions": data.num_positions,
        "days": days,
        "sourcing": args.sourcing,
        "seconds": total,
        "seconds_per_day": total / days,
        "cpu_seconds": cpu_s,
        "target_seconds": 600.0,
        "build_seconds": build_s,
        "compile_seconds": compile_s,
        "orders": k.orders,
        "events": k.events,
    }
    for name in COMPONENTS:
        figures[f"{name}_seconds"] = result.timings[name]
        figures[f"{name}_share"] = result.timings[name] / total if total > 0 else 0.0
    figures.update(
        ledger_events_per_s_in_loop=k.ledger_events_per_s,
        replay_events_per_s=replay_rate,
        loop_vs_replay=k.ledger_events_per_s / replay_rate,
        fill_rate_online=k.fill_rate["online"],
        fill_rate_store=k.fill_rate["store"],
        pickup_on_time=k.pickup_on_time,
        oversells=k.oversells,
    )
    return figures
