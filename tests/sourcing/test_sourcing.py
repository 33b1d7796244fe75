"""Sourcing: hand-checkable instances, kernel-vs-naive equality, plan invariants, bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator import Events, Ledger, Network, NetworkData, ResultCode
from allocator._reference import sourcing as naive
from allocator.exceptions import DTypeError, UnknownNameError, ValidationError
from allocator.sourcing import (
    METHODS,
    CostModel,
    Orders,
    PlanStatus,
    Service,
    Sourcer,
    UnfilledReason,
    methods,
    nearby,
    reserve_plan,
    source,
)
from allocator.sourcing.sourcer import solve

C = CostModel()


def landed(u: int, km: float, mult: float = 1.0) -> float:
    """Textbook cost of one package of ``u`` units over ``km`` (the default model)."""
    return mult * (8.759 + 0.423 * u) + 0.000336 * u * km


def city() -> NetworkData:
    """S1 near the customer, S2 a bit further, DC far; two channels."""
    net = Network()
    net.add_channel("store")
    net.add_channel("online")
    net.add_location("S1", kind="store", lat=31.230, lon=121.470, same_day_radius_km=5.0)
    net.add_location("S2", kind="store", lat=31.300, lon=121.500, same_day_radius_km=15.0)
    net.add_location("DC", kind="warehouse", lat=31.100, lon=121.800)
    for name, price in (("A", 10.0), ("B", 20.0), ("C", 5.0)):
        net.add_sku(name, price=price)
    return net.build()


def stocked(network: NetworkData, stock: dict[tuple[str, str], int]) -> Ledger:
    ledger = Ledger(network)
    skus = [k[0] for k in stock]
    locs = [k[1] for k in stock]
    ledger.apply(Events.receive(skus, locs, list(stock.values()), network=network))
    return ledger


CUSTOMER = (31.235, 121.475)


def ship(lines: list[tuple[str, int]], order: int = 1, **kw: Any) -> dict[str, Any]:
    return dict(
        order=[order] * len(lines),
        sku=[s for s, _ in lines],
        qty=[q for _, q in lines],
        channel="online",
        lat=CUSTOMER[0],
        lon=CUSTOMER[1],
        **kw,
    )


def orders_of(net: NetworkData, *batches: dict[str, Any]) -> Orders:
    cols: dict[str, list[Any]] = {}
    for b in batches:
        n = len(b["order"])
        for k, v in b.items():
            cols.setdefault(k, []).extend(v if isinstance(v, list) else [v] * n)
    return Orders.from_lines(**cols, network=net)


def km(net: NetworkData, loc: str, lat: float, lon: float) -> float:
    i = net.location_index(loc)
    return naive.haversine(net.lat[i], net.lon[i], lat, lon)


# ---------------------------------------------------------------------------
# known answers
def test_haversine_known_distance() -> None:
    # one degree of latitude on the mean sphere: R * pi / 180
    assert naive.haversine(0.0, 0.0, 1.0, 0.0) == pytest.approx(6371.0088 * math.pi / 180)
    assert naive.haversine(10.0, 20.0, 10.0, 20.0) == 0.0


def test_single_location_preferred_over_nearer_split() -> None:
    net = city()
    ledger = stocked(net, {("A", "S1"): 5, ("A", "DC"): 5, ("B", "DC"): 5})
    plan = source(net, ledger, orders_of(net, ship([("A", 1), ("B", 2)])))
    assert plan.location.tolist() == [2, 2]
    assert plan.packages.tolist() == [1]
    d = km(net, "DC", *CUSTOMER)
    assert plan.objective == pytest.approx(landed(3, d))
    assert plan.status == PlanStatus.HEURISTIC and np.isnan(plan.gap)


def test_cheapest_full_location_wins_and_alternative_is_reported() -> None:
    net = city()
    ledger = stocked(net, {("A", "S1"): 5, ("A", "S2"): 5, ("A", "DC"): 5})
    plan = source(net, ledger, orders_of(net, ship([("A", 2)])))
    assert net.location_names[plan.location[0]] == "S1"
    assert net.location_names[plan.alt_location[0]] == "S2"
    assert plan.alt_cost[0] == pytest.approx(landed(2, km(net, "S2", *CUSTOMER)))
    text = plan.explain(0)
    assert text.startswith("S1: 1 line, 0.7 km") and "S2 would cost" in text


def test_cost_multiplier_can_make_a_farther_dc_cheaper() -> None:
    net = Network()
    net.add_channel("online")
    net.add_location("S", kind="store", lat=0.0, lon=0.0, cost_multiplier=2.0)
    net.add_location("D", kind="warehouse", lat=0.0, lon=1.0)
    net.add_sku("A")
    data = net.build()
    ledger = stocked(data, {("A", "S"): 9, ("A", "D"): 9})
    orders = Orders.from_lines(
        order=[1], sku=["A"], qty=[1], channel="online", lat=0.0, lon=0.0, network=data
    )
    plan = source(data, ledger, orders)
    # store: 2 * (8.759 + 0.423) = 18.364; DC: 9.182 + 0.000336 * 111.2 = 9.219
    assert data.location_names[plan.location[0]] == "D"
    assert plan.objective == pytest.approx(landed(1, naive.haversine(0, 1, 0, 0)))


def test_split_uses_fewest_locations_and_split_limit_reports_reason() -> None:
    net = city()
    ledger = stocked(net, {("A", "S1"): 5, ("B", "S2"): 5, ("C", "S2"): 5})
    orders = orders_of(net, ship([("A", 1), ("B", 1), ("C", 1)]))
    plan = source(net, ledger, orders, costs=CostModel(split_penalty=3.0))
    assert plan.packages.tolist() == [2] and plan.split.tolist() == [True]
    expect = landed(2, km(net, "S2", *CUSTOMER)) + landed(1, km(net, "S1", *CUSTOMER)) + 3.0
    assert plan.objective == pytest.approx(expect)
    # S2 covers more units, so it is taken first
    assert [net.location_names[x] for x in plan.location] == ["S2", "S2", "S1"]
    limited = source(net, ledger, orders, max_splits=0)
    assert limited.line_unfilled.tolist() == [1, 0, 0]
    assert limited.line_reason.tolist() == [UnfilledReason.SPLIT_LIMIT, 0, 0]
    # unfilled penalty: the SKU price (A costs 10)
    assert limited.breakdown.unfilled_cost[0] == pytest.approx(10.0)


def test_line_split_across_locations() -> None:
    net = city()
    ledger = stocked(net, {("A", "S1"): 2, ("A", "S2"): 3})
    plan = source(net, ledger, orders_of(net, ship([("A", 4)])))
    # S2 supplies more (3 > 2), so it goes first and gives 3; S1 gives the last unit
    assert plan.location.tolist() == [1, 0] and plan.qty.tolist() == [3, 1]
    assert plan.packages.tolist() == [2]


def test_pickup_in_store_with_transfer() -> None:
    net = city()
    ledger = stocked(net, {("A", "S2"): 5, ("B", "DC"): 5, ("B", "S1"): 1})
    orders = Orders.from_lines(
        order=[7, 7],
        sku=["A", "B"],
        qty=[1, 2],
        channel="online",
        service="pickup",
        pickup_location="S2",
        network=net,
    )
    plan = source(net, ledger, orders)
    rows = {
        (net.location_names[loc], bool(t))
        for loc, t in zip(plan.location.tolist(), plan.transfer.tolist(), strict=True)
    }
    assert rows == {("S2", False), ("DC", True)}
    s2 = net.location_index("S2")
    d = km(net, "DC", float(net.lat[s2]), float(net.lon[s2]))
    assert plan.objective == pytest.approx(landed(1, 0.0) + landed(2, d))
    assert "transferred to S2" in plan.explain(0) and "picked in store" in plan.explain(0)


def test_pickup_store_with_everything_is_used_even_when_dearer() -> None:
    net = city()
    ledger = stocked(net, {("A", "S2"): 5, ("A", "DC"): 5})
    orders = Orders.from_lines(
        order=[1],
        sku=["A"],
        qty=[1],
        channel="online",
        service="pickup",
        pickup_location="S2",
        network=net,
    )
    plan = source(net, ledger, orders)
    assert net.location_names[plan.location[0]] == "S2" and not plan.transfer[0]
    assert plan.row_km[0] == 0.0


def test_capacity_exhaustion() -> None:
    net = Network()
    net.add_channel("online")
    net.add_location("S", kind="store", lat=0.0, lon=0.0, pick_capacity=3)
    net.add_sku("A")
    data = net.build()
    ledger = stocked(data, {("A", "S"): 10})
    orders = Orders.from_lines(
        order=[1, 2], sku=["A", "A"], qty=[2, 2], channel="online", lat=0.0, lon=0.0, network=data
    )
    plan = source(data, ledger, orders)
    assert plan.qty.tolist() == [2, 1]
    assert plan.line_unfilled.tolist() == [0, 1]
    assert plan.line_reason.tolist() == [0, UnfilledReason.CAPACITY]
    # an explicit capacity overrides the network's
    free = source(data, ledger, orders, pick_capacity=[-1])
    assert free.line_unfilled.tolist() == [0, 0]


def test_same_day_radius() -> None:
    net = city()
    ledger = stocked(net, {("A", "S1"): 5, ("A", "DC"): 5})
    near = Orders.from_lines(
        order=[1],
        sku=["A"],
        qty=[1],
        channel="online",
        service="same_day",
        lat=31.24,
        lon=121.48,
        network=net,
    )
    plan = source(net, ledger, near)
    assert net.location_names[plan.location[0]] == "S1"
    far = Orders.from_lines(
        order=[1],
        sku=["A"],
        qty=[1],
        channel="online",
        service="same_day",
        lat=31.5,
        lon=121.2,
        network=net,
    )
    plan = source(net, ledger, far)
    assert len(plan) == 0 and plan.line_reason.tolist() == [UnfilledReason.RADIUS]
    assert plan.breakdown.unfilled_cost[0] == pytest.approx(10.0)


def test_priority_beats_arrival() -> None:
    net = city()
    ledger = stocked(net, {("A", "S1"): 1})
    orders = orders_of(
        net, ship([("A", 1)], order=1, priority=0), ship([("A", 1)], order=2, priority=5)
    )
    plan = source(net, ledger, orders)
    assert plan.order.tolist() == [1]
    assert plan.line_reason.tolist() == [UnfilledReason.NO_STOCK, 0]


def test_channel_fence_and_exclusions() -> None:
    net = city()
    ledger = stocked(net, {("A", "S1"): 4, ("A", "S2"): 4})
    ledger.apply(Events.set_fence("A", "S1", "store", 4, network=net))
    plan = source(net, ledger, orders_of(net, ship([("A", 1)])))
    assert net.location_names[plan.location[0]] == "S2"
    closed = Network()
    closed.add_channel("online")
    closed.add_location("X", kind="store", lat=0.0, lon=0.0, excluded=True)
    closed.add_sku("A")
    data = closed.build()
    led = stocked(data, {("A", "X"): 3})
    o = Orders.from_lines(
        order=[1], sku=["A"], qty=[1], channel="online", lat=0.0, lon=0.0, network=data
    )
    assert source(data, led, o).line_reason.tolist() == [UnfilledReason.NO_STOCK]
    p = Orders.from_lines(
        order=[1],
        sku=["A"],
        qty=[1],
        channel="online",
        service="pickup",
        pickup_location="X",
        network=data,
    )
    assert source(data, led, p).line_reason.tolist() == [UnfilledReason.LOCATION_UNAVAILABLE]


def test_zone_cost_matrix_replaces_distance() -> None:
    net = city()
    ledger = stocked(net, {("A", "S1"): 5, ("A", "DC"): 5})
    costs = CostModel(
        location_zone=np.array([0, 0, 1]), zone_cost=np.array([[9.0, 9.0], [9.0, 0.5]])
    )
    orders = Orders.from_lines(
        order=[1],
        sku=["A"],
        qty=[2],
        channel="online",
        lat=CUSTOMER[0],
        lon=CUSTOMER[1],
        zone=1,
        network=net,
    )
    plan = source(net, ledger, orders, costs=costs)
    assert net.location_names[plan.location[0]] == "DC"
    assert plan.objective == pytest.approx(8.759 + 0.423 * 2 + 0.5 * 2)


def test_ledger_unchanged_and_plan_frames() -> None:
    net = city()
    ledger = stocked(net, {("A", "S1"): 5, ("B", "DC"): 5})
    before = ledger.available_all().copy()
    plan = source(net, ledger, orders_of(net, ship([("A", 1), ("B", 9)])))
    assert np.array_equal(ledger.available_all(), before)
    assert list(plan.to_frame().columns)[:5] == ["order", "line", "sku", "location", "qty"]
    frame = plan.orders_frame()
    assert frame["cost"].sum() == pytest.approx(plan.objective)
    assert plan.unfilled_frame()["reason"].tolist() == ["no_stock"]
    assert "fill rate" in plan.summary()
    with pytest.raises(ValueError):
        plan.order[0] = 1


# ---------------------------------------------------------------------------
# reserve_plan
def test_reserve_plan_links_orders_and_returns_rejections() -> None:
    net = city()
    ledger = stocked(net, {("A", "S1"): 2, ("B", "S1"): 2, ("C", "S2"): 1})
    orders = orders_of(net, ship([("A", 1), ("B", 1)], order=1), ship([("C", 1)], order=2))
    plan = source(net, ledger, orders)
    ledger.apply(Events.sale("B", "S1", 2, channel="store", network=net))  # stock moved
    res = reserve_plan(ledger, plan, expires_at=100, first_id=1000)
    assert res.rejected.tolist() == [0] and res.accepted.tolist() == [1]
    assert res.resource.id.tolist() == [1] and res.resource.num_lines == 2
    assert ledger.available("A", "S1", "online") == 2  # nothing of order 1 applied
    assert ledger.available("C", "S2", "online") == 0
    rid = int(res.reservation[res.reservation != 0][0])
    assert rid == 1002 and ledger.reservation(rid).expires_at == 100
    # re-sourcing the rejected order finds what is left
    again = source(net, ledger, res.resource)
    assert again.line_unfilled.tolist() == [0, 1]


def test_order_level_commit_and_release_by_client_order_id() -> None:
    from allocator.ledger import ReservationState

    net = city()
    ledger = stocked(net, {("A", "S1"): 3, ("B", "S1"): 3, ("C", "S2"): 2})
    orders = orders_of(net, ship([("A", 1), ("B", 1)], order=71), ship([("C", 1)], order=72))
    res = reserve_plan(ledger, source(net, ledger, orders), expires_at=50)
    assert res and res.accepted_orders.tolist() == [71, 72]
    holds = res.reservations(71)
    assert holds.shape[0] == 2
    done = res.commit(71, id=5000)  # one linked group; client ids make it idempotent
    assert done.ok and done.ids.tolist() == [5000, 5001]
    assert all(ledger.reservation(h).state == ReservationState.COMMITTED for h in holds.tolist())
    assert res.commit(71, id=5000).duplicate.all()  # a retry changes nothing
    assert ledger.position("A", "S1")["on_hand"] == 2
    assert res.release(72).ok
    assert ledger.available("C", "S2", "online") == 2
    again = res.commit(72)  # already released: all of the order fails, with the reason
    assert not again and again.code == ResultCode.RESERVATION_ALREADY_RELEASED
    with pytest.raises(ValidationError, match="order 99"):
        res.commit(99)
    assert "2 orders reserved" in repr(res)


# ---------------------------------------------------------------------------
# bad input
def test_orders_validation() -> None:
    net = city()
    base = dict(order=[1], sku=["A"], qty=[1], channel="online", lat=0.0, lon=0.0)
    with pytest.raises(UnknownNameError) as e:
        Orders.from_lines(**{**base, "sku": ["Z"]}, network=net)
    assert e.value.field == "sku" and e.value.row == 0
    with pytest.raises(UnknownNameError) as e:
        Orders.from_lines(**{**base, "channel": "fax"}, network=net)
    assert e.value.field == "channel"
    with pytest.raises(ValidationError) as e:
        Orders.from_lines(**{**base, "service": "pickup"}, network=net)
    assert e.value.field == "pickup_location" and e.value.code == "missing_field"
    with pytest.raises(ValidationError) as e:
        Orders.from_lines(**{**base, "lat": 91.0}, network=net)
    assert e.value.code == "bad_coordinate"
    with pytest.raises(DTypeError):
        Orders.from_lines(**{**base, "qty": [1.5]}, network=net)
    with pytest.raises(ValidationError) as e:
        Orders.from_lines(
            order=[1, 1],
            sku=["A", "A"],
            qty=[1, 1],
            channel="online",
            lat=0.0,
            lon=0.0,
            network=net,
        )
    assert e.value.code == "duplicate_sku_in_order" and e.value.row == 1
    with pytest.raises(ValidationError) as e:
        Orders.from_lines(
            order=[1, 2, 1],
            sku=["A", "A", "B"],
            qty=[1, 1, 1],
            channel=["online", "online", "store"],
            lat=0.0,
            lon=0.0,
            network=net,
        )
    assert e.value.code == "inconsistent_order_field" and e.value.row == 2
    with pytest.raises(ValidationError) as e:
        Orders.from_lines(**{**base, "service": "pickup", "pickup_location": "DC"}, network=net)
    assert e.value.code == "not_a_pickup_point"
    with pytest.raises(ValidationError) as e:
        Orders.from_lines(**{**base, "sku": [0], "channel": 1, "service": "teleport"})
    assert e.value.field == "service"
    with pytest.raises(ValidationError) as e:
        Orders.from_lines(**{**base, "order": [0]})
    assert e.value.field == "order"


def test_source_validation() -> None:
    net = city()
    ledger = stocked(net, {("A", "S1"): 1})
    orders = orders_of(net, ship([("A", 1)]))
    with pytest.raises(ValidationError) as e:
        CostModel(per_unit=float("nan"))
    assert e.value.field == "per_unit" and e.value.code == "not_finite"
    with pytest.raises(ValidationError) as e:
        source(net, ledger, orders, pick_capacity=[-1, -2, 0])
    assert e.value.field == "pickup_capacity" or e.value.field == "pick_capacity"
    assert e.value.row == 1
    with pytest.raises(ValidationError) as e:
        source(net, ledger, orders, max_splits=-1)
    assert e.value.field == "max_splits"
    with pytest.raises(ValidationError) as e:
        source(net, ledger, orders, method="magic")
    assert e.value.field == "method"
    other = Orders.from_lines(order=[1], sku=[3], qty=[1], channel=1, lat=0.0, lon=0.0)
    with pytest.raises(UnknownNameError) as e:
        source(net, ledger, other)
    assert e.value.field == "sku"
    zoned = Orders.from_lines(order=[1], sku=[0], qty=[1], channel=1, lat=0.0, lon=0.0, zone=4)
    with pytest.raises(ValidationError) as e:
        source(
            net, ledger, zoned, costs=CostModel(location_zone=[0, 0, 0], zone_cost=np.ones((1, 1)))
        )
    assert e.value.field == "zone"


def test_explicit_dispatch_on_method() -> None:
    net = city()
    ledger = stocked(net, {("A", "S1"): 1})
    orders = orders_of(net, ship([("A", 1)]))
    problem = Sourcer(net).prepare(ledger, orders, max_splits=1)
    assert problem.max_locations == 2
    plan = solve(problem, "greedy")
    assert plan.method == "greedy" and plan.line_unfilled.tolist() == [0]
    assert methods() == METHODS == ("greedy", "optimal")
    with pytest.raises(ValidationError) as e:
        solve(problem, "fastest")
    assert e.value.code == "unknown_method"
    with pytest.raises(ValidationError) as e:
        source(net, ledger, orders, method="greedy", time_limit=1.0)
    assert e.value.field == "time_limit"


# ---------------------------------------------------------------------------
# random instances: kernel == naive, invariants
def random_instance(seed: int) -> tuple[NetworkData, Ledger, Orders, dict[str, Any]]:
    rng = np.random.default_rng(seed)
    nl = int(rng.integers(2, 10))
    ns = int(rng.integers(2, 7))
    net = Network()
    net.add_channel("store")
    net.add_channel("online")
    for i in range(nl):
        net.add_location(
            f"L{i}",
            kind=str(rng.choice(["store", "warehouse", "dark_store"])),
            lat=float(rng.uniform(31.0, 31.4)),
            lon=float(rng.uniform(121.2, 121.7)),
            channels=None if rng.random() < 0.8 else ["store"],
            ships=bool(rng.random() < 0.85),
            pickup=bool(rng.random() < 0.6),
            same_day_radius_km=float(rng.choice([0.0, 8.0, 20.0])),
            excluded=bool(rng.random() < 0.1),
            pick_capacity=None if rng.random() < 0.6 else int(rng.integers(0, 6)),
            cost_multiplier=float(rng.choice([1.0, 1.3, 2.0])),
        )
    for s in range(ns):
        net.add_sku(f"K{s}", price=None if rng.random() < 0.3 else float(rng.uniform(1, 30)))
    data = net.build()
    ledger = Ledger(data)
    cells = [(s, loc) for s in range(ns) for loc in range(nl) if rng.random() < 0.5]
    if cells:
        ledger.apply(
            Events.receive(
                [c[0] for c in cells],
                [c[1] for c in cells],
                rng.integers(1, 6, len(cells)).tolist(),
            )
        )
        for s, loc in cells:
            if rng.random() < 0.3:
                ledger.reserve(s, loc, 1, channel=int(rng.integers(0, 2)))
            if rng.random() < 0.2:
                ledger.apply(Events.set_fence(s, loc, 0, int(rng.integers(0, 3))))
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
    for o in range(int(rng.integers(1, 14))):
        svc = int(rng.integers(0, 3))
        if svc == Service.PICKUP and pick_points.size == 0:
            svc = Service.SHIP
        p = int(rng.choice(pick_points)) if svc == Service.PICKUP else -1
        lat, lon = float(rng.uniform(31.0, 31.4)), float(rng.uniform(121.2, 121.7))
        chan, prio = int(rng.integers(0, 2)), int(rng.integers(0, 3))
        for s in rng.choice(ns, size=int(rng.integers(1, min(ns, 4) + 1)), replace=False):
            for k, v in (
                ("order", o + 1),
                ("sku", int(s)),
                ("qty", int(rng.integers(1, 5))),
                ("channel", chan),
                ("lat", lat),
                ("lon", lon),
                ("service", svc),
                ("pickup_location", p),
                ("priority", prio),
            ):
                rows[k].append(v)
    orders = Orders.from_lines(**{k: np.array(v) for k, v in rows.items()}, network=data)
    options: dict[str, Any] = {
        "max_splits": [None, 0, 1, 2][int(rng.integers(0, 4))],
        "costs": CostModel(split_penalty=float(rng.choice([0.0, 4.0]))),
    }
    return data, ledger, orders, options


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_kernel_matches_naive(seed: int) -> None:
    net, ledger, orders, opts = random_instance(seed)
    plan = source(net, ledger, orders, **opts)
    ref = naive.reference_plan(net, ledger, orders, **opts)
    for name in (
        "order",
        "line",
        "location",
        "qty",
        "transfer",
        "line_unfilled",
        "line_reason",
        "alt_location",
    ):
        assert getattr(plan, name).tolist() == getattr(ref, name).tolist(), name
    assert np.allclose(plan.alt_cost, ref.alt_cost, equal_nan=True)
    assert plan.objective == pytest.approx(ref.objective)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_plan_invariants(seed: int) -> None:
    net, ledger, orders, opts = random_instance(seed)
    atp = ledger.available_all().copy()
    plan = source(net, ledger, orders, **opts)
    assert np.array_equal(ledger.available_all(), atp)  # source never changes the ledger
    # never more than the channel's availability at any position
    chan = orders.channel[plan.order]
    pos = np.asarray(ledger.position_index(plan.sku, plan.location))
    assert (pos >= 0).all()
    used = np.zeros_like(atp)
    np.add.at(used, (pos, chan), plan.qty)
    assert (used <= atp).all()
    # never more than the pick capacity
    picked = np.bincount(plan.location, weights=plan.qty, minlength=net.num_locations)
    cap = net.pick_capacity
    assert ((cap < 0) | (picked <= cap)).all()
    # every unit allocated or reported unfilled with a reason
    alloc = np.bincount(plan.line, weights=plan.qty, minlength=orders.num_lines)
    assert np.array_equal(alloc + plan.line_unfilled, orders.qty)
    assert ((plan.line_unfilled > 0) == (plan.line_reason != 0)).all()
    # splits within the limit; rows only from eligible locations
    if opts["max_splits"] is not None:
        assert (plan.packages <= opts["max_splits"] + 1).all()
    assert not net.excluded[plan.location].any()
    assert net.serves[plan.location, chan].all()
    assert plan.objective == pytest.approx(plan.orders_frame()["cost"].sum())
    # every allocation comes from one of the order's candidates
    problem = Sourcer(net, opts["costs"]).prepare(ledger, orders)
    cand = problem.candidates()
    for o, loc in zip(plan.order.tolist(), plan.location.tolist(), strict=True):
        assert loc in cand.location[cand.ptr[o] : cand.ptr[o + 1]].tolist()


def test_sourcer_reuses_and_refreshes_its_index() -> None:
    net = city()
    ledger = stocked(net, {("A", "S1"): 1})
    sourcer = Sourcer(net)
    orders = orders_of(net, ship([("A", 1), ("B", 1)]))
    first = sourcer.source(ledger, orders)
    assert first.line_unfilled.tolist() == [0, 1]
    index = sourcer.positions(ledger)
    assert sourcer.positions(ledger) is index
    ledger.receive("B", "DC", 3)  # a new position: the index must be rebuilt
    second = sourcer.source(ledger, orders)
    assert second.line_unfilled.tolist() == [0, 0]
    assert sourcer.positions(ledger) is not index


def crowded_instance(seed: int) -> tuple[NetworkData, Ledger, Orders, dict[str, Any]]:
    """More locations than :func:`random_instance`, many at shared coordinates (exact
    cost ties), small pick capacities, dense stock, zone models and extreme per-km
    costs: the instances where the kernel's cost bounds and supply bounds prune."""
    rng = np.random.default_rng(seed)
    nl = int(rng.integers(10, 50))
    ns = int(rng.integers(2, 9))
    net = Network()
    net.add_channel("store")
    net.add_channel("online")
    spots = [(float(rng.uniform(31.0, 31.4)), float(rng.uniform(121.2, 121.7))) for _ in range(4)]
    for i in range(nl):
        if rng.random() < 0.5:
            lat, lon = spots[int(rng.integers(0, len(spots)))]
        else:
            lat, lon = float(rng.uniform(31.0, 31.4)), float(rng.uniform(121.2, 121.7))
        net.add_location(
            f"L{i}",
            kind="store",
            lat=lat,
            lon=lon,
            channels=None if rng.random() < 0.9 else ["store"],
            ships=bool(rng.random() < 0.9),
            pickup=bool(rng.random() < 0.5),
            same_day_radius_km=float(rng.choice([0.0, 8.0, 20.0])),
            excluded=bool(rng.random() < 0.05),
            pick_capacity=None if rng.random() < 0.5 else int(rng.integers(0, 6)),
            cost_multiplier=float(rng.choice([1.0, 1.0, 1.4, 2.0])),
        )
    for s in range(ns):
        net.add_sku(f"K{s}", price=None if rng.random() < 0.3 else float(rng.uniform(1, 30)))
    data = net.build()
    ledger = Ledger(data)
    density = float(rng.uniform(0.3, 0.9))
    cells = [(s, loc) for s in range(ns) for loc in range(nl) if rng.random() < density]
    if cells:
        ledger.apply(
            Events.receive(
                [c[0] for c in cells],
                [c[1] for c in cells],
                rng.integers(1, 4, len(cells)).tolist(),
            )
        )
    pick_points = np.flatnonzero(data.pickup)
    cols: dict[str, list[Any]] = {}
    for o in range(int(rng.integers(1, 30))):
        svc = int(rng.integers(0, 3))
        if svc == Service.PICKUP and pick_points.size == 0:
            svc = Service.SHIP
        p = int(rng.choice(pick_points)) if svc == Service.PICKUP else -1
        if rng.random() < 0.3:
            lat, lon = spots[int(rng.integers(0, len(spots)))]
        else:
            lat, lon = float(rng.uniform(31.0, 31.4)), float(rng.uniform(121.2, 121.7))
        chan, prio = int(rng.integers(0, 2)), int(rng.integers(0, 3))
        for s in rng.choice(ns, size=int(rng.integers(1, min(ns, 5) + 1)), replace=False):
            row = dict(
                order=o + 1,
                sku=int(s),
                qty=int(rng.integers(1, 4)),
                channel=chan,
                lat=lat,
                lon=lon,
                service=svc,
                pickup_location=p,
                priority=prio,
            )
            for k, v in row.items():
                cols.setdefault(k, []).append(v)
    orders = Orders.from_lines(**{k: np.array(v) for k, v in cols.items()}, network=data)
    if rng.random() < 0.3:
        costs = CostModel(
            location_zone=rng.integers(-1, 3, nl),
            zone_cost=np.round(rng.uniform(0, 2, (3, 3)), 1),
            split_penalty=float(rng.choice([0.0, 4.0])),
        )
    else:
        costs = CostModel(
            per_unit_km=float(rng.choice([0.0, 0.000336, 0.5])),
            split_penalty=float(rng.choice([0.0, 4.0])),
        )
    options: dict[str, Any] = {"max_splits": [None, 0, 1, 2][int(rng.integers(0, 4))]}
    options["costs"] = costs
    return data, ledger, orders, options


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_kernel_matches_naive_on_crowded_networks(seed: int) -> None:
    net, ledger, orders, opts = crowded_instance(seed)
    plan = source(net, ledger, orders, **opts)
    ref = naive.reference_plan(net, ledger, orders, **opts)
    for name in (
        "order",
        "line",
        "location",
        "qty",
        "transfer",
        "line_unfilled",
        "line_reason",
        "alt_location",
    ):
        assert getattr(plan, name).tolist() == getattr(ref, name).tolist(), name
    assert np.allclose(plan.alt_cost, ref.alt_cost, equal_nan=True)
    assert plan.objective == pytest.approx(ref.objective)


