"""The stock ledger: the one stateful object of the library.

:class:`Ledger` keeps per-position stock (on_hand, reserved by channel, in_transit,
safety stock, non-sellable returns, channel fences and caps) in sparse, int64
struct-of-arrays form, and changes it only by applying events through one numba
kernel. It is safe to call from any number of threads and coroutines; see
``docs/ledger.md`` for the semantics and the concurrency contract.

:class:`BaseLedger` is what every ledger offers (this in-memory one, the durable
SQLite one of :mod:`allocator.journal`, and the PostgreSQL one): the write calls,
sync and async, and the read calls, which are answered by an in-memory
:class:`Ledger`.
"""

from __future__ import annotations

import abc
import enum
import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from allocator._group import GroupCommitter
from allocator._kernels import ledger as K
from allocator._validate import QTY_MAX, readonly
from allocator.events import ALL, CODES, NO_EXPIRY, Events, ResultCode
from allocator.exceptions import (
    CapacityError,
    DTypeError,
    LedgerBusyError,
    QuantityOverflowError,
    ValidationError,
)
from allocator.network import NetworkData

__all__ = [
    "DEFAULT_TIMEOUT",
    "ApplyResult",
    "BaseLedger",
    "EventResult",
    "Ledger",
    "Reservation",
    "ReservationState",
    "Shortfalls",
    "StockSnapshot",
]

#: A SKU, location or channel: its name or its index.
Key = str | int | np.integer
#: One key, or many (a sequence or an array; arguments broadcast like numpy).
Keys = Key | Sequence[Key] | npt.NDArray[Any]
#: A quantity: an integer (never a float, a string or a bool), or many.
Quantity = int | np.integer | Sequence[int] | npt.NDArray[np.integer]
#: An event id: None (the ledger assigns one), an integer, or many.
EventId = int | np.integer | None | Sequence[int] | npt.NDArray[np.integer]

_LOAD = 0.7  # maximum load factor of both hash tables
_INT64_MAX = 2**63 - 1

#: Seconds a call waits for its turn before :class:`~allocator.LedgerBusyError`.
DEFAULT_TIMEOUT = 30.0
#: The most events queued for group commit before callers wait for room.
DEFAULT_MAX_QUEUE_EVENTS = 1_000_000
#: The most events one group commit takes (a larger single batch goes alone).
DEFAULT_MAX_GROUP_EVENTS = 100_000


class ReservationState(enum.IntEnum):
    """Lifecycle state of a reservation: ``OPEN`` then one terminal state."""

    OPEN = K.RS_OPEN
    COMMITTED = K.RS_COMMITTED
    RELEASED = K.RS_RELEASED
    EXPIRED = K.RS_EXPIRED


@dataclass(frozen=True)
class Reservation:
    """One reservation, named by the id of its reserve event."""

    id: int
    sku: int
    location: int
    channel: int
    qty: int
    open_qty: int
    expires_at: int
    state: ReservationState


@dataclass(frozen=True, eq=False, repr=False)
class Shortfalls:
    """Positions left with ``on_hand < reserved`` by a sale or a count.

    ``reservations[indptr[i]:indptr[i + 1]]`` are the open reservations at risk at
    position ``i``, newest first, just enough of them to cover its ``shortage``; the
    caller re-sources (or releases) them. Quantities are those at the end of the
    batch (for a group commit: of the group) in which the shortfall arose.
    """

    sku: np.ndarray
    location: np.ndarray
    on_hand: np.ndarray
    reserved: np.ndarray
    shortage: np.ndarray
    event: np.ndarray
    indptr: np.ndarray
    reservations: np.ndarray

    def __len__(self) -> int:
        return int(self.sku.shape[0])

    def __bool__(self) -> bool:
        return len(self) > 0

    def __repr__(self) -> str:
        return f"Shortfalls({len(self)} positions, {int(self.shortage.sum())} units short)"

    def at_risk(self, i: int) -> np.ndarray:
        """Reservation ids at risk at shortfall ``i``, newest first."""
        return self.reservations[self.indptr[i] : self.indptr[i + 1]]

    def take(self, rows: np.ndarray, first_event: int) -> Shortfalls:
        """The shortfalls at ``rows``, with event numbers shifted by ``-first_event``."""
        counts = np.diff(self.indptr)[rows]
        picks = [self.reservations[self.indptr[r] : self.indptr[r + 1]] for r in rows.tolist()]
        res = np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)
        return Shortfalls(
            sku=readonly(self.sku[rows]),
            location=readonly(self.location[rows]),
            on_hand=readonly(self.on_hand[rows]),
            reserved=readonly(self.reserved[rows]),
            shortage=readonly(self.shortage[rows]),
            event=readonly(self.event[rows] - first_event),
            indptr=readonly(np.concatenate(([0], np.cumsum(counts))).astype(np.int64)),
            reservations=readonly(res.astype(np.int64)),
        )


def _empty_shortfalls() -> Shortfalls:
    z = readonly(np.zeros(0, dtype=np.int64))
    return Shortfalls(z, z, z, z, z, z, readonly(np.zeros(1, dtype=np.int64)), z)


NO_SHORTFALLS = _empty_shortfalls()


class EventResult:
    """What the ledger did with one event (the result of ``reserve`` and friends).

    Its truth value is :attr:`ok`: ``if ledger.reserve(...):`` means "reserved". It
    can be passed wherever a reservation is expected (``ledger.commit(hold)``).

    Attributes
    ----------
    id
        The event id as applied (ledger-assigned ids are negative); for a reserve it
        names the reservation.
    code
        The :class:`~allocator.ResultCode`.
    duplicate
        True when the id had been seen before: the first result is reported and
        nothing changed.
    shortfalls
        The position, if the event left ``on_hand < reserved`` (a sale or a count).
    """

    __slots__ = ("code", "duplicate", "id", "shortfalls")

    def __init__(
        self, id: int, code: ResultCode, duplicate: bool, shortfalls: Shortfalls = NO_SHORTFALLS
    ) -> None:
        self.id = id
        self.code = code
        self.duplicate = duplicate
        self.shortfalls = shortfalls

    @property
    def ok(self) -> bool:
        """True when the event succeeded (a duplicate of a success counts as one)."""
        return self.code is ResultCode.OK

    @property
    def accepted(self) -> bool:
        """True when the event changed state in this call (OK and not a duplicate)."""
        return self.code is ResultCode.OK and not self.duplicate

    def __bool__(self) -> bool:
        return self.code is ResultCode.OK

    def __len__(self) -> int:
        return 1

    @property
    def ids(self) -> np.ndarray:
        """``[id]``, as :attr:`ApplyResult.ids` of a one-event batch."""
        return readonly(np.array([self.id], dtype=np.int64))

    @property
    def codes(self) -> np.ndarray:
        """``[code]``, as :attr:`ApplyResult.codes` of a one-event batch."""
        return readonly(np.array([int(self.code)], dtype=np.uint8))

    @property
    def counts(self) -> dict[ResultCode, int]:
        """``{code: 1}``, as :attr:`ApplyResult.counts` of a one-event batch."""
        return {self.code: 1}

    def summary(self) -> str:
        """One line: the id, the code, and whether it was a duplicate."""
        dup = "; duplicate" if self.duplicate else ""
        return f"event {self.id}: {self.code.slug}{dup}; {len(self.shortfalls)} shortfalls"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventResult):
            return NotImplemented
        return (self.id, self.code, self.duplicate) == (other.id, other.code, other.duplicate)

    def __hash__(self) -> int:
        return hash((self.id, self.code, self.duplicate))

    def __repr__(self) -> str:
        dup = ", duplicate" if self.duplicate else ""
        short = f", {len(self.shortfalls)} shortfall" if self.shortfalls else ""
        return f"EventResult(id={self.id}, {self.code.slug}{dup}{short})"


