"""Optimal sourcing: brute-force equality, honest bounds, never worse than greedy, plan
rules (pick-up store first, stock shared by channels), kernels against their naive
twins, opportunity cost and bad input."""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator import Events, Ledger, Network, NetworkData
from allocator._kernels import optimal as K
from allocator._reference import optimal as naive
from allocator._reference.sourcing import haversine
from allocator.exceptions import ValidationError
from allocator.sourcing import CostModel, Orders, PlanStatus, Service, Sourcer, reserve_plan, source
from allocator.sourcing.optimal.model import build_model, kernel_model


def landed(u: int, km: float, mult: float = 1.0) -> float:
    """Textbook cost of one package of ``u`` units over ``km`` (default model)."""
    return mult * (8.759 + 0.423 * u) + 0.000336 * u * km


@pytest.fixture(scope="module", autouse=True)
def _compiled() -> None:
    """Compile the kernels once up front: a cold numba cache would otherwise spend the
    first example's time limit on compilation."""
    net, ledger, orders, opts = tiny_instance(1, max_orders=3)
    source(net, ledger, orders, method="optimal", **opts)
    # and the paths of shared stock (joint rows), fences and caps
    for seed in range(4):
        net, ledger, orders, opts = tiny_instance(seed, shared=True, store_share=0.5)
        source(net, ledger, orders, method="optimal", **opts)


# ---------------------------------------------------------------------------
# random instances
def tiny_instance(
    seed: int,
    *,
    max_orders: int = 6,
    max_locations: int = 5,
    max_lines: int = 3,
    max_qty: int = 2,
    shared: bool = False,
    store_share: float = 0.2,
    priority: str = "none",
) -> tuple[NetworkData, Ledger, Orders, dict[str, Any]]:
    """A random tiny batch; ``shared`` adds fences, caps and safety stock,
    ``store_share`` is the share of orders on the ``store`` channel (the rest online)
    and ``priority`` is ``"none"``, ``"pickup"`` (pick-up orders first) or
    ``"random"``."""
    rng = np.random.default_rng(seed)
    nl = int(rng.integers(2, max_locations + 1))
    ns = int(rng.integers(1, 5))
    net = Network()
    net.add_channel("store")
    net.add_channel("online")
    for i in range(nl):
        net.add_location(
            f"L{i}",
            kind=str(rng.choice(["store", "warehouse"])),
            lat=float(rng.uniform(31.0, 31.4)),
            lon=float(rng.uniform(121.2, 121.7)),
            channels=None if rng.random() < 0.85 else ["store"],
            ships=bool(rng.random() < 0.85),
            pickup=bool(rng.random() < 0.6),
            same_day_radius_km=float(rng.choice([0.0, 15.0, 40.0])),
            excluded=bool(rng.random() < 0.08),
            pick_capacity=None if rng.random() < 0.6 else int(rng.integers(0, 5)),
            cost_multiplier=float(rng.choice([1.0, 1.4, 2.0])),
        )
    for s in range(ns):
        net.add_sku(f"K{s}", price=None if rng.random() < 0.3 else float(rng.uniform(2, 30)))
    data = net.build()
    ledger = Ledger(data)
    cells = [(s, loc) for s in range(ns) for loc in range(nl) if rng.random() < 0.55]
    if cells:
        ledger.apply(
            Events.receive(
                [c[0] for c in cells],
                [c[1] for c in cells],
                rng.integers(1, 4, len(cells)).tolist(),
            )
        )
        for s, loc in cells:
            if rng.random() < 0.2:
                ledger.reserve(s, loc, 1, channel=int(rng.integers(0, 2)))
        if shared:
            # channel policies that make the channels compete for one pool
            for s, loc in cells:
                r = rng.random()
                if r < 0.3:
                    ledger.apply(Events.set_fence([s], [loc], [0], [int(rng.integers(1, 3))]))
                elif r < 0.45:
                    ledger.apply(Events.set_cap([s], [loc], [1], [int(rng.integers(0, 3))]))
                elif r < 0.55:
                    ledger.apply(Events.set_safety([s], [loc], [1]))
    pick_points = np.flatnonzero(data.pickup)
    rows: dict[str, list[Any]] = {
        k: []
        for k in (
            "order",
            "sku",
            "qty",
            "channel",
            "lat",
            "lon",
            "service",
            "pickup_location",
            "priority",
        )
    }
    for o in range(int(rng.integers(1, max_orders + 1))):
        svc = int(rng.choice(3, p=[0.6, 0.2, 0.2]))
        if svc == Service.PICKUP and pick_points.size == 0:
            svc = Service.SHIP
        p = int(rng.choice(pick_points)) if svc == Service.PICKUP else -1
        lat, lon = float(rng.uniform(31.0, 31.4)), float(rng.uniform(121.2, 121.7))
        chan = int(rng.choice(2, p=[store_share, 1 - store_share]))
        k = int(rng.integers(1, min(ns, max_lines) + 1))
        prio = {"none": 0, "pickup": int(svc == Service.PICKUP), "random": int(rng.integers(0, 3))}
        for s in rng.choice(ns, size=k, replace=False):
            for key, v in (
                ("order", o + 1),
                ("sku", int(s)),
                ("qty", int(rng.integers(1, max_qty + 1))),
                ("channel", chan),
                ("lat", lat),
                ("lon", lon),
                ("service", svc),
                ("pickup_location", p),
                ("priority", prio[priority]),
            ):
                rows[key].append(v)
    orders = Orders.from_lines(**{k: np.array(v) for k, v in rows.items()}, network=data)
    options: dict[str, Any] = {
        "max_splits": [None, 0, 1][int(rng.integers(0, 3))],
        "costs": CostModel(split_penalty=float(rng.choice([0.0, 3.0]))),
    }
    return data, ledger, orders, options


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_equals_brute_force_and_bound_is_honest(seed: int, shared: bool) -> None:
    net, ledger, orders, opts = tiny_instance(
        seed, shared=shared, store_share=0.5 if shared else 0.2, priority="random"
    )
    plan = source(net, ledger, orders, method="optimal", **opts)
    best = naive.brute_force(net, ledger, orders, **opts)
    assert plan.objective == pytest.approx(best, rel=1e-9, abs=1e-7)
    assert plan.status == PlanStatus.OPTIMAL
    assert plan.lower_bound <= best + 1e-6
    assert plan.gap == pytest.approx(0.0, abs=1e-6)