def test_repeated_and_concurrent_calls_match_one_batch_call() -> None:
    """A Sourcer keeps working buffers between calls and per thread: single-order
    calls, in sequence or from several threads, give what separate fresh calls give."""
    from concurrent.futures import ThreadPoolExecutor

    net, ledger, orders, opts = crowded_instance(7)
    sourcer = Sourcer(net, opts["costs"])
    singles = [orders.take([i]) for i in range(orders.num_orders)]
    fresh = [source(net, ledger, one, **opts) for one in singles]
    kw = {"max_splits": opts["max_splits"]}
    again = [sourcer.source(ledger, one, **kw) for one in singles + singles]
    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = list(pool.map(lambda one: sourcer.source(ledger, one, **kw), singles * 3))
    for i, plan in enumerate(again + threaded):
        want = fresh[i % len(singles)]
        assert plan.location.tolist() == want.location.tolist()
        assert plan.qty.tolist() == want.qty.tolist()
        assert plan.line_reason.tolist() == want.line_reason.tolist()
        assert plan.alt_location.tolist() == want.alt_location.tolist()


def test_problem_availability_is_the_ledgers() -> None:
    net, ledger, orders, opts = crowded_instance(11)
    problem = Sourcer(net, opts["costs"]).prepare(ledger, orders)
    channels = np.unique(orders.channel)
    assert not problem.avail.flags.writeable
    for q, (row, loc) in enumerate(zip(problem.sku_row, problem.sku_loc, strict=True)):
        s = int(ledger.position_sku[row])
        assert loc == ledger.position_location[row]
        for c in range(net.num_channels):
            want = ledger.available(s, int(loc), c) if c in channels else 0
            assert problem.avail[q, c] == want