@dataclass(frozen=True, eq=False, repr=False)
class ApplyResult:
    """What :meth:`Ledger.apply` did with each event.

    Its truth value is :attr:`ok` (every event succeeded).

    Attributes
    ----------
    ids
        Event ids as applied (ledger-assigned ids are negative; 0 for the events of
        a linked group left open at the end of the batch, which are not applied).
    codes
        :class:`~allocator.ResultCode` per event (uint8).
    duplicate
        True where the id had been seen before: the first result is reported and
        nothing changed.
    counts
        Number of events per result code (codes that occurred).
    shortfalls
        Positions whose on_hand fell below reserved, with the reservations at risk.
    """

    ids: np.ndarray
    codes: np.ndarray
    duplicate: np.ndarray
    counts: dict[ResultCode, int]
    shortfalls: Shortfalls

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"ApplyResult({self.summary()})"

    @property
    def ok(self) -> bool:
        """True when every event succeeded (duplicates of successes count as success)."""
        return self.counts.get(ResultCode.OK, 0) == len(self)

    @property
    def accepted(self) -> np.ndarray:
        """Mask of events that changed state in this call (OK and not a duplicate)."""
        return (self.codes == ResultCode.OK) & ~self.duplicate

    def _single(self) -> int:
        if len(self) != 1:
            raise ValueError(f"result holds {len(self)} events; index .ids / .codes instead")
        return 0

    @property
    def id(self) -> int:
        """Id of the only event (for single-event batches)."""
        return int(self.ids[self._single()])

    @property
    def code(self) -> ResultCode:
        """Result code of the only event."""
        return CODES[int(self.codes[self._single()])]

    def summary(self) -> str:
        parts = ", ".join(f"{c.slug}={n}" for c, n in sorted(self.counts.items()))
        dup = int(self.duplicate.sum())
        return f"{len(self)} events: {parts}; {dup} duplicates; {len(self.shortfalls)} shortfalls"

    def to_frame(self) -> Any:
        """One row per event: id, code, duplicate."""
        import pandas as pd

        return pd.DataFrame(
            {
                "id": self.ids,
                "code": [CODES[c].slug for c in self.codes.tolist()],
                "duplicate": self.duplicate,
            }
        )


@dataclass(frozen=True, eq=False, repr=False)
class StockSnapshot:
    """A consistent copy of every position's stock, taken between two batches.

    Reading the live per-position views of a ledger that other threads write to may
    mix two batches; a snapshot never does. ``version`` is the number of batches the
    ledger had applied when it was taken.
    """

    version: int
    position_sku: np.ndarray
    position_location: np.ndarray
    on_hand: np.ndarray
    in_transit: np.ndarray
    safety_stock: np.ndarray
    nonsellable: np.ndarray
    fence: np.ndarray
    cap: np.ndarray
    reserved_by_channel: np.ndarray
    available: np.ndarray

    @property
    def num_positions(self) -> int:
        return int(self.position_sku.shape[0])

    @property
    def reserved(self) -> np.ndarray:
        """Total reserved units per position."""
        return readonly(self.reserved_by_channel.sum(axis=1))

    def __repr__(self) -> str:
        return f"StockSnapshot(version {self.version}, {self.num_positions} positions)"


#: A reservation: the id of its reserve event, the reserve's result, a
#: :class:`Reservation`, or many ids.
ReservationRef = (
    int | np.integer | EventResult | ApplyResult | Reservation | Sequence[int] | npt.NDArray[Any]
)

# ---------------------------------------------------------------------------
# scalar arguments: converted and checked in Python, the rules checked by the kernel
_Scalar = tuple[int, int, int, int, int, int, int, int]  # id, kind, sku, loc, chan, qty, ref, exp


def _int_arg(value: Any, field: str, *, code: str | None = None) -> int:
    """``value`` as a Python int, rejecting bools, floats, strings and None."""
    t = type(value)
    if t is int:
        v: int = value
    elif isinstance(value, np.integer) and t is not np.bool_:
        v = int(value)
    else:
        if value is None:
            raise ValidationError(f"{field} is required", field=field, code="quantity_required")
        raise DTypeError(
            f"expected an int, got {t.__name__} {value!r}",
            field=field,
            code=code
            or ("quantity_must_be_integer" if field == "qty" else f"{field}_must_be_integer"),
        )
    if not -_INT64_MAX - 1 <= v <= _INT64_MAX:
        raise ValidationError(
            f"{v} does not fit in int64",
            field=field,
            code="quantity_out_of_range" if field == "qty" else "out_of_range",
        )
    return v


def _event_id(value: Any) -> int:
    if value is None:
        return 0
    return _int_arg(value, "id", code="invalid_identifier")


def _reservation_id(value: Any) -> int:
    """A reservation id: an int, or anything with an ``id`` (a reserve's result)."""
    if isinstance(value, EventResult | ApplyResult | Reservation):
        return int(value.id)
    if type(value) is int or (isinstance(value, np.integer) and type(value) is not np.bool_):
        return _int_arg(value, "ref")
    raise DTypeError(
        f"expected a reservation id (int) or the result of reserve(), got "
        f"{type(value).__name__}; pass hold.id or hold itself",
        field="reservation",
        code="reservation_must_be_id",
    )


def _reservation_ref(value: Any) -> Any:
    """One reservation id (:func:`_reservation_id`), or the ids of a batch's result or of
    an array of ids (the batch path)."""
    if isinstance(value, ApplyResult) and len(value) != 1:
        return value.ids
    if isinstance(value, list | tuple | np.ndarray):
        return value
    return _reservation_id(value)


#: Argument types that make a single event (anything else is taken as an array).
_SCALAR_TYPES = frozenset({int, str, float, bool, type(None), bytes})


def _expiry(value: Any) -> int:
    return int(NO_EXPIRY) if value is None else _int_arg(value, "expires_at")


# ---------------------------------------------------------------------------
#: What a write convenience returns: one event's result, or a batch's for arrays.
Result = EventResult | ApplyResult


