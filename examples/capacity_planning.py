"""Capacity planning: how many online orders a day can the stores and DCs handle?

Builds a small department-store chain (8 stores, 1 DC, 600 SKUs), simulates a
week around the 11.11 peak with greedy sourcing (and "optimal" when that method
is registered), then sweeps online order volume to find where the pick-up promise
and the online fill rate break, and sweeps pick capacity to see how much more the
stores would need. Writes the HTML report when matplotlib is installed.
"""

from __future__ import annotations

import os
import tempfile

from allocator.scenarios import department_store
from allocator.simulation import capacity_sweep, compare, write_report
from allocator.sourcing import methods


def main() -> None:
    scenario = department_store(
        num_stores=8,
        num_dcs=1,
        num_skus=600,
        online_orders=500.0,
        marketplace_orders=150.0,
        store_pick_capacity=80,
        dc_pick_capacity=1_200,
        start_day_of_year=310,
    )
    data = scenario.build(seed=7)
    print(data.summary())

    policies = [p for p in ("greedy", "optimal") if p in methods()]
    comparison = compare(data, policies, days=6, keep_log=False)
    print(f"\nsix days around 11.11 (day 4), sourcing: {', '.join(policies)}")
    print(comparison.summary())
    greedy = comparison.results["greedy"]
    peak = int(greedy.daily.orders.argmax())
    util = greedy.daily.utilisation[:, peak]
    busiest = data.network.location_names[int(util.argmax())]
    print(
        f"\npeak day {peak} ({greedy.daily.promotion[peak] or 'no promotion'}): "
        f"{int(greedy.daily.orders[peak]):,} orders, online fill rate "
        f"{greedy.daily.fill_rate[1, peak]:.1%}, busiest location {busiest} at {util.max():.0%}"
    )

    volume = capacity_sweep(
        scenario.replace(promotions=()),
        (0.5, 1.0, 1.5, 2.5),
        kind="volume",
        days=2,
        seed=7,
        keep_log=False,
    )
    print("\norder volume sweep (no promotion):")
    print(volume.summary())

    capacity = capacity_sweep(
        scenario.replace(promotions=(), online_orders=1_000.0),
        (0.5, 1.0, 2.0),
        kind="capacity",
        days=2,
        seed=7,
        keep_log=False,
    )
    print("\npick capacity sweep at twice the online volume:")
    print(capacity.summary().splitlines()[0])
    for m, r in zip(capacity.multipliers, capacity.results, strict=True):
        print(
            f"  capacity x{m:g}: online fill {r.kpis.fill_rate['online']:.1%}, "
            f"pick-up on time {r.kpis.pickup_on_time:.1%}, "
            f"cost/order {r.kpis.cost_per_order:.2f}"
        )

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("\n(matplotlib not installed: no report)")
        return
    out = os.environ.get("ALLOCATOR_EXAMPLE_OUT") or tempfile.mkdtemp(prefix="capacity-")
    path = write_report(comparison, os.path.join(out, "capacity_report"), sweep=volume)
    print(f"\nreport: {path}")


if __name__ == "__main__":
    main()