def test_plan_costs_rejects_rows_outside_the_batch() -> None:
    from allocator.sourcing import plan_costs

    net = city()
    orders = orders_of(net, ship([("A", 1)]))
    rows = dict(location=np.array([0]), qty=np.array([1]), line_unfilled=np.zeros(1, int))
    with pytest.raises(ValidationError) as err:
        plan_costs(net, orders, C, order=np.array([1]), **rows)
    assert err.value.field == "order"
    rows["location"] = np.array([3])
    with pytest.raises(ValidationError) as err:
        plan_costs(net, orders, C, order=np.array([0]), **rows)
    assert err.value.field == "location"
    rows["location"] = np.array([0])
    ok = plan_costs(net, orders, C, order=np.array([0]), **rows)
    assert ok.cost[0] == pytest.approx(landed(1, km(net, "S1", *CUSTOMER), 1.0))


# ---------------------------------------------------------------------------
# nearby
@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 4),
    st.sampled_from([None, 5.0, 15.0]),
    st.sampled_from([None, "ship", "pickup", "same_day"]),
)
def test_nearby_matches_brute_force(
    seed: int, k: int, radius: float | None, service: str | None
) -> None:
    net, ledger, _, _ = random_instance(seed)
    rng = np.random.default_rng(seed + 1)
    lat, lon = float(rng.uniform(31.0, 31.4)), float(rng.uniform(121.2, 121.7))
    chan = int(rng.integers(0, 2))
    skus = np.arange(net.num_skus)
    got = nearby(net, ledger, skus, lat, lon, channel=chan, k=k, radius_km=radius, service=service)
    for s in skus.tolist():
        found = []
        for loc in range(net.num_locations):
            d = naive.haversine(net.lat[loc], net.lon[loc], lat, lon)
            ok = net.serves[loc, chan] and not net.excluded[loc]
            ok &= service != "ship" or bool(net.ships[loc])
            ok &= service != "pickup" or bool(net.pickup[loc])
            ok &= service != "same_day" or (0 < d <= net.same_day_radius_km[loc])
            ok &= radius is None or d <= radius
            a = ledger.available(s, loc, chan)
            if ok and a > 0:
                found.append((d, loc, a))
        found.sort()
        expect = found[:k]
        assert got.count[s] == len(expect)
        assert got.location[s, : len(expect)].tolist() == [f[1] for f in expect]
        assert got.available[s, : len(expect)].tolist() == [f[2] for f in expect]
        assert np.allclose(got.distance_km[s, : len(expect)], [f[0] for f in expect])