def takes_of(orders: Orders, plan: Any) -> dict[tuple[int, int, int], int]:
    """Units per (sku, location, channel) of a plan."""
    takes: dict[tuple[int, int, int], int] = {}
    chan = orders.channel[plan.order]
    for s, loc, c, q in zip(
        plan.sku.tolist(), plan.location.tolist(), chan.tolist(), plan.qty.tolist(), strict=True
    ):
        takes[(s, loc, c)] = takes.get((s, loc, c), 0) + q
    return takes


def pickup_rows(orders: Orders, plan: Any) -> dict[int, dict[int, int]]:
    """Units per line that pick-up orders take at their pick-up store."""
    out: dict[int, dict[int, int]] = {}
    for o, j, loc, q in zip(
        plan.order.tolist(),
        plan.line.tolist(),
        plan.location.tolist(),
        plan.qty.tolist(),
        strict=True,
    ):
        if orders.service[o] == Service.PICKUP and loc == orders.pickup_location[o]:
            out.setdefault(o, {})[j - int(orders.indptr[o])] = q
    return out


def follows_pickup_rule(
    net: NetworkData, ledger: Ledger, orders: Orders, plan: Any, opts: dict[str, Any]
) -> bool:
    """The pick-up store gives each pick-up order what the rule says, no more, no less."""
    cap = list(np.asarray(opts.get("pick_capacity", net.pick_capacity)).tolist())
    _, fixed = naive.pickup_first(net, ledger, orders, cap, naive.Stock(net, ledger))
    return pickup_rows(orders, plan) == fixed


