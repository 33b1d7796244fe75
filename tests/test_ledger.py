"""Known-answer tests for every event kind, idempotency, linked groups and shortfalls."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator import Events, Ledger, ResultCode, ValidationError
from allocator.events import ALL, NO_CAP, EventKind
from allocator.ledger import ReservationState
from tests.conftest import make_small_network

R = ResultCode


@pytest.fixture
def ledger(small_network):
    led = Ledger(small_network)
    assert led.receive("SKU-0", "S1", 10).ok
    return led


def test_receive_and_sale(ledger):
    assert ledger.position("SKU-0", "S1")["on_hand"] == 10
    assert ledger.sale("SKU-0", "S1", 3, channel="store").code == R.OK
    assert ledger.position("SKU-0", "S1")["on_hand"] == 7
    res = ledger.sale("SKU-0", "S1", 8, channel="store")
    assert res.code == R.INSUFFICIENT_ON_HAND
    assert ledger.position("SKU-0", "S1")["on_hand"] == 7
    assert ledger.sale("SKU-1", "S1", 1, channel="store").code == R.INSUFFICIENT_ON_HAND


def test_reserve_commit_partial_releases_rest(ledger):
    hold = ledger.reserve("SKU-0", "S1", 4, channel="online")
    assert hold.code == R.OK and hold.id < 0
    assert ledger.available("SKU-0", "S1", "store") == 6
    assert ledger.commit(hold.id, 3).code == R.OK
    pos = ledger.position("SKU-0", "S1")
    assert (pos["on_hand"], pos["reserved"]) == (7, 0)
    r = ledger.reservation(hold.id)
    assert r.state == ReservationState.COMMITTED and r.open_qty == 0 and r.qty == 4


def test_reservation_resolves_at_most_once(ledger):
    a = ledger.reserve("SKU-0", "S1", 2, channel="online").id
    b = ledger.reserve("SKU-0", "S1", 2, channel="online").id
    assert ledger.commit(a).code == R.OK
    assert ledger.commit(a).code == R.RESERVATION_ALREADY_COMMITTED
    assert ledger.release(a).code == R.RESERVATION_ALREADY_COMMITTED
    assert ledger.release(b).code == R.OK
    assert ledger.release(b).code == R.RESERVATION_ALREADY_RELEASED
    assert ledger.commit(b).code == R.RESERVATION_ALREADY_RELEASED
    assert ledger.commit(123456).code == R.RESERVATION_NOT_FOUND
    assert ledger.position("SKU-0", "S1")["on_hand"] == 8


def test_commit_more_than_open_and_mismatch(ledger, small_network):
    hold = ledger.reserve("SKU-0", "S1", 2, channel="online", id=50).id
    assert ledger.commit(hold, 3).code == R.EXCEEDS_RESERVED_QUANTITY
    wrong = Events.from_arrays(kind=EventKind.COMMIT, ref=hold, qty=ALL, location=1, sku=0)
    assert ledger.apply(wrong).code == R.RESERVATION_MISMATCH
    right = Events.from_arrays(kind=EventKind.COMMIT, ref=hold, qty=ALL, location=0, sku=0)
    assert ledger.apply(right).code == R.OK


def test_reserve_rejections(ledger, small_network):
    assert ledger.reserve("SKU-0", "S1", 11, channel="online").code == R.INSUFFICIENT_AVAILABLE
    assert ledger.reserve("SKU-1", "S1", 1, channel="online").code == R.INSUFFICIENT_AVAILABLE
    ledger.apply(Events.set_cap("SKU-0", "S1", "marketplace", 3, network=small_network))
    assert ledger.reserve("SKU-0", "S1", 4, channel="marketplace").code == R.EXCEEDS_CHANNEL_CAP
    assert ledger.reserve("SKU-0", "S1", 3, channel="marketplace").code == R.OK
    assert ledger.available("SKU-0", "S1", "marketplace") == 0
    ledger.apply(Events.set_cap("SKU-0", "S1", "marketplace", NO_CAP, network=small_network))
    assert ledger.available("SKU-0", "S1", "marketplace") == 7


def test_fences_and_safety_stock(ledger, small_network):
    ledger.apply(
        Events.concat(
            [
                Events.set_fence("SKU-0", "S1", "store", 4, network=small_network),
                Events.set_safety("SKU-0", "S1", 1, network=small_network),
            ]
        )
    )
    # online sees on_hand - safety - store's unused fence; store sees all but safety
    assert ledger.available("SKU-0", "S1", ["store", "online", "marketplace"]).tolist() == [9, 5, 5]
    assert ledger.reserve("SKU-0", "S1", 6, channel="online").code == R.INSUFFICIENT_AVAILABLE
    assert ledger.reserve("SKU-0", "S1", 2, channel="store").code == R.OK
    # the store consumed 2 of its own fence: online still sees 5
    assert ledger.available("SKU-0", "S1", "online") == 5
    assert ledger.available("SKU-0", "S1", "store") == 7


def test_expire_releases_due_reservations_only(ledger):
    a = ledger.reserve("SKU-0", "S1", 2, channel="online", expires_at=100).id
    b = ledger.reserve("SKU-0", "S1", 3, channel="online", expires_at=200).id
    c = ledger.reserve("SKU-0", "S1", 1, channel="online").id
    assert ledger.expire(99).ok and ledger.position("SKU-0", "S1")["reserved"] == 6
    assert ledger.expire(100).ok
    assert ledger.reservation(a).state == ReservationState.EXPIRED
    assert ledger.position("SKU-0", "S1")["reserved"] == 4
    assert ledger.commit(a).code == R.RESERVATION_EXPIRED
    assert ledger.expire(10**12).ok
    assert ledger.reservation(b).state == ReservationState.EXPIRED
    assert ledger.reservation(c).state == ReservationState.OPEN


def test_transfer_through_in_transit(ledger):
    ledger.reserve("SKU-0", "S1", 7, channel="online")
    assert ledger.transfer("SKU-0", "S1", "DC", 4).code == R.INSUFFICIENT_FREE_STOCK
    assert ledger.transfer("SKU-0", "S1", "DC", 3).code == R.OK
    assert ledger.position("SKU-0", "DC")["in_transit"] == 3
    assert ledger.position("SKU-0", "S1")["on_hand"] == 7
    assert ledger.transfer_in("SKU-0", "DC", 4).code == R.EXCEEDS_IN_TRANSIT
    assert ledger.transfer_in("SKU-0", "DC", 3).code == R.OK
    assert ledger.position("SKU-0", "DC")["on_hand"] == 3
    assert ledger.position("SKU-0", "DC")["in_transit"] == 0
    assert ledger.transfer_in("SKU-0", "S2", 1).code == R.EXCEEDS_IN_TRANSIT


def test_returns_sellable_and_not(ledger, small_network):
    assert ledger.apply(Events.return_("SKU-0", "S1", 2, network=small_network)).ok
    assert ledger.apply(Events.return_("SKU-0", "S1", 1, sellable=False, network=small_network)).ok
    pos = ledger.position("SKU-0", "S1")
    assert (pos["on_hand"], pos["nonsellable"]) == (12, 1)
    assert ledger.available("SKU-0", "S1", "store") == 12


def test_adjust_sets_on_hand_and_reports_shortfall(ledger):
    old = ledger.reserve("SKU-0", "S1", 3, channel="online").id
    new = ledger.reserve("SKU-0", "S1", 4, channel="online").id
    res = ledger.adjust("SKU-0", "S1", 5)
    assert res.code == R.OK
    assert ledger.position("SKU-0", "S1")["on_hand"] == 5
    sf = res.shortfalls
    assert len(sf) == 1 and sf.shortage[0] == 2 and sf.reserved[0] == 7
    assert sf.at_risk(0).tolist() == [new]  # newest first, just enough to cover 2
    res = ledger.adjust("SKU-0", "S1", 0)
    assert res.shortfalls.at_risk(0).tolist() == [new, old]
    assert ledger.available("SKU-0", "S1", "online") == 0
    # a commit cannot take goods that are gone
    assert ledger.commit(new).code == R.INSUFFICIENT_ON_HAND


def test_sale_shortfall(ledger):
    hold = ledger.reserve("SKU-0", "S1", 8, channel="online").id
    res = ledger.sale("SKU-0", "S1", 5, channel="store")
    assert res.code == R.OK
    assert res.shortfalls.shortage.tolist() == [3]
    assert res.shortfalls.at_risk(0).tolist() == [hold]


def test_idempotency_same_and_different_payload(ledger):
    first = ledger.receive("SKU-1", "S2", 5, id=7)
    again = ledger.receive("SKU-1", "S2", 5, id=7)
    assert first.code == again.code == R.OK
    assert again.duplicate and not first.duplicate
    assert ledger.position("SKU-1", "S2")["on_hand"] == 5
    clash = ledger.receive("SKU-1", "S2", 6, id=7)
    assert clash.code == R.EXISTS_WITH_DIFFERENT_FIELDS
    assert ledger.position("SKU-1", "S2")["on_hand"] == 5
    # a failed id keeps its outcome even after stock arrives
    assert ledger.reserve("SKU-2", "S2", 1, channel="online", id=8).code == R.INSUFFICIENT_AVAILABLE
    ledger.receive("SKU-2", "S2", 5)
    assert ledger.reserve("SKU-2", "S2", 1, channel="online", id=8).code == R.INSUFFICIENT_AVAILABLE
    # a ledger-assigned id can be retried
    auto = ledger.receive("SKU-3", "S2", 1)
    assert ledger.receive("SKU-3", "S2", 1, id=auto.id).duplicate
    assert ledger.position("SKU-3", "S2")["on_hand"] == 1


def test_duplicate_within_one_batch(ledger):
    ev = Events.concat([Events.receive(0, 1, 2, id=5), Events.receive(0, 1, 2, id=5)])
    res = ledger.apply(ev)
    assert res.codes.tolist() == [0, 0] and res.duplicate.tolist() == [False, True]
    assert ledger.position(0, 1)["on_hand"] == 2


def test_linked_group_all_or_nothing(ledger):
    order = Events.concat(
        [
            Events.reserve(0, 0, 3, channel=1, id=101),
            Events.reserve(1, 0, 1, channel=1, id=102),  # SKU-1 has no stock at S1
            Events.reserve(0, 0, 2, channel=1, id=103),
        ]
    ).linked()
    res = ledger.apply(Events.concat([order, Events.receive(2, 0, 1, id=104)]))
    assert res.codes.tolist() == [
        R.LINKED_EVENT_FAILED,
        R.INSUFFICIENT_AVAILABLE,
        R.LINKED_EVENT_FAILED,
        R.OK,
    ]
    assert ledger.position(0, 0)["reserved"] == 0
    assert ledger.reservation(101) is None
    assert ledger.position(2, 0)["on_hand"] == 1  # independent event applied
    ok = Events.concat(
        [Events.reserve(0, 0, 3, channel=1, id=201), Events.commit(201, 2, id=202)]
    ).linked()
    assert ledger.apply(ok).ok
    assert ledger.position(0, 0)["on_hand"] == 8


def test_open_chain_is_rejected(ledger):
    ev = Events.from_arrays(
        kind=[EventKind.RECEIVE] * 2, sku=0, location=0, qty=1, id=[301, 302], link=[True, True]
    )
    res = ledger.apply(ev)
    assert res.codes.tolist() == [R.LINKED_EVENT_FAILED, R.LINKED_EVENT_CHAIN_OPEN]
    assert ledger.position(0, 0)["on_hand"] == 10
    assert ledger.result_of([301, 302]).tolist() == [-1, -1]  # ids stay unused


def test_overflow_is_a_result(ledger):
    from allocator._kernels.ledger import F_ON_HAND, STOCK_MAX

    # reaching 2**62 by receipts of at most 10**12 takes millions of events, so the
    # test starts from a position already near the bound (white-box)
    pos = ledger.position_index("SKU-0", "S1")
    ledger._state[pos, F_ON_HAND] = STOCK_MAX - 5
    assert ledger.receive("SKU-0", "S1", 6).code == R.OVERFLOW
    assert ledger.position("SKU-0", "S1")["on_hand"] == STOCK_MAX - 5
    assert ledger.receive("SKU-0", "S1", 5).code == R.OK
    assert ledger.transfer("SKU-0", "S2", "S1", 1).code == R.INSUFFICIENT_FREE_STOCK


def test_growth_keeps_state(small_network):
    led = Ledger(small_network, capacity=1, reservation_capacity=1)
    rng = np.random.default_rng(0)
    sku = rng.integers(0, 4, 3000)
    loc = rng.integers(0, 3, 3000)
    led.apply(Events.receive(sku, loc, 1, id=np.arange(1, 3001)))
    led.apply(Events.reserve(sku, loc, 1, channel=1, id=np.arange(5001, 8001)))
    expected = np.zeros((4, 3), dtype=np.int64)
    np.add.at(expected, (sku, loc), 1)
    for s in range(4):
        for loc_ in range(3):
            assert led.position(s, loc_)["on_hand"] == expected[s, loc_]
            assert led.position(s, loc_)["reserved"] == expected[s, loc_]
    assert led.num_reservations == 3000
    assert (led.result_of(np.arange(1, 3001)) == 0).all()


def test_totals_and_read_side(ledger):
    ledger.receive("SKU-0", "DC", 5)
    assert ledger.totals()[0] == 15
    assert ledger.totals("reserved").sum() == 0
    with pytest.raises(ValidationError):
        ledger.totals("bogus")
    assert ledger.available_all().shape == (ledger.num_positions, 3)
    assert not ledger.on_hand.flags.writeable
    opened = ledger.reserve("SKU-0", "DC", 2, channel="online").id
    assert ledger.open_reservations()["id"].tolist() == [opened]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["receive", "sale", "reserve", "commit", "return", "transfer"]),
            st.integers(0, 1),
            st.integers(0, 2),
            st.integers(1, 5),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_units_are_conserved(ops):
    """Σ(on_hand + in_transit + nonsellable) moves exactly by the accepted events."""
    led = Ledger(make_small_network())
    expected = 0
    holds: list[int] = []
    for kind, sku, loc, q in ops:
        if kind == "receive":
            res = led.receive(sku, loc, q)
            expected += q * res.accepted
        elif kind == "return":
            res = led.apply(Events.return_(sku, loc, q, sellable=bool(q % 2)))
            expected += q * res.accepted[0]
        elif kind == "sale":
            res = led.sale(sku, loc, q, channel=0)
            expected -= q * res.accepted
        elif kind == "reserve":
            res = led.reserve(sku, loc, q, channel=1)
            if res.accepted:
                holds.append(res.id)
        elif kind == "commit" and holds:
            hold = holds.pop(0)
            take = min(q, led.reservation(hold).open_qty)
            res = led.commit(hold, take)
            expected -= take * res.accepted
        elif kind == "transfer":
            led.transfer(sku, loc, (loc + 1) % 3, q)
        total = int(led.on_hand.sum() + led.in_transit.sum() + led.nonsellable.sum())
        assert total == expected
        assert (led.available_all() >= 0).all()
        assert (led.reserved <= led.on_hand).all()  # no sale/count here can short a hold


# --------------------------------------------------------------------------- regressions
def test_every_event_of_a_failed_group_reports_a_failure() -> None:
    """A duplicate inside a rolled-back group is not reported ``ok``."""
    led = Ledger(make_small_network())
    res = led.apply(
        Events.from_arrays(
            kind=["receive", "receive", "sale"],
            id=[7, 7, 8],
            sku=0,
            location=0,
            qty=[1, 1, 99],
            link=[True, True, False],
        )
    )
    assert res.codes.tolist() == [
        R.LINKED_EVENT_FAILED,
        R.LINKED_EVENT_FAILED,
        R.INSUFFICIENT_ON_HAND,
    ]
    assert res.duplicate.tolist() == [False, True, False]
    assert led.position(0, 0)["on_hand"] == 0
    # a duplicate of an earlier success, inside a group that fails, fails with it
    assert led.receive(0, 0, 1, id=20).ok
    res = led.apply(Events.receive([0, 0], [0, 0], [1, 1], id=[20, 21]).linked())
    assert res.ok and res.duplicate.tolist() == [True, False]
    grp = Events.concat([Events.receive(0, 0, 1, id=20, link=True), Events.sale(0, 0, 999, id=22)])
    res = led.apply(grp)
    assert res.codes.tolist() == [R.LINKED_EVENT_FAILED, R.INSUFFICIENT_ON_HAND]


def test_totals_are_exact_int64_and_overflow_is_typed() -> None:
    from allocator._kernels.ledger import F_ON_HAND
    from allocator.exceptions import QuantityOverflowError

    led = Ledger(make_small_network())
    qty = [10**12] * 9007 + [2**53 + 1 - 9007 * 10**12]
    assert led.apply(Events.receive(np.zeros(len(qty), np.int64), 0, qty)).ok
    assert int(led.totals("on_hand")[0]) == 2**53 + 1  # float64 would give 2**53
    # three positions near 4.6e18 (beyond QTY_MAX per event, so set in place)
    for loc in range(3):
        led.apply(Events.adjust(1, loc, 0))
        led._state[led.position_index(1, loc), F_ON_HAND] = 4_600_000_000_000_000_000
    with pytest.raises(QuantityOverflowError, match="SKU-1"):
        led.totals("on_hand")
    with pytest.raises(ValidationError):
        led.totals("onhand")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda led: led.reservation(2**70), "ref"),
        (lambda led: led.reservation("x"), "reservation"),
        (lambda led: led.result_of("x"), "ids"),
        (lambda led: led.result_of(2**70), "ids"),
        (lambda led: led.result_of([1.5]), "ids"),
        (lambda led: led.commit(object()), "reservation"),
        (lambda led: led.totals(3), "field"),
    ],
)
def test_bad_arguments_raise_library_errors_naming_the_field(call, field) -> None:  # type: ignore[no-untyped-def]
    led = Ledger(make_small_network())
    with pytest.raises(ValidationError) as info:
        call(led)
    assert info.value.field == field


def test_results_have_truth_values_and_short_reprs(ledger) -> None:  # type: ignore[no-untyped-def]
    hold = ledger.reserve("SKU-0", "S1", 2, channel="online")
    assert hold and ledger.commit(hold)  # a reserve's result is accepted as the reservation
    assert not ledger.reserve("SKU-0", "S1", 10**6, channel="online")
    res = ledger.apply(Events.receive(np.zeros(1000, np.int64), 0, 1))
    assert res and len(repr(res)) < 200 and "\n" not in repr(res)
    assert len(repr(hold)) < 100