def test_nearby_answer_on_city() -> None:
    net = city()
    ledger = stocked(net, {("A", "S1"): 2, ("A", "S2"): 3, ("A", "DC"): 50, ("B", "DC"): 1})
    res = nearby(net, ledger, ["A", "B", "C"], *CUSTOMER, channel="online", k=2)
    assert res.location[0].tolist() == [0, 1] and res.available[0].tolist() == [2, 3]
    assert res.location[1].tolist() == [2, -1] and res.count.tolist() == [2, 1, 0]
    assert "none nearby" in res.summary()
    assert len(res.to_frame()) == 3
    with pytest.raises(ValidationError):
        nearby(net, ledger, "A", 100.0, 0.0, channel="online")


def test_bench_quick_runs_and_reports_keys() -> None:
    import argparse

    from allocator.bench import sourcing as bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    out = bench.run(parser.parse_args(["--quick"]))
    for key in (
        "orders_per_s",
        "p50_ms",
        "p99_ms",
        "reference_orders_per_s",
        "nearby_us",
        "compile_s",
        "speedup_vs_reference",
    ):
        assert key in out and out[key] > 0, key
    assert 0.0 <= out["fill_rate"] <= 1.0


# ---------------------------------------------------------------------------
# stock shared by channels within one batch
def three_channels() -> NetworkData:
    net = Network()
    for ch in ("store", "online", "marketplace"):
        net.add_channel(ch)
    net.add_location("S1", kind="store", lat=31.230, lon=121.470)
    net.add_sku("A", price=10.0)
    return net.build()


