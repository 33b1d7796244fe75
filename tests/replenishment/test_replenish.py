"""Replenishment: textbook known answers, kernel-vs-naive oracles, plan invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from allocator import Ledger, Network, NetworkData
from allocator._kernels import replenish as K
from allocator._reference import replenish as naive
from allocator.events import Events
from allocator.exceptions import ValidationError
from allocator.replenishment import (
    Action,
    Forecast,
    MinMaxPolicy,
    OptimalPoissonPolicy,
    OrderUpToPolicy,
    ReorderPointPolicy,
    eoq,
    optimal_ss,
    plan_transfers,
    replenish,
)
from allocator.replenishment import transfers as T

ONE = np.ones(1)


# ------------------------------------------------------------------ known answers
def test_eoq_textbook() -> None:
    # D = 1,000 units, K = 50, h = 2.5 -> Q* = sqrt(2 * 50 * 1000 / 2.5) = 200.
    assert eoq(1000.0, 50.0, 2.5)[0] == pytest.approx(200.0, abs=1e-9)


def test_newsvendor_normal_critical_fractile() -> None:
    # p = 9, h = 1 -> fractile 0.9; mu = 100, sigma = 20 -> S* = 100 + 1.28155 * 20.
    lv = OrderUpToPolicy(service_level=0.9).levels(
        np.array([100.0]), np.array([20.0]), ONE, np.zeros(1)
    )
    exact = stats.norm.ppf(0.9, 100, 20)
    assert lv.safety_stock[0] + 100 == pytest.approx(exact, abs=1e-6)
    assert lv.order_up_to_level[0] == math.ceil(exact)


def test_newsvendor_poisson_critical_fractile() -> None:
    # Poisson(12), fractile 0.8: smallest S with F(S) >= 0.8.
    lv = OrderUpToPolicy(service_level=0.8, distribution="poisson").levels(
        np.array([12.0]), np.zeros(1), ONE, np.zeros(1)
    )
    assert lv.order_up_to_level[0] == int(stats.poisson.ppf(0.8, 12)) == 15


def test_base_stock_normal_over_lead_time() -> None:
    # mu = 50/day, sigma = 10/day, L = 4, R = 1, alpha = 0.95: S = 250 + 1.6449 * 10 * sqrt(5).
    lv = OrderUpToPolicy(service_level=0.95).levels(
        np.array([50.0]), np.array([10.0]), np.array([4.0]), ONE
    )
    exact = 250 + stats.norm.ppf(0.95) * 10 * math.sqrt(5)
    assert lv.safety_stock[0] == pytest.approx(exact - 250, abs=1e-6)
    assert lv.order_up_to_level[0] == math.ceil(exact)
    assert lv.reorder_point[0] == math.ceil(exact) - 1


def test_s_q_normal() -> None:
    # Continuous review (R = 0): s = mu L + z sigma sqrt(L), Q = EOQ.
    pol = ReorderPointPolicy(order_cost=50.0, holding_cost=0.1, service_level=0.98)
    lv = pol.levels(np.array([20.0]), np.array([5.0]), np.array([9.0]), np.zeros(1))
    s_exact = 180 + stats.norm.ppf(0.98) * 15
    q = round(math.sqrt(2 * 50 * 20 / 0.1))
    assert lv.reorder_point[0] == math.ceil(s_exact)
    assert lv.batch[0] == q
    assert lv.order_up_to_level[0] == math.ceil(s_exact) + q


# Zheng & Federgruen (1991), Table 1: h = 1, p = 9, K = 64, Poisson demand.
ZF_MU = [*range(10, 80, 5), 21, 22, 23, 24, 51, 52, 59, 61, 63, 64]
ZF_S = [
    6,
    10,
    14,
    19,
    23,
    28,
    33,
    37,
    42,
    47,
    52,
    56,
    62,
    67,
    15,
    16,
    17,
    18,
    43,
    44,
    51,
    52,
    54,
    55,
]
ZF_BIG_S = [
    40,
    49,
    62,
    56,
    66,
    77,
    87,
    97,
    108,
    118,
    129,
    75,
    81,
    86,
    65,
    68,
    52,
    54,
    110,
    112,
    126,
    131,
    73,
    74,
]
ZF_COST = [
    35.022,
    42.698,
    49.173,
    54.262,
    57.819,
    61.215,
    64.512,
    67.776,
    70.975,
    74.149,
    77.306,
    78.518,
    79.037,
    79.554,
    50.406,
    51.632,
    52.757,
    53.518,
    71.611,
    72.246,
    76.679,
    77.929,
    78.287,
    78.402,
]


def test_optimal_ss_zheng_federgruen_table() -> None:
    s, big_s, cost = optimal_ss(np.array(ZF_MU, float), 0, 64.0, 1.0, 9.0)
    np.testing.assert_array_equal(s, ZF_S)
    np.testing.assert_array_equal(big_s, ZF_BIG_S)
    np.testing.assert_allclose(cost, ZF_COST, atol=5e-4)


def test_optimal_ss_snyder_shen_example_4_7() -> None:
    s, big_s, cost = optimal_ss(6.0, 0, 5.0, 1.0, 4.0)
    assert (int(s[0]), int(big_s[0])) == (4, 10)
    assert cost[0] == pytest.approx(8.034111561471642, abs=1e-6)


@settings(max_examples=15, deadline=None)
@given(st.floats(0.3, 4.0), st.integers(0, 2), st.floats(1.0, 30.0), st.floats(2.0, 12.0))
def test_optimal_ss_matches_brute_force(lam: float, lead: int, k: float, p: float) -> None:
    s, big_s, cost = optimal_ss(lam, lead, k, 1.0, p)
    mu = lam * (lead + 1)
    hi = int(mu + 6 * math.sqrt(mu) + 12 + math.sqrt(2 * k * lam))
    _, _, bc = naive.optimal_ss_brute(lam, lead, k, 1.0, p, -3, hi)
    assert cost[0] == pytest.approx(bc, abs=1e-7)
    assert naive.ss_cost_markov(int(s[0]), int(big_s[0]), lam, lead, k, 1.0, p) == pytest.approx(
        cost[0], abs=1e-7
    )


@settings(max_examples=200, deadline=None)
@given(
    st.integers(-20, 60),
    st.integers(-1, 40),
    st.integers(0, 30),
    st.integers(0, 15),
    st.integers(1, 6),
    st.integers(0, 4),
    st.integers(-1, 90),
)
def test_order_quantities_match_naive(
    ip: int, s: int, width: int, batch: int, pack: int, moq_packs: int, shelf: int
) -> None:
    big_s = s + width
    moq = moq_packs * pack
    out_q = np.empty(1, np.int64)
    out_f = np.empty(1, np.int64)
    a = lambda v: np.array([v], np.int64)  # noqa: E731
    K.order_quantities(a(ip), a(s), a(big_s), a(batch), a(moq), a(pack), a(shelf), out_q, out_f)
    q = int(out_q[0])
    assert q == naive.order_quantity(ip, s, big_s, batch, moq, pack, shelf)
    if q:
        assert q >= moq and q % pack == 0
        assert shelf < 0 or ip + q <= shelf


# --------------------------------------------------------------------- the plan
def _network(num_loc: int = 5, num_sku: int = 4) -> NetworkData:
    net = Network()
    for ch in ("store", "online"):
        net.add_channel(ch)
    for i in range(num_loc):
        net.add_location(f"L{i}", kind="store", lat=31.0 + 0.05 * i, lon=121.0)
    for k in range(num_sku):
        net.add_sku(f"A{k}", price=20.0, unit_cost=8.0)
    return net.build()


def _stocked(net: NetworkData, seed: int) -> tuple[Ledger, np.ndarray]:
    rng = np.random.default_rng(seed)
    led = Ledger(net)
    sku, loc = np.meshgrid(np.arange(net.num_skus), np.arange(net.num_locations), indexing="ij")
    led.receive(sku.ravel(), loc.ravel(), rng.integers(1, 80, sku.size))
    hist = rng.poisson(rng.uniform(0.5, 6.0, (led.num_positions, 1)), (led.num_positions, 28))
    return led, hist


def test_plan_known_small_case() -> None:
    net = _network(2, 1)
    led = Ledger(net)
    led.receive([0, 0], [0, 1], [2, 60])
    fc = Forecast(np.array([5.0, 5.0]), np.array([1.0, 1.0]))
    plan = replenish(net, led, fc, lead_time=2, review_period=1, transfer_cost=0.5)
    # S = ceil(15 + 1.6449 * sqrt(3)) = 18; L0 (IP 2) receives 16 from L1 (IP 60 > 18).
    assert list(plan.order_up_to_level) == [18, 18]
    assert plan.num_transfers == 1 and plan.num_buys == 0
    assert (int(plan.origin[0]), int(plan.destination[0]), int(plan.qty[0])) == (1, 0, 16)
    assert "transfer 16 x A0 from L1" in plan.explain(0)
    # Apply the suggestion to the ledger: out now, in when it arrives.
    assert led.apply(plan.to_events(1)).ok
    assert int(led.in_transit[0]) == 16
    assert led.apply(plan.received_events(2)).ok
    assert int(led.on_hand[0]) == 18 and int(led.on_hand[1]) == 44


def test_transfer_skipped_when_dearer_than_stockout() -> None:
    net = _network(2, 1)
    led = Ledger(net)
    led.receive([0, 0], [0, 1], [2, 60])
    fc = Forecast(np.array([5.0, 5.0]), np.array([1.0, 1.0]))
    plan = replenish(net, led, fc, lead_time=2, transfer_cost=25.0)
    assert plan.num_transfers == 0 and plan.num_buys == 1


@settings(max_examples=12, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(1, 4),
    st.integers(0, 3),
    st.integers(-1, 120),
    st.sampled_from(["order_up_to", "reorder_point", "min_max", "optimal"]),
)
def test_plan_invariants(seed: int, pack: int, moq_packs: int, shelf: int, kind: str) -> None:
    net = _network()
    led, hist = _stocked(net, seed)
    policy = {
        "order_up_to": OrderUpToPolicy(service_level=0.9),
        "reorder_point": ReorderPointPolicy(order_quantity=10, fill_rate=0.97),
        "min_max": MinMaxPolicy(order_cost=20.0, holding_cost=0.05, distribution="poisson"),
        "optimal": OptimalPoissonPolicy(20.0, 0.05, 2.0),
    }[kind]
    moq = moq_packs * pack
    plan = replenish(
        net,
        led,
        hist,
        policy=policy,
        lead_time=3,
        pack=pack,
        moq=moq,
        shelf_max=shelf,
        transfer_buffer=2,
        budget=400.0,
    )
    buy = plan.action == Action.BUY
    q = plan.qty[buy]
    dest = plan.destination[buy]
    assert np.all(q > 0) and np.all(q >= moq) and np.all(q % pack == 0)
    received = np.zeros(led.num_positions, np.int64)
    np.add.at(received, plan.destination[~buy], plan.qty[~buy])
    if shelf >= 0:
        assert np.all(plan.inventory_position[dest] + received[dest] + q <= shelf)
    assert plan.spent <= 400.0 + 1e-9
    given_away = np.zeros(led.num_positions, np.int64)
    np.add.at(given_away, plan.origin[~buy], plan.qty[~buy])
    src = given_away > 0
    after = plan.inventory_position - given_away
    assert np.all(after[src] > plan.reorder_point[src])
    assert np.all(after[src] >= plan.order_up_to_level[src] + 2)
    assert np.all(plan.suggestion_sku[~buy] == plan.sku[plan.origin[~buy]])
    assert np.all(plan.qty[~buy] <= np.asarray(led.on_hand)[plan.origin[~buy]])


def test_transfer_leaves_the_reorder_point_on_the_shelf() -> None:
    # L1 has just bought 100 units (on order) and holds 30 on the shelf:
    # S = ceil(15 + 1.6449 * sqrt(3)) = 18, s = 17, IP = 130. By inventory position
    # it could give 112, but only 30 - (17 + 1) = 12 are physically spare.
    net = _network(2, 1)
    led = Ledger(net)
    led.receive([0, 0], [0, 1], [1, 30])
    fc = Forecast(np.array([20.0, 5.0]), np.array([1.0, 1.0]))
    plan = replenish(
        net, led, fc, lead_time=2, review_period=1, on_order=np.array([0, 100]), transfer_cost=0.5
    )
    assert list(plan.order_up_to_level) == [63, 18]
    assert list(plan.transferable) == [0, 12]
    t = plan.action == Action.TRANSFER
    assert plan.qty[t].tolist() == [12] and plan.origin[t].tolist() == [1]
    assert int(plan.free_stock[1]) - 12 == 18 > int(plan.reorder_point[1])
    assert "30 free on the shelf" in plan.explain(int(np.flatnonzero(t)[0]))
    # Without the purchase on order the shelf is all there is: the same 12 units.
    plan = replenish(net, led, fc, lead_time=2, review_period=1, transfer_cost=0.5)
    assert plan.qty[plan.action == Action.TRANSFER].tolist() == [12]


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 10_000),
    st.sampled_from(["order_up_to", "reorder_point", "min_max"]),
    st.integers(0, 3),
)
def test_transfers_respect_physical_free_stock(seed: int, kind: str, buffer: int) -> None:
    net = _network(6, 3)
    rng = np.random.default_rng(seed)
    led = Ledger(net)
    sku, loc = np.meshgrid(np.arange(3), np.arange(6), indexing="ij")
    sku, loc = sku.ravel(), loc.ravel()
    led.receive(sku, loc, rng.integers(1, 60, sku.size))
    pick = np.flatnonzero(rng.random(sku.size) < 0.4)
    for p in pick:
        have = int(np.asarray(led.on_hand)[led.position_index(sku[p], loc[p])])
        if have:
            led.reserve(sku[p], loc[p], int(rng.integers(1, have + 1)), channel=1)
    safe = rng.integers(0, 6, sku.size) * (rng.random(sku.size) < 0.3)
    assert led.apply(Events.set_safety(sku, loc, safe, network=net)).ok
    n = led.num_positions
    on_order = rng.integers(0, 200, n) * (rng.random(n) < 0.5)
    backorders = rng.integers(0, 4, n) * (rng.random(n) < 0.2)
    hist = rng.poisson(rng.uniform(0.5, 6.0, (n, 1)), (n, 28))
    policy = {
        "order_up_to": OrderUpToPolicy(service_level=0.9),
        "reorder_point": ReorderPointPolicy(order_quantity=10),
        "min_max": MinMaxPolicy(order_cost=20.0, holding_cost=0.05, distribution="poisson"),
    }[kind]
    plan = replenish(
        net,
        led,
        hist,
        policy=policy,
        lead_time=3,
        on_order=on_order,
        backorders=backorders,
        transfer_buffer=buffer,
        transfer_cost=0.1,
        stockout_cost=50.0,
    )
    t = plan.action == Action.TRANSFER
    given_away = np.zeros(n, np.int64)
    np.add.at(given_away, plan.origin[t], plan.qty[t])
    src = given_away > 0
    on_hand, reserved = np.asarray(led.on_hand), np.asarray(led.reserved)
    free_stock = on_hand - reserved - backorders
    np.testing.assert_array_equal(plan.free_stock, free_stock)
    # never more than is free on the shelf, in total per source
    assert np.all(given_away <= np.maximum(on_hand - reserved, 0))
    # physical free stock stays above the reorder point and at the ledger's safety stock
    assert np.all(free_stock[src] - given_away[src] > plan.reorder_point[src])
    assert np.all(free_stock[src] - given_away[src] >= np.asarray(led.safety_stock)[src])
    # and so does the inventory position, with the buffer above the order-up-to level
    after = plan.inventory_position - given_away
    assert np.all(after[src] >= plan.order_up_to_level[src] + buffer)
    assert np.all(given_away <= plan.transferable)
    if t.any():
        assert led.apply(plan.to_events(10_000)).ok


# ------------------------------------------------------------------- transfers
def _transfer_case(seed: int, num_sku: int, num_loc: int) -> tuple[list, ...]:
    """A random transfer instance; money in cents so scaling to integers is exact."""
    rng = np.random.default_rng(seed)
    sku, loc = np.divmod(np.arange(num_sku * num_loc), num_loc)
    keep = rng.random(sku.size) < 0.8
    keep[0] = True
    sku, loc = sku[keep], loc[keep]
    m = sku.size
    role = rng.integers(0, 3, m)
    surplus = np.where(role == 0, rng.integers(1, 12, m), 0)
    need = np.where(role == 1, rng.integers(1, 12, m), 0)
    benefit = rng.integers(50, 600, m) / 100.0
    cost = rng.integers(0, 8, (num_loc, num_loc)) * 0.5  # coarse: many ties
    return (
        sku.tolist(),
        loc.tolist(),
        surplus.tolist(),
        need.tolist(),
        benefit.tolist(),
        cost,
    )


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(1, 4),
    st.integers(2, 8),
    st.sampled_from([None, 1, 2, 3]),
)
def test_candidate_arcs_match_naive(seed: int, num_sku: int, num_loc: int, k: int | None) -> None:
    sku, loc, surplus, need, benefit, cost = _transfer_case(seed, num_sku, num_loc)
    a = [np.asarray(v) for v in (sku, loc, surplus, need)]
    cand = T.transfer_candidates(*a, np.asarray(benefit), cost, k or 0)
    expect = naive.candidate_arcs(sku, loc, surplus, need, benefit, cost, k)
    if cand is None:
        assert expect == []
        return
    got = list(
        zip(
            cand.src_rows[cand.arc_src].tolist(),
            cand.sink_rows[cand.arc_sink].tolist(),
            strict=True,
        )
    )
    assert got == expect
    # arc_ptr delimits each SKU's arcs
    for g, s in enumerate(cand.skus):
        arcs = range(cand.arc_ptr[g], cand.arc_ptr[g + 1])
        assert all(sku[cand.sink_rows[cand.arc_sink[a]]] == s for a in arcs)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(1, 5),
    st.integers(2, 8),
    st.sampled_from([None, 1, 2, 3]),
    st.sampled_from(["shortest_paths", "ortools"]),
    st.integers(1, 40),
    st.integers(1, 2),
)
def test_per_sku_transfers_equal_one_flow(
    seed: int, num_sku: int, num_loc: int, k: int | None, solver: str, batch: int, threads: int
) -> None:
    sku, loc, surplus, need, benefit, cost = _transfer_case(seed, num_sku, num_loc)
    lines = plan_transfers(
        sku,
        loc,
        surplus,
        need,
        benefit,
        cost,
        max_sources=k,
        solver=solver,
        batch_arcs=batch,
        threads=threads,
    )
    ref, _ = naive.single_flow_transfers(sku, loc, surplus, need, benefit, cost, k, T.COST_SCALE)
    assert round(lines.objective * T.COST_SCALE) == ref
    # the lines are feasible and their own cost is the objective
    o, d, q = (np.asarray(v) for v in (lines.origin, lines.destination, lines.qty))
    assert np.all(q > 0)
    assert np.all(np.asarray(sku)[o] == np.asarray(sku)[d])
    given = np.bincount(o, weights=q, minlength=len(sku))
    got = np.bincount(d, weights=q, minlength=len(sku))
    assert np.all(given <= np.asarray(surplus)) and np.all(got <= np.asarray(need))
    np.testing.assert_allclose(lines.unit_cost, cost[np.asarray(loc)[o], np.asarray(loc)[d]])
    value = float(np.sum(q * (np.asarray(lines.unit_cost) - np.asarray(benefit)[d])))
    assert value == pytest.approx(lines.objective, abs=1e-6)
    if k is None:
        lp = naive.lp_transfer_objective(sku, loc, surplus, need, benefit, cost)
        assert lines.objective == pytest.approx(lp, abs=1e-6)


def test_transfers_do_not_depend_on_threads_or_batches() -> None:
    sku, loc, surplus, need, benefit, cost = _transfer_case(3, 40, 12)
    base = plan_transfers(sku, loc, surplus, need, benefit, cost)
    for kwargs in ({"threads": 2, "batch_arcs": 7}, {"batch_arcs": 1}, {"batch_arcs": 10**6}):
        other = plan_transfers(sku, loc, surplus, need, benefit, cost, **kwargs)
        for f in ("origin", "destination", "qty"):
            np.testing.assert_array_equal(getattr(base, f), getattr(other, f))
        assert other.objective == base.objective
    arcs = naive.candidate_arcs(sku, loc, surplus, need, benefit, cost, 8)
    assert base.num_components == len({sku[j] for _, j in arcs}) > 30
    assert base.num_arcs == len(arcs) and base.objective < 0
    one_each = plan_transfers(sku, loc, surplus, need, benefit, cost, batch_arcs=1)
    assert one_each.num_solves == base.num_components and base.num_solves == 1


@pytest.mark.parametrize("k", [None, 8])
def test_wide_skus_match_one_flow(k: int | None) -> None:
    # Few SKUs over many locations: long searches, many sinks competing for sources.
    sku, loc, surplus, need, benefit, cost = _transfer_case(11, 3, 70)
    ref, _ = naive.single_flow_transfers(sku, loc, surplus, need, benefit, cost, k, T.COST_SCALE)
    for solver in ("shortest_paths", "ortools"):
        lines = plan_transfers(sku, loc, surplus, need, benefit, cost, max_sources=k, solver=solver)
        assert round(lines.objective * T.COST_SCALE) == ref < 0


def test_transfer_known_answer() -> None:
    # One SKU; sources A, B (5 units each); sinks C (need 6, benefit 10) and D
    # (need 4, benefit 3). Unit costs A->C 1, A->D 2, B->C 1.5, B->D 4 (>= 3: no arc).
    # Greedy on the best margin (A->C 9) would send A's 5 units to C, then B->C 1:
    # 45 + 8.5 = 53.5 saved. Best: B->C 5, A->C 1, A->D 4: 42.5 + 9 + 4 = 55.5.
    cost = np.zeros((4, 4))
    cost[0, 2], cost[0, 3], cost[1, 2], cost[1, 3] = 1.0, 2.0, 1.5, 4.0
    for solver in ("shortest_paths", "ortools"):
        lines = plan_transfers(
            [0, 0, 0, 0],
            [0, 1, 2, 3],
            [5, 5, 0, 0],
            [0, 0, 6, 4],
            [0.0, 0.0, 10.0, 3.0],
            cost,
            solver=solver,
        )
        assert lines.objective == pytest.approx(-55.5, abs=1e-9)
        got = list(
            zip(lines.origin.tolist(), lines.destination.tolist(), lines.qty.tolist(), strict=True)
        )
        assert got == [(0, 2, 1), (0, 3, 4), (1, 2, 5)]
        assert lines.num_arcs == 3 and lines.num_components == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"surplus": [1, -1]}, "surplus"),
        ({"need": [0]}, "need"),
        ({"benefit": [1.0, np.nan], "need": [0, 2]}, "benefit"),
        ({"unit_cost": np.ones((1, 1))}, "unit_cost"),
        ({"unit_cost": -np.ones((2, 2))}, "unit_cost"),
        ({"solver": "simplex"}, "solver"),
        ({"max_sources": -1}, "max_sources"),
        ({"threads": 0}, "threads"),
        ({"surplus": [1.5, 0.0]}, "surplus"),
    ],
)
def test_plan_transfers_bad_input(kwargs: dict, field: str) -> None:
    args = {
        "sku": [0, 0],
        "location": [0, 1],
        "surplus": [3, 0],
        "need": [0, 2],
        "benefit": [1.0, 5.0],
        "unit_cost": np.ones((2, 2)),
        **kwargs,
    }
    with pytest.raises(ValidationError) as info:
        plan_transfers(
            args.pop("sku"),
            args.pop("location"),
            args.pop("surplus"),
            args.pop("need"),
            args.pop("benefit"),
            args.pop("unit_cost"),
            **args,
        )
    assert info.value.field == field


def test_alerts() -> None:
    net = _network(3, 1)
    led = Ledger(net)
    led.receive([0, 0], [0, 1], [1, 100])
    led.adjust(0, 2, 0)
    fc = Forecast(np.array([4.0, 4.0, 4.0]), np.array([1.0, 1.0, 1.0]))
    plan = replenish(net, led, fc, lead_time=2, transfers=False, cover_threshold=1.0)
    kinds = dict(zip(plan.alert_position.tolist(), plan.alert_kind.tolist(), strict=True))
    assert kinds[0] & 1 and kinds[0] & 4 and not kinds[0] & 2
    assert kinds[2] & 2 and kinds[2] & 1
    assert 1 not in kinds
    frame = plan.alerts_frame()
    assert set(frame["location"]) == {"L0", "L2"}


def test_budget_prefers_value_per_money() -> None:
    net = _network(2, 2)
    led = Ledger(net)
    led.receive([0, 1], [0, 0], [1, 1])
    led.receive([0, 1], [1, 1], [1, 1])
    fc = Forecast(np.full(4, 5.0), np.full(4, 1.0))
    cost = np.array([1.0, 100.0])  # per SKU
    plan = replenish(
        net,
        led,
        fc,
        lead_time=2,
        transfers=False,
        budget=40.0,
        unit_cost=cost,
        stockout_cost=np.array([50.0, 50.0]),
    )
    assert plan.unfunded == 2 and plan.num_buys == 2
    assert set(plan.suggestion_sku.tolist()) == {0}
    assert plan.spent == pytest.approx(float(plan.qty.sum()) * 1.0)


def test_long_frame_demand_and_to_frame() -> None:
    pd = pytest.importorskip("pandas")
    net = _network(2, 1)
    led = Ledger(net)
    led.receive([0, 0], [0, 1], [3, 3])
    frame = pd.DataFrame(
        {
            "sku": ["A0"] * 4,
            "location": ["L0", "L0", "L1", "L1"],
            "period": [0, 1, 0, 1],
            "qty": [2, 4, 1, 1],
        }
    )
    plan = replenish(net, led, frame, forecast_method="moving_average", lead_time=1)
    np.testing.assert_allclose(plan.forecast_mean, [3.0, 1.0])
    lines = plan.lines_frame()
    assert list(lines.columns) == [
        "action",
        "sku",
        "from",
        "to",
        "qty",
        "unit_cost",
        "reason",
        "days_of_cover_after",
        "funded",
    ]
    assert len(lines) == len(plan)
    report = plan.to_frame()
    assert len(report) == led.num_positions
    assert list(report["location"]) == ["L0", "L1"]


@pytest.mark.parametrize(
    ("kwargs", "field", "row"),
    [
        ({"lead_time": np.array([1, 2, -1, 1])}, "lead_time", 2),
        ({"moq": 5, "pack": 4}, "moq", 0),
        ({"on_order": np.array([0, 0, 0])}, "on_order", None),
        ({"demand": np.array([[1.0, 2.0]] * 3 + [[np.nan, 1.0]])}, "demand", 3),
        ({"demand": np.array([[1.0, 2.0]] * 3)}, "demand", None),
        ({"policy": OrderUpToPolicy(service_level=1.5)}, "service_level", None),
    ],
)
def test_bad_input(kwargs: dict, field: str, row: int | None) -> None:
    net = _network(2, 2)
    led = Ledger(net)
    led.receive([0, 0, 1, 1], [0, 1, 0, 1], [5, 5, 5, 5])
    args = {"demand": np.ones((4, 7)), **kwargs}
    demand = args.pop("demand")
    with pytest.raises(ValidationError) as info:
        replenish(net, led, demand, **args)
    assert info.value.field == field
    assert info.value.row == row


def test_bench_quick_reports_keys() -> None:
    import argparse

    from allocator.bench import replenish as bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    out = bench.run(parser.parse_args(["--quick"]))
    for key in (
        "order_up_to_positions_per_s",
        "ss_positions_per_s",
        "reference_ss_positions_per_s",
        "scipy_order_up_to_positions_per_s",
        "transfer_lines",
        "transfer_seconds",
        "transfer_baseline_seconds",
        "transfer_2_threads_seconds",
        "transfer_ortools_per_sku_seconds",
        "transfer_speedup",
        "jit_compile_s",
    ):
        assert out[key] > 0
    assert out["transfer_objective_agreement"] == 1.0
    assert out["transfer_objective"] < 0 and 0.0 <= out["transfer_k8_gap"] < 0.05
    assert out["order_up_to_agreement"] == 1.0
    assert out["reference_ss_agreement"] == 1.0
