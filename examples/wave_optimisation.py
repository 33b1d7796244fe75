"""Wave optimisation: source a batch of online orders jointly instead of one by one.

Builds a regional network (DCs and stores with little stock and a pick capacity per
wave), sources one wave greedily and with ``method="optimal"``, and prints the cost,
the proven lower bound and gap, packages and split orders, a few explanations that
say what each order saved against greedy, and the effect of an opportunity cost that
keeps store stock for walk-in customers.
"""

from __future__ import annotations

import numpy as np

from allocator.bench._optimal import make_wave
from allocator.network import LocationKind
from allocator.sourcing import Sourcer

network, ledger, orders = make_wave(800, 60, seed=7)
print(orders.summary())
sourcer = Sourcer(network)

greedy = sourcer.source(ledger, orders)
plan = sourcer.source(ledger, orders, method="optimal", time_limit=5.0, gap=0.01)
print(greedy.summary())
print(plan.summary())
print(
    f"greedy {greedy.objective:,.2f} -> optimal {plan.objective:,.2f} "
    f"({1 - plan.objective / greedy.objective:.1%} cheaper); lower bound "
    f"{plan.lower_bound:,.2f}, gap {plan.gap:.2%}, build {plan.build_s:.2f} s, "
    f"solve {plan.solve_s:.2f} s"
)
print(
    f"packages {int(greedy.packages.sum())} -> {int(plan.packages.sum())}, "
    f"split orders {int(greedy.split.sum())} -> {int(plan.split.sum())}"
)

# orders whose plan changed the most, both ways
assert plan.baseline_cost is not None
delta = plan.cost - plan.baseline_cost
for i in [*np.argsort(delta)[:3].tolist(), int(np.argmax(delta))]:
    print(f"order {int(orders.id[i])}: {plan.explain(i)}")

# an opportunity cost of 2.0 per unit taken from a store (not from a DC)
is_store = network.location_kind == LocationKind.STORE
opp = np.where(is_store[:, None], 2.0, 0.0) * np.ones((1, network.num_skus))
kept = sourcer.source(
    ledger, orders, method="optimal", time_limit=5.0, gap=0.01, opportunity_cost=opp
)
store_units = int(kept.qty[is_store[kept.location]].sum())
before = int(plan.qty[is_store[plan.location]].sum())
print(
    f"with an opportunity cost of 2.00 per store unit: units picked in stores "
    f"{before} -> {store_units}; objective {kept.objective:,.2f} "
    f"(opportunity part {float(kept.breakdown.opportunity_cost.sum()):,.2f})"
)
