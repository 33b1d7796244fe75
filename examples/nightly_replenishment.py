"""Nightly replenishment: forecast from sales, move surplus between stores, then buy.

Builds a small chain (a DC and six stores, 40 SKUs), stocks it unevenly, places a
few open purchase orders, runs ``replenish`` with an order-up-to policy and a
purchase budget, prints the plan, shows that every transfer source keeps more than
its reorder point physically on the shelf, applies the transfers to the ledger
and, for comparison, prints the exact optimal (s, S) of a few slow movers.
"""

from __future__ import annotations

import numpy as np

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
    # Some positions have just ordered: their inventory position is high, their shelf is not.
    on_order = np.where(rng.random(ledger.num_positions) < 0.3, 60, 0)

    plan = replenish(
        network,
        ledger,
        history,
        policy=OrderUpToPolicy(service_level=0.95),
        lead_time=5,
        review_period=1,
        pack=6,
        moq=12,
        shelf_max=120,
        budget=20_000.0,
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
    frame = plan.to_frame()
    print(frame.head(8).to_string(index=False, max_colwidth=110))
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