def test_mixed_channel_batch_shares_one_position() -> None:
    # on_hand 6, marketplace fence 2: available(online) = 6 - 2 = 4, available(mkt) = 6.
    # online takes 3 -> free 3, unused fence 2 -> available(mkt) = 3 (not 6);
    # marketplace takes 3 -> free 0 -> the last online order gets nothing.
    net = three_channels()
    ledger = stocked(net, {("A", "S1"): 6})
    ledger.apply(Events.set_fence("A", "S1", "marketplace", 2, network=net))
    orders = orders_of(
        net,
        ship([("A", 3)], order=1),
        {**ship([("A", 5)], order=2), "channel": "marketplace"},
        ship([("A", 1)], order=3),
    )
    for plan in (source(net, ledger, orders), naive.reference_plan(net, ledger, orders)):
        assert plan.qty.tolist() == [3, 3]
        assert plan.order.tolist() == [0, 1]
        assert plan.line_unfilled.tolist() == [0, 2, 1]
        assert plan.line_reason.tolist() == [0, UnfilledReason.NO_STOCK, UnfilledReason.NO_STOCK]
    # a fence the earlier order did not touch still holds: the marketplace order first
    # takes 4 of 6 (its fence 2 used up), then online sees 2
    first = orders_of(
        net, {**ship([("A", 4)], order=1), "channel": "marketplace"}, ship([("A", 5)], order=2)
    )
    assert source(net, ledger, first).qty.tolist() == [4, 2]
    res = reserve_plan(ledger, source(net, ledger, orders))
    assert res.rejected.tolist() == [] and res.accepted.tolist() == [0, 1]
    assert ledger.available("A", "S1", "online") == 0


