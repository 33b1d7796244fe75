"""Optimal sourcing: brute-force equality, honest bounds, never worse than greedy, plan
rules, kernels against their naive twins, opportunity cost and bad input."""

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
from allocator.exceptions import ValidationError
from allocator.sourcing import CostModel, Orders, PlanStatus, Service, Sourcer, source
from allocator.sourcing._optimal_model import build_model
from tests import naive_optimal as naive
from tests.naive_sourcing import haversine


def landed(u: int, km: float, mult: float = 1.0) -> float:
    """Textbook cost of one package of ``u`` units over ``km`` (default model)."""
    return mult * (8.759 + 0.423 * u) + 0.000336 * u * km


@pytest.fixture(scope="module", autouse=True)
def _compiled() -> None:
    """Compile the kernels once up front: a cold numba cache would otherwise spend the
    first example's time limit on compilation."""
    net, ledger, orders, opts = tiny_instance(1, max_orders=3)
    source(net, ledger, orders, method="optimal", **opts)


# ---------------------------------------------------------------------------
# random instances
def tiny_instance(
    seed: int, *, max_orders: int = 6, max_locations: int = 5, max_lines: int = 3, max_qty: int = 2
) -> tuple[NetworkData, Ledger, Orders, dict[str, Any]]:
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
    pick_points = np.flatnonzero(data.pickup)
    rows: dict[str, list[Any]] = {
        k: []
        for k in ("order", "sku", "qty", "channel", "lat", "lon", "service", "pickup_location")
    }
    for o in range(int(rng.integers(1, max_orders + 1))):
        svc = int(rng.choice(3, p=[0.6, 0.2, 0.2]))
        if svc == Service.PICKUP and pick_points.size == 0:
            svc = Service.SHIP
        p = int(rng.choice(pick_points)) if svc == Service.PICKUP else -1
        lat, lon = float(rng.uniform(31.0, 31.4)), float(rng.uniform(121.2, 121.7))
        chan = int(rng.choice(2, p=[0.2, 0.8]))
        k = int(rng.integers(1, min(ns, max_lines) + 1))
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
            ):
                rows[key].append(v)
    orders = Orders.from_lines(**{k: np.array(v) for k, v in rows.items()}, network=data)
    options: dict[str, Any] = {
        "max_splits": [None, 0, 1][int(rng.integers(0, 3))],
        "costs": CostModel(split_penalty=float(rng.choice([0.0, 3.0]))),
    }
    return data, ledger, orders, options


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_equals_brute_force_and_bound_is_honest(seed: int) -> None:
    net, ledger, orders, opts = tiny_instance(seed)
    plan = source(net, ledger, orders, method="optimal", **opts)
    best = naive.brute_force(net, ledger, orders, **opts)
    assert plan.objective == pytest.approx(best, rel=1e-9, abs=1e-7)
    assert plan.status == PlanStatus.OPTIMAL
    assert plan.lower_bound <= best + 1e-6
    assert plan.gap == pytest.approx(0.0, abs=1e-6)


def check_rules(
    net: NetworkData, ledger: Ledger, orders: Orders, plan: Any, opts: dict[str, Any]
) -> None:
    """Availability per (position, channel), pick capacity, split limit, service rules."""
    atp = ledger.available_all()
    chan = orders.channel[plan.order]
    pos = np.asarray(ledger.position_index(plan.sku, plan.location))
    assert (pos >= 0).all() and (plan.qty > 0).all()
    used = np.zeros_like(atp)
    np.add.at(used, (pos, chan), plan.qty)
    assert (used <= atp).all()
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
@given(st.integers(0, 2**32 - 1))
def test_never_costlier_than_greedy_and_follows_the_rules(seed: int) -> None:
    net, ledger, orders, opts = tiny_instance(
        seed, max_orders=40, max_locations=8, max_lines=4, max_qty=3
    )
    rng = np.random.default_rng(seed)
    if rng.random() < 0.4:
        opts["pick_capacity"] = rng.integers(-1, 6, net.num_locations)
    before = ledger.available_all().copy()
    greedy = source(net, ledger, orders, **opts)
    plan = source(net, ledger, orders, method="optimal", time_limit=1.0, gap=0.01, **opts)
    assert np.array_equal(ledger.available_all(), before)
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
    e_con = np.where(np.isinf(price), -1, 0).ravel().astype(np.int64)
    size = 1 << K.LMAX
    choice = np.empty(nl, dtype=np.int64)
    got = K.order_dp(
        0,
        np.array([0, nl]),
        qty.astype(np.int64),
        pen,
        np.array([0, nk]),
        np.arange(nk, dtype=np.int64),
        pkg,
        np.arange(nk + 1, dtype=np.int64) * nl,
        e_con,
        price.ravel(),
        max_locs,
        split,
        False,
        np.zeros(1, dtype=np.int64),
        np.zeros(1, dtype=np.int64),
        np.empty(size),
        np.empty(size, dtype=np.int64),
        np.empty((K.LMAX + 1, size)),
        np.empty((K.LMAX + 1, size), dtype=np.int64),
        choice,
    )
    want = naive.order_dp(qty.tolist(), pen.tolist(), pkg.tolist(), price.tolist(), max_locs, split)
    assert got == pytest.approx(want)
    # the reported choice attains the value
    used = {int(k) for k in choice if k >= 0}
    cost = sum(pkg[k] for k in used) + split * max(0, len(used) - 1)
    cost += sum(qty[j] * (pen[j] if k < 0 else price[k, j]) for j, k in enumerate(choice))
    assert cost == pytest.approx(want) and len(used) <= max_locs


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_component_labels_match_set_merging(seed: int) -> None:
    net, ledger, orders, opts = tiny_instance(seed, max_orders=12, max_locations=6)
    problem = Sourcer(net, opts["costs"]).prepare(ledger, orders, max_splits=opts["max_splits"])
    m = build_model(problem)
    rng = np.random.default_rng(seed)
    con_bind = rng.random(m.s_rhs.shape[0]) < 0.5
    loc_bind = rng.random(m.num_locations) < 0.5
    label = np.empty(m.num_orders, dtype=np.int64)
    count = K.component_labels(
        m.o_ptr, m.l_qty, m.c_ptr, m.c_loc, m.c_eptr, m.e_con, con_bind, loc_bind, label
    )
    groups: dict[tuple[str, int], set[int]] = {}
    for e in range(m.num_entries):
        con = int(m.e_con[e])
        if con < 0:
            continue
        o = int(m.e_order[e])
        if con_bind[con]:
            groups.setdefault(("s", con), set()).add(o)
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
