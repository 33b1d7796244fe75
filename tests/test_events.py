"""Bad input to Events and Ledger.apply: typed errors naming field and row, nothing applied."""

from __future__ import annotations

import numpy as np
import pytest

from allocator import Events, Ledger, ValidationError
from allocator.events import MAX_BATCH, EventKind
from allocator.exceptions import DTypeError, UnknownNameError


@pytest.fixture
def ledger(small_network):
    led = Ledger(small_network)
    led.receive(0, 0, 10, id=1)
    return led


def snapshot(led):
    return (led.on_hand.copy(), led.reserved.copy(), led.num_positions, led.num_reservations)


def assert_unchanged(led, before):
    after = snapshot(led)
    for a, b in zip(before, after, strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "field", "row", "exc", "code"),
    [
        (dict(qty=[1, 2.5, 3]), "qty", 1, DTypeError, "quantity_must_be_integer"),
        (dict(qty=[1, 2, np.nan]), "qty", 2, DTypeError, "quantity_must_be_integer"),
        (dict(qty=[1, 0, 3]), "qty", 1, ValidationError, "quantity_must_be_positive"),
        (dict(qty=[1, 2, -3]), "qty", 2, ValidationError, "quantity_must_be_positive"),
        (dict(qty=[1, 10**13, 1]), "qty", 1, ValidationError, "quantity_out_of_range"),
        (dict(qty=[1, None, 1]), "qty", 1, DTypeError, "quantity_must_be_integer"),
        (dict(qty=[True, True, True]), "qty", 0, DTypeError, "quantity_must_be_integer"),
        (dict(kind=[0, 99, 0]), "kind", 1, ValidationError, "unknown_event_type"),
        (
            dict(kind=["receive", "teleport", "receive"]),
            "kind",
            1,
            ValidationError,
            "unknown_event_type",
        ),
        (dict(sku=[0, 0]), "sku", None, ValidationError, "length_mismatch"),
    ],
)
def test_bad_structure(kwargs, field, row, exc, code):
    base = dict(kind=[EventKind.RECEIVE] * 3, sku=[0, 1, 2], location=0, qty=[1, 1, 1])
    base.update(kwargs)
    with pytest.raises(exc) as info:
        Events.from_arrays(**base)
    assert info.value.field == field
    assert info.value.row == row
    assert info.value.code == code
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "field", "row"),
    [
        (dict(sku=[0, 9, 0]), "sku", 1),
        (dict(location=[0, 0, 7]), "location", 2),
        (dict(kind=[EventKind.RESERVE] * 3, channel=[0, 5, 0]), "channel", 1),
        (dict(kind=[EventKind.RESERVE] * 3, channel=[0, 1, -1]), "channel", 2),
    ],
)
def test_bad_indices_leave_ledger_unchanged(ledger, kwargs, field, row):
    base = dict(
        kind=[EventKind.RECEIVE] * 3, sku=[0, 1, 2], location=0, qty=[1, 1, 1], id=[10, 11, 12]
    )
    base.update(kwargs)
    events = Events.from_arrays(**base)
    before = snapshot(ledger)
    with pytest.raises(ValidationError) as info:
        ledger.apply(events)
    assert (info.value.field, info.value.row) == (field, row)
    assert_unchanged(ledger, before)
    assert ledger.result_of([10, 11, 12]).tolist() == [-1, -1, -1]


def test_unknown_names(ledger, small_network):
    before = snapshot(ledger)
    with pytest.raises(UnknownNameError) as info:
        ledger.receive("NOPE", "S1", 1)
    assert info.value.field == "sku" and info.value.code == "sku_not_found"
    with pytest.raises(UnknownNameError):
        ledger.reserve("SKU-0", "S1", 1, channel="tiktok")
    with pytest.raises(UnknownNameError) as info:
        Events.receive(["SKU-0", "SKU-9"], "S1", 1, network=small_network)
    assert info.value.row == 1
    assert_unchanged(ledger, before)