def mixed_instance(seed: int) -> tuple[NetworkData, Ledger, Orders]:
    """Few positions, three channels, fences, caps, safety stock and reservations."""
    rng = np.random.default_rng(seed)
    nl, ns, nch = int(rng.integers(1, 4)), int(rng.integers(1, 4)), 3
    net = Network()
    for ch in ("store", "online", "marketplace"):
        net.add_channel(ch)
    for i in range(nl):
        net.add_location(
            f"L{i}",
            kind="store",
            lat=float(rng.uniform(31.0, 31.4)),
            lon=float(rng.uniform(121.2, 121.7)),
            pickup=True,
            same_day_radius_km=60.0,
            pick_capacity=None if rng.random() < 0.7 else int(rng.integers(0, 8)),
        )
    for s in range(ns):
        net.add_sku(f"K{s}")
    data = net.build()
    ledger = Ledger(data)
    cells = [(s, loc) for s in range(ns) for loc in range(nl)]
    ledger.apply(
        Events.receive(
            [c[0] for c in cells], [c[1] for c in cells], rng.integers(1, 12, len(cells)).tolist()
        )
    )
    for s, loc in cells:
        if rng.random() < 0.3:
            ledger.apply(Events.set_safety(s, loc, int(rng.integers(0, 3))))
        for c in range(nch):
            if rng.random() < 0.4:
                ledger.apply(Events.set_fence(s, loc, c, int(rng.integers(0, 5))))
            if rng.random() < 0.25:
                ledger.apply(Events.set_cap(s, loc, c, int(rng.integers(0, 6))))
            if rng.random() < 0.3 and ledger.available(s, loc, c) > 0:
                ledger.reserve(s, loc, 1, channel=c)
    rows: dict[str, list[Any]] = {
        k: []
        for k in ("order", "sku", "qty", "channel", "lat", "lon", "service", "pickup_location")
    }
    for o in range(int(rng.integers(2, 12))):
        svc = int(rng.integers(0, 3))
        p = int(rng.integers(0, nl)) if svc == Service.PICKUP else -1
        lat, lon = float(rng.uniform(31.0, 31.4)), float(rng.uniform(121.2, 121.7))
        chan = int(rng.integers(0, nch))
        for s in rng.choice(ns, size=int(rng.integers(1, ns + 1)), replace=False):
            for k, v in (
                ("order", o + 1),
                ("sku", int(s)),
                ("qty", int(rng.integers(1, 7))),
                ("channel", chan),
                ("lat", lat),
                ("lon", lon),
                ("service", svc),
                ("pickup_location", p),
            ):
                rows[k].append(v)
    orders = Orders.from_lines(**{k: np.array(v) for k, v in rows.items()}, network=data)
    return data, ledger, orders


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_mixed_channel_batches_follow_the_ledgers_sequential_rule(seed: int) -> None:
    net, ledger, orders = mixed_instance(seed)
    plan = source(net, ledger, orders)
    ref = naive.reference_plan(net, ledger, orders)
    for name in ("order", "line", "location", "qty", "line_unfilled", "line_reason"):
        assert getattr(plan, name).tolist() == getattr(ref, name).tolist(), name
    # replay the rows in plan order with the ledger's rule: every row fits
    pos = np.asarray(ledger.position_index(plan.sku, plan.location)).tolist()
    reserved = ledger.reserved_by_channel.astype(np.int64)
    free = ledger.on_hand - reserved.sum(axis=1) - ledger.safety_stock
    unused = np.maximum(0, ledger.fence - reserved)
    room = ledger.cap - reserved
    for r, q, o in zip(pos, plan.qty.tolist(), plan.order.tolist(), strict=True):
        c = int(orders.channel[o])
        avail = max(0, min(free[r] - (unused[r].sum() - unused[r, c]), room[r, c]))
        assert 0 < q <= avail
        free[r] -= q
        unused[r, c] -= min(q, unused[r, c])
        room[r, c] -= q
    # and the ledger reserves every order the plan fills (in part or in full)
    res = reserve_plan(ledger, plan)
    assert res.rejected.tolist() == []
    assert res.accepted.tolist() == sorted(set(plan.order.tolist()))