class BaseLedger(abc.ABC):
    """What every ledger offers: the write calls (sync and async) and the reads.

    A subclass provides :meth:`apply`, :meth:`apply_async`, ``_submit_one``,
    ``_submit_one_async`` and ``_view`` (the in-memory :class:`Ledger` that answers
    reads). The single-event calls below validate their scalars directly and reach
    the same kernel as :meth:`apply`, with the same rules.
    """

    network: NetworkData

    # ------------------------------------------------------------ the primitives
    @abc.abstractmethod
    def apply(self, events: Events) -> ApplyResult:
        """Apply a batch in order and report a result code per event."""

    @abc.abstractmethod
    async def apply_async(self, events: Events) -> ApplyResult:
        """:meth:`apply` for asyncio code: never blocks the event loop."""

    @abc.abstractmethod
    def _submit_one(self, event: _Scalar) -> EventResult:
        """Apply one encoded, validated event."""

    @abc.abstractmethod
    async def _submit_one_async(self, event: _Scalar) -> EventResult:
        """Apply one encoded, validated event from asyncio code."""

    @abc.abstractmethod
    def _view(self) -> Ledger:
        """The in-memory ledger whose state answers the reads."""

    # ------------------------------------------------------------ encoding
    def _encode(
        self,
        kind: int,
        id: Any,
        sku: Any = None,
        location: Any = None,
        channel: Any = None,
        qty: Any = 0,
        ref: Any = 0,
        expires_at: Any = None,
    ) -> _Scalar:
        net = self.network
        s: Any = -1 if sku is None else net.sku_index(sku)
        loc: Any = -1 if location is None else net.location_index(location)
        c: Any = -1 if channel is None else net.channel_index(channel)
        return (_event_id(id), kind, s, loc, c, _int_arg(qty, "qty"), ref, _expiry(expires_at))

    def _batch(
        self,
        kind: int,
        id: Any,
        sku: Any = None,
        location: Any = None,
        channel: Any = None,
        qty: Any = 0,
        ref: Any = 0,
        expires_at: Any = None,
    ) -> Events:
        """The same call with array arguments, as a batch (broadcast like numpy)."""
        given = [a for a in (id, sku, location, channel, qty, ref, expires_at) if a is not None]
        try:
            n = np.broadcast(*[np.asarray(a, dtype=object) for a in given]).size
        except ValueError:
            raise ValidationError(
                "array arguments of different lengths", field="sku", code="length_mismatch"
            ) from None
        return Events.from_arrays(
            kind=np.full(n, kind, dtype=np.int64),
            id=0 if id is None else id,
            sku=-1 if sku is None else sku,
            location=-1 if location is None else location,
            channel=-1 if channel is None else channel,
            qty=qty,
            ref=ref,
            expires_at=NO_EXPIRY if expires_at is None else expires_at,
            network=self.network,
        )

    def _write(self, kind: int, *args: Any) -> EventResult | ApplyResult:
        """One event by the scalar path, or, given arrays, a batch through :meth:`apply`."""
        if all(type(a) in _SCALAR_TYPES or isinstance(a, np.generic) for a in args):
            return self._submit_one(self._encode(kind, *args))
        return self.apply(self._batch(kind, *args))

    async def _write_async(self, kind: int, *args: Any) -> EventResult | ApplyResult:
        if all(type(a) in _SCALAR_TYPES or isinstance(a, np.generic) for a in args):
            return await self._submit_one_async(self._encode(kind, *args))
        return await self.apply_async(self._batch(kind, *args))

    def _raise_invalid(self, event: _Scalar) -> None:
        """Raise the error the batch path gives for ``event`` (same code and message)."""
        ident, kind, sku, loc, chan, qty, ref, exp = event
        Events.from_arrays(
            kind=kind,
            id=ident,
            sku=sku,
            location=loc,
            channel=chan,
            qty=qty,
            ref=ref,
            expires_at=exp,
        ).check_network(self.network)
        raise AssertionError("the kernel rejected an event that the batch rules accept")

    # ------------------------------------------------------------ write conveniences
    # Each takes scalars (one event, the scalar path, an EventResult back) or arrays
    # that broadcast like numpy (a batch through apply(), an ApplyResult back).
    def receive(self, sku: Keys, location: Keys, qty: Quantity, *, id: EventId = None) -> Result:
        """Goods received: ``on_hand += qty``."""
        return self._write(K.K_RECEIVE, id, sku, location, None, qty)

    def sale(
        self,
        sku: Keys,
        location: Keys,
        qty: Quantity,
        *,
        channel: Keys | None = None,
        id: EventId = None,
    ) -> Result:
        """A walk-in sale of goods that already left: ``on_hand -= qty``."""
        return self._write(K.K_SALE, id, sku, location, channel, qty)

    def reserve(
        self,
        sku: Keys,
        location: Keys,
        qty: Quantity,
        *,
        channel: Keys,
        id: EventId = None,
        expires_at: int | Sequence[int] | npt.NDArray[np.integer] | None = None,
    ) -> Result:
        """Hold ``qty`` for ``channel``; the result's ``id`` names the reservation."""
        return self._write(K.K_RESERVE, id, sku, location, channel, qty, 0, expires_at)

    def commit(
        self, reservation: ReservationRef, qty: Quantity | None = None, *, id: EventId = None
    ) -> Result:
        """Ship/pick ``qty`` of a reservation (all when None); any rest is released.

        ``reservation`` is the reserve's id, or its result itself.
        """
        ref = _reservation_ref(reservation)
        return self._write(K.K_COMMIT, id, None, None, None, ALL if qty is None else qty, ref)

    def release(self, reservation: ReservationRef, *, id: EventId = None) -> Result:
        """Cancel a reservation (its id, or the reserve's result)."""
        return self._write(K.K_RELEASE, id, None, None, None, 0, _reservation_ref(reservation))

    def expire(self, now: int, *, id: EventId = None) -> Result:
        """Release every open reservation with ``expires_at <= now``."""
        return self._write(K.K_EXPIRE, id, None, None, None, 0, 0, _int_arg(now, "now"))

    def transfer(
        self, sku: Keys, origin: Keys, destination: Keys, qty: Quantity, *, id: EventId = None
    ) -> Result:
        """Send stock from ``origin``; it waits in the destination's ``in_transit``."""
        dest = self.network.location_index(destination, "ref")
        return self._write(K.K_TRANSFER_OUT, id, sku, origin, None, qty, dest)

    def transfer_in(
        self, sku: Keys, location: Keys, qty: Quantity, *, id: EventId = None
    ) -> Result:
        """Receive transferred stock: ``in_transit -> on_hand``."""
        return self._write(K.K_TRANSFER_IN, id, sku, location, None, qty)

    def return_(
        self,
        sku: Keys,
        location: Keys,
        qty: Quantity,
        *,
        sellable: bool = True,
        id: EventId = None,
    ) -> Result:
        """A customer return: to ``on_hand`` if sellable, else to the non-sellable bucket."""
        kind = K.K_RETURN if sellable else K.K_RETURN_NONSELLABLE
        return self._write(kind, id, sku, location, None, qty)

    def adjust(self, sku: Keys, location: Keys, counted: Quantity, *, id: EventId = None) -> Result:
        """Record a cycle count: ``on_hand := counted``."""
        return self._write(K.K_ADJUST, id, sku, location, None, counted)

    def set_fence(
        self, sku: Keys, location: Keys, channel: Keys, qty: Quantity, *, id: EventId = None
    ) -> Result:
        """Ring-fence ``qty`` units of the position for ``channel``."""
        return self._write(K.K_SET_FENCE, id, sku, location, channel, qty)

    def set_cap(
        self, sku: Keys, location: Keys, channel: Keys, qty: Quantity, *, id: EventId = None
    ) -> Result:
        """Cap what ``channel`` may hold reserved at the position (``NO_CAP`` = none)."""
        return self._write(K.K_SET_CAP, id, sku, location, channel, qty)

    def set_safety(self, sku: Keys, location: Keys, qty: Quantity, *, id: EventId = None) -> Result:
        """Set the safety stock withheld from every channel."""
        return self._write(K.K_SET_SAFETY, id, sku, location, None, qty)

    # ------------------------------------------------------------ async conveniences
    async def receive_async(
        self, sku: Keys, location: Keys, qty: Quantity, *, id: EventId = None
    ) -> Result:
        """:meth:`receive` for asyncio code."""
        return await self._write_async(K.K_RECEIVE, id, sku, location, None, qty)

    async def sale_async(
        self,
        sku: Keys,
        location: Keys,
        qty: Quantity,
        *,
        channel: Keys | None = None,
        id: EventId = None,
    ) -> Result:
        """:meth:`sale` for asyncio code."""
        return await self._write_async(K.K_SALE, id, sku, location, channel, qty)

    async def reserve_async(
        self,
        sku: Keys,
        location: Keys,
        qty: Quantity,
        *,
        channel: Keys,
        id: EventId = None,
        expires_at: int | Sequence[int] | npt.NDArray[np.integer] | None = None,
    ) -> Result:
        """:meth:`reserve` for asyncio code."""
        return await self._write_async(K.K_RESERVE, id, sku, location, channel, qty, 0, expires_at)

    async def commit_async(
        self, reservation: ReservationRef, qty: Quantity | None = None, *, id: EventId = None
    ) -> Result:
        """:meth:`commit` for asyncio code."""
        ref = _reservation_ref(reservation)
        q = ALL if qty is None else qty
        return await self._write_async(K.K_COMMIT, id, None, None, None, q, ref)

    async def release_async(self, reservation: ReservationRef, *, id: EventId = None) -> Result:
        """:meth:`release` for asyncio code."""
        ref = _reservation_ref(reservation)
        return await self._write_async(K.K_RELEASE, id, None, None, None, 0, ref)

    async def expire_async(self, now: int, *, id: EventId = None) -> Result:
        """:meth:`expire` for asyncio code."""
        now = _int_arg(now, "now")
        return await self._write_async(K.K_EXPIRE, id, None, None, None, 0, 0, now)

    # ------------------------------------------------------------ reads (the view's)
    def available(self, sku: Keys, location: Keys, channel: Keys) -> Any:
        """ATP for ``channel``: what it can still reserve at the position(s).

        ``available(c) = max(0, min(on_hand - reserved - safety_stock - Σ_{c'≠c}
        unused_fence[c'], cap[c] - reserved[c]))``. Arguments broadcast; names or
        indices. Returns an int for scalar arguments, else an int64 array.
        """
        return self._view().available(sku, location, channel)

    def available_all(self) -> np.ndarray:
        """``(num_positions, num_channels)`` ATP of every position for every channel."""
        return self._view().available_all()

    def stock_snapshot(self) -> StockSnapshot:
        """A consistent copy of every position's stock (see :class:`StockSnapshot`)."""
        return self._view().stock_snapshot()

    def position(self, sku: Key, location: Key) -> dict[str, Any]:
        """All quantities of one position as a dict (zeros if never touched)."""
        return self._view().position(sku, location)

    def position_index(self, sku: Keys, location: Keys) -> Any:
        """Row of the position(s) in the per-position arrays, -1 if never touched."""
        return self._view().position_index(sku, location)

    def totals(self, field: str = "on_hand") -> np.ndarray:
        """Per-SKU total of ``field`` across locations (exact int64)."""
        return self._view().totals(field)

    def reservation(self, id: ReservationRef) -> Reservation | None:
        """The reservation made by reserve event ``id`` (or its result), or None."""
        return self._view().reservation(id)

    def result_of(self, ids: int | Sequence[int] | npt.NDArray[np.integer]) -> np.ndarray:
        """The recorded result code of each event id (-1 for ids never seen)."""
        return self._view().result_of(ids)

    def open_reservations(self) -> dict[str, np.ndarray]:
        """Arrays (id, sku, location, channel, open_qty, expires_at) of open reservations."""
        return self._view().open_reservations()

    def state_digest(self) -> str:
        """BLAKE2b-256 hex digest of the canonical state (equal states, equal digests)."""
        return self._view().state_digest()

    def memory_usage(self) -> dict[str, int]:
        """Bytes held by each structure (allocated, including spare capacity)."""
        return self._view().memory_usage()

    def bytes_per_position(self) -> float:
        """Bytes of position state plus position index per touched position."""
        return self._view().bytes_per_position()

    @property
    def version(self) -> int:
        """Number of batches (and single events) applied; readers see whole ones only."""
        return self._view().version

    @property
    def num_positions(self) -> int:
        """Number of positions ever touched."""
        return self._view().num_positions

    @property
    def num_reservations(self) -> int:
        """Number of reservations ever made (all states)."""
        return self._view().num_reservations

    @property
    def num_ids_tracked(self) -> int:
        """Number of event ids the idempotency index remembers."""
        return self._view().num_ids_tracked

    # The per-position views below are live and read-only; a reader that must not
    # mix two batches across them (other threads writing) takes stock_snapshot() instead.
    @property
    def position_sku(self) -> np.ndarray:
        """SKU index of each position."""
        return self._view().position_sku

    @property
    def position_location(self) -> np.ndarray:
        """Location index of each position."""
        return self._view().position_location

    @property
    def on_hand(self) -> np.ndarray:
        """Physical units per position."""
        return self._view().on_hand

    @property
    def in_transit(self) -> np.ndarray:
        """Units on their way into each position."""
        return self._view().in_transit

    @property
    def safety_stock(self) -> np.ndarray:
        """Units withheld from every channel per position."""
        return self._view().safety_stock

    @property
    def nonsellable(self) -> np.ndarray:
        """Returned units that cannot be sold (quarantine)."""
        return self._view().nonsellable

    @property
    def fence(self) -> np.ndarray:
        """``(num_positions, num_channels)`` fences."""
        return self._view().fence

    @property
    def cap(self) -> np.ndarray:
        """``(num_positions, num_channels)`` caps (``STOCK_MAX`` = no cap)."""
        return self._view().cap

    @property
    def reserved_by_channel(self) -> np.ndarray:
        """``(num_positions, num_channels)`` reserved units per channel."""
        return self._view().reserved_by_channel

    @property
    def reserved(self) -> np.ndarray:
        """Total reserved units per position (a fresh array)."""
        return self._view().reserved