def test_other_structural_errors(small_network, ledger):
    with pytest.raises(ValidationError, match="differ"):
        Events.transfer_out(0, 1, 1, 5)
    with pytest.raises(ValidationError) as info:
        Events.from_arrays(
            kind=[EventKind.RECEIVE, EventKind.EXPIRE],
            sku=[0, -1],
            location=[0, -1],
            qty=[1, 0],
            link=[True, False],
        )
    assert info.value.code == "flags_are_mutually_exclusive"
    with pytest.raises(ValidationError) as info:
        Events.commit(0)
    assert info.value.field == "ref"
    with pytest.raises(ValidationError) as info:
        Events.from_arrays(kind=EventKind.COMMIT, ref=5, qty=0)
    assert info.value.code == "quantity_must_be_positive"
    with pytest.raises(ValidationError) as info:
        ledger.apply(Events.receive(0, 0, 1, id=-50))
    assert info.value.code == "invalid_identifier"
    with pytest.raises(TypeError):
        ledger.apply([1, 2, 3])


def test_batch_limit():
    assert MAX_BATCH >= 10_000_000


def test_events_round_trip_frame(small_network):
    ev = Events.concat(
        [
            Events.receive(["SKU-0", "SKU-1"], "S1", [3, 4], id=[1, 2], network=small_network),
            Events.reserve("SKU-0", "S1", 1, channel="online", id=3, network=small_network),
            Events.transfer_out("SKU-1", "S1", "DC", 2, id=4, network=small_network),
        ]
    )
    frame = ev.to_frame(small_network)
    assert frame["kind"].tolist() == ["receive", "receive", "reserve", "transfer_out"]
    assert frame["location_name"].tolist() == ["S1"] * 4
    back = Events.from_frame(frame.drop(columns=["sku_name", "location_name", "channel_name"]))
    for name in Events.FIELDS:
        assert np.array_equal(getattr(back, name), getattr(ev, name))
    assert len(ev.take(slice(1, 3))) == 2
    assert not ev.qty.flags.writeable


def test_every_constructor_holds_the_structure_rules() -> None:
    """concat, take, linked and direct construction reject what from_arrays rejects."""
    import pytest as _pytest

    from allocator._validate import readonly

    expire = Events.expire(5, id=3)
    linked = Events.receive([0, 0], [0, 0], [1, 1], id=[1, 2], link=[True, False])
    with _pytest.raises(ValidationError) as info:
        Events.concat([Events.receive(0, 0, 1, id=1, link=True), expire])
    assert info.value.code == "flags_are_mutually_exclusive"
    both = Events.concat([linked, expire])
    with _pytest.raises(ValidationError):
        both.take([0, 2])  # the expire would join the linked receive
    with _pytest.raises(ValidationError):
        Events.concat([Events.receive(0, 0, 1, id=1), expire]).linked()
    cols = {name: getattr(linked, name) for name in Events.FIELDS}
    cols["qty"] = readonly(np.array([1, -5], dtype=np.int64))
    with _pytest.raises(ValidationError) as info:
        Events(**cols)
    assert info.value.code == "quantity_must_be_positive"
    cols["qty"] = np.array([1, 1], dtype=np.int64)  # writable: not built by a constructor
    with _pytest.raises(TypeError):
        Events(**cols)


def test_unknown_kind_lists_the_kinds_and_suggests_one() -> None:
    with pytest.raises(ValidationError) as info:
        Events.from_arrays(kind=["receipt"], sku=0, location=0, qty=1)
    assert "did you mean 'receive'" in str(info.value)
    assert "transfer_out" in str(info.value)


def test_names_without_network_say_what_to_pass() -> None:
    with pytest.raises(ValidationError) as info:
        Events.from_arrays(kind="receive", sku="SKU-0", location=0, qty=1)
    assert "network=" in str(info.value) and info.value.field == "sku"