# ---------------------------------------------------------------------------
# unfilled-penalty rules
def test_unfilled_rules_price_margin_must_serve_per_line_flat() -> None:
    net = Network()
    net.add_channel("online")
    net.add_location("DC", kind="warehouse", lat=31.0, lon=121.0)
    net.add_sku("A", price=30.0, unit_cost=20.0)
    net.add_sku("B")  # no price, no cost
    data = net.build()
    ledger = Ledger(data)
    orders = Orders.from_lines(
        order=[1, 1],
        sku=["A", "B"],
        qty=[2, 1],
        channel=0,
        lat=31.0,
        lon=121.0,
        penalty=[7.0, np.nan],
        network=data,
    )
    expect = {
        "price": 2 * 30.0 + 50.0,
        "margin": 2 * 10.0 + 50.0,
        "must_serve": 3 * 10_000.0,
        "per_line": 2 * 7.0 + 50.0,
        "flat": 3 * 50.0,
    }
    for rule, value in expect.items():
        plan = source(data, ledger, orders, costs=CostModel(unfilled=rule))
        assert plan.objective == pytest.approx(value), rule
    assert CostModel(unfilled_at_price=False).unfilled == "flat"
    with pytest.raises(ValidationError) as e:
        CostModel(unfilled="cheapest")
    assert e.value.field == "unfilled"
    with pytest.raises(ValidationError) as e:
        Orders.from_lines(order=[1], sku=[0], qty=[1], channel=0, lat=31.0, lon=121.0, penalty=-1.0)
    assert e.value.field == "penalty"
    assert np.isnan(orders.take([0]).penalty[1]) and orders.take([0]).penalty[0] == 7.0