def check_rules(
    net: NetworkData, ledger: Ledger, orders: Orders, plan: Any, opts: dict[str, Any]
) -> None:
    """Stock shared by channels, pick capacity, split limit, service rules, pick-up
    store first."""
    pos = np.asarray(ledger.position_index(plan.sku, plan.location))
    assert (pos >= 0).all() and (plan.qty > 0).all()
    assert naive.Stock(net, ledger).ok(takes_of(orders, plan))
    assert follows_pickup_rule(net, ledger, orders, plan, opts)
    chan = orders.channel[plan.order]
    cap = np.asarray(opts.get("pick_capacity", net.pick_capacity))
    picked = np.bincount(plan.location, weights=plan.qty, minlength=net.num_locations)
    assert ((cap < 0) | (picked <= cap)).all()
    alloc = np.bincount(plan.line, weights=plan.qty, minlength=orders.num_lines)
    assert np.array_equal(alloc + plan.line_unfilled, orders.qty)
    assert ((plan.line_unfilled > 0) == (plan.line_reason != 0)).all()
    if opts.get("max_splits") is not None:
        assert (plan.packages <= opts["max_splits"] + 1).all()
    assert not net.excluded[plan.location].any()
    assert net.serves[plan.location, chan].all()
    svc = orders.service[plan.order]
    store = orders.pickup_location[plan.order]
    # ship orders and pick-up transfers ship; picks at the pick-up store are not transfers
    ships = (svc == Service.SHIP) | ((svc == Service.PICKUP) & (plan.location != store))
    assert net.ships[plan.location[ships]].all()
    assert (plan.transfer == ((svc == Service.PICKUP) & (plan.location != store))).all()
    # same-day only within the location's own radius
    sd = svc == Service.SAME_DAY
    for o, loc in zip(plan.order[sd].tolist(), plan.location[sd].tolist(), strict=True):
        d = haversine(net.lat[loc], net.lon[loc], orders.lat[o], orders.lon[o])
        assert 0 < net.same_day_radius_km[loc] and d <= net.same_day_radius_km[loc]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_never_costlier_than_greedy_and_follows_the_rules(seed: int, shared: bool) -> None:
    net, ledger, orders, opts = tiny_instance(
        seed,
        max_orders=40,
        max_locations=8,
        max_lines=4,
        max_qty=3,
        shared=shared,
        store_share=0.5 if shared else 0.0,
        priority="none" if shared else "pickup",
    )
    rng = np.random.default_rng(seed)
    if rng.random() < 0.4:
        opts["pick_capacity"] = rng.integers(-1, 6, net.num_locations)
    before = ledger.available_all().copy()
    greedy = source(net, ledger, orders, **opts)
    plan = source(net, ledger, orders, method="optimal", time_limit=1.0, gap=0.01, **opts)
    assert np.array_equal(ledger.available_all(), before)
    # greedy's plan is the warm start when it follows the same rules. It may not:
    # greedy checks stock per channel only, and an earlier order of its sequence (a
    # transfer for another pick-up order, say) may take a pick-up store's stock. One
    # channel with pick-up orders first makes that rare.
    greedy_ok = naive.Stock(net, ledger).ok(takes_of(orders, greedy)) and follows_pickup_rule(
        net, ledger, orders, greedy, opts
    )
    if greedy_ok:
        assert plan.objective <= greedy.objective + 1e-7
    assert plan.bound <= plan.objective + 1e-7
    assert plan.method == "optimal" and plan.status in set(PlanStatus) - {PlanStatus.HEURISTIC}
    check_rules(net, ledger, orders, plan, opts)
    assert plan.baseline_cost is not None
    assert plan.baseline_cost.sum() == pytest.approx(greedy.objective)
    assert plan.objective == pytest.approx(plan.orders_frame()["cost"].sum())


# ---------------------------------------------------------------------------
# known answers
def two_stores() -> NetworkData:
    """N near customer A; F far from both; B's only other option is far."""
    net = Network()
    net.add_channel("online")
    net.add_location("N", kind="store", lat=0.0, lon=0.0)
    net.add_location("F", kind="warehouse", lat=0.0, lon=10.0)
    net.add_sku("A", price=100.0)
    return net.build()


def test_joint_sourcing_beats_first_come_first_served() -> None:
    """One unit at N, plenty at F (1,112 km east). Order 1 sits 0.5 deg east of N,
    order 2 at N. Greedy gives N's unit to order 1 (first); jointly it should go to
    order 2, which is farther from F."""
    net = two_stores()
    ledger = Ledger(net)
    ledger.apply(Events.receive(["A", "A"], ["N", "F"], [1, 50], network=net))
    orders = Orders.from_lines(
        order=[1, 2],
        sku=["A", "A"],
        qty=[1, 1],
        channel="online",
        lat=[0.0, 0.0],
        lon=[0.5, 0.0],
        network=net,
    )
    greedy = source(net, ledger, orders)
    plan = source(net, ledger, orders, method="optimal")
    d = [haversine(0, 0, 0, 0.5), haversine(0, 10, 0, 0.5), haversine(0, 10, 0, 0)]
    assert greedy.objective == pytest.approx(landed(1, d[0]) + landed(1, d[2]))
    assert plan.objective == pytest.approx(landed(1, d[1]) + landed(1, 0.0))
    assert plan.location.tolist() == [1, 0]
    assert plan.status == PlanStatus.OPTIMAL and plan.bound == pytest.approx(plan.objective)
    assert "dearer than greedy" in plan.explain(0) and "saves" in plan.explain(1)


