"""Ledger events: kinds, result codes and the struct-of-arrays :class:`Events` batch.

An :class:`Events` batch is validated for *structure* when it is built (dtypes,
lengths, quantities per kind). Indices are checked against a network when the batch
is applied to a :class:`~allocator.Ledger`, or at construction when ``network`` is
given (which also lets you pass names instead of indices).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from allocator._enum import CodedEnum
from allocator._kernels import ledger as K
from allocator._validate import QTY_MAX, as_bool, as_int64, readonly, same_length
from allocator.exceptions import BatchTooLargeError, DTypeError, ValidationError
from allocator.network import NetworkData

__all__ = [
    "ALL",
    "MAX_BATCH",
    "NO_CAP",
    "NO_EXPIRY",
    "STOCK_MAX",
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
#: Largest value any stock quantity may reach (a cap of ``STOCK_MAX`` is no cap);
#: results beyond it are rejected with ``overflow``.
STOCK_MAX: int = K.STOCK_MAX
#: The most events one batch may hold.
MAX_BATCH = 50_000_000


class EventKind(CodedEnum):
    """What an event does (see ``docs/ledger.md`` for the full semantics)."""

    RECEIVE = K.K_RECEIVE
    SALE = K.K_SALE
    RESERVE = K.K_RESERVE
    COMMIT = K.K_COMMIT
    RELEASE = K.K_RELEASE
    EXPIRE = K.K_EXPIRE
    TRANSFER_OUT = K.K_TRANSFER_OUT
    TRANSFER_IN = K.K_TRANSFER_IN
    RETURN = K.K_RETURN
    RETURN_NONSELLABLE = K.K_RETURN_NONSELLABLE
    ADJUST = K.K_ADJUST
    SET_FENCE = K.K_SET_FENCE
    SET_CAP = K.K_SET_CAP
    SET_SAFETY = K.K_SET_SAFETY


class ResultCode(CodedEnum):
    """Outcome of one event. ``code.name.lower()`` is the stable string code."""

    OK = K.C_OK
    INSUFFICIENT_ON_HAND = K.C_INSUFFICIENT_ON_HAND
    INSUFFICIENT_AVAILABLE = K.C_INSUFFICIENT_AVAILABLE
    EXCEEDS_CHANNEL_CAP = K.C_EXCEEDS_CHANNEL_CAP
    INSUFFICIENT_FREE_STOCK = K.C_INSUFFICIENT_FREE_STOCK
    RESERVATION_NOT_FOUND = K.C_RESERVATION_NOT_FOUND
    RESERVATION_ALREADY_COMMITTED = K.C_ALREADY_COMMITTED
    RESERVATION_ALREADY_RELEASED = K.C_ALREADY_RELEASED
    RESERVATION_EXPIRED = K.C_RESERVATION_EXPIRED
    EXCEEDS_RESERVED_QUANTITY = K.C_EXCEEDS_RESERVED
    RESERVATION_MISMATCH = K.C_MISMATCH
    EXCEEDS_IN_TRANSIT = K.C_EXCEEDS_IN_TRANSIT
    OVERFLOW = K.C_OVERFLOW
    EXISTS_WITH_DIFFERENT_FIELDS = K.C_EXISTS_DIFFERENT
    LINKED_EVENT_FAILED = K.C_LINKED_FAILED
    LINKED_EVENT_CHAIN_OPEN = K.C_CHAIN_OPEN


#: ``ResultCode`` by value, for turning kernel codes into members without a lookup.
CODES: tuple[ResultCode, ...] = tuple(ResultCode)
#: Kind names accepted where a kind is given by name.
KIND_NAMES: tuple[str, ...] = tuple(k.slug for k in EventKind)


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
        # Every way of building a batch ends here, so every batch holds the same
        # invariants: read-only 1-D int64 columns (bool links) of one length, and the
        # structure rules of _check_structure.
        n = -1
        for name in self.FIELDS:
            arr = getattr(self, name)
            want = np.bool_ if name == "link" else np.int64
            if (
                not isinstance(arr, np.ndarray)
                or arr.flags.writeable
                or arr.dtype != want
                or arr.ndim != 1
                or not arr.flags.c_contiguous
            ):
                raise TypeError(
                    "build Events with Events.from_arrays or a kind constructor "
                    f"(column {name!r} is not a read-only 1-D {np.dtype(want).name} array)"
                )
            if n >= 0 and arr.shape[0] != n:
                raise ValidationError(
                    f"expected {n} rows, got {arr.shape[0]}", field=name, code="length_mismatch"
                )
            n = arr.shape[0]
        if n > MAX_BATCH:
            raise BatchTooLargeError(f"{n} events exceed the maximum of {MAX_BATCH}", field="id")
        _check_structure(self)

    def __len__(self) -> int:
        return int(self.id.shape[0])

    def __repr__(self) -> str:
        n = len(self)
        if n == 0:
            return "Events(0 events)"
        counts = np.bincount(self.kind, minlength=len(EventKind))
        kinds = ", ".join(f"{EventKind(k).slug}={c}" for k, c in enumerate(counts.tolist()) if c)
        groups = int(n - self.link.sum())
        return f"Events({n} events: {kinds}; {groups} groups)"

    @classmethod
    def _from_rows(cls, rows: Sequence[tuple[int, ...]]) -> Events:
        """Events from rows ``(id, kind, sku, location, channel, qty, ref, expires_at)``
        that were each validated already (single, unlinked events)."""
        arr = np.array(rows, dtype=np.int64).reshape(len(rows), 8).T.copy()
        self = object.__new__(cls)
        for k, name in enumerate(cls.FIELDS[:-1]):
            object.__setattr__(self, name, readonly(arr[k]))
        object.__setattr__(self, "link", readonly(np.zeros(len(rows), dtype=np.bool_)))
        return self

    @classmethod
    def _concat_closed(cls, parts: Sequence[Events]) -> Events:
        """Join batches that each end with a closed group, without validating again.

        Each part already holds the invariants, and joining closed groups cannot
        break them (no group crosses a part boundary), so the check is skipped: this
        is the group-commit path, where it would cost a pass over every event.
        """
        if len(parts) == 1:
            return parts[0]
        self = object.__new__(cls)
        for name in cls.FIELDS:
            object.__setattr__(
                self, name, readonly(np.concatenate([getattr(p, name) for p in parts]))
            )
        return self

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
            kind_arr = _kinds_from_names(kind_arr)
        elif kind_arr.dtype.kind == "f" or kind_arr.dtype == np.bool_:
            raise DTypeError(
                f"expected event kinds as names or EventKind codes, got dtype {kind_arr.dtype}",
                field="kind",
                code="unknown_event_type",
            )
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
        else:
            for field, value in (("sku", sku), ("location", location), ("channel", channel)):
                if np.asarray(value).dtype.kind in "UO":
                    raise DTypeError(
                        f"{field} holds names: pass network= to use names (or give indices)",
                        field=field,
                        code="network_required",
                    )
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
        events = cls(**{name: readonly(arr) for name, arr in cols.items()})
        if network is not None:
            events.check_network(network)
        return events

    def check_network(self, network: NetworkData) -> None:
        """Raise :class:`ValidationError` if any index lies outside ``network``.

        One pass over the batch (the structure rules are checked again with it).
        """
        row, reason = K.check_batch(
            self.kind,
            self.sku,
            self.location,
            self.channel,
            self.qty,
            self.ref,
            self.expires_at,
            self.link,
            QTY_MAX,
            network.num_skus,
            network.num_locations,
            network.num_channels,
        )
        if row >= 0:
            raise _invalid(self, row, reason, network)

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
        """Join batches in order, validated as one batch (so that, for example, an
        expire never ends up inside a linked group)."""
        if not batches:
            return cls.from_arrays(kind=np.zeros(0, dtype=np.int64))
        for i, b in enumerate(batches):
            if not isinstance(b, Events):
                raise TypeError(f"concat takes Events, got {type(b).__name__} at position {i}")
        total = sum(len(b) for b in batches)
        if total > MAX_BATCH:
            raise BatchTooLargeError(
                f"{total} events exceed the maximum of {MAX_BATCH}", field="id"
            )
        return cls(
            **{
                name: readonly(np.concatenate([getattr(b, name) for b in batches]))
                for name in cls.FIELDS
            }
        )

    def linked(self) -> Events:
        """The same events as one all-or-nothing group (every link flag but the last set)."""
        link = np.ones(len(self), dtype=np.bool_)
        if len(self):
            link[-1] = False
        cols = {name: getattr(self, name) for name in self.FIELDS}
        cols["link"] = readonly(link)
        return type(self)(**cols)

    def take(self, index: Any) -> Events:
        """A sub-batch of the given rows (slice, mask or integer index), validated anew."""
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
        """Build from a DataFrame with the columns of :meth:`from_arrays`.

        Names in ``sku``/``location``/``channel`` (or ``sku_name`` and friends, as
        :meth:`to_frame` writes them) need ``network``; ``kind`` may hold names.
        """
        if "kind" not in frame.columns:
            raise ValidationError(
                "frame 'events': missing column 'kind' (the event kind of each row)",
                field="kind",
                code="missing_field",
            )
        names = {"sku_name", "location_name", "channel_name"}
        unknown = set(frame.columns) - set(cls.FIELDS) - names
        if unknown:
            raise ValidationError(
                f"frame 'events': unexpected columns {sorted(unknown)}; expected some of "
                f"{list(cls.FIELDS) + sorted(names)}",
                field=sorted(unknown)[0],
                code="field_not_allowed",
            )
        cols = {c: frame[c].to_numpy() for c in cls.FIELDS if c in frame.columns}
        for col in sorted(names & set(frame.columns)):
            target = col.removesuffix("_name")
            if network is None:
                raise ValidationError(
                    f"frame 'events': column {col!r} holds names: pass network= to use them",
                    field=col,
                    code="network_required",
                )
            if target not in cols:
                cols[target] = frame[col].to_numpy()
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


def _kinds_from_names(kind: np.ndarray) -> np.ndarray:
    values = kind.ravel().tolist()
    out = np.empty(len(values), dtype=np.int64)
    for row, k in enumerate(values):
        if isinstance(k, EventKind):
            out[row] = int(k)
            continue
        if isinstance(k, str) and k.strip().lower() in KIND_NAMES:
            out[row] = KIND_NAMES.index(k.strip().lower())
            continue
        raise ValidationError(
            f"unknown event kind {k!r}{_did_you_mean(str(k), KIND_NAMES)}; expected one of "
            f"{', '.join(KIND_NAMES)}",
            field="kind",
            row=row if kind.ndim else None,
            code="unknown_event_type",
        )
    return out.reshape(kind.shape)


def _did_you_mean(name: str, choices: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name.lower(), choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_structure(events: Events) -> None:
    """The structure rules of a batch, in one kernel pass (no network needed)."""
    row, reason = K.check_batch(
        events.kind,
        events.sku,
        events.location,
        events.channel,
        events.qty,
        events.ref,
        events.expires_at,
        events.link,
        QTY_MAX,
        -1,
        -1,
        -1,
    )
    if row >= 0:
        raise _invalid(events, row, reason, None)


def _invalid(events: Events, row: int, reason: int, network: NetworkData | None) -> ValidationError:
    """The error for rule ``reason`` (a ``K.V_*`` code) broken at ``row``."""
    kind = int(events.kind[row])
    if reason == K.V_KIND:
        return ValidationError(
            f"unknown event kind {kind}; expected 0..{len(EventKind) - 1} or one of "
            f"{', '.join(KIND_NAMES)}",
            field="kind",
            row=row,
            code="unknown_event_type",
        )
    name = EventKind(kind).slug
    qty = int(events.qty[row])
    if reason == K.V_QTY_POSITIVE:
        return ValidationError(
            f"quantity {qty} of a {name} event must be positive (1..{QTY_MAX})",
            field="qty",
            row=row,
            code="quantity_must_be_positive",
        )
    if reason in (K.V_QTY_RANGE, K.V_QTY_NONNEG, K.V_CAP_RANGE):
        lo = 1 if reason == K.V_QTY_RANGE else 0
        extra = " or NO_CAP (-1)" if reason == K.V_CAP_RANGE else ""
        return ValidationError(
            f"quantity {qty} of a {name} event not in [{lo}, {QTY_MAX}]{extra}",
            field="qty",
            row=row,
            code="quantity_out_of_range",
        )
    if reason == K.V_COMMIT_QTY:
        return ValidationError(
            f"commit quantity {qty} must be positive (at most {QTY_MAX}) or ALL (-1)",
            field="qty",
            row=row,
            code="quantity_must_be_positive" if qty <= 0 else "quantity_out_of_range",
        )
    if reason == K.V_REF_MISSING:
        return ValidationError(
            f"a {name} event needs the reservation id (the reserve event's id) in ref",
            field="ref",
            row=row,
            code="missing_field",
        )
    if reason == K.V_SAME_LOCATION:
        return ValidationError(
            "transfer origin and destination must differ",
            field="ref",
            row=row,
            code="locations_must_be_different",
        )
    if reason == K.V_EXPIRE_LINKED:
        return ValidationError(
            "expire events cannot be part of a linked group",
            field="link",
            row=row,
            code="flags_are_mutually_exclusive",
        )
    if reason == K.V_EXPIRES_NEGATIVE:
        return ValidationError(
            f"expires_at {int(events.expires_at[row])} must be non-negative",
            field="expires_at",
            row=row,
            code="out_of_range",
        )
    if reason == K.V_DESTINATION:
        limit = network.num_locations if network is not None else 0
        return ValidationError(
            f"destination location {int(events.ref[row])} outside [0, {limit})",
            field="ref",
            row=row,
            code="location_not_found",
        )
    field, arr = {
        K.V_SKU: ("sku", events.sku),
        K.V_LOCATION: ("location", events.location),
        K.V_CHANNEL: ("channel", events.channel),
    }[reason]
    value = int(arr[row])
    if network is None or value < -1:
        return ValidationError(
            f"{field} {value} must be an index >= 0 (or -1 where unused)",
            field=field,
            row=row,
            code=f"{field}_not_found",
        )
    limit = {
        "sku": network.num_skus,
        "location": network.num_locations,
        "channel": network.num_channels,
    }[field]
    return ValidationError(
        f"{field} {value} outside [0, {limit}) for a {name} event",
        field=field,
        row=row,
        code=f"{field}_not_found",
    )
