"""Ledger events: kinds, result codes and the struct-of-arrays :class:`Events` batch.

An :class:`Events` batch is validated for *structure* when it is built (dtypes,
lengths, quantities per kind). Indices are checked against a network when the batch
is applied to a :class:`~allocator.Ledger`, or at construction when ``network`` is
given (which also lets you pass names instead of indices).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from allocator._validate import QTY_MAX, as_bool, as_int64, first_true, readonly, same_length
from allocator.exceptions import BatchTooLargeError, ValidationError
from allocator.network import NetworkData

__all__ = [
    "ALL",
    "MAX_BATCH",
    "NO_EXPIRY",
    "EventKind",
    "Events",
    "ResultCode",
]

#: ``expires_at`` value meaning "never expires".
NO_EXPIRY = np.iinfo(np.int64).max
#: ``qty`` value of a commit meaning "the whole open quantity".
ALL = -1
#: ``qty`` value of a set_cap meaning "no cap".
NO_CAP = -1
#: The most events one batch may hold.
MAX_BATCH = 50_000_000


class EventKind(enum.IntEnum):
    """What an event does (see ``docs/ledger.md`` for the full semantics)."""

    RECEIVE = 0
    SALE = 1
    RESERVE = 2
    COMMIT = 3
    RELEASE = 4
    EXPIRE = 5
    TRANSFER_OUT = 6
    TRANSFER_IN = 7
    RETURN = 8
    RETURN_NONSELLABLE = 9
    ADJUST = 10
    SET_FENCE = 11
    SET_CAP = 12
    SET_SAFETY = 13


class ResultCode(enum.IntEnum):
    """Outcome of one event. ``code.name.lower()`` is the stable string code."""

    OK = 0
    INSUFFICIENT_ON_HAND = 1
    INSUFFICIENT_AVAILABLE = 2
    EXCEEDS_CHANNEL_CAP = 3
    INSUFFICIENT_FREE_STOCK = 4
    RESERVATION_NOT_FOUND = 5
    RESERVATION_ALREADY_COMMITTED = 6
    RESERVATION_ALREADY_RELEASED = 7
    RESERVATION_EXPIRED = 8
    EXCEEDS_RESERVED_QUANTITY = 9
    RESERVATION_MISMATCH = 10
    EXCEEDS_IN_TRANSIT = 11
    OVERFLOW = 12
    EXISTS_WITH_DIFFERENT_FIELDS = 13
    LINKED_EVENT_FAILED = 14
    LINKED_EVENT_CHAIN_OPEN = 15

    @property
    def slug(self) -> str:
        """The stable string code, e.g. ``"insufficient_available"``."""
        return self.name.lower()


# Which kinds need which fields; the kernel relies on these checks.
_NEEDS_POSITION = {
    EventKind.RECEIVE,
    EventKind.SALE,
    EventKind.RESERVE,
    EventKind.TRANSFER_OUT,
    EventKind.TRANSFER_IN,
    EventKind.RETURN,
    EventKind.RETURN_NONSELLABLE,
    EventKind.ADJUST,
    EventKind.SET_FENCE,
    EventKind.SET_CAP,
    EventKind.SET_SAFETY,
}
_NEEDS_CHANNEL = {EventKind.RESERVE, EventKind.SET_FENCE, EventKind.SET_CAP}
_POSITIVE_QTY = {
    EventKind.RECEIVE,
    EventKind.SALE,
    EventKind.RESERVE,
    EventKind.TRANSFER_OUT,
    EventKind.TRANSFER_IN,
    EventKind.RETURN,
    EventKind.RETURN_NONSELLABLE,
}
_NONNEG_QTY = {EventKind.ADJUST, EventKind.SET_FENCE, EventKind.SET_SAFETY}


def _kind_mask(kind: np.ndarray, kinds: set[EventKind]) -> np.ndarray:
    return np.isin(kind, np.array(sorted(int(k) for k in kinds), dtype=np.int64))


@dataclass(frozen=True, eq=False)
class Events:
    """A batch of ledger events as parallel int64 arrays.

    Attributes
    ----------
    id
        Client event id, unique per event; ``0`` means "let the ledger assign one".
        Client ids are positive; ledger-assigned ids are negative (a negative id may
        be sent again to retry, but only once the ledger has assigned it).
    kind
        :class:`EventKind` code.
    sku, location
        Position of the event (``-1`` where not used: expire; optional on
        commit/release, where a value must match the reservation).
    channel
        Channel index (``-1`` where not used).
    qty
        Quantity (see the table in ``docs/ledger.md``).
    ref
        Reservation id for commit/release; destination location for transfer_out.
    expires_at
        Reservation expiry for reserve (``NO_EXPIRY`` for none); ``now`` for expire.
    link
        True when the next event belongs to the same all-or-nothing group.
    """

    id: np.ndarray
    kind: np.ndarray
    sku: np.ndarray
    location: np.ndarray
    channel: np.ndarray
    qty: np.ndarray
    ref: np.ndarray
    expires_at: np.ndarray
    link: np.ndarray

    FIELDS = ("id", "kind", "sku", "location", "channel", "qty", "ref", "expires_at", "link")

    def __post_init__(self) -> None:
        for name in self.FIELDS:
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.flags.writeable:
                raise TypeError("build Events with Events.from_arrays or a kind constructor")

    def __len__(self) -> int:
        return int(self.id.shape[0])

    # ------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        *,
        kind: Any,
        id: Any = 0,
        sku: Any = -1,
        location: Any = -1,
        channel: Any = -1,
        qty: Any = 0,
        ref: Any = 0,
        expires_at: Any = NO_EXPIRY,
        link: Any = False,
        network: NetworkData | None = None,
    ) -> Events:
        """Build a batch from column arrays (scalars broadcast), validating structure.

        With ``network``, ``sku``, ``location``, ``channel`` (and ``ref`` of
        transfers) may be names, and indices are checked against it.
        """
        kind_arr = np.asarray(kind)
        if kind_arr.dtype.kind in "UO":
            try:
                kind_arr = np.array(
                    [EventKind[str(k).upper()] for k in kind_arr.ravel().tolist()], dtype=np.int64
                )
            except KeyError as exc:
                bad = next(
                    i
                    for i, k in enumerate(np.asarray(kind).ravel().tolist())
                    if str(k).upper() not in EventKind.__members__
                )
                raise ValidationError(
                    f"unknown event kind {exc.args[0]!r}",
                    field="kind",
                    row=bad,
                    code="unknown_event_type",
                ) from None
        k = as_int64(kind_arr, "kind", code="unknown_event_type")
        n = k.shape[0]
        if n > MAX_BATCH:
            raise BatchTooLargeError(f"{n} events exceed the maximum of {MAX_BATCH}", field="id")
        k = as_int64(k, "kind", lo=0, hi=len(EventKind) - 1, code="unknown_event_type")
        if network is not None:
            sku = _resolve(network.sku_index, sku, "sku", n)
            location = _resolve(network.location_index, location, "location", n)
            channel = _resolve(network.channel_index, channel, "channel", n)
            is_transfer = k == EventKind.TRANSFER_OUT
            if is_transfer.any():
                ref_arr = np.asarray(ref)
                if ref_arr.dtype.kind in "UO":
                    ref_obj = np.broadcast_to(ref_arr, (n,)).astype(object)
                    ref_out = np.zeros(n, dtype=np.int64)
                    for row in np.flatnonzero(is_transfer):
                        ref_out[row] = network.location_index(ref_obj[row], "ref")
                    ref = ref_out
        cols = {
            "id": as_int64(id, "id", size=n),
            "kind": k,
            "sku": as_int64(sku, "sku", size=n, lo=-1),
            "location": as_int64(location, "location", size=n, lo=-1),
            "channel": as_int64(channel, "channel", size=n, lo=-1),
            "qty": as_int64(qty, "qty", size=n),
            "ref": as_int64(ref, "ref", size=n),
            "expires_at": as_int64(expires_at, "expires_at", size=n),
            "link": as_bool(link, "link", size=n),
        }
        same_length(list(cols.items()))
        _check_structure(cols)
        events = cls(**{name: readonly(arr) for name, arr in cols.items()})
        if network is not None:
            events.check_network(network)
        return events

    def check_network(self, network: NetworkData) -> None:
        """Raise :class:`ValidationError` if any index lies outside ``network``."""
        kind = self.kind
        for field, arr, limit, needs in (
            ("sku", self.sku, network.num_skus, _NEEDS_POSITION),
            ("location", self.location, network.num_locations, _NEEDS_POSITION),
            ("channel", self.channel, network.num_channels, _NEEDS_CHANNEL),
        ):
            bad = arr >= limit
            bad |= (arr < 0) & _kind_mask(kind, needs)
            if bad.any():
                row = first_true(bad)
                raise ValidationError(
                    f"{field} {arr[row]} outside [0, {limit}) for a "
                    f"{EventKind(kind[row]).name.lower()} event",
                    field=field,
                    row=row,
                    code=f"{field}_not_found",
                )
        transfer = kind == EventKind.TRANSFER_OUT
        bad = transfer & ((self.ref < 0) | (self.ref >= network.num_locations))
        if bad.any():
            row = first_true(bad)
            raise ValidationError(
                f"destination location {self.ref[row]} outside [0, {network.num_locations})",
                field="ref",
                row=row,
                code="location_not_found",
            )

    # -- one constructor per kind --------------------------------------
    @classmethod
    def receive(
        cls,
        sku: Any,
        location: Any,
        qty: Any,
        *,
        id: Any = 0,
        link: Any = False,
        network: NetworkData | None = None,
    ) -> Events:
        """Goods received at a location: ``on_hand += qty``."""
        return cls.from_arrays(
            kind=_k(EventKind.RECEIVE, sku),
            id=id,
            sku=sku,
            location=location,
            qty=qty,
            link=link,
            network=network,
        )

    @classmethod
    def sale(
        cls,
        sku: Any,
        location: Any,
        qty: Any,
        *,
        channel: Any = -1,
        id: Any = 0,
        link: Any = False,
        network: NetworkData | None = None,
    ) -> Events:
        """A walk-in/POS sale (goods already left): ``on_hand -= qty``."""
        return cls.from_arrays(
            kind=_k(EventKind.SALE, sku),
            id=id,
            sku=sku,
            location=location,
            channel=channel,
            qty=qty,
            link=link,
            network=network,
        )

    @classmethod
    def reserve(
        cls,
        sku: Any,
        location: Any,
        qty: Any,
        *,
        channel: Any,
        id: Any = 0,
        expires_at: Any = NO_EXPIRY,
        link: Any = False,
        network: NetworkData | None = None,
    ) -> Events:
        """Hold ``qty`` for ``channel``; the reservation is named by this event's id."""
        return cls.from_arrays(
            kind=_k(EventKind.RESERVE, sku),
            id=id,
            sku=sku,
            location=location,
            channel=channel,
            qty=qty,
            expires_at=expires_at,
            link=link,
            network=network,
        )

    @classmethod
    def commit(cls, reservation: Any, qty: Any = ALL, *, id: Any = 0, link: Any = False) -> Events:
        """Ship/pick ``qty`` of a reservation (``ALL`` = all of it); the rest is released."""
        return cls.from_arrays(
            kind=_k(EventKind.COMMIT, reservation), id=id, ref=reservation, qty=qty, link=link
        )

    @classmethod
    def release(cls, reservation: Any, *, id: Any = 0, link: Any = False) -> Events:
        """Cancel a reservation, releasing its open quantity."""
        return cls.from_arrays(
            kind=_k(EventKind.RELEASE, reservation), id=id, ref=reservation, link=link
        )

    @classmethod
    def expire(cls, now: Any, *, id: Any = 0) -> Events:
        """Release every open reservation whose ``expires_at <= now``."""
        return cls.from_arrays(kind=_k(EventKind.EXPIRE, now), id=id, expires_at=now)

    @classmethod
    def transfer_out(
        cls,
        sku: Any,
        origin: Any,
        destination: Any,
        qty: Any,
        *,
        id: Any = 0,
        link: Any = False,
        network: NetworkData | None = None,
    ) -> Events:
        """Ship from ``origin``: its ``on_hand -= qty``, destination ``in_transit += qty``."""
        return cls.from_arrays(
            kind=_k(EventKind.TRANSFER_OUT, sku),
            id=id,
            sku=sku,
            location=origin,
            ref=destination,
            qty=qty,
            link=link,
            network=network,
        )

    @classmethod
    def transfer_in(
        cls,
        sku: Any,
        location: Any,
        qty: Any,
        *,
        id: Any = 0,
        link: Any = False,
        network: NetworkData | None = None,
    ) -> Events:
        """Receive a transfer: ``in_transit -= qty``, ``on_hand += qty``."""
        return cls.from_arrays(
            kind=_k(EventKind.TRANSFER_IN, sku),
            id=id,
            sku=sku,
            location=location,
            qty=qty,
            link=link,
            network=network,
        )

    @classmethod
    def return_(
        cls,
        sku: Any,
        location: Any,
        qty: Any,
        *,
        sellable: bool = True,
        id: Any = 0,
        link: Any = False,
        network: NetworkData | None = None,
    ) -> Events:
        """A customer return: to ``on_hand`` if sellable, else to the non-sellable bucket."""
        kind = EventKind.RETURN if sellable else EventKind.RETURN_NONSELLABLE
        return cls.from_arrays(
            kind=_k(kind, sku),
            id=id,
            sku=sku,
            location=location,
            qty=qty,
            link=link,
            network=network,
        )

    @classmethod
    def adjust(
        cls,
        sku: Any,
        location: Any,
        counted: Any,
        *,
        id: Any = 0,
        link: Any = False,
        network: NetworkData | None = None,
    ) -> Events:
        """A cycle count: ``on_hand := counted`` (0 allowed)."""
        return cls.from_arrays(
            kind=_k(EventKind.ADJUST, sku),
            id=id,
            sku=sku,
            location=location,
            qty=counted,
            link=link,
            network=network,
        )

    @classmethod
    def set_fence(
        cls,
        sku: Any,
        location: Any,
        channel: Any,
        qty: Any,
        *,
        id: Any = 0,
        link: Any = False,
        network: NetworkData | None = None,
    ) -> Events:
        """Ring-fence ``qty`` units of the position for ``channel``."""
        return cls.from_arrays(
            kind=_k(EventKind.SET_FENCE, sku),
            id=id,
            sku=sku,
            location=location,
            channel=channel,
            qty=qty,
            link=link,
            network=network,
        )

    @classmethod
    def set_cap(
        cls,
        sku: Any,
        location: Any,
        channel: Any,
        qty: Any,
        *,
        id: Any = 0,
        link: Any = False,
        network: NetworkData | None = None,
    ) -> Events:
        """Cap what ``channel`` may hold reserved at the position (``NO_CAP`` = none)."""
        return cls.from_arrays(
            kind=_k(EventKind.SET_CAP, sku),
            id=id,
            sku=sku,
            location=location,
            channel=channel,
            qty=qty,
            link=link,
            network=network,
        )

    @classmethod
    def set_safety(
        cls,
        sku: Any,
        location: Any,
        qty: Any,
        *,
        id: Any = 0,
        link: Any = False,
        network: NetworkData | None = None,
    ) -> Events:
        """Set the safety stock withheld from every channel."""
        return cls.from_arrays(
            kind=_k(EventKind.SET_SAFETY, sku),
            id=id,
            sku=sku,
            location=location,
            qty=qty,
            link=link,
            network=network,
        )

    # -- combining and viewing ---------------------------------------
    @classmethod
    def concat(cls, batches: Sequence[Events]) -> Events:
        """Join batches in order (no re-validation needed: each part is valid)."""
        if not batches:
            return cls.from_arrays(kind=np.zeros(0, dtype=np.int64))
        cols = {
            name: readonly(np.concatenate([getattr(b, name) for b in batches]))
            for name in cls.FIELDS
        }
        if len(cols["id"]) > MAX_BATCH:
            raise BatchTooLargeError(
                f"{len(cols['id'])} events exceed the maximum of {MAX_BATCH}", field="id"
            )
        return cls(**cols)

    def linked(self) -> Events:
        """The same events as one all-or-nothing group (every link flag but the last set)."""
        link = np.ones(len(self), dtype=np.bool_)
        if len(self):
            link[-1] = False
        cols = {name: getattr(self, name) for name in self.FIELDS}
        cols["link"] = readonly(link)
        _check_structure(cols)
        return type(self)(**cols)

    def take(self, index: Any) -> Events:
        """A sub-batch of the given rows (slice, mask or integer index)."""
        return type(self)(
            **{
                name: readonly(np.ascontiguousarray(getattr(self, name)[index]))
                for name in self.FIELDS
            }
        )

    def to_frame(self, network: NetworkData | None = None) -> Any:
        """A pandas DataFrame, one row per event (names resolved when ``network`` is given)."""
        import pandas as pd

        data: dict[str, Any] = {name: np.asarray(getattr(self, name)) for name in self.FIELDS}
        data["kind"] = [EventKind(k).name.lower() for k in self.kind.tolist()]
        frame = pd.DataFrame(data)
        if network is not None:
            for col, names in (
                ("sku", network.sku_names),
                ("location", network.location_names),
                ("channel", network.channel_names),
            ):
                arr = getattr(self, col)
                frame[f"{col}_name"] = [names[i] if i >= 0 else None for i in arr.tolist()]
        return frame

    @classmethod
    def from_frame(cls, frame: Any, network: NetworkData | None = None) -> Events:
        """Build from a DataFrame with the columns of :meth:`from_arrays`."""
        if "kind" not in frame.columns:
            raise ValidationError("missing column", field="kind", code="missing_field")
        unknown = (
            set(frame.columns) - set(cls.FIELDS) - {"sku_name", "location_name", "channel_name"}
        )
        if unknown:
            raise ValidationError(
                f"unexpected columns {sorted(unknown)}",
                field=sorted(unknown)[0],
                code="field_not_allowed",
            )
        cols = {c: frame[c].to_numpy() for c in cls.FIELDS if c in frame.columns}
        return cls.from_arrays(**cols, network=network)