def test_opportunity_cost_moves_units_to_the_warehouse() -> None:
    net = two_stores()
    ledger = Ledger(net)
    ledger.apply(Events.receive(["A", "A"], ["N", "F"], [5, 50], network=net))
    orders = Orders.from_lines(
        order=[1], sku=["A"], qty=[2], channel="online", lat=0.0, lon=0.0, network=net
    )
    plain = source(net, ledger, orders, method="optimal")
    assert plain.location.tolist() == [0]
    far = landed(2, haversine(0, 10, 0, 0))
    # a price of 1.0 per unit taken from N (location, sku) keeps N for walk-ins
    opp = np.array([[1.0], [0.0]])
    plan = source(net, ledger, orders, method="optimal", opportunity_cost=opp)
    assert plan.location.tolist() == [1] and plan.objective == pytest.approx(far)
    cheap = np.array([[0.01], [0.0]])
    plan = source(net, ledger, orders, method="optimal", opportunity_cost=cheap)
    assert plan.location.tolist() == [0]
    assert plan.objective == pytest.approx(landed(2, 0.0) + 0.02)
    assert plan.breakdown.opportunity_cost is not None
    assert plan.breakdown.opportunity_cost.tolist() == pytest.approx([0.02])
    # per ledger position row
    rows = np.zeros(ledger.num_positions)
    rows[ledger.position_index("A", "N")] = 1.0
    plan = source(net, ledger, orders, method="optimal", opportunity_cost=rows)
    assert plan.location.tolist() == [1]


def test_unfilled_when_cheaper_and_split_limit() -> None:
    net = two_stores()
    ledger = Ledger(net)
    ledger.apply(Events.receive(["A"], ["F"], [5], network=net))
    cheap = CostModel(unfilled_penalty=1.0, unfilled_at_price=False)
    orders = Orders.from_lines(
        order=[1], sku=["A"], qty=[1], channel="online", lat=0.0, lon=0.0, network=net
    )
    plan = source(net, ledger, orders, method="optimal", costs=cheap)
    assert len(plan) == 0 and plan.objective == pytest.approx(1.0)
    assert plan.unfilled_frame()["reason"].tolist() == ["uneconomic"]
    assert plan.status == PlanStatus.OPTIMAL


# ---------------------------------------------------------------------------
# the pick-up rule
def store_and_dc(pick_capacity: int | None = None) -> NetworkData:
    """Pick-up store S (handling x1.5) and a DC 5.6 km away (x1.0): sending a pick-up
    order's units from the DC as a transfer is cheaper than picking them at S."""
    net = Network()
    net.add_channel("store")
    net.add_channel("online")
    net.add_location(
        "S",
        kind="store",
        lat=0.0,
        lon=0.0,
        pickup=True,
        cost_multiplier=1.5,
        pick_capacity=pick_capacity,
    )
    net.add_location("DC", kind="warehouse", lat=0.0, lon=0.05)
    for sku in ("A", "B"):
        net.add_sku(sku, price=100.0)
    return net.build()


def pickup_order(net: NetworkData, lines: list[tuple[str, int]], **kw: Any) -> Orders:
    return Orders.from_lines(
        order=[1] * len(lines),
        sku=[s for s, _ in lines],
        qty=[q for _, q in lines],
        channel="online",
        service="pickup",
        pickup_location="S",
        network=net,
        **kw,
    )


def test_pickup_store_supplies_what_it_has_first() -> None:
    net = store_and_dc()
    ledger = Ledger(net)
    ledger.apply(Events.receive(["A", "A", "B"], ["S", "DC", "DC"], [1, 9, 9], network=net))
    orders = pickup_order(net, [("A", 2), ("B", 1)])
    # without the rule everything would come from the DC in one transfer package
    d = haversine(0.0, 0.05, 0.0, 0.0)
    assert landed(3, d) < landed(1, 0.0, 1.5) + landed(2, d)
    for method in ("greedy", "optimal"):
        plan = source(net, ledger, orders, method=method)
        rows = sorted(
            zip(plan.line.tolist(), plan.location.tolist(), plan.qty.tolist(), strict=True)
        )
        assert rows == [(0, 0, 1), (0, 1, 1), (1, 1, 1)], method
        assert plan.transfer.tolist() == [loc == 1 for loc in plan.location.tolist()]
        assert plan.objective == pytest.approx(landed(1, 0.0, 1.5) + landed(2, d))
    assert plan.status == PlanStatus.OPTIMAL and plan.bound == pytest.approx(plan.objective)


