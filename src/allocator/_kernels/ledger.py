"""The ledger's apply kernel and its hash tables.

Layout (all owned by :class:`allocator.ledger.Ledger`):

* ``state``: ``(capacity, 5 + 3C)`` int64, one row per position: key, on_hand,
  in_transit, safety_stock, non-sellable returns, then ``fence[C]``, ``cap[C]`` and
  ``reserved[C]`` (reserved by channel; total reserved is their sum). One row is
  contiguous, so an event touches one or two cache lines of state.
* ``ptab``: open-addressing table (linear probing, power-of-two size) of int64
  entries ``key << pos_bits | pos`` with ``key = sku * num_locations + location``;
  ``-1`` is empty. Key and row index share one word, so a probe costs one load.
* ``itab``: ``(capacity, 2)`` int64 idempotency index ``[id, value]`` with
  ``value = code | fingerprint << 8 | (reservation slot + 1) << 32``; id 0 is empty.
  The slot of an id keeps runs of 64 consecutive ids together and scrambles the
  run number, so sequential ids (the common case) insert with cache locality while
  strided ids still spread over the table.
* reservations: parallel arrays indexed by slot, plus a binary min-heap of
  ``(expires_at, slot)`` for reservations that expire.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from allocator._kernels import jit
from allocator._kernels.intrinsics import prefetch
from allocator.events import EventKind, ResultCode

# -- row layout -------------------------------------------------------------
F_KEY = 0
F_ON_HAND = 1
F_IN_TRANSIT = 2
F_SAFETY = 3
F_RETURNS = 4
F_CHAN = 5  # fence[c] at F_CHAN + c, cap[c] at F_CHAN + C + c, reserved[c] at F_CHAN + 2C + c

#: Largest value any stock quantity may reach; larger results are rejected (OVERFLOW).
STOCK_MAX = 2**62
NO_EXPIRY = np.iinfo(np.int64).max

# -- meta slots -------------------------------------------------------------
M_NPOS = 0
M_NRES = 1
M_NIDS = 2
M_HEAP = 3
M_UNDO = 4
M_EXPIRED = 5
META_SIZE = 6

# -- reservation states -----------------------------------------------------
RS_OPEN = 0
RS_COMMITTED = 1
RS_RELEASED = 2
RS_EXPIRED = 3
RS_VOID = 4  # created inside a linked group that was rolled back

# -- output bits --------------------------------------------------------------
OUT_SHORTFALL = 64
OUT_DUPLICATE = 128
OUT_CODE = 63

_MULT = np.uint64(0x9E3779B97F4A7C15)
_MULT2 = np.uint64(0xBF58476D1CE4E5B9)

# Kinds and codes as plain ints (numba freezes module globals as constants).
K_RECEIVE = int(EventKind.RECEIVE)
K_SALE = int(EventKind.SALE)
K_RESERVE = int(EventKind.RESERVE)
K_COMMIT = int(EventKind.COMMIT)
K_RELEASE = int(EventKind.RELEASE)
K_EXPIRE = int(EventKind.EXPIRE)
K_TRANSFER_OUT = int(EventKind.TRANSFER_OUT)
K_TRANSFER_IN = int(EventKind.TRANSFER_IN)
K_RETURN = int(EventKind.RETURN)
K_RETURN_NONSELLABLE = int(EventKind.RETURN_NONSELLABLE)
K_ADJUST = int(EventKind.ADJUST)
K_SET_FENCE = int(EventKind.SET_FENCE)
K_SET_CAP = int(EventKind.SET_CAP)
K_SET_SAFETY = int(EventKind.SET_SAFETY)

C_OK = int(ResultCode.OK)
C_INSUFFICIENT_ON_HAND = int(ResultCode.INSUFFICIENT_ON_HAND)
C_INSUFFICIENT_AVAILABLE = int(ResultCode.INSUFFICIENT_AVAILABLE)
C_EXCEEDS_CHANNEL_CAP = int(ResultCode.EXCEEDS_CHANNEL_CAP)
C_INSUFFICIENT_FREE_STOCK = int(ResultCode.INSUFFICIENT_FREE_STOCK)
C_RESERVATION_NOT_FOUND = int(ResultCode.RESERVATION_NOT_FOUND)
C_ALREADY_COMMITTED = int(ResultCode.RESERVATION_ALREADY_COMMITTED)
C_ALREADY_RELEASED = int(ResultCode.RESERVATION_ALREADY_RELEASED)
C_RESERVATION_EXPIRED = int(ResultCode.RESERVATION_EXPIRED)
C_EXCEEDS_RESERVED = int(ResultCode.EXCEEDS_RESERVED_QUANTITY)
C_MISMATCH = int(ResultCode.RESERVATION_MISMATCH)
C_EXCEEDS_IN_TRANSIT = int(ResultCode.EXCEEDS_IN_TRANSIT)
C_OVERFLOW = int(ResultCode.OVERFLOW)
C_EXISTS_DIFFERENT = int(ResultCode.EXISTS_WITH_DIFFERENT_FIELDS)
C_LINKED_FAILED = int(ResultCode.LINKED_EVENT_FAILED)
C_CHAIN_OPEN = int(ResultCode.LINKED_EVENT_CHAIN_OPEN)


# ---------------------------------------------------------------------------
# hashing
@jit
def phash(key: int, pshift: int) -> Any:
    return np.int64((np.uint64(key) * _MULT) >> np.uint64(pshift))


@jit
def pslot(ptab: np.ndarray, pshift: int, pbits: int, key: int) -> int:
    """Slot holding ``key`` or the empty slot where it would go."""
    mask = ptab.shape[0] - 1
    h = phash(key, pshift)
    while True:
        e = ptab[h]
        if e == -1 or (e >> pbits) == key:
            return h
        h = (h + 1) & mask


@jit
def pfind(ptab: np.ndarray, pshift: int, pbits: int, key: int) -> int:
    """Row index of ``key`` or -1."""
    e = ptab[pslot(ptab, pshift, pbits, key)]
    if e == -1:
        return -1
    return e & ((np.int64(1) << pbits) - 1)


#: log2 of the run of consecutive ids kept together in the id index.
ID_RUN_BITS = 6
_RUN_MASK = (1 << ID_RUN_BITS) - 1


@jit
def ihash(ident: int, ishift: int, mask: int) -> Any:
    blk = (np.uint64(ident >> ID_RUN_BITS) * _MULT) >> np.uint64(ishift)
    return np.int64((blk << np.uint64(ID_RUN_BITS)) | np.uint64(ident & _RUN_MASK)) & mask


@jit
def islot(itab: np.ndarray, ishift: int, ident: int) -> int:
    """Slot holding ``ident`` or the empty slot where it would go."""
    mask = itab.shape[0] - 1
    h = ihash(ident, ishift, mask)
    while True:
        k = itab[h, 0]
        if k == 0 or k == ident:
            return h
        h = (h + 1) & mask


@jit
def fingerprint(kind: int, sku: int, loc: int, chan: int, qty: int, ref: int, exp: int) -> Any:
    """24-bit digest of an event's payload, to tell a redelivery from a clash.

    The fields are combined with independent multiplies (they run in parallel) and
    one final avalanche, which is enough for a 24-bit check.
    """
    h = (
        np.uint64(kind) * np.uint64(0x9E3779B97F4A7C15)
        + np.uint64(sku) * np.uint64(0xC2B2AE3D27D4EB4F)
        + np.uint64(loc) * np.uint64(0x165667B19E3779F9)
        + np.uint64(chan) * np.uint64(0xD6E8FEB86659FD93)
        + np.uint64(qty) * np.uint64(0xFF51AFD7ED558CCD)
        + np.uint64(ref) * np.uint64(0xC4CEB9FE1A85EC53)
        + np.uint64(exp) * np.uint64(0x94D049BB133111EB)
    )
    h ^= h >> np.uint64(32)
    h *= _MULT2
    return np.int64(h >> np.uint64(40))


# ---------------------------------------------------------------------------
# position rows
@jit
def new_position(
    state: np.ndarray,
    ptab: np.ndarray,
    slot: int,
    key: int,
    pbits: int,
    meta: np.ndarray,
    nchan: int,
) -> int:
    pos = meta[M_NPOS]
    meta[M_NPOS] = pos + 1
    ptab[slot] = (key << pbits) | pos
    for f in range(state.shape[1]):
        state[pos, f] = 0
    state[pos, F_KEY] = key
    for c in range(nchan):
        state[pos, F_CHAN + nchan + c] = STOCK_MAX
    return pos


@jit
def find_or_create(
    state: np.ndarray,
    ptab: np.ndarray,
    pshift: int,
    pbits: int,
    key: int,
    meta: np.ndarray,
    nchan: int,
) -> int:
    slot = pslot(ptab, pshift, pbits, key)
    e = ptab[slot]
    if e != -1:
        return e & ((np.int64(1) << pbits) - 1)
    return new_position(state, ptab, slot, key, pbits, meta, nchan)


@jit
def available_parts(state: np.ndarray, pos: int, c: int, nchan: int) -> tuple[int, int]:
    """``(shared, cap_room)`` for channel ``c``; available(c) = max(0, min of both).

    shared = on_hand - reserved - safety_stock - sum over other channels of their
    unused fence; cap_room = cap[c] - reserved[c].
    """
    reserved = 0
    other_fence = 0
    rbase = F_CHAN + 2 * nchan
    for cc in range(nchan):
        r = state[pos, rbase + cc]
        reserved += r
        if cc != c:
            f = state[pos, F_CHAN + cc] - r
            if f > 0:
                other_fence += f
    shared = state[pos, F_ON_HAND] - reserved - state[pos, F_SAFETY] - other_fence
    cap_room = state[pos, F_CHAN + nchan + c] - state[pos, rbase + c]
    return shared, cap_room


@jit
def reserved_total(state: np.ndarray, pos: int, nchan: int) -> int:
    total = 0
    for c in range(nchan):
        total += state[pos, F_CHAN + 2 * nchan + c]
    return total


# ---------------------------------------------------------------------------
# undo log (only used inside linked groups)
@jit
def log_state(
    log: bool, meta: np.ndarray, undo: np.ndarray, state: np.ndarray, pos: int, col: int
) -> None:
    if log:
        u = meta[M_UNDO]
        undo[u, 0] = 0
        undo[u, 1] = pos
        undo[u, 2] = col
        undo[u, 3] = state[pos, col]
        meta[M_UNDO] = u + 1


@jit
def log_res(log: bool, meta: np.ndarray, undo: np.ndarray, what: int, slot: int, old: int) -> None:
    if log:
        u = meta[M_UNDO]
        undo[u, 0] = what
        undo[u, 1] = slot
        undo[u, 2] = 0
        undo[u, 3] = old
        meta[M_UNDO] = u + 1


@jit
def rollback(
    meta: np.ndarray,
    undo: np.ndarray,
    state: np.ndarray,
    res_state: np.ndarray,
    res_open: np.ndarray,
) -> None:
    u = meta[M_UNDO] - 1
    while u >= 0:
        what = undo[u, 0]
        if what == 0:
            state[undo[u, 1], undo[u, 2]] = undo[u, 3]
        elif what == 1:
            res_state[undo[u, 1]] = undo[u, 3]
        elif what == 2:
            res_open[undo[u, 1]] = undo[u, 3]
        else:  # 3: reservation created in this group
            res_state[undo[u, 1]] = RS_VOID
        u -= 1
    meta[M_UNDO] = 0


# ---------------------------------------------------------------------------
# expiry heap of (expires_at, slot)
@jit
def heap_push(heap_t: np.ndarray, heap_s: np.ndarray, meta: np.ndarray, t: int, s: int) -> None:
    i = meta[M_HEAP]
    meta[M_HEAP] = i + 1
    while i > 0:
        p = (i - 1) >> 1
        if heap_t[p] < t or (heap_t[p] == t and heap_s[p] < s):
            break
        heap_t[i] = heap_t[p]
        heap_s[i] = heap_s[p]
        i = p
    heap_t[i] = t
    heap_s[i] = s


@jit
def heap_pop(heap_t: np.ndarray, heap_s: np.ndarray, meta: np.ndarray) -> int:
    top = heap_s[0]
    n = meta[M_HEAP] - 1
    meta[M_HEAP] = n
    t = heap_t[n]
    s = heap_s[n]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and (
            heap_t[child + 1] < heap_t[child]
            or (heap_t[child + 1] == heap_t[child] and heap_s[child + 1] < heap_s[child])
        ):
            child += 1
        if heap_t[child] > t or (heap_t[child] == t and heap_s[child] > s):
            break
        heap_t[i] = heap_t[child]
        heap_s[i] = heap_s[child]
        i = child
    heap_t[i] = t
    heap_s[i] = s
    return top


# ---------------------------------------------------------------------------
#: How many events ahead the apply loop prefetches table slots (rows: half as far).
PREFETCH_DISTANCE = 16


@jit
def prefetch_event(
    e: int,
    n: int,
    ev_kind: np.ndarray,
    ev_sku: np.ndarray,
    ev_loc: np.ndarray,
    ev_ref: np.ndarray,
    num_locations: int,
    state: np.ndarray,
    ptab: np.ndarray,
    pshift: int,
    pbits: int,
    itab: np.ndarray,
    ishift: int,
) -> None:
    """Start the cache misses of later events early (memory-level parallelism).

    Event ``e + D``: its position-table slot (or, for commit/release, the id-index
    slot of its reservation). Event ``e + D/2``: its state row, found through the
    slot fetched D/2 events ago. Pure hints; results do not depend on them.
    """
    f = e + PREFETCH_DISTANCE
    if f < n:
        k = ev_kind[f]
        if k == K_COMMIT or k == K_RELEASE:
            ref = ev_ref[f]
            prefetch(itab, 2 * ihash(ref, ishift, itab.shape[0] - 1))
        elif k != K_EXPIRE:
            prefetch(ptab, phash(ev_sku[f] * num_locations + ev_loc[f], pshift))
    h = e + PREFETCH_DISTANCE // 2
    if h < n:
        k = ev_kind[h]
        if k != K_COMMIT and k != K_RELEASE and k != K_EXPIRE:
            entry = ptab[phash(ev_sku[h] * num_locations + ev_loc[h], pshift)]
            if entry != -1:
                prefetch(state, (entry & ((np.int64(1) << pbits) - 1)) * state.shape[1])


# ---------------------------------------------------------------------------
@jit
def apply_batch(
    ev_id: np.ndarray,
    ev_kind: np.ndarray,
    ev_sku: np.ndarray,
    ev_loc: np.ndarray,
    ev_chan: np.ndarray,
    ev_qty: np.ndarray,
    ev_ref: np.ndarray,
    ev_exp: np.ndarray,
    ev_link: np.ndarray,
    start: int,
    num_locations: int,
    nchan: int,
    state: np.ndarray,
    ptab: np.ndarray,
    pshift: int,
    pbits: int,
    itab: np.ndarray,
    ishift: int,
    res_id: np.ndarray,
    res_pos: np.ndarray,
    res_chan: np.ndarray,
    res_state: np.ndarray,
    res_qty: np.ndarray,
    res_open: np.ndarray,
    res_exp: np.ndarray,
    heap_t: np.ndarray,
    heap_s: np.ndarray,
    meta: np.ndarray,
    limits: np.ndarray,
    undo: np.ndarray,
    gslot: np.ndarray,
    out: np.ndarray,
) -> int:
    """Apply events ``start..`` in order; return the index reached.

    Returns ``len(events)`` when done, or the index of the first group that needs
    more room (positions, reservations or ids, per ``limits``); the caller grows the
    tables and calls again from there. Nothing of that group has been applied.
    """
    n = ev_id.shape[0]
    i = start
    rbase = F_CHAN + 2 * nchan
    while i < n:
        j = i
        extra = 1 if ev_kind[i] == K_TRANSFER_OUT else 0  # a transfer may add 2 positions
        while j < n - 1 and ev_link[j]:
            j += 1
            if ev_kind[j] == K_TRANSFER_OUT:
                extra += 1
        glen = j - i + 1
        if (
            meta[M_NPOS] + glen + extra > limits[0]
            or meta[M_NRES] + glen > limits[1]
            or meta[M_NIDS] + glen > limits[2]
        ):
            return i
        if ev_link[j]:  # the batch ended inside a group: the chain is open
            for e in range(i, j + 1):
                out[e] = C_LINKED_FAILED
            out[j] = C_CHAIN_OPEN
            return n
        log = glen > 1
        meta[M_UNDO] = 0
        failed = -1
        for e in range(i, j + 1):
            prefetch_event(
                e,
                n,
                ev_kind,
                ev_sku,
                ev_loc,
                ev_ref,
                num_locations,
                state,
                ptab,
                pshift,
                pbits,
                itab,
                ishift,
            )
            ident = ev_id[e]
            kind = ev_kind[e]
            qty = ev_qty[e]
            fp = fingerprint(kind, ev_sku[e], ev_loc[e], ev_chan[e], qty, ev_ref[e], ev_exp[e])
            s = islot(itab, ishift, ident)
            if itab[s, 0] == ident:  # seen before: first result stands, nothing changes
                v = itab[s, 1]
                code = v & 255
                if ((v >> 8) & 0xFFFFFF) != fp:
                    code = C_EXISTS_DIFFERENT
                out[e] = code | OUT_DUPLICATE
                gslot[e - i] = -1
                if code != C_OK and failed < 0:
                    failed = e
                continue
            code = C_OK
            rslot = -1
            if failed >= 0:
                code = C_LINKED_FAILED
            elif kind == K_EXPIRE:
                now = ev_exp[e]
                while meta[M_HEAP] > 0 and heap_t[0] <= now:
                    rs = heap_pop(heap_t, heap_s, meta)
                    if res_state[rs] == RS_OPEN:
                        state[res_pos[rs], rbase + res_chan[rs]] -= res_open[rs]
                        res_open[rs] = 0
                        res_state[rs] = RS_EXPIRED
                        meta[M_EXPIRED] += 1
            elif kind == K_COMMIT or kind == K_RELEASE:
                ref = ev_ref[e]
                rs = -1
                t = islot(itab, ishift, ref)
                if itab[t, 0] == ref:
                    rs = (itab[t, 1] >> 32) - 1
                if rs < 0 or res_state[rs] == RS_VOID:
                    code = C_RESERVATION_NOT_FOUND
                elif res_state[rs] == RS_COMMITTED:
                    code = C_ALREADY_COMMITTED
                elif res_state[rs] == RS_RELEASED:
                    code = C_ALREADY_RELEASED
                elif res_state[rs] == RS_EXPIRED:
                    code = C_RESERVATION_EXPIRED
                else:
                    pos = res_pos[rs]
                    key = state[pos, F_KEY]
                    if (ev_sku[e] >= 0 and ev_sku[e] != key // num_locations) or (
                        ev_loc[e] >= 0 and ev_loc[e] != key % num_locations
                    ):
                        code = C_MISMATCH
                    else:
                        open_qty = res_open[rs]
                        col = rbase + res_chan[rs]
                        if kind == K_COMMIT:
                            q = open_qty if qty < 0 else qty
                            if q > open_qty:
                                code = C_EXCEEDS_RESERVED
                            elif state[pos, F_ON_HAND] < q:
                                code = C_INSUFFICIENT_ON_HAND
                            else:
                                log_state(log, meta, undo, state, pos, F_ON_HAND)
                                state[pos, F_ON_HAND] -= q
                        if code == C_OK:
                            log_state(log, meta, undo, state, pos, col)
                            log_res(log, meta, undo, 1, rs, res_state[rs])
                            log_res(log, meta, undo, 2, rs, open_qty)
                            state[pos, col] -= open_qty
                            res_open[rs] = 0
                            res_state[rs] = RS_COMMITTED if kind == K_COMMIT else RS_RELEASED
            else:
                key = ev_sku[e] * num_locations + ev_loc[e]
                if kind == K_RECEIVE or kind == K_RETURN or kind == K_RETURN_NONSELLABLE:
                    pos = find_or_create(state, ptab, pshift, pbits, key, meta, nchan)
                    col = F_RETURNS if kind == K_RETURN_NONSELLABLE else F_ON_HAND
                    if state[pos, col] > STOCK_MAX - qty:
                        code = C_OVERFLOW
                    else:
                        log_state(log, meta, undo, state, pos, col)
                        state[pos, col] += qty
                elif kind == K_SALE:
                    pos = pfind(ptab, pshift, pbits, key)
                    if pos < 0 or state[pos, F_ON_HAND] < qty:
                        code = C_INSUFFICIENT_ON_HAND
                    else:
                        log_state(log, meta, undo, state, pos, F_ON_HAND)
                        state[pos, F_ON_HAND] -= qty
                        if state[pos, F_ON_HAND] < reserved_total(state, pos, nchan):
                            out[e] |= OUT_SHORTFALL
                elif kind == K_RESERVE:
                    pos = pfind(ptab, pshift, pbits, key)
                    c = ev_chan[e]
                    if pos < 0:
                        code = C_INSUFFICIENT_AVAILABLE
                    else:
                        shared, cap_room = available_parts(state, pos, c, nchan)
                        if qty > shared:
                            code = C_INSUFFICIENT_AVAILABLE
                        elif qty > cap_room:
                            code = C_EXCEEDS_CHANNEL_CAP
                        else:
                            log_state(log, meta, undo, state, pos, rbase + c)
                            state[pos, rbase + c] += qty
                            rslot = meta[M_NRES]
                            meta[M_NRES] = rslot + 1
                            res_id[rslot] = ident
                            res_pos[rslot] = pos
                            res_chan[rslot] = c
                            res_state[rslot] = RS_OPEN
                            res_qty[rslot] = qty
                            res_open[rslot] = qty
                            res_exp[rslot] = ev_exp[e]
                            log_res(log, meta, undo, 3, rslot, 0)
                            if ev_exp[e] != NO_EXPIRY:
                                heap_push(heap_t, heap_s, meta, ev_exp[e], rslot)
                elif kind == K_TRANSFER_OUT:
                    pos = pfind(ptab, pshift, pbits, key)
                    if pos < 0 or state[pos, F_ON_HAND] - reserved_total(state, pos, nchan) < qty:
                        code = C_INSUFFICIENT_FREE_STOCK
                    else:
                        dest = find_or_create(
                            state,
                            ptab,
                            pshift,
                            pbits,
                            ev_sku[e] * num_locations + ev_ref[e],
                            meta,
                            nchan,
                        )
                        if state[dest, F_IN_TRANSIT] > STOCK_MAX - qty:
                            code = C_OVERFLOW
                        else:
                            log_state(log, meta, undo, state, pos, F_ON_HAND)
                            log_state(log, meta, undo, state, dest, F_IN_TRANSIT)
                            state[pos, F_ON_HAND] -= qty
                            state[dest, F_IN_TRANSIT] += qty
                elif kind == K_TRANSFER_IN:
                    pos = pfind(ptab, pshift, pbits, key)
                    if pos < 0 or state[pos, F_IN_TRANSIT] < qty:
                        code = C_EXCEEDS_IN_TRANSIT
                    elif state[pos, F_ON_HAND] > STOCK_MAX - qty:
                        code = C_OVERFLOW
                    else:
                        log_state(log, meta, undo, state, pos, F_IN_TRANSIT)
                        log_state(log, meta, undo, state, pos, F_ON_HAND)
                        state[pos, F_IN_TRANSIT] -= qty
                        state[pos, F_ON_HAND] += qty
                else:  # adjust and the set_* policies
                    pos = find_or_create(state, ptab, pshift, pbits, key, meta, nchan)
                    if kind == K_ADJUST:
                        col = F_ON_HAND
                    elif kind == K_SET_SAFETY:
                        col = F_SAFETY
                    elif kind == K_SET_FENCE:
                        col = F_CHAN + ev_chan[e]
                    else:
                        col = F_CHAN + nchan + ev_chan[e]
                        if qty < 0:
                            qty = STOCK_MAX
                    log_state(log, meta, undo, state, pos, col)
                    state[pos, col] = qty
                    if kind == K_ADJUST and qty < reserved_total(state, pos, nchan):
                        out[e] |= OUT_SHORTFALL
            if code != C_OK and failed < 0:
                failed = e
            itab[s, 0] = ident
            itab[s, 1] = code | (fp << 8) | ((rslot + 1) << 32)
            meta[M_NIDS] += 1
            gslot[e - i] = s
            out[e] |= code
        if failed >= 0 and log:
            rollback(meta, undo, state, res_state, res_open)
            for e in range(i, failed):
                s = gslot[e - i]
                if s >= 0:
                    itab[s, 1] = (itab[s, 1] & 0xFFFFFF00) | C_LINKED_FAILED
                    out[e] = C_LINKED_FAILED
        i = j + 1
    return n


# ---------------------------------------------------------------------------
# table maintenance and read-side helpers
@jit
def rehash_positions(old: np.ndarray, new: np.ndarray, pshift: int, pbits: int) -> None:
    for e in old:
        if e != -1:
            new[pslot(new, pshift, pbits, e >> pbits)] = e


@jit
def rehash_ids(old: np.ndarray, new: np.ndarray, ishift: int) -> None:
    for h in range(old.shape[0]):
        k = old[h, 0]
        if k != 0:
            s = islot(new, ishift, k)
            new[s, 0] = k
            new[s, 1] = old[h, 1]


@jit
def lookup_positions(
    ptab: np.ndarray, pshift: int, pbits: int, keys: np.ndarray, out: np.ndarray
) -> None:
    for i in range(keys.shape[0]):
        out[i] = pfind(ptab, pshift, pbits, keys[i])


@jit
def available_many(
    state: np.ndarray,
    ptab: np.ndarray,
    pshift: int,
    pbits: int,
    keys: np.ndarray,
    chan: np.ndarray,
    nchan: int,
    out: np.ndarray,
) -> None:
    """available(c) per query; 0 for positions never touched."""
    for i in range(keys.shape[0]):
        pos = pfind(ptab, pshift, pbits, keys[i])
        if pos < 0:
            out[i] = 0
            continue
        shared, cap_room = available_parts(state, pos, chan[i], nchan)
        a = shared if shared < cap_room else cap_room
        out[i] = a if a > 0 else 0


@jit
def available_all(state: np.ndarray, npos: int, nchan: int, out: np.ndarray) -> None:
    """available(c) for every position and channel into ``out[npos, nchan]``."""
    for pos in range(npos):
        for c in range(nchan):
            shared, cap_room = available_parts(state, pos, c, nchan)
            a = shared if shared < cap_room else cap_room
            out[pos, c] = a if a > 0 else 0


@jit
def lookup_ids(itab: np.ndarray, ishift: int, ids: np.ndarray, out: np.ndarray) -> None:
    """Packed id-index value per id, or -1 when the id was never seen."""
    for i in range(ids.shape[0]):
        s = islot(itab, ishift, ids[i])
        out[i] = itab[s, 1] if itab[s, 0] == ids[i] else -1


@jit
def reservations_at_risk(
    res_id: np.ndarray,
    res_pos: np.ndarray,
    res_state: np.ndarray,
    res_open: np.ndarray,
    lo: int,
    nres: int,
    short_pos: np.ndarray,
    shortage: np.ndarray,
    is_short: np.ndarray,
    out_id: np.ndarray,
    out_row: np.ndarray,
) -> int:
    """Open reservations covering each shortage, newest first; returns how many.

    ``short_pos`` is sorted and ``is_short`` marks the same positions; every
    reservation below slot ``lo`` is closed. Walks from
    the newest and stops as soon as every shortage is covered, so the cost is bounded
    by the window of reservations that may still be open.
    """
    remaining = shortage.copy()
    left = 0
    for g in range(remaining.shape[0]):
        if remaining[g] > 0:
            left += 1
    k = 0
    s = nres - 1
    while s >= lo and left > 0:
        if res_state[s] == RS_OPEN and is_short[res_pos[s]]:
            g = np.searchsorted(short_pos, res_pos[s])
            if g < short_pos.shape[0] and short_pos[g] == res_pos[s] and remaining[g] > 0:
                out_id[k] = res_id[s]
                out_row[k] = g
                k += 1
                remaining[g] -= res_open[s]
                if remaining[g] <= 0:
                    left -= 1
        s -= 1
    return k


@jit
def first_open(res_state: np.ndarray, lo: int, nres: int) -> int:
    """The lowest slot at or above ``lo`` that is still open (``nres`` if none)."""
    while lo < nres and res_state[lo] != RS_OPEN:
        lo += 1
    return lo


@jit
def scatter_add(on_hand: np.ndarray, pos: np.ndarray, qty: np.ndarray) -> int:
    """Raw unchecked ``on_hand[pos] += qty``: the memory-bound ceiling for benchmarks."""
    for i in range(pos.shape[0]):
        on_hand[pos[i]] += qty[i]
    return pos.shape[0]
