"""The stock ledger: the one stateful object of the library.

:class:`Ledger` keeps per-position stock (on_hand, reserved by channel, in_transit,
safety stock, non-sellable returns, channel fences and caps) in sparse, int64
struct-of-arrays form, and changes it only by applying :class:`~allocator.Events`
through one numba kernel. See ``docs/ledger.md`` for the semantics.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np

from allocator._kernels import ledger as K
from allocator._validate import readonly
from allocator.events import ALL, NO_EXPIRY, EventKind, Events, ResultCode
from allocator.exceptions import CapacityError, ValidationError
from allocator.network import NetworkData

__all__ = ["ApplyResult", "Ledger", "Reservation", "ReservationState", "Shortfalls"]

_LOAD = 0.7  # maximum load factor of both hash tables

# Undo-log entries each kind writes inside a linked group (see _kernels/ledger.py).
_UNDO_ENTRIES = np.zeros(len(EventKind), dtype=np.int64)
_UNDO_ENTRIES[
    [
        EventKind.RECEIVE,
        EventKind.SALE,
        EventKind.RETURN,
        EventKind.RETURN_NONSELLABLE,
        EventKind.ADJUST,
        EventKind.SET_FENCE,
        EventKind.SET_CAP,
        EventKind.SET_SAFETY,
    ]
] = 1
_UNDO_ENTRIES[[EventKind.RESERVE, EventKind.TRANSFER_OUT, EventKind.TRANSFER_IN]] = 2
_UNDO_ENTRIES[EventKind.RELEASE] = 3
_UNDO_ENTRIES[EventKind.COMMIT] = 4


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


@dataclass(frozen=True, eq=False)
class Shortfalls:
    """Positions left with ``on_hand < reserved`` by a sale or a count in one batch.

    ``reservations[indptr[i]:indptr[i + 1]]`` are the open reservations at risk at
    position ``i``, newest first, just enough of them to cover its ``shortage``; the
    caller re-sources (or releases) them.
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

    def at_risk(self, i: int) -> np.ndarray:
        """Reservation ids at risk at shortfall ``i``, newest first."""
        return self.reservations[self.indptr[i] : self.indptr[i + 1]]