def test_pickup_store_capacity_limits_what_it_gives() -> None:
    """A pick capacity of 1 at S: line 0 takes the unit, line 1 comes by transfer."""
    net = store_and_dc(pick_capacity=1)
    ledger = Ledger(net)
    ledger.apply(
        Events.receive(["A", "B", "A", "B"], ["S", "S", "DC", "DC"], [5, 5, 5, 5], network=net)
    )
    orders = pickup_order(net, [("A", 1), ("B", 1)])
    greedy = source(net, ledger, orders)
    plan = source(net, ledger, orders, method="optimal")
    for p in (greedy, plan):
        assert sorted(zip(p.line.tolist(), p.location.tolist(), strict=True)) == [(0, 0), (1, 1)]
    assert plan.objective == pytest.approx(greedy.objective)


def test_pickup_orders_take_their_store_by_priority() -> None:
    """One unit at S, two pick-up orders for it: the higher priority gets it, the other
    a transfer, even though giving it to a ship order would save more."""
    net = store_and_dc()
    ledger = Ledger(net)
    ledger.apply(Events.receive(["A", "A"], ["S", "DC"], [1, 9], network=net))
    orders = Orders.from_lines(
        order=[1, 2, 3],
        sku=["A", "A", "A"],
        qty=[1, 1, 1],
        channel="online",
        service=["pickup", "pickup", "ship"],
        pickup_location=["S", "S", None],
        lat=[np.nan, np.nan, 0.0],
        lon=[np.nan, np.nan, -0.5],
        priority=[0, 1, 0],
        network=net,
    )
    plan = source(net, ledger, orders, method="optimal")
    at_store = plan.order[plan.location == 0].tolist()
    assert at_store == [1]
    assert plan.transfer[plan.order == 0].tolist() == [True]
    assert not plan.transfer[plan.order == 2].any()


# ---------------------------------------------------------------------------
# stock shared by channels
def test_channels_share_one_pool() -> None:
    """3 units at S and none elsewhere; the store channel has 1 fenced. Per channel the
    ledger shows online 2 and store 3, but only 3 units exist: 1 fenced for the store
    and 2 shared. The plan must fit all three channels' takes together."""
    net = store_and_dc()
    ledger = Ledger(net)
    ledger.apply(Events.receive(["A"], ["S"], [3], network=net))
    ledger.apply(Events.set_fence(["A"], ["S"], ["store"], [1], network=net))
    assert ledger.available("A", "S", "online") == 2
    assert ledger.available("A", "S", "store") == 3
    orders = Orders.from_lines(
        order=[1, 2],
        sku=["A", "A"],
        qty=[2, 3],
        channel=["online", "store"],
        lat=0.0,
        lon=0.0,
        network=net,
    )
    plan = source(net, ledger, orders, method="optimal")
    assert int(plan.qty.sum()) == 3
    assert naive.Stock(net, ledger).ok(takes_of(orders, plan))
    assert plan.status == PlanStatus.OPTIMAL
    # the store order is the one filled in full: one package of 3 beats 2 + 1
    assert plan.qty[plan.order == 1].tolist() == [3]
    assert plan.objective == pytest.approx(landed(3, 0.0, 1.5) + 2 * 100.0)
    assert plan.objective == pytest.approx(naive.brute_force(net, ledger, orders))
    reserved = reserve_plan(ledger, plan)
    assert reserved.ok and reserved.accepted.tolist() == [1]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_the_ledger_accepts_every_order_of_a_mixed_channel_plan(seed: int) -> None:
    net, ledger, orders, opts = tiny_instance(
        seed, max_orders=30, max_locations=6, max_lines=3, max_qty=3, shared=True, store_share=0.5
    )
    plan = source(net, ledger, orders, method="optimal", time_limit=1.0, **opts)
    filled = np.unique(plan.order)
    reserved = reserve_plan(ledger, plan)
    assert reserved.rejected.tolist() == []
    assert reserved.accepted.tolist() == filled.tolist()