# ---------------------------------------------------------------------------
@dataclass(eq=False)
class Prepared:
    """A group of submissions validated against a ledger, ready for one kernel call.

    ``events`` joins the closed part of every submission (a linked group left open at
    the end of a submission is never applied: its events fail on their own, see
    :meth:`split`), with ``ids`` the ids as they will apply; ``auto_id`` is the
    ledger's next assigned id before the group. ``version`` is the ledger version it
    was prepared against; :meth:`Ledger.apply_prepared` refuses it at any other.
    """

    events: Events
    ids: np.ndarray
    auto_id: int
    assigned: int
    version: int
    parts: list[tuple[int, int, Any]]  # (start, closed length, the submission)
    errors: dict[int, BaseException]  # submission index -> its validation error

    def __len__(self) -> int:
        return len(self.events)

    def split(self, result: ApplyResult) -> list[Any]:
        """One outcome per submission: its result, or its validation error."""
        out: list[Any] = []
        ids = codes = dups = None  # Python lists, made once for the single events
        short_rows = result.shortfalls.event.tolist() if result.shortfalls else []
        for i, (start, closed, part) in enumerate(self.parts):
            if i in self.errors:
                out.append(self.errors[i])
            elif not isinstance(part, Events):
                if ids is None:
                    ids, codes = result.ids.tolist(), result.codes.tolist()
                    dups = result.duplicate.tolist()
                assert codes is not None and dups is not None
                code = CODES[codes[start]]
                short = NO_SHORTFALLS
                if start in short_rows:
                    rows = np.flatnonzero(result.shortfalls.event == start)
                    short = result.shortfalls.take(rows, start)
                out.append(EventResult(ids[start], code, dups[start], short))
            else:
                out.append(_slice_result(result, start, closed, part))
        return out


def _slice_result(result: ApplyResult, start: int, closed: int, events: Events) -> ApplyResult:
    """The result of submission ``events`` (rows ``start:start+closed`` of ``result``,
    plus its open chain, if any)."""
    n = len(events)
    if start == 0 and closed == n == len(result):
        return result
    sl = slice(start, start + closed)
    ids, codes, dup = result.ids[sl], result.codes[sl], result.duplicate[sl]
    if closed < n:  # the open chain: nothing applied, no ids assigned
        tail = n - closed
        tail_codes = np.full(tail, K.C_LINKED_FAILED, dtype=np.uint8)
        tail_codes[-1] = K.C_CHAIN_OPEN
        ids = np.concatenate((ids, np.asarray(events.id[closed:])))
        codes = np.concatenate((codes, tail_codes))
        dup = np.concatenate((dup, np.zeros(tail, dtype=np.bool_)))
    counts_arr = np.bincount(codes, minlength=len(ResultCode))
    short = result.shortfalls
    if short:
        rows = np.flatnonzero((short.event >= start) & (short.event < start + closed))
        short = short.take(rows, start) if rows.size else NO_SHORTFALLS
    return ApplyResult(
        ids=readonly(ids),
        codes=readonly(codes),
        duplicate=readonly(dup),
        counts={CODES[c]: int(k) for c, k in enumerate(counts_arr.tolist()) if k},
        shortfalls=short,
    )


def _closed_length(events: Events) -> int:
    """Rows of ``events`` up to its last closed group (an open chain follows)."""
    n = len(events)
    if n == 0 or not events.link[-1]:
        return n
    closed = np.flatnonzero(~events.link)
    return int(closed[-1]) + 1 if closed.size else 0


class _Guard:
    """``with guard:`` holds the ledger's lock, or raises :class:`LedgerBusyError`
    after ``timeout`` seconds (a class, not a generator: it sits on every call)."""

    __slots__ = ("lock", "timeout")

    def __init__(self, lock: threading.Lock, timeout: float) -> None:
        self.lock = lock
        self.timeout = timeout

    def __enter__(self) -> None:
        if not self.lock.acquire(True, self.timeout):
            raise LedgerBusyError(
                f"ledger busy for {self.timeout:g} s (another thread's batch); nothing was "
                "applied, retry with the same ids"
            )

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def _pow2_at_least(n: int) -> int:
    return 1 << max(10, int(n - 1).bit_length())


