"""Nightly replenishment: forecast from sales, move surplus between stores, then buy.

Builds a small chain (a DC and six stores, 40 SKUs), stocks it unevenly, places a
few open purchase orders, and runs ``replenish`` on eight weeks of sales kept the
way analysts keep them (one row per SKU, store and date), with an order-up-to
policy and a purchase budget. It prints the plan, the per-position replenishment
report (on hand, reserved, on order, forecast, safety stock, s, S, suggested
quantity, source, cost, alerts, funded), the purchases the budget left out, shows
that every transfer source keeps more than its reorder point physically on the
shelf, applies the transfers to the ledger and, for comparison, prints the exact
optimal (s, S) of a few slow movers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from allocator import Ledger, Network
from allocator.replenishment import Action, OrderUpToPolicy, optimal_ss, replenish


def main() -> None:
    rng = np.random.default_rng(7)
    net = Network()
    for channel in ("store", "online"):
        net.add_channel(channel)
    net.add_location("DC", kind="warehouse", lat=31.10, lon=121.80)
    for i in range(6):
        net.add_location(f"S{i}", kind="store", lat=31.2 + 0.03 * i, lon=121.4 + 0.02 * i)
    for k in range(40):
        net.add_sku(
            f"SKU-{k:02d}", price=float(rng.uniform(10, 80)), unit_cost=float(rng.uniform(3, 30))
        )
    network = net.build()
    ledger = Ledger(network)

    sku, loc = np.meshgrid(np.arange(40), np.arange(1, 7), indexing="ij")
    sku, loc = sku.ravel(), loc.ravel()
    ledger.receive(sku, loc, rng.integers(1, 60, sku.size))
    rates = rng.gamma(1.2, 2.0, ledger.num_positions)
    history = rng.poisson(rates[:, None], (ledger.num_positions, 56))
    # the same sales as an analyst's long table: sku, location, date, qty
    pos, day = np.nonzero(history)
    sales = pd.DataFrame(
        {
            "sku": np.asarray(network.sku_names)[ledger.position_sku[pos]],
            "location": np.asarray(network.location_names)[ledger.position_location[pos]],
            "date": np.datetime64("2024-09-01") + day.astype("timedelta64[D]"),
            "qty": history[pos, day],
        }
    )
    # Some positions have just ordered: their inventory position is high, their shelf is not.
    on_order = np.where(rng.random(ledger.num_positions) < 0.3, 60, 0)

    plan = replenish(
        network,
        ledger,
        sales,  # dates binned into days (freq="D"); a positions x days array works too
        policy=OrderUpToPolicy(service_level=0.95),
        lead_time=5,
        review_period=1,
        pack=6,
        moq=12,
        shelf_max=120,
        budget=400.0,
        transfer_cost=0.4,
        transfer_cost_per_km=0.05,
        on_order=on_order,
    )
    print(plan.summary())
    moves = plan.action == Action.TRANSFER
    given = np.bincount(plan.origin[moves], weights=plan.qty[moves], minlength=len(on_order))
    src = np.flatnonzero(given > 0)
    margin = plan.free_stock[src] - given[src] - plan.reorder_point[src]
    print(
        f"  {src.size} sources ({int((on_order[src] > 0).sum())} with a purchase on order) "
        f"keep more than their reorder point on the shelf: smallest margin {int(margin.min())}"
    )
    print()
    report = plan.to_frame()
    cols = ["sku", "location", "on_hand", "on_order", "forecast", "safety_stock"]
    cols += ["reorder_point", "order_up_to_level", "suggested_qty", "source", "cost", "funded"]
    print(report.loc[report["suggested_qty"] > 0, cols].head(8).to_string(index=False))
    print()
    lines = plan.lines_frame()
    print(lines[["action", "sku", "from", "to", "qty", "reason"]].head(4).to_string(index=False))
    print(f"\n{plan.unfunded} purchases left unfunded by the budget, first ones:")
    print(plan.unfunded_frame()[["sku", "to", "qty", "unit_cost"]].head(3).to_string(index=False))
    print()
    print("first alerts:")
    print(plan.alerts_frame().head(5).to_string(index=False))

    result = ledger.apply(plan.to_events(first_id=1_000))
    print(f"\napplied {len(result)} transfer_out events: all ok = {result.ok}")
    arrived = ledger.apply(plan.received_events(first_id=2_000))
    print(f"received them at the destinations: all ok = {arrived.ok}")

    slow = np.argsort(plan.forecast_mean)[:3]
    s, big_s, cost = optimal_ss(np.asarray(plan.forecast_mean)[slow], 5, 15.0, 0.05, 2.0)
    for i, row in enumerate(slow):
        print(
            f"slow mover {network.sku_names[plan.sku[row]]} at "
            f"{network.location_names[plan.location[row]]}: mean "
            f"{plan.forecast_mean[row]:.2f}/day -> optimal (s, S) = ({s[i]}, {big_s[i]}), "
            f"cost {cost[i]:.2f}/day"
        )


if __name__ == "__main__":
    main()