# ---------------------------------------------------------------------------
# kernels against their naive twins
@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_order_dp_matches_enumeration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    nl = int(rng.integers(1, 5))
    nk = int(rng.integers(0, 5))
    qty = rng.integers(1, 4, nl)
    pen = rng.uniform(0.5, 20.0, nl)
    pkg = rng.uniform(0.0, 12.0, nk)
    price = rng.uniform(0.0, 6.0, (nk, nl))
    price[rng.random((nk, nl)) < 0.3] = np.inf
    max_locs = int(rng.integers(1, 4))
    split = float(rng.choice([0.0, 2.5]))
    open_ = int(rng.integers(0, 2))
    e_con = np.where(np.isinf(price), -1, 0).ravel().astype(np.int64)
    m = kernel_model(
        o_ptr=np.array([0, nl], dtype=np.int64),
        l_qty=qty.astype(np.int64),
        l_pen=pen,
        o_open=np.array([open_], dtype=np.int64),
        o_fixed=np.zeros(1),
        c_ptr=np.array([0, nk], dtype=np.int64),
        c_loc=np.arange(nk, dtype=np.int64),
        # an open package: one location fewer, and every new package pays the split
        c_pkg=pkg,
        c_pkg_split=pkg + split,
        c_eptr=np.arange(nk + 1, dtype=np.int64) * nl,
        e_con=e_con,
        e_pos=e_con,
        e_cost=np.where(np.isinf(price), 0.0, price).ravel(),
        e_loc=np.repeat(np.arange(nk, dtype=np.int64), nl),
        j_ptr=np.zeros(2, dtype=np.int64),
        j_row=np.zeros(0, dtype=np.int64),
        max_locs=max_locs,
        split=split,
    )
    scr = K.Scratch.allocate(nl, nk, nk * nl)
    unlimited = K.State(rem=np.zeros(1, dtype=np.int64), cap_rem=np.zeros(1, dtype=np.int64))
    got = K.order_dp(0, m, price.ravel(), False, unlimited, scr)
    choice = scr.choice
    want = naive.order_dp(
        qty.tolist(), pen.tolist(), pkg.tolist(), price.tolist(), max_locs, split, open_
    )
    assert got == pytest.approx(want)
    # the reported choice attains the value
    used = {int(k) for k in choice if k >= 0}
    cost = sum(pkg[k] for k in used) + split * max(0, len(used) + open_ - 1)
    cost += sum(qty[j] * (pen[j] if k < 0 else price[k, j]) for j, k in enumerate(choice))
    assert cost == pytest.approx(want) and len(used) + open_ <= max_locs


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_component_labels_match_set_merging(seed: int) -> None:
    net, ledger, orders, opts = tiny_instance(
        seed, max_orders=12, max_locations=6, shared=True, store_share=0.5
    )
    problem = Sourcer(net, opts["costs"]).prepare(ledger, orders, max_splits=opts["max_splits"])
    m = build_model(problem)
    rng = np.random.default_rng(seed)
    con_bind = rng.random(m.num_rows) < 0.5
    loc_bind = rng.random(m.num_locations) < 0.5
    label = np.empty(m.num_orders, dtype=np.int64)
    count = K.component_labels(m.kernel, con_bind, loc_bind, label)
    joint = {
        int(c): {int(r) for r in m.jm_row[m.jm_con == c]} for c in np.unique(m.jm_con).tolist()
    }
    groups: dict[tuple[str, int], set[int]] = {}
    for e in range(m.num_entries):
        con = int(m.e_con[e])
        if con < 0:
            continue
        o = int(m.e_order[e])
        for row in {con} | joint.get(con, set()):
            if con_bind[row]:
                groups.setdefault(("s", row), set()).add(o)
        if loc_bind[m.e_loc[e]]:
            groups.setdefault(("l", int(m.e_loc[e])), set()).add(o)
    want = naive.component_labels(list(groups.values()), m.num_orders)
    assert label.tolist() == want and count == (max(want) + 1 if want else 0)


# ---------------------------------------------------------------------------
# statuses, time limit, bad input
def test_time_limit_returns_at_least_greedy() -> None:
    from allocator.bench.sourcing import make_instance

    net, ledger, orders = make_instance(40, 400, 300, seed=3)
    greedy = source(net, ledger, orders)
    plan = source(net, ledger, orders, method="optimal", time_limit=1e-3, gap=0.0)
    assert plan.objective <= greedy.objective + 1e-7
    assert plan.bound <= plan.objective + 1e-7
    assert plan.status in (PlanStatus.TIME_LIMIT, PlanStatus.TIME_LIMIT_GREEDY)
    if plan.status == PlanStatus.TIME_LIMIT_GREEDY:
        assert plan.objective == pytest.approx(greedy.objective)
    else:
        assert plan.objective < greedy.objective
    assert plan.build_s > 0 and plan.solve_s >= 0
    assert "gap" in plan.summary()