def _k(kind: EventKind, like: Any) -> Any:
    """``kind`` broadcast to the length of ``like`` (a scalar stays a scalar)."""
    arr = np.asarray(like)
    return np.full(arr.shape[0], int(kind), dtype=np.int64) if arr.ndim else int(kind)


def _resolve(lookup: Any, value: Any, field: str, n: int) -> Any:
    arr = np.asarray(value)
    if arr.dtype.kind in "UO":
        return lookup(np.broadcast_to(arr, (n,)).astype(object) if arr.ndim == 0 else arr, field)
    return value


def _check_structure(cols: dict[str, np.ndarray]) -> None:
    kind, qty, _ident = cols["kind"], cols["qty"], cols["id"]
    pos = _kind_mask(kind, _POSITIVE_QTY)
    bad = pos & ((qty <= 0) | (qty > QTY_MAX))
    if bad.any():
        row = first_true(bad)
        code = "quantity_must_be_positive" if qty[row] <= 0 else "quantity_out_of_range"
        raise ValidationError(
            f"quantity {qty[row]} not in [1, {QTY_MAX}]", field="qty", row=row, code=code
        )
    nonneg = _kind_mask(kind, _NONNEG_QTY)
    bad = nonneg & ((qty < 0) | (qty > QTY_MAX))
    if bad.any():
        row = first_true(bad)
        raise ValidationError(
            f"quantity {qty[row]} not in [0, {QTY_MAX}]",
            field="qty",
            row=row,
            code="quantity_out_of_range",
        )
    cap = kind == EventKind.SET_CAP
    bad = cap & ((qty < NO_CAP) | (qty > QTY_MAX))
    if bad.any():
        row = first_true(bad)
        raise ValidationError(
            f"cap {qty[row]} not in [0, {QTY_MAX}] or NO_CAP",
            field="qty",
            row=row,
            code="quantity_out_of_range",
        )
    commit = kind == EventKind.COMMIT
    bad = commit & ((qty == 0) | (qty < ALL) | (qty > QTY_MAX))
    if bad.any():
        row = first_true(bad)
        raise ValidationError(
            f"commit quantity {qty[row]} must be positive or ALL",
            field="qty",
            row=row,
            code="quantity_must_be_positive",
        )
    resolve = commit | (kind == EventKind.RELEASE)
    bad = resolve & (cols["ref"] == 0)
    if bad.any():
        raise ValidationError(
            "commit/release needs the reservation id in ref",
            field="ref",
            row=first_true(bad),
            code="missing_field",
        )
    transfer = kind == EventKind.TRANSFER_OUT
    bad = transfer & (cols["ref"] == cols["location"])
    if bad.any():
        raise ValidationError(
            "transfer origin and destination must differ",
            field="ref",
            row=first_true(bad),
            code="locations_must_be_different",
        )
    expire = kind == EventKind.EXPIRE
    link = cols["link"]
    in_group = link.copy()
    in_group[1:] |= link[:-1]
    bad = expire & in_group
    if bad.any():
        raise ValidationError(
            "expire events cannot be part of a linked group",
            field="link",
            row=first_true(bad),
            code="flags_are_mutually_exclusive",
        )
    bad = (kind == EventKind.RESERVE) & (cols["expires_at"] < 0)
    if bad.any():
        raise ValidationError(
            "expires_at must be non-negative",
            field="expires_at",
            row=first_true(bad),
            code="out_of_range",
        )