@dataclass(frozen=True, eq=False)
class ApplyResult:
    """What :meth:`Ledger.apply` did with each event.

    Attributes
    ----------
    ids
        Event ids as applied (ledger-assigned ids are negative).
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

    @property
    def ok(self) -> bool:
        """True when every event succeeded (duplicates of successes count as success)."""
        return bool((self.codes == ResultCode.OK).all())

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
        """Id of the only event (for single-event calls such as ``ledger.reserve``)."""
        return int(self.ids[self._single()])

    @property
    def code(self) -> ResultCode:
        """Result code of the only event."""
        return ResultCode(int(self.codes[self._single()]))

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
                "code": [ResultCode(c).slug for c in self.codes.tolist()],
                "duplicate": self.duplicate,
            }
        )


def _pow2_at_least(n: int) -> int:
    return 1 << max(10, int(n - 1).bit_length())


class Ledger:
    """In-memory stock ledger over the positions of one network.

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
    >>> r = ledger.reserve("A", "S1", 2, channel="online")
    >>> int(ledger.available("A", "S1", "store"))
    3
    >>> ledger.commit(r.id).code.slug
    'ok'
    """

    def __init__(
        self,
        network: NetworkData,
        *,
        capacity: int = 1024,
        reservation_capacity: int = 1024,
        event_capacity: int = 1024,
    ) -> None:
        if not isinstance(network, NetworkData):
            raise TypeError("Ledger needs a NetworkData (Network().build())")
        self.network = network
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
        self._state = np.zeros((max(16, capacity), K.F_CHAN + 3 * self._nchan), dtype=np.int64)
        self._ptab = np.full(_pow2_at_least(int(capacity / _LOAD) + 1), -1, dtype=np.int64)
        self._itab = np.zeros(
            (_pow2_at_least(int(max(event_capacity, reservation_capacity) / _LOAD) + 1), 2),
            dtype=np.int64,
        )
        self._res = self._new_reservations(max(16, reservation_capacity))
        self._meta = np.zeros(K.META_SIZE, dtype=np.int64)
        self._next_auto_id = -1
        self._open_lo = 0  # every reservation slot below this one is closed

    # ------------------------------------------------------------------ storage
    @staticmethod
    def _new_reservations(n: int) -> dict[str, np.ndarray]:
        return {
            "id": np.zeros(n, dtype=np.int64),
            "pos": np.zeros(n, dtype=np.int64),
            "chan": np.zeros(n, dtype=np.int64),
            "state": np.zeros(n, dtype=np.int8),
            "qty": np.zeros(n, dtype=np.int64),
            "open": np.zeros(n, dtype=np.int64),
            "exp": np.zeros(n, dtype=np.int64),
            "heap_t": np.zeros(n, dtype=np.int64),
            "heap_s": np.zeros(n, dtype=np.int64),
        }

    @property
    def _pshift(self) -> int:
        return 64 - (self._ptab.shape[0].bit_length() - 1)

    @property
    def _ishift(self) -> int:
        return 64 - (self._itab.shape[0].bit_length() - 1 - K.ID_RUN_BITS)

    def _limits(self) -> np.ndarray:
        return np.array(
            [
                min(self._state.shape[0], int(self._ptab.shape[0] * _LOAD)),
                self._res["id"].shape[0],
                int(self._itab.shape[0] * _LOAD),
            ],
            dtype=np.int64,
        )

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
        if want > self._res["id"].shape[0]:
            size = max(want, int(self._res["id"].shape[0] * 1.5))
            grown = self._new_reservations(size)
            for name, arr in self._res.items():
                grown[name][: arr.shape[0]] = arr
            self._res = grown
        want = nids + need_ids
        if want > int(self._itab.shape[0] * _LOAD):
            ids = np.zeros((_pow2_at_least(int(want / _LOAD) + 1), 2), dtype=np.int64)
            shift = 64 - (ids.shape[0].bit_length() - 1 - K.ID_RUN_BITS)
            K.rehash_ids(self._itab, ids, shift)
            self._itab = ids

    # ------------------------------------------------------------------ apply
    def apply(self, events: Events) -> ApplyResult:
        """Apply a batch in order and report a result code per event.

        Bad input (indices outside the network) raises before anything changes.
        Business rejections are result codes. Events whose id was seen before return
        their first result and change nothing. A linked group applies all-or-nothing.
        """
        return self._apply_prepared(events, self._prepare(events))

    def _prepare(self, events: Events) -> np.ndarray:
        """Validate ``events`` against this ledger; return the ids as they will apply.

        Rows with id 0 get the ids the ledger will assign (negative, counting down);
        nothing changes here, the counter advances in :meth:`_apply_prepared`.
        """
        if not isinstance(events, Events):
            raise TypeError(f"apply() takes Events, got {type(events).__name__}")
        events.check_network(self.network)
        ids: np.ndarray = events.id
        unassigned = ids <= self._next_auto_id
        if unassigned.any():
            row = int(np.argmax(unassigned))
            raise ValidationError(
                f"id {ids[row]} is negative but was never assigned by this ledger; client "
                "ids must be positive",
                field="id",
                row=row,
                code="invalid_identifier",
            )
        zero = ids == 0
        if zero.any():
            ids = ids.copy()
            ids[zero] = self._next_auto_id - np.arange(int(zero.sum()), dtype=np.int64)
        return ids

    def _apply_prepared(self, events: Events, ids: np.ndarray) -> ApplyResult:
        """Apply ``events`` with the ids from :meth:`_prepare` (no further checks)."""
        n = len(events)
        self._next_auto_id -= int((events.id == 0).sum())
        out = np.zeros(n, dtype=np.uint8)
        ends = np.flatnonzero(~events.link)
        if n and events.link[-1]:
            ends = np.append(ends, n - 1)
        bounds = np.concatenate(([-1], ends))
        max_group = int(np.diff(bounds).max()) if n else 1
        undo_rows = 1
        if max_group > 1:  # undo entries a group may log: the most of any group
            per_group = np.add.reduceat(_UNDO_ENTRIES[events.kind], bounds[:-1] + 1)
            undo_rows = int(per_group.max())
        undo = np.zeros((undo_rows, 4), dtype=np.int64)
        gslot = np.zeros(max_group, dtype=np.int64)
        start = 0
        while start < n:
            r = self._res
            start = K.apply_batch(
                ids,
                events.kind,
                events.sku,
                events.location,
                events.channel,
                events.qty,
                events.ref,
                events.expires_at,
                events.link,
                start,
                self._nloc,
                self._nchan,
                self._state,
                self._ptab,
                self._pshift,
                self._pbits,
                self._itab,
                self._ishift,
                r["id"],
                r["pos"],
                r["chan"],
                r["state"],
                r["qty"],
                r["open"],
                r["exp"],
                r["heap_t"],
                r["heap_s"],
                self._meta,
                self._limits(),
                undo,
                gslot,
                out,
            )
            if start < n:
                end = int(ends[np.searchsorted(ends, start)])
                glen = end - start + 1
                self._grow(2 * glen + 1024, glen + 1024, glen + 1024)
        return self._result(events, ids, out)

    def _result(self, events: Events, ids: np.ndarray, out: np.ndarray) -> ApplyResult:
        codes = out & K.OUT_CODE
        counts_arr = np.bincount(codes, minlength=len(ResultCode))
        counts = {ResultCode(c): int(k) for c, k in enumerate(counts_arr) if k}
        short_events = np.flatnonzero(out & K.OUT_SHORTFALL)
        return ApplyResult(
            ids=readonly(ids),
            codes=readonly(codes),
            duplicate=readonly((out & K.OUT_DUPLICATE) != 0),
            counts=counts,
            shortfalls=self._shortfalls(events, short_events),
        )

    def _shortfalls(self, events: Events, rows: np.ndarray) -> Shortfalls:
        empty = np.zeros(0, dtype=np.int64)
        if rows.size == 0:
            return Shortfalls(
                empty, empty, empty, empty, empty, empty, np.zeros(1, np.int64), empty
            )
        keys = events.sku[rows] * self._nloc + events.location[rows]
        keys, first = np.unique(keys[::-1], return_index=True)  # last event per position
        rows = rows[::-1][first]
        pos = self._positions_of(keys)
        on_hand = self._state[pos, K.F_ON_HAND]
        reserved = self._reserved_rows(pos)
        keep = np.flatnonzero(reserved > on_hand)
        keep = keep[np.argsort(pos[keep])]  # rows ordered by position row
        pos, keys, rows = pos[keep], keys[keep], rows[keep]
        on_hand, reserved = on_hand[keep], reserved[keep]
        shortage = reserved - on_hand
        # open reservations at the short positions, newest first, grouped like the rows
        at_risk = np.empty(int(reserved.sum()), dtype=np.int64)
        row_of = np.empty_like(at_risk)
        is_short = np.zeros(self.num_positions, dtype=np.bool_)
        is_short[pos] = True
        r = self._res
        k = K.reservations_at_risk(
            r["id"],
            r["pos"],
            r["state"],
            r["open"],
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

    # ------------------------------------------------------------------ conveniences
    def _ids(self, id: Any) -> Any:
        return 0 if id is None else id

    def receive(self, sku: Any, location: Any, qty: Any, *, id: Any = None) -> ApplyResult:
        """Goods received: ``on_hand += qty``."""
        return self.apply(
            Events.receive(sku, location, qty, id=self._ids(id), network=self.network)
        )

    def sale(
        self, sku: Any, location: Any, qty: Any, *, channel: Any, id: Any = None
    ) -> ApplyResult:
        """A walk-in sale of goods that already left: ``on_hand -= qty``."""
        return self.apply(
            Events.sale(sku, location, qty, channel=channel, id=self._ids(id), network=self.network)
        )

    def reserve(
        self,
        sku: Any,
        location: Any,
        qty: Any,
        *,
        channel: Any,
        id: Any = None,
        expires_at: Any = None,
    ) -> ApplyResult:
        """Hold ``qty`` for ``channel``; the result's ``id`` names the reservation."""
        return self.apply(
            Events.reserve(
                sku,
                location,
                qty,
                channel=channel,
                id=self._ids(id),
                expires_at=NO_EXPIRY if expires_at is None else expires_at,
                network=self.network,
            )
        )

    def commit(self, reservation: Any, qty: Any = None, *, id: Any = None) -> ApplyResult:
        """Ship/pick ``qty`` of a reservation (all when None); any rest is released."""
        return self.apply(Events.commit(reservation, ALL if qty is None else qty, id=self._ids(id)))

    def release(self, reservation: Any, *, id: Any = None) -> ApplyResult:
        """Cancel a reservation."""
        return self.apply(Events.release(reservation, id=self._ids(id)))

    def expire(self, now: int) -> ApplyResult:
        """Release every open reservation with ``expires_at <= now``."""
        return self.apply(Events.expire(now))

    def transfer(
        self, sku: Any, origin: Any, destination: Any, qty: Any, *, id: Any = None
    ) -> ApplyResult:
        """Send stock from ``origin``; it waits in the destination's ``in_transit``."""
        return self.apply(
            Events.transfer_out(
                sku, origin, destination, qty, id=self._ids(id), network=self.network
            )
        )

    def transfer_in(self, sku: Any, location: Any, qty: Any, *, id: Any = None) -> ApplyResult:
        """Receive transferred stock: ``in_transit -> on_hand``."""
        return self.apply(
            Events.transfer_in(sku, location, qty, id=self._ids(id), network=self.network)
        )

    def adjust(self, sku: Any, location: Any, counted: Any, *, id: Any = None) -> ApplyResult:
        """Record a cycle count: ``on_hand := counted``."""
        return self.apply(
            Events.adjust(sku, location, counted, id=self._ids(id), network=self.network)
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
        K.lookup_positions(self._ptab, self._pshift, self._pbits, keys, out)
        return out

    def available(self, sku: Any, location: Any, channel: Any) -> Any:
        """ATP for ``channel``: what it can still reserve at the position(s).

        ``available(c) = max(0, min(on_hand - reserved - safety_stock - Σ_{c'≠c}
        unused_fence[c'], cap[c] - reserved[c]))``. Arguments broadcast; names or
        indices. Returns an int for scalar arguments, else an int64 array.
        """
        keys, scalar = self._keys(sku, location)
        chan = np.atleast_1d(self.network.channel_index(channel))
        keys, chan = np.broadcast_arrays(keys, chan)
        keys = np.ascontiguousarray(keys)
        chan = np.ascontiguousarray(chan, dtype=np.int64)
        out = np.empty(keys.shape[0], dtype=np.int64)
        K.available_many(
            self._state, self._ptab, self._pshift, self._pbits, keys, chan, self._nchan, out
        )
        return int(out[0]) if scalar and np.ndim(channel) == 0 else out

    def available_all(self) -> np.ndarray:
        """``(num_positions, num_channels)`` ATP of every position for every channel."""
        n = self.num_positions
        out = np.empty((n, self._nchan), dtype=np.int64)
        K.available_all(self._state, n, self._nchan, out)
        return readonly(out)

    @property
    def num_positions(self) -> int:
        """Number of positions ever touched."""
        return int(self._meta[K.M_NPOS])

    @property
    def num_reservations(self) -> int:
        """Number of reservations ever made (all states)."""
        return int(self._meta[K.M_NRES])

    def _col(self, col: int) -> np.ndarray:
        return readonly(self._state[: self.num_positions, col])

    # The per-position views below are live and read-only; they stay valid until
    # the next apply() (copy them to keep a snapshot).
    @property
    def position_sku(self) -> np.ndarray:
        """SKU index of each position."""
        return readonly(self._state[: self.num_positions, K.F_KEY] // self._nloc)

    @property
    def position_location(self) -> np.ndarray:
        """Location index of each position."""
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
        """Returned units that cannot be sold (quarantine)."""
        return self._col(K.F_RETURNS)

    @property
    def fence(self) -> np.ndarray:
        """``(num_positions, num_channels)`` fences."""
        c = self._nchan
        return readonly(self._state[: self.num_positions, K.F_CHAN : K.F_CHAN + c])

    @property
    def cap(self) -> np.ndarray:
        """``(num_positions, num_channels)`` caps (``STOCK_MAX`` = no cap)."""
        c = self._nchan
        return readonly(self._state[: self.num_positions, K.F_CHAN + c : K.F_CHAN + 2 * c])

    @property
    def reserved_by_channel(self) -> np.ndarray:
        """``(num_positions, num_channels)`` reserved units per channel."""
        c = self._nchan
        return readonly(self._state[: self.num_positions, K.F_CHAN + 2 * c : K.F_CHAN + 3 * c])

    def _reserved_rows(self, pos: np.ndarray) -> np.ndarray:
        c = self._nchan
        return self._state[pos, K.F_CHAN + 2 * c : K.F_CHAN + 3 * c].sum(axis=1)

    @property
    def reserved(self) -> np.ndarray:
        """Total reserved units per position (a fresh array)."""
        return readonly(self.reserved_by_channel.sum(axis=1))

    def position_index(self, sku: Any, location: Any) -> Any:
        """Row of the position(s) in the per-position arrays, -1 if never touched."""
        keys, scalar = self._keys(sku, location)
        out = self._positions_of(keys)
        return int(out[0]) if scalar else out

    def position(self, sku: Any, location: Any) -> dict[str, Any]:
        """All quantities of one position as a dict (zeros if never touched)."""
        pos = self.position_index(sku, location)
        c = self._nchan
        if pos < 0:
            row = np.zeros(K.F_CHAN + 3 * c, dtype=np.int64)
            row[K.F_CHAN + c : K.F_CHAN + 2 * c] = K.STOCK_MAX
        else:
            row = self._state[pos]
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

    def totals(self, field: str = "on_hand") -> np.ndarray:
        """Per-SKU total of ``field`` across locations (length ``num_skus``)."""
        arrays = {
            "on_hand": self.on_hand,
            "in_transit": self.in_transit,
            "safety_stock": self.safety_stock,
            "nonsellable": self.nonsellable,
            "reserved": self.reserved,
        }
        if field not in arrays:
            raise ValidationError(f"expected one of {sorted(arrays)}", field="field")
        return np.bincount(
            self.position_sku, weights=arrays[field], minlength=self.network.num_skus
        ).astype(np.int64)

    def reservation(self, id: int) -> Reservation | None:
        """The reservation made by reserve event ``id``, or None."""
        value = np.empty(1, dtype=np.int64)
        K.lookup_ids(self._itab, self._ishift, np.array([id], dtype=np.int64), value)
        slot = (int(value[0]) >> 32) - 1 if value[0] >= 0 else -1
        if slot < 0 or self._res["state"][slot] == K.RS_VOID:
            return None
        r = self._res
        key = int(self._state[r["pos"][slot], K.F_KEY])
        return Reservation(
            id=int(r["id"][slot]),
            sku=key // self._nloc,
            location=key % self._nloc,
            channel=int(r["chan"][slot]),
            qty=int(r["qty"][slot]),
            open_qty=int(r["open"][slot]),
            expires_at=int(r["exp"][slot]),
            state=ReservationState(int(r["state"][slot])),
        )

    def result_of(self, ids: Any) -> np.ndarray:
        """The recorded result code of each event id (-1 for ids never seen)."""
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        out = np.empty(ids.shape[0], dtype=np.int64)
        K.lookup_ids(self._itab, self._ishift, ids, out)
        return np.where(out >= 0, out & 255, -1)

    def _first_open(self) -> int:
        """Advance and return the slot below which every reservation is closed."""
        self._open_lo = K.first_open(self._res["state"], self._open_lo, self.num_reservations)
        return self._open_lo

    def open_reservations(self) -> dict[str, np.ndarray]:
        """Arrays (id, sku, location, channel, open_qty, expires_at) of open reservations."""
        lo, n = self._first_open(), self.num_reservations
        r = self._res
        slots = lo + np.flatnonzero(r["state"][lo:n] == K.RS_OPEN)
        keys = self._state[r["pos"][slots], K.F_KEY]
        return {
            "id": r["id"][slots],
            "sku": keys // self._nloc,
            "location": keys % self._nloc,
            "channel": r["chan"][slots],
            "open_qty": r["open"][slots],
            "expires_at": r["exp"][slots],
        }

    def memory_usage(self) -> dict[str, int]:
        """Bytes held by each structure (allocated, including spare capacity)."""
        return {
            "positions": int(self._state.nbytes),
            "position_index": int(self._ptab.nbytes),
            "reservations": int(sum(a.nbytes for a in self._res.values())),
            "id_index": int(self._itab.nbytes),
        }

    def bytes_per_position(self) -> float:
        """Bytes of position state plus position index per touched position."""
        usage = self.memory_usage()
        return (usage["positions"] + usage["position_index"]) / max(1, self.num_positions)

    def __repr__(self) -> str:
        return (
            f"Ledger({self.num_positions} positions, {self.num_reservations} reservations, "
            f"{self.network.num_channels} channels)"
        )

    # ------------------------------------------------------------------ durability hooks
    @classmethod
    def open(cls, path: Any, network_data: NetworkData | None = None, **options: Any) -> Any:
        """Open (or create) a durable ledger journaled in SQLite at ``path``.

        A thin front for :func:`allocator.journal.open_ledger`, which documents the
        options (``readonly``, ``synchronous``, ``snapshot_every``, ``horizon``, ...).
        Returns a :class:`allocator.journal.DurableLedger`.
        """
        from allocator.journal import open_ledger

        return open_ledger(path, network_data, **options)

    def _export_state(self) -> dict[str, np.ndarray]:
        """Copies of the canonical state: positions, reservations, id index, counters.

        Hash-table layouts and the expiry heap are left out: they are derived from
        these arrays (:meth:`_import_state` rebuilds them). Ids come sorted.
        """
        npos, nres = self.num_positions, self.num_reservations
        used = self._itab[:, 0] != 0
        ids = self._itab[used, 0]
        order = np.argsort(ids, kind="stable")
        r = self._res
        out = {"state": self._state[:npos].copy()}
        for name in ("id", "pos", "chan", "state", "qty", "open", "exp"):
            out[f"res_{name}"] = r[name][:nres].copy()
        out["id"] = ids[order]
        out["id_value"] = self._itab[used, 1][order]
        out["counters"] = np.array([self._meta[K.M_EXPIRED], self._next_auto_id], dtype=np.int64)
        return out

    def _import_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Replace the whole state by ``arrays`` (as made by :meth:`_export_state`).

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
        self._state = np.zeros((max(16, npos + npos // 2), width), dtype=np.int64)
        self._state[:npos] = state
        self._ptab = np.full(_pow2_at_least(int(max(npos, 1024) / _LOAD) + 1), -1, dtype=np.int64)
        entries = (state[:, K.F_KEY] << self._pbits) | np.arange(npos, dtype=np.int64)
        K.rehash_positions(entries, self._ptab, self._pshift, self._pbits)
        self._res = self._new_reservations(max(16, nres + nres // 2))
        for name in ("id", "pos", "chan", "state", "qty", "open", "exp"):
            self._res[name][:nres] = arrays[f"res_{name}"]
        self._itab = np.zeros((_pow2_at_least(int(max(nids, 1024) / _LOAD) + 1), 2), dtype=np.int64)
        pairs = np.empty((nids, 2), dtype=np.int64)
        pairs[:, 0] = ids
        pairs[:, 1] = arrays["id_value"]
        K.rehash_ids(pairs, self._itab, self._ishift)
        r = self._res
        timed = np.flatnonzero((r["state"][:nres] == K.RS_OPEN) & (r["exp"][:nres] != NO_EXPIRY))
        timed = timed[np.argsort(r["exp"][timed], kind="stable")]  # sorted = a valid heap
        r["heap_t"][: timed.shape[0]] = r["exp"][timed]
        r["heap_s"][: timed.shape[0]] = timed
        self._meta = np.zeros(K.META_SIZE, dtype=np.int64)
        self._open_lo = 0
        self._meta[K.M_NPOS], self._meta[K.M_NRES], self._meta[K.M_NIDS] = npos, nres, nids
        self._meta[K.M_HEAP] = timed.shape[0]
        self._meta[K.M_EXPIRED] = int(arrays["counters"][0])
        self._next_auto_id = int(arrays["counters"][1])

    def state_digest(self) -> str:
        """BLAKE2b-256 hex digest of the canonical state (equal states, equal digests).

        Covers positions, reservations, the idempotency index (sorted by id) and the
        counters; not the layout of the hash tables or the heap, which depend on the
        order of growth but not on what the ledger answers.
        """
        return self._digest_state(self._export_state())

    def _digest_state(self, arrays: dict[str, np.ndarray]) -> str:
        """:meth:`state_digest` of exported ``arrays`` (ids sorted, as exported)."""
        import hashlib

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

    # ------------------------------------------------------------------ sourcing
    def reserve_plan(
        self, plan: Any, *, expires_at: int | None = None, first_id: int | None = None
    ) -> Any:
        """Reserve a :class:`~allocator.sourcing.SourcingPlan`: one linked group per order.

        Orders whose stock moved since planning are rejected as a whole and returned
        for re-sourcing; see :func:`allocator.sourcing.reserve_plan`.
        """
        from allocator.sourcing.reserve import reserve_plan

        return reserve_plan(self, plan, expires_at=expires_at, first_id=first_id)