def test_bad_options() -> None:
    net = two_stores()
    ledger = Ledger(net)
    ledger.apply(Events.receive(["A"], ["F"], [5], network=net))
    orders = Orders.from_lines(
        order=[1], sku=["A"], qty=[1], channel="online", lat=0.0, lon=0.0, network=net
    )
    for kw, field in (
        ({"time_limit": 0}, "time_limit"),
        ({"time_limit": math.inf}, "time_limit"),
        ({"gap": -0.1}, "gap"),
        ({"seed": True}, "seed"),
        ({"opportunity_cost": np.ones((3, 1))}, "opportunity_cost"),
        ({"opportunity_cost": np.array([[-1.0], [0.0]])}, "opportunity_cost"),
        ({"opportunity_cost": np.array([np.nan, 0.0])}, "opportunity_cost"),
        ({"opportunity_cost": np.zeros(0)}, "opportunity_cost"),
        ({"opportunity_cost": np.array(["x", "y"])}, "opportunity_cost"),
    ):
        with pytest.raises(ValidationError) as e:
            source(net, ledger, orders, method="optimal", **kw)
        assert e.value.field == field, kw


def test_bench_quick_runs_and_reports_keys() -> None:
    from allocator.bench import _optimal as bench
    from allocator.bench import sourcing

    parser = argparse.ArgumentParser()
    sourcing.add_arguments(parser)
    rows = bench.run(parser.parse_args(["--quick", "--method", "optimal"]))
    assert isinstance(rows, list) and rows
    for row in rows:
        for key in (
            "orders",
            "locations",
            "greedy_cost",
            "cost",
            "lower_bound",
            "gap",
            "seconds",
            "milp_cost",
            "milp_seconds",
            "packages",
            "split_rate",
        ):
            assert key in row, key
        assert row["lower_bound"] <= row["cost"] + 1e-6 <= row["greedy_cost"] + 2e-6
        if row["milp_status"] == "optimal":
            # an optimal MIP value can never be below a proven lower bound
            assert row["lower_bound"] <= row["milp_cost"] + 1e-6 * max(1.0, row["milp_cost"])


# ---------------------------------------------------------------------------
# the schedule: determinism, statuses, the LP bound
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_identical_calls_give_identical_plans(seed: int) -> None:
    """Budgets are iterations and nodes, not seconds: same input and seed, same plan."""
    from allocator.bench._optimal import make_wave

    net, ledger, orders = make_wave(60, 12, seed=seed, num_skus=120, dc_capacity=40)
    sourcer = Sourcer(net)
    plans = [
        sourcer.source(ledger, orders, method="optimal", time_limit=60.0, gap=1e-4, seed=seed)
        for _ in range(3)
    ]
    assert all(p.status != PlanStatus.TIME_LIMIT for p in plans)
    for p in plans[1:]:
        assert p.objective == plans[0].objective and p.bound == plans[0].bound
        assert p.status == plans[0].status
        for name in ("order", "line", "location", "qty"):
            assert np.array_equal(getattr(p, name), getattr(plans[0], name))


def test_statuses_say_why_the_search_stopped() -> None:
    from allocator.bench._optimal import make_wave

    net, ledger, orders = make_wave(60, 12, seed=3, num_skus=120, dc_capacity=40)
    sourcer = Sourcer(net)
    loose = sourcer.source(ledger, orders, method="optimal", time_limit=60.0, gap=0.5)
    assert loose.status in (PlanStatus.GAP_MET, PlanStatus.OPTIMAL)
    assert loose.gap <= 0.5
    tight = sourcer.source(ledger, orders, method="optimal", time_limit=60.0, gap=0.0)
    assert tight.status in (PlanStatus.STALLED, PlanStatus.OPTIMAL)
    assert tight.bound <= tight.objective + 1e-6
    assert PlanStatus.FEASIBLE is PlanStatus.GAP_MET


def test_lp_bound_is_a_valid_bound() -> None:
    from allocator.sourcing.optimal.bounds import lp_bound

    for seed in range(6):
        net, ledger, orders, opts = tiny_instance(seed, shared=True)
        split = {k: v for k, v in opts.items() if k != "costs"}
        problem = Sourcer(net, opts.get("costs")).prepare(ledger, orders, **split)
        m = build_model(problem)
        every = np.arange(m.num_entries, dtype=np.int64)
        res = lp_bound(
            m,
            every,
            np.arange(m.num_orders, dtype=np.int64),
            np.ones(m.num_rows, dtype=np.bool_),
            m.cap < (1 << 59),
        )
        best = naive.brute_force(net, ledger, orders, **opts)
        assert res.bound <= best + 1e-6
        assert (res.stock_price >= 0).all() and (res.cap_price >= 0).all()


