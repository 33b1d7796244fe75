"""A slow, obvious pure-Python ledger with the semantics of the numba kernel.

It is the oracle of the property tests (in ``allocator._reference``) and the
baseline of ``allocator bench ledger``. Dicts and plain ints; a linked group is
rolled back by restoring deep copies. Keep it obvious, not fast.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from allocator.events import ALL, NO_EXPIRY, STOCK_MAX, EventKind, ResultCode

__all__ = ["NaiveLedger", "NaivePosition"]


@dataclass
class NaivePosition:
    num_channels: int
    on_hand: int = 0
    in_transit: int = 0
    safety: int = 0
    nonsellable: int = 0
    fence: list[int] = field(default_factory=list)
    cap: list[int] = field(default_factory=list)
    res: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        c = self.num_channels
        self.fence = self.fence or [0] * c
        self.cap = self.cap or [STOCK_MAX] * c
        self.res = self.res or [0] * c

    @property
    def reserved(self) -> int:
        return sum(self.res)

    def available(self, c: int) -> int:
        other = sum(max(0, self.fence[x] - self.res[x]) for x in range(self.num_channels) if x != c)
        shared = self.on_hand - self.reserved - self.safety - other
        return max(0, min(shared, self.cap[c] - self.res[c]))


@dataclass
class NaiveReservation:
    pos: tuple[int, int]
    channel: int
    qty: int
    open: int
    expires_at: int
    state: str = "open"  # open | committed | released | expired


class NaiveLedger:
    """Reference ledger.

    ``apply`` takes rows ``(id, kind, sku, loc, chan, qty, ref, exp, link)``.
    """

    def __init__(self, num_locations: int, num_channels: int) -> None:
        self.num_locations = num_locations
        self.num_channels = num_channels
        self.positions: dict[tuple[int, int], NaivePosition] = {}
        self.reservations: dict[int, NaiveReservation] = {}
        self.results: dict[int, tuple[int, tuple[int, ...]]] = {}  # id -> (code, payload)
        self.next_auto_id = -1

    # ------------------------------------------------------------------
    def _pos(self, key: tuple[int, int]) -> NaivePosition:
        if key not in self.positions:
            self.positions[key] = NaivePosition(self.num_channels)
        return self.positions[key]

    def apply(self, rows: list[tuple[int, ...]]) -> list[tuple[int, int, bool, bool]]:
        """Apply rows in order; return ``(id, code, duplicate, shortfall)`` per row."""
        lists = [list(r) for r in rows]
        closed = len(lists)  # rows up to the last closed group; an open chain follows
        while closed and lists[closed - 1][8]:
            closed -= 1
        for r in lists[:closed]:  # the events of an open chain get no ids
            if r[0] == 0:
                r[0] = self.next_auto_id
                self.next_auto_id -= 1
        out: list[tuple[int, int, bool, bool]] = []
        i, n = 0, len(lists)
        while i < n:
            j = i
            while j < n - 1 and lists[j][8]:
                j += 1
            group = lists[i : j + 1]
            if group[-1][8]:  # open chain at the end of the batch
                out += [(r[0], ResultCode.LINKED_EVENT_FAILED, False, False) for r in group[:-1]]
                out.append((group[-1][0], ResultCode.LINKED_EVENT_CHAIN_OPEN, False, False))
                break
            linked = len(group) > 1
            saved = (
                (copy.deepcopy(self.positions), copy.deepcopy(self.reservations))
                if linked
                else None
            )
            results: list[tuple[int, int, bool, bool]] = []
            inserted: list[int] = []
            failed = False
            for r in group:
                ident = r[0]
                payload = tuple(r[1:8])
                if ident in self.results:
                    code, original = self.results[ident]
                    if original != payload:
                        code = ResultCode.EXISTS_WITH_DIFFERENT_FIELDS
                    results.append((ident, code, True, False))
                    failed = failed or code != ResultCode.OK
                    continue
                if failed:
                    code, short = ResultCode.LINKED_EVENT_FAILED, False
                else:
                    code, short = self._apply_one(r)
                    failed = code != ResultCode.OK
                self.results[ident] = (code, payload)
                inserted.append(len(results))
                results.append((ident, code, False, short))
            if failed and saved is not None:
                # every member but the failing one reports linked_event_failed (a
                # duplicate keeps its flag); ids recorded in the group record it too
                self.positions, self.reservations = saved
                first_bad = next(k for k, x in enumerate(results) if x[1] != ResultCode.OK)
                for k in inserted:
                    if k != first_bad:
                        ident = results[k][0]
                        self.results[ident] = (
                            ResultCode.LINKED_EVENT_FAILED,
                            self.results[ident][1],
                        )
                for k, (ident, _, dup, _) in enumerate(results):
                    if k != first_bad:
                        results[k] = (ident, ResultCode.LINKED_EVENT_FAILED, dup, False)
            out += results
            i = j + 1
        return out

    def _apply_one(self, r: list[int]) -> tuple[int, bool]:
        ident, kind, sku, loc, chan, qty, ref, exp, _ = r
        key = (sku, loc)
        k = kind  # IntEnum members compare equal to their int values
        if k == EventKind.EXPIRE:
            for res in self.reservations.values():
                if res.state == "open" and res.expires_at != NO_EXPIRY and res.expires_at <= exp:
                    self.positions[res.pos].res[res.channel] -= res.open
                    res.open = 0
                    res.state = "expired"
            return ResultCode.OK, False
        if k in (EventKind.COMMIT, EventKind.RELEASE):
            if ref not in self.reservations:
                return ResultCode.RESERVATION_NOT_FOUND, False
            res = self.reservations[ref]
            if res.state != "open":
                return {
                    "committed": ResultCode.RESERVATION_ALREADY_COMMITTED,
                    "released": ResultCode.RESERVATION_ALREADY_RELEASED,
                    "expired": ResultCode.RESERVATION_EXPIRED,
                }[res.state], False
            if (sku >= 0 and sku != res.pos[0]) or (loc >= 0 and loc != res.pos[1]):
                return ResultCode.RESERVATION_MISMATCH, False
            p = self.positions[res.pos]
            if k == EventKind.COMMIT:
                q = res.open if qty == ALL else qty
                if q > res.open:
                    return ResultCode.EXCEEDS_RESERVED_QUANTITY, False
                if p.on_hand < q:
                    return ResultCode.INSUFFICIENT_ON_HAND, False
                p.on_hand -= q
            p.res[res.channel] -= res.open
            res.open = 0
            res.state = "committed" if k == EventKind.COMMIT else "released"
            return ResultCode.OK, False
        if k in (EventKind.RECEIVE, EventKind.RETURN, EventKind.RETURN_NONSELLABLE):
            p = self._pos(key)
            if k == EventKind.RETURN_NONSELLABLE:
                if p.nonsellable > STOCK_MAX - qty:
                    return ResultCode.OVERFLOW, False
                p.nonsellable += qty
            else:
                if p.on_hand > STOCK_MAX - qty:
                    return ResultCode.OVERFLOW, False
                p.on_hand += qty
            return ResultCode.OK, False
        if k == EventKind.SALE:
            if key not in self.positions or self.positions[key].on_hand < qty:
                return ResultCode.INSUFFICIENT_ON_HAND, False
            p = self.positions[key]
            p.on_hand -= qty
            return ResultCode.OK, p.on_hand < p.reserved
        if k == EventKind.RESERVE:
            if key not in self.positions:
                return ResultCode.INSUFFICIENT_AVAILABLE, False
            p = self.positions[key]
            other = sum(
                max(0, p.fence[x] - p.res[x]) for x in range(self.num_channels) if x != chan
            )
            if qty > p.on_hand - p.reserved - p.safety - other:
                return ResultCode.INSUFFICIENT_AVAILABLE, False
            if qty > p.cap[chan] - p.res[chan]:
                return ResultCode.EXCEEDS_CHANNEL_CAP, False
            p.res[chan] += qty
            self.reservations[ident] = NaiveReservation(key, chan, qty, qty, exp)
            return ResultCode.OK, False
        if k == EventKind.TRANSFER_OUT:
            src = self.positions.get(key)
            if src is None or src.on_hand - src.reserved < qty:
                return ResultCode.INSUFFICIENT_FREE_STOCK, False
            d = self._pos((sku, ref))
            if d.in_transit > STOCK_MAX - qty:
                return ResultCode.OVERFLOW, False
            src.on_hand -= qty
            d.in_transit += qty
            return ResultCode.OK, False
        if k == EventKind.TRANSFER_IN:
            if key not in self.positions or self.positions[key].in_transit < qty:
                return ResultCode.EXCEEDS_IN_TRANSIT, False
            p = self.positions[key]
            if p.on_hand > STOCK_MAX - qty:
                return ResultCode.OVERFLOW, False
            p.in_transit -= qty
            p.on_hand += qty
            return ResultCode.OK, False
        p = self._pos(key)
        if k == EventKind.ADJUST:
            p.on_hand = qty
            return ResultCode.OK, qty < p.reserved
        if k == EventKind.SET_SAFETY:
            p.safety = qty
        elif k == EventKind.SET_FENCE:
            p.fence[chan] = qty
        else:
            p.cap[chan] = STOCK_MAX if qty < 0 else qty
        return ResultCode.OK, False