class Ledger(BaseLedger):
    """In-memory stock ledger over the positions of one network; thread-safe.

    Parameters
    ----------
    network
        The frozen network; fixes the SKUs, locations and channels.
    capacity
        Expected number of positions (the arrays grow beyond it as needed).
    reservation_capacity
        Expected number of reservations.
    event_capacity
        Expected number of distinct event ids (sizes the idempotency index).
    timeout
        Seconds a call waits for its turn (another thread's batch) before
        :class:`~allocator.LedgerBusyError`; nothing is applied then.

    Notes
    -----
    Every call is safe from any thread. Batches apply one at a time, each as a
    whole: a reader (``available``, ``position``, ``stock_snapshot``, ...) sees the state
    between two batches, never inside one. The asyncio calls (``apply_async``,
    ``reserve_async``, ...) queue on one worker thread and are group-committed: the
    submissions waiting while a batch applies go into the next kernel call together,
    each caller getting exactly its own results.

    The engine interface used by the durable ledgers (:meth:`prepare`,
    :meth:`apply_prepared`, :meth:`export_state`, :meth:`import_state`,
    :meth:`digest_state`) is documented in ``docs/architecture.md``.

    Examples
    --------
    >>> from allocator import Network, Ledger
    >>> net = Network()
    >>> for ch in ("store", "online"):
    ...     _ = net.add_channel(ch)
    >>> _ = net.add_location("S1", kind="store", lat=0.0, lon=0.0)
    >>> _ = net.add_sku("A")
    >>> ledger = Ledger(net.build())
    >>> ledger.receive("A", "S1", 5).code.slug
    'ok'
    >>> hold = ledger.reserve("A", "S1", 2, channel="online")
    >>> bool(hold), ledger.available("A", "S1", "store")
    (True, 3)
    >>> ledger.commit(hold).code.slug
    'ok'
    """

    def __init__(
        self,
        network: NetworkData,
        *,
        capacity: int = 1024,
        reservation_capacity: int = 1024,
        event_capacity: int = 1024,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not isinstance(network, NetworkData):
            raise TypeError("Ledger needs a NetworkData (Network().build())")
        for name, value in (
            ("capacity", capacity),
            ("reservation_capacity", reservation_capacity),
            ("event_capacity", event_capacity),
        ):
            if type(value) is not int or value < 0:
                raise ValidationError(f"expected an int >= 0, got {value!r}", field=name)
        if not isinstance(timeout, int | float) or not timeout > 0:
            raise ValidationError(f"expected seconds > 0, got {timeout!r}", field="timeout")
        self.network = network
        self.timeout = float(timeout)
        self._nchan = network.num_channels
        self._nloc = network.num_locations
        key_space = max(2, network.num_skus * network.num_locations)
        self._pbits = 63 - int(key_space - 1).bit_length()
        if self._pbits < 16:
            raise CapacityError(
                f"{network.num_skus} SKUs x {network.num_locations} locations exceed the "
                "position key space"
            )
        self._max_positions = 1 << self._pbits
        self._lock = threading.Lock()
        self._guard = _Guard(self._lock, self.timeout)
        self._committer: GroupCommitter | None = None
        self._allocate(capacity, reservation_capacity, event_capacity)
        self.last_kernel_seconds = 0.0  # kernel share of the last apply (benchmarks)

    def __getstate__(self) -> dict[str, Any]:
        # the lock and the asyncio worker belong to this process; the arrays travel
        with self._guard:
            state = self.__dict__.copy()
            for name in ("_lock", "_guard", "_committer"):
                state.pop(name, None)
            for name, value in list(state.items()):
                if isinstance(value, np.ndarray):
                    state[name] = value.copy()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._guard = _Guard(self._lock, self.timeout)
        self._committer = None

    def _allocate(self, capacity: int, reservations: int, ids: int) -> None:
        self._state = np.zeros((max(16, capacity), K.F_CHAN + 3 * self._nchan), dtype=np.int64)
        self._ptab = np.full(_pow2_at_least(int(capacity / _LOAD) + 1), -1, dtype=np.int64)
        self._itab = np.zeros(
            (_pow2_at_least(int(max(ids, reservations) / _LOAD) + 1), 2), dtype=np.int64
        )
        self._res = np.zeros((max(16, reservations), K.R_COLS), dtype=np.int64)
        self._heap = np.zeros((self._res.shape[0], 2), dtype=np.int64)
        self._undo = np.zeros((1, 4), dtype=np.int64)
        self._gslot = np.zeros(1, dtype=np.int64)
        self._meta = np.zeros(K.META_SIZE, dtype=np.int64)
        self._meta[K.M_PBITS] = self._pbits
        self._meta[K.M_NLOC] = self._nloc
        self._meta[K.M_NCHAN] = self._nchan
        self._meta[K.M_NSKU] = self.network.num_skus
        self._meta[K.M_QTY_MAX] = QTY_MAX
        self._set_limits()
        self._next_auto_id = -1
        self._open_lo = 0  # every reservation slot below this one is closed
        self._version = 0

    def _set_limits(self) -> None:
        m = self._meta
        m[K.M_LIM_POS] = min(self._state.shape[0], int(self._ptab.shape[0] * _LOAD))
        m[K.M_LIM_RES] = self._res.shape[0]
        m[K.M_LIM_IDS] = int(self._itab.shape[0] * _LOAD)
        m[K.M_PSHIFT] = 64 - (self._ptab.shape[0].bit_length() - 1)
        m[K.M_ISHIFT] = 64 - (self._itab.shape[0].bit_length() - 1 - K.ID_RUN_BITS)

    @property
    def _ishift(self) -> int:
        return int(self._meta[K.M_ISHIFT])

    def _grow(self, need_pos: int, need_res: int, need_ids: int) -> None:
        """Make room for ``need_*`` more positions, reservations and ids."""
        npos, nres, nids = (int(self._meta[k]) for k in (K.M_NPOS, K.M_NRES, K.M_NIDS))
        want = npos + need_pos
        if want > self._max_positions:
            raise CapacityError(f"more than {self._max_positions} positions")
        if want > self._state.shape[0]:
            rows = max(want, int(self._state.shape[0] * 1.5))
            state = np.zeros((rows, self._state.shape[1]), dtype=np.int64)
            state[:npos] = self._state[:npos]
            self._state = state
        if want > int(self._ptab.shape[0] * _LOAD):
            table = np.full(_pow2_at_least(int(want / _LOAD) + 1), -1, dtype=np.int64)
            shift = 64 - (table.shape[0].bit_length() - 1)
            K.rehash_positions(self._ptab, table, shift, self._pbits)
            self._ptab = table
        want = nres + need_res
        if want > self._res.shape[0]:
            size = max(want, int(self._res.shape[0] * 1.5))
            res = np.zeros((size, K.R_COLS), dtype=np.int64)
            res[:nres] = self._res[:nres]
            heap = np.zeros((size, 2), dtype=np.int64)
            nheap = int(self._meta[K.M_HEAP])
            heap[:nheap] = self._heap[:nheap]
            self._res, self._heap = res, heap
        want = nids + need_ids
        if want > int(self._itab.shape[0] * _LOAD):
            ids = np.zeros((_pow2_at_least(int(want / _LOAD) + 1), 2), dtype=np.int64)
            shift = 64 - (ids.shape[0].bit_length() - 1 - K.ID_RUN_BITS)
            K.rehash_ids(self._itab, ids, shift)
            self._itab = ids
        self._set_limits()

    def _view(self) -> Ledger:
        return self

    @classmethod
    def open(cls, *args: Any, **kwargs: Any) -> Any:
        """Moved: durable ledgers open with :func:`allocator.open_ledger`.

        The in-memory ledger does not know about the journals that hold it (they
        sit in a layer above it), so ``Ledger.open`` only points the way.
        """
        raise AttributeError(
            "Ledger.open moved to allocator.open_ledger(path, network_data, ...) "
            "(from allocator import open_ledger)"
        )

    def reserve_plan(self, *args: Any, **kwargs: Any) -> Any:
        """Moved: use :func:`allocator.sourcing.reserve_plan` ``(ledger, plan, ...)``."""
        raise AttributeError(
            "ledger.reserve_plan(plan) moved to allocator.sourcing.reserve_plan(ledger, plan)"
        )

    # ------------------------------------------------------------------ writes
    def apply(self, events: Events) -> ApplyResult:
        """Apply a batch in order and report a result code per event.

        Bad input (indices outside the network) raises before anything changes.
        Business rejections are result codes. Events whose id was seen before return
        their first result and change nothing. A linked group applies all-or-nothing;
        a group left open at the end of the batch is not applied (its events get
        ``linked_event_failed`` and the last ``linked_event_chain_open``).
        """
        if not isinstance(events, Events):
            raise TypeError(f"apply() takes Events, got {type(events).__name__}")
        events.check_network(self.network)
        with self._guard:
            prepared = self._prepare([events])
            if prepared.errors:
                raise prepared.errors[0]
            result = self._apply_prepared(prepared)
        return prepared.split(result)[0]  # type: ignore[no-any-return]

    def _submit_one(self, event: _Scalar) -> EventResult:
        ident, kind, sku, loc, chan, qty, ref, exp = event
        with self._guard:
            auto = ident == 0
            if auto:
                ident = self._next_auto_id
            elif ident <= self._next_auto_id:
                raise self._unassigned(ident, 0)
            while True:
                out = K.apply_one(
                    self._state, self._ptab, self._itab, self._res, self._heap, self._meta,
                    self._undo, ident, kind, sku, loc, chan, qty, ref, exp,
                )  # fmt: skip
                if out != K.NEED_ROOM:
                    break
                self._grow(1024, 1024, 1024)
            if out < 0:
                self._raise_invalid(event)
            if auto:
                self._next_auto_id -= 1
            self._version += 1
            code = CODES[out & K.OUT_CODE]
            short = NO_SHORTFALLS
            if out & K.OUT_SHORTFALL:
                short = self._shortfalls(np.array([sku]), np.array([loc]), np.zeros(1, np.int64))
        return EventResult(ident, code, bool(out & K.OUT_DUPLICATE), short)

    # -- asyncio: one worker thread, group-committed
    def _group(self) -> GroupCommitter:
        committer = self._committer
        if committer is None:
            with self._lock:
                if self._committer is None:
                    self._committer = GroupCommitter(
                        self._commit_group,
                        name="allocator-ledger",
                        max_queue_events=DEFAULT_MAX_QUEUE_EVENTS,
                        max_group_events=DEFAULT_MAX_GROUP_EVENTS,
                        timeout=self.timeout,
                    )
                committer = self._committer
        return committer

    def _commit_group(self, parts: list[Any]) -> list[Any]:
        with self._guard:
            prepared = self._prepare(parts)
            result = self._apply_prepared(prepared)
        return prepared.split(result)

    async def apply_async(self, events: Events) -> ApplyResult:
        """:meth:`apply` for asyncio code: queued and applied on the ledger's worker
        thread (group-committed with the other queued submissions)."""
        if not isinstance(events, Events):
            raise TypeError(f"apply_async() takes Events, got {type(events).__name__}")
        events.check_network(self.network)
        return await self._group().submit_async(events, max(1, len(events)))  # type: ignore[no-any-return]

    async def _submit_one_async(self, event: _Scalar) -> EventResult:
        self.check_one(event)
        return await self._group().submit_async(event, 1)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the asyncio worker thread, if one was started (idempotent)."""
        committer, self._committer = self._committer, None
        if committer is not None:
            committer.close()

    # ------------------------------------------------------------------ engine interface
    def check_one(self, event: _Scalar) -> None:
        """Raise the batch path's error if the encoded event breaks a rule."""
        _, kind, sku, loc, chan, qty, ref, exp = event
        if K.check_one(kind, sku, loc, chan, qty, ref, exp, self._meta) != K.V_OK:
            self._raise_invalid(event)

    def prepare(self, parts: Sequence[Events | _Scalar]) -> Prepared:
        """Validate a group of submissions against the ledger as it stands.

        ``parts`` are batches (already checked against the network) and encoded
        single events (checked with :meth:`check_one`). Assigns the ids each will
        apply with, in order; a submission whose ids cannot apply gets its error in
        ``Prepared.errors`` and is left out. Nothing changes until
        :meth:`apply_prepared`.
        """
        with self._guard:
            return self._prepare(parts)

    def apply_prepared(self, prepared: Prepared) -> ApplyResult:
        """Apply a group from :meth:`prepare`; its result (split it with
        :meth:`Prepared.split`). Raises if the ledger changed since."""
        with self._guard:
            return self._apply_prepared(prepared)

    def _unassigned(self, ident: int, row: int | None) -> ValidationError:
        return ValidationError(
            f"id {ident} is negative but was never assigned by this ledger; client ids must "
            "be positive",
            field="id",
            row=row,
            code="invalid_identifier",
        )

    def _prepare(self, parts: Sequence[Events | _Scalar]) -> Prepared:
        chunks: list[Events] = []
        id_chunks: list[np.ndarray] = []
        layout: list[tuple[int, int, Any]] = []
        errors: dict[int, BaseException] = {}
        auto = self._next_auto_id
        start = 0
        rows: list[tuple[int, ...]] = []
        row_ids: list[int] = []

        def flush() -> None:
            if rows:
                chunks.append(Events._from_rows(rows))
                id_chunks.append(np.array(row_ids, dtype=np.int64))
                rows.clear()
                row_ids.clear()

        for i, part in enumerate(parts):
            if isinstance(part, Events):
                closed = _closed_length(part)
                ids = np.empty(closed, dtype=np.int64)
                bad, assigned = K.assign_ids(part.id[:closed], auto, ids)
                if bad >= 0:
                    errors[i] = self._unassigned(int(part.id[bad]), bad)
                    layout.append((start, 0, part))
                    continue
                flush()
                auto -= assigned
                chunks.append(part if closed == len(part) else part.take(slice(0, closed)))
                id_chunks.append(ids)
                layout.append((start, closed, part))
                start += closed
            else:
                ident = part[0]
                if ident == 0:
                    ident = auto
                    auto -= 1
                elif ident <= auto:
                    errors[i] = self._unassigned(ident, None)
                    layout.append((start, 0, part))
                    continue
                rows.append(part)
                row_ids.append(ident)
                layout.append((start, 1, part))
                start += 1
        flush()
        if len(chunks) == 1:
            events, ids = chunks[0], id_chunks[0]
        elif chunks:
            events = Events._concat_closed(chunks)
            ids = np.concatenate(id_chunks)
        else:
            events, ids = Events._from_rows([]), np.zeros(0, dtype=np.int64)
        return Prepared(
            events=events,
            ids=ids,
            auto_id=self._next_auto_id,
            assigned=self._next_auto_id - auto,
            version=self._version,
            parts=layout,
            errors=errors,
        )

    def _apply_prepared(self, prepared: Prepared) -> ApplyResult:
        if prepared.version != self._version or prepared.auto_id != self._next_auto_id:
            raise RuntimeError("the ledger changed between prepare() and apply_prepared()")
        events, ids = prepared.events, prepared.ids
        n = len(events)
        max_group, max_undo = K.group_sizes(events.kind, events.link)
        if self._undo.shape[0] < max_undo:
            self._undo = np.zeros((max_undo, 4), dtype=np.int64)
        if self._gslot.shape[0] < max_group:
            self._gslot = np.zeros(max_group, dtype=np.int64)
        out = np.zeros(n, dtype=np.uint8)
        t0 = time.perf_counter()
        start = 0
        while start < n:
            start = K.apply_batch(
                ids, events.kind, events.sku, events.location, events.channel, events.qty,
                events.ref, events.expires_at, events.link, start, self._state, self._ptab,
                self._itab, self._res, self._heap, self._meta, self._undo, self._gslot, out,
            )  # fmt: skip
            if start < n:
                glen = K.group_length(events.link, start)
                self._grow(2 * glen + 1024, glen + 1024, glen + 1024)
        self.last_kernel_seconds = time.perf_counter() - t0
        self._next_auto_id -= prepared.assigned
        self._version += 1
        return self._result(events, ids, out)

    def _result(self, events: Events, ids: np.ndarray, out: np.ndarray) -> ApplyResult:
        n = out.shape[0]
        codes = np.empty(n, dtype=np.uint8)
        dup = np.empty(n, dtype=np.bool_)
        counts_arr = np.zeros(64, dtype=np.int64)
        num_short = K.summarize(out, codes, dup, counts_arr)
        counts = {CODES[c]: int(k) for c, k in enumerate(counts_arr.tolist()) if k}
        shortfalls = NO_SHORTFALLS
        if num_short:
            rows = np.flatnonzero(out & K.OUT_SHORTFALL)
            shortfalls = self._shortfalls(events.sku[rows], events.location[rows], rows)
        return ApplyResult(
            ids=readonly(ids),
            codes=readonly(codes),
            duplicate=readonly(dup),
            counts=counts,
            shortfalls=shortfalls,
        )

    def _shortfalls(self, sku: np.ndarray, loc: np.ndarray, rows: np.ndarray) -> Shortfalls:
        keys = sku.astype(np.int64) * self._nloc + loc
        keys, first = np.unique(keys[::-1], return_index=True)  # last event per position
        rows = rows[::-1][first]
        pos = self._positions_of(keys)
        on_hand = self._state[pos, K.F_ON_HAND]
        reserved = self._reserved_rows(pos)
        keep = np.flatnonzero(reserved > on_hand)
        if keep.size == 0:
            return NO_SHORTFALLS
        keep = keep[np.argsort(pos[keep])]  # rows ordered by position row
        pos, keys, rows = pos[keep], keys[keep], rows[keep]
        on_hand, reserved = on_hand[keep], reserved[keep]
        shortage = reserved - on_hand
        # open reservations at the short positions, newest first, grouped like the rows
        at_risk = np.empty(int(reserved.sum()), dtype=np.int64)
        row_of = np.empty_like(at_risk)
        is_short = np.zeros(self.num_positions, dtype=np.bool_)
        is_short[pos] = True
        k = K.reservations_at_risk(
            self._res,
            self._first_open(),
            self.num_reservations,
            pos,
            shortage,
            is_short,
            at_risk,
            row_of,
        )
        order = np.argsort(row_of[:k], kind="stable")
        at_risk = at_risk[:k][order]
        indptr = np.concatenate(([0], np.cumsum(np.bincount(row_of[:k], minlength=pos.size))))
        return Shortfalls(
            sku=readonly(keys // self._nloc),
            location=readonly(keys % self._nloc),
            on_hand=readonly(on_hand),
            reserved=readonly(reserved),
            shortage=readonly(shortage),
            event=readonly(rows.astype(np.int64)),
            indptr=readonly(indptr.astype(np.int64)),
            reservations=readonly(at_risk.astype(np.int64)),
        )

    # ------------------------------------------------------------------ read side
    def _keys(self, sku: Any, location: Any) -> tuple[np.ndarray, bool]:
        s = self.network.sku_index(sku)
        loc = self.network.location_index(location)
        scalar = np.ndim(s) == 0 and np.ndim(loc) == 0
        s_arr, l_arr = np.broadcast_arrays(np.atleast_1d(s), np.atleast_1d(loc))
        return (s_arr.astype(np.int64) * self._nloc + l_arr).astype(np.int64), scalar

    def _positions_of(self, keys: np.ndarray) -> np.ndarray:
        out = np.empty(keys.shape[0], dtype=np.int64)
        K.lookup_positions(self._ptab, self._meta, keys, out)
        return out

    def available(self, sku: Keys, location: Keys, channel: Keys) -> Any:
        net = self.network
        if type(sku) is str and type(location) is str and type(channel) is str:
            s, loc, c = net.sku_index(sku), net.location_index(location), net.channel_index(channel)
            with self._guard:
                return K.available_one(self._state, self._ptab, self._meta, s * self._nloc + loc, c)
        keys, scalar = self._keys(sku, location)
        chan_in: Any = net.channel_index(channel)
        chan = np.atleast_1d(chan_in)
        keys, chan = np.broadcast_arrays(keys, chan)
        keys = np.ascontiguousarray(keys)
        chan = np.ascontiguousarray(chan, dtype=np.int64)
        out = np.empty(keys.shape[0], dtype=np.int64)
        with self._guard:
            K.available_many(self._state, self._ptab, self._meta, keys, chan, out)
        return int(out[0]) if scalar and np.ndim(chan_in) == 0 else out

    def available_all(self) -> np.ndarray:
        with self._guard:
            n = self.num_positions
            out = np.empty((n, self._nchan), dtype=np.int64)
            K.available_all(self._state, n, self._nchan, out)
        return readonly(out)

    def stock_snapshot(self) -> StockSnapshot:
        c = self._nchan
        with self._guard:
            n = self.num_positions
            rows = self._state[:n].copy()
            avail = np.empty((n, c), dtype=np.int64)
            K.available_all(self._state, n, c, avail)
            version = self._version
        key = rows[:, K.F_KEY]
        return StockSnapshot(
            version=version,
            position_sku=readonly(key // self._nloc),
            position_location=readonly(key % self._nloc),
            on_hand=readonly(rows[:, K.F_ON_HAND]),
            in_transit=readonly(rows[:, K.F_IN_TRANSIT]),
            safety_stock=readonly(rows[:, K.F_SAFETY]),
            nonsellable=readonly(rows[:, K.F_RETURNS]),
            fence=readonly(rows[:, K.F_CHAN : K.F_CHAN + c]),
            cap=readonly(rows[:, K.F_CHAN + c : K.F_CHAN + 2 * c]),
            reserved_by_channel=readonly(rows[:, K.F_CHAN + 2 * c : K.F_CHAN + 3 * c]),
            available=readonly(avail),
        )

    @property
    def version(self) -> int:
        return self._version

    @property
    def next_id(self) -> int:
        """The id the ledger will assign to the next event sent with id 0 (negative)."""
        return self._next_auto_id

    @property
    def num_positions(self) -> int:
        return int(self._meta[K.M_NPOS])

    @property
    def num_reservations(self) -> int:
        return int(self._meta[K.M_NRES])

    @property
    def num_ids_tracked(self) -> int:
        return int(self._meta[K.M_NIDS])

    def _col(self, col: int) -> np.ndarray:
        return readonly(self._state[: self.num_positions, col])

    @property
    def position_sku(self) -> np.ndarray:
        return readonly(self._state[: self.num_positions, K.F_KEY] // self._nloc)

    @property
    def position_location(self) -> np.ndarray:
        return readonly(self._state[: self.num_positions, K.F_KEY] % self._nloc)

    @property
    def on_hand(self) -> np.ndarray:
        return self._col(K.F_ON_HAND)

    @property
    def in_transit(self) -> np.ndarray:
        return self._col(K.F_IN_TRANSIT)

    @property
    def safety_stock(self) -> np.ndarray:
        return self._col(K.F_SAFETY)

    @property
    def nonsellable(self) -> np.ndarray:
        return self._col(K.F_RETURNS)

    @property
    def fence(self) -> np.ndarray:
        c = self._nchan
        return readonly(self._state[: self.num_positions, K.F_CHAN : K.F_CHAN + c])

    @property
    def cap(self) -> np.ndarray:
        c = self._nchan
        return readonly(self._state[: self.num_positions, K.F_CHAN + c : K.F_CHAN + 2 * c])

    @property
    def reserved_by_channel(self) -> np.ndarray:
        c = self._nchan
        return readonly(self._state[: self.num_positions, K.F_CHAN + 2 * c : K.F_CHAN + 3 * c])

    def _reserved_rows(self, pos: np.ndarray) -> np.ndarray:
        c = self._nchan
        return self._state[pos, K.F_CHAN + 2 * c : K.F_CHAN + 3 * c].sum(axis=1)

    @property
    def reserved(self) -> np.ndarray:
        return readonly(self.reserved_by_channel.sum(axis=1))

    def position_index(self, sku: Keys, location: Keys) -> Any:
        keys, scalar = self._keys(sku, location)
        with self._guard:
            out = self._positions_of(keys)
        return int(out[0]) if scalar else out

    def position(self, sku: Key, location: Key) -> dict[str, Any]:
        keys, _ = self._keys(sku, location)
        if keys.shape[0] != 1:
            raise ValidationError("position() takes one sku and location", field="sku")
        c = self._nchan
        with self._guard:
            pos = int(self._positions_of(keys)[0])
            if pos < 0:
                row = np.zeros(K.F_CHAN + 3 * c, dtype=np.int64)
                row[K.F_CHAN + c : K.F_CHAN + 2 * c] = K.STOCK_MAX
            else:
                row = self._state[pos].copy()
        by_channel = row[K.F_CHAN + 2 * c : K.F_CHAN + 3 * c]
        return {
            "on_hand": int(row[K.F_ON_HAND]),
            "reserved": int(by_channel.sum()),
            "in_transit": int(row[K.F_IN_TRANSIT]),
            "safety_stock": int(row[K.F_SAFETY]),
            "nonsellable": int(row[K.F_RETURNS]),
            "fence": row[K.F_CHAN : K.F_CHAN + c].tolist(),
            "cap": [
                None if x >= K.STOCK_MAX else int(x)
                for x in row[K.F_CHAN + c : K.F_CHAN + 2 * c].tolist()
            ],
            "reserved_by_channel": by_channel.tolist(),
        }

    _TOTAL_FIELDS = ("in_transit", "nonsellable", "on_hand", "reserved", "safety_stock")

    def totals(self, field: str = "on_hand") -> np.ndarray:
        """Per-SKU total of ``field`` across locations (length ``num_skus``).

        Summed exactly in int64; a total beyond int64 raises
        :class:`~allocator.exceptions.QuantityOverflowError` naming the SKU.
        """
        if field not in self._TOTAL_FIELDS:
            raise ValidationError(
                f"expected one of {list(self._TOTAL_FIELDS)}, got {field!r}", field="field"
            )
        with self._guard:
            n = self.num_positions
            c = self._nchan
            if field == "reserved":
                cols = self._state[:n, K.F_CHAN + 2 * c : K.F_CHAN + 3 * c]
            else:
                col = {
                    "on_hand": K.F_ON_HAND,
                    "in_transit": K.F_IN_TRANSIT,
                    "safety_stock": K.F_SAFETY,
                    "nonsellable": K.F_RETURNS,
                }[field]
                cols = self._state[:n, col : col + 1]
            out = np.zeros(self.network.num_skus, dtype=np.int64)
            bad = K.sum_by_sku(
                self._state[:n, K.F_KEY], self._nloc, np.ascontiguousarray(cols), out
            )
        if bad >= 0:
            raise QuantityOverflowError(
                f"the total {field} of SKU {self.network.sku_names[bad]!r} exceeds int64"
            )
        return readonly(out)

    def reservation(self, id: ReservationRef) -> Reservation | None:
        ident = _reservation_id(id)
        with self._guard:
            value = K.lookup_id(self._itab, self._ishift, ident)
            slot = (value >> 32) - 1 if value >= 0 else -1
            if slot < 0 or self._res[slot, K.R_STATE] == K.RS_VOID:
                return None
            row = self._res[slot].copy()
            key = int(self._state[row[K.R_POS], K.F_KEY])
        return Reservation(
            id=int(row[K.R_ID]),
            sku=key // self._nloc,
            location=key % self._nloc,
            channel=int(row[K.R_CHAN]),
            qty=int(row[K.R_QTY]),
            open_qty=int(row[K.R_OPEN]),
            expires_at=int(row[K.R_EXP]),
            state=ReservationState(int(row[K.R_STATE])),
        )

    def result_of(self, ids: int | Sequence[int] | npt.NDArray[np.integer]) -> np.ndarray:
        from allocator._validate import as_int64

        arr = as_int64(ids, "ids", code="invalid_identifier")
        out = np.empty(arr.shape[0], dtype=np.int64)
        with self._guard:
            K.lookup_ids(self._itab, self._ishift, arr, out)
        return np.where(out >= 0, out & 255, -1)

    def _first_open(self) -> int:
        """Advance and return the slot below which every reservation is closed."""
        self._open_lo = K.first_open(self._res, self._open_lo, self.num_reservations)
        return self._open_lo

    def open_reservations(self) -> dict[str, np.ndarray]:
        with self._guard:
            lo, n = self._first_open(), self.num_reservations
            r = self._res[lo:n]
            r = r[r[:, K.R_STATE] == K.RS_OPEN].copy()
            keys = self._state[r[:, K.R_POS], K.F_KEY]
        return {
            "id": r[:, K.R_ID],
            "sku": keys // self._nloc,
            "location": keys % self._nloc,
            "channel": r[:, K.R_CHAN],
            "open_qty": r[:, K.R_OPEN],
            "expires_at": r[:, K.R_EXP],
        }

    def memory_usage(self) -> dict[str, int]:
        return {
            "positions": int(self._state.nbytes),
            "position_index": int(self._ptab.nbytes),
            "reservations": int(self._res.nbytes + self._heap.nbytes),
            "id_index": int(self._itab.nbytes),
        }

    def bytes_per_position(self) -> float:
        usage = self.memory_usage()
        return (usage["positions"] + usage["position_index"]) / max(1, self.num_positions)

    def __repr__(self) -> str:
        return (
            f"Ledger({self.num_positions} positions, {self.num_reservations} reservations, "
            f"{self.network.num_channels} channels)"
        )

    # ------------------------------------------------------------------ state transfer
    _RES_FIELDS = (
        ("id", K.R_ID),
        ("pos", K.R_POS),
        ("chan", K.R_CHAN),
        ("state", K.R_STATE),
        ("qty", K.R_QTY),
        ("open", K.R_OPEN),
        ("exp", K.R_EXP),
    )

    def export_state(self) -> dict[str, np.ndarray]:
        """Copies of the canonical state: positions, reservations, id index, counters.

        Hash-table layouts and the expiry heap are left out: they are derived from
        these arrays (:meth:`import_state` rebuilds them). Ids come sorted.
        """
        with self._guard:
            npos, nres = self.num_positions, self.num_reservations
            used = self._itab[:, 0] != 0
            ids = self._itab[used, 0]
            values = self._itab[used, 1]
            order = np.argsort(ids, kind="stable")
            out = {"state": self._state[:npos].copy()}
            for name, col in self._RES_FIELDS:
                dtype = np.int8 if name == "state" else np.int64
                out[f"res_{name}"] = self._res[:nres, col].astype(dtype)
            out["id"] = ids[order]
            out["id_value"] = values[order]
            out["counters"] = np.array(
                [self._meta[K.M_EXPIRED], self._next_auto_id], dtype=np.int64
            )
        return out

    def import_state(self, arrays: dict[str, np.ndarray], *, version: int = 0) -> None:
        """Replace the whole state by ``arrays`` (as made by :meth:`export_state`).

        The id entries may come in any order; both hash tables and the expiry heap
        are rebuilt.
        """
        state = np.asarray(arrays["state"], dtype=np.int64)
        width = K.F_CHAN + 3 * self._nchan
        if state.ndim != 2 or state.shape[1] != width:
            raise ValueError(f"state must have shape (n, {width}), got {state.shape}")
        npos, nres = state.shape[0], int(arrays["res_id"].shape[0])
        ids = np.asarray(arrays["id"], dtype=np.int64)
        nids = ids.shape[0]
        with self._guard:
            self._allocate(max(npos + npos // 2, 1024), max(nres + nres // 2, 1024), nids)
            self._state[:npos] = state
            entries = (state[:, K.F_KEY] << self._pbits) | np.arange(npos, dtype=np.int64)
            K.rehash_positions(entries, self._ptab, int(self._meta[K.M_PSHIFT]), self._pbits)
            for name, col in self._RES_FIELDS:
                self._res[:nres, col] = arrays[f"res_{name}"]
            pairs = np.empty((nids, 2), dtype=np.int64)
            pairs[:, 0] = ids
            pairs[:, 1] = arrays["id_value"]
            K.rehash_ids(pairs, self._itab, self._ishift)
            r = self._res
            timed = np.flatnonzero(
                (r[:nres, K.R_STATE] == K.RS_OPEN) & (r[:nres, K.R_EXP] != NO_EXPIRY)
            )
            timed = timed[np.argsort(r[timed, K.R_EXP], kind="stable")]  # sorted = a valid heap
            self._heap[: timed.shape[0], 0] = r[timed, K.R_EXP]
            self._heap[: timed.shape[0], 1] = timed
            m = self._meta
            m[K.M_NPOS], m[K.M_NRES], m[K.M_NIDS] = npos, nres, nids
            m[K.M_HEAP] = timed.shape[0]
            m[K.M_EXPIRED] = int(arrays["counters"][0])
            self._next_auto_id = int(arrays["counters"][1])
            self._version = version

    def state_digest(self) -> str:
        """BLAKE2b-256 hex digest of the canonical state (equal states, equal digests).

        Covers positions, reservations, the idempotency index (sorted by id) and the
        counters; not the layout of the hash tables or the heap, which depend on the
        order of growth but not on what the ledger answers.
        """
        return self.digest_state(self.export_state())

    def digest_state(self, arrays: dict[str, np.ndarray]) -> str:
        """:meth:`state_digest` of exported ``arrays`` (ids sorted, as exported)."""
        h = hashlib.blake2b(digest_size=32)
        h.update(np.array([self._nchan, self._nloc], dtype=np.int64).tobytes())
        for name in (
            "state",
            "res_id",
            "res_pos",
            "res_chan",
            "res_state",
            "res_qty",
            "res_open",
            "res_exp",
            "id",
            "id_value",
            "counters",
        ):
            arr = arrays[name]
            h.update(name.encode())
            h.update(np.array(arr.shape, dtype=np.int64).tobytes())
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()