# ---------------------------------------------------------------------------
# future-aware sourcing
def two_dcs() -> tuple[NetworkData, Ledger]:
    """DC-A next to the customers, DC-B 600 km away, one SKU at 50."""
    net = Network()
    net.add_channel("online")
    net.add_location("DC-A", kind="warehouse", lat=30.0, lon=120.0)
    net.add_location("DC-B", kind="warehouse", lat=30.0, lon=126.2)
    net.add_sku("X", price=50.0)
    data = net.build()
    ledger = Ledger(data)
    ledger.apply(Events.receive(["X", "X"], ["DC-A", "DC-B"], [5, 5], network=data))
    return data, ledger


def test_future_prices_known_answer() -> None:
    """8 units still to come near DC-A, 5 there: DC-A's unit saves the detour from DC-B."""
    from allocator.sourcing import DemandForecast, future_prices

    net, ledger = two_dcs()
    costs = CostModel(per_unit_km=0.01)
    fc = DemandForecast.from_arrays(
        net, region_lat=[30.0], region_lon=[120.0], units=np.array([[[8.0]]])
    )
    prices = future_prices(net, ledger, fc, costs=costs, scale=2.0)
    km = haversine(30.0, 120.0, 30.0, 126.2)
    assert prices.dual[0, 0] == pytest.approx(0.01 * km, rel=1e-6)
    assert prices.dual[1, 0] == pytest.approx(0.0, abs=1e-9)
    assert prices.opportunity_cost[0, 0] == pytest.approx(2.0 * prices.dual[0, 0])
    # more stock at DC-A than demand: its units are worth nothing extra
    fc_small = fc.scaled(0.5)
    assert future_prices(net, ledger, fc_small, costs=costs).dual[0, 0] == pytest.approx(0.0)
    # demand beyond all stock: the last unit is worth its lost sale less its shipping
    fc_big = fc.scaled(2.0)
    got = future_prices(net, ledger, fc_big, costs=costs, scale=1.0).dual
    per_unit = costs.per_unit + costs.per_package
    assert got[1, 0] == pytest.approx(50.0 - per_unit - 0.01 * km, rel=1e-6)


def test_future_option_steers_the_far_customer_to_the_far_stock() -> None:
    """A customer halfway takes DC-A's unit myopically; with the forward model (many
    customers to come near DC-A) it takes DC-B's."""
    from allocator.sourcing import DemandForecast, ForwardModel

    net, ledger = two_dcs()
    costs = CostModel(per_unit_km=0.01)
    one = Orders.from_lines(
        order=[1], sku=["X"], qty=[1], channel=0, lat=30.0, lon=122.9, network=net
    )
    myopic = source(net, ledger, one, method="optimal", costs=costs)
    assert net.location_names[int(myopic.location[0])] == "DC-A"
    fc = DemandForecast.from_arrays(
        net, region_lat=[30.0], region_lon=[120.0], units=np.array([[[8.0]]])
    )
    model = ForwardModel(net, fc, costs=costs, scale=1.0)
    aware = source(net, ledger, one, method="optimal", costs=costs, future=model)
    assert net.location_names[int(aware.location[0])] == "DC-B"
    # the charge is reported apart and the plan's true cost is DC-B's
    assert aware.breakdown.opportunity_cost is not None
    assert model.calls == 1 and model.solves == 1
    with pytest.raises(ValidationError) as e:
        source(net, ledger, one, method="optimal", future="soon")
    assert e.value.field == "future"


def test_season_policies_against_hindsight() -> None:
    """Hindsight is a lower bound on every policy's season; the policies run."""
    from allocator.bench.season import hindsight, make_season, run_policy

    season = make_season(5, num_orders=150, num_skus=8, num_regions=4, num_fcs=3)
    h = hindsight(season)
    assert h["optimal"]
    for policy in ("greedy", "batch_optimal", "future_waves"):
        got = run_policy(season, policy, wave=50)
        assert got["cost"] >= h["cost"] - 1e-6


@pytest.mark.slow
def test_bench_season_quick_reports_the_keys() -> None:
    from allocator.bench import season

    args = argparse.Namespace(
        seeds=2, orders=600, wave=50, scales="1,1.5", sim_seeds=2, sim_days=2, quick=True
    )
    out = season.run(args)
    for key in (
        "gap_closed",
        "season_cost",
        "hindsight_cost",
        "sim_objective",
        "sim_lost_value",
        "deterministic",
    ):
        assert key in out, key
    assert set(out["gap_closed"]) == set(season.POLICIES)
    assert all(len(v) == 2 for v in out["season_cost"].values())
    pairs = zip(out["hindsight_cost"], out["season_cost"]["greedy"], strict=True)
    assert all(h <= g + 1e-6 for h, g in pairs)
    assert out["deterministic"] is True
    assert set(out["sim_objective"]) == {"greedy", "future"}
