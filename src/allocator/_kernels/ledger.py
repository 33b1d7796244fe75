"""The ledger's apply kernels, their validation pass and the hash tables.

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
* ``res``: ``(capacity, 8)`` int64, one row (one cache line) per reservation slot:
  id, position row, channel, state, qty, open qty, expires_at.
* ``heap``: ``(capacity, 2)`` binary min-heap of ``(expires_at, slot)`` for the
  reservations that expire.
* ``meta``: counters, table limits and table parameters (``M_*`` slots), so that a
  kernel call passes six arrays and the event's scalars, nothing else.

:func:`apply_event` holds the rules of every event kind. :func:`apply_batch` runs it
over a batch with all-or-nothing linked groups; :func:`apply_one` runs it for one
event (the scalar path of ``Ledger.reserve`` and friends). Both reach the same rules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from allocator._kernels import jit
from allocator._kernels.atp import atp, shared_room, unused_fence
from allocator._kernels.intrinsics import prefetch

# -- row layout -------------------------------------------------------------
F_KEY = 0
F_ON_HAND = 1
F_IN_TRANSIT = 2
F_SAFETY = 3
F_RETURNS = 4
F_CHAN = 5  # fence[c] at F_CHAN + c, cap[c] at F_CHAN + C + c, reserved[c] at F_CHAN + 2C + c

# -- reservation row layout -------------------------------------------------
R_ID = 0
R_POS = 1
R_CHAN = 2
R_STATE = 3
R_QTY = 4
R_OPEN = 5
R_EXP = 6
R_COLS = 8  # padded to one 64-byte cache line

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
M_LIM_POS = 6  # most positions before the tables must grow
M_LIM_RES = 7
M_LIM_IDS = 8
M_PSHIFT = 9
M_PBITS = 10
M_ISHIFT = 11
M_NLOC = 12
M_NCHAN = 13
M_NSKU = 14
M_QTY_MAX = 15  # the largest quantity one event may carry
META_SIZE = 16

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
#: ``apply_one`` result meaning "grow the tables and call again" (nothing applied).
NEED_ROOM = -1

_MULT = np.uint64(0x9E3779B97F4A7C15)
_MULT2 = np.uint64(0xBF58476D1CE4E5B9)

# Event kinds and result codes. These plain ints are the one definition of the
# numbers (numba freezes module globals as constants); ``allocator.events`` names
# them as the public ``EventKind`` and ``ResultCode`` enums.
K_RECEIVE = 0
K_SALE = 1
K_RESERVE = 2
K_COMMIT = 3
K_RELEASE = 4
K_EXPIRE = 5
K_TRANSFER_OUT = 6
K_TRANSFER_IN = 7
K_RETURN = 8
K_RETURN_NONSELLABLE = 9
K_ADJUST = 10
K_SET_FENCE = 11
K_SET_CAP = 12
K_SET_SAFETY = 13
NUM_KINDS = 14

C_OK = 0
C_INSUFFICIENT_ON_HAND = 1
C_INSUFFICIENT_AVAILABLE = 2
C_EXCEEDS_CHANNEL_CAP = 3
C_INSUFFICIENT_FREE_STOCK = 4
C_RESERVATION_NOT_FOUND = 5
C_ALREADY_COMMITTED = 6
C_ALREADY_RELEASED = 7
C_RESERVATION_EXPIRED = 8
C_EXCEEDS_RESERVED = 9
C_MISMATCH = 10
C_EXCEEDS_IN_TRANSIT = 11
C_OVERFLOW = 12
C_EXISTS_DIFFERENT = 13
C_LINKED_FAILED = 14
C_CHAIN_OPEN = 15


# ---------------------------------------------------------------------------
# hashing
@jit(_nrt=False)
def phash(key: int, pshift: int) -> Any:
    return np.int64((np.uint64(key) * _MULT) >> np.uint64(pshift))


@jit(_nrt=False)
def pslot(ptab: np.ndarray, pshift: int, pbits: int, key: int) -> int:
    """Slot holding ``key`` or the empty slot where it would go."""
    mask = ptab.shape[0] - 1
    h = phash(key, pshift)
    while True:
        e = ptab[h]
        if e == -1 or (e >> pbits) == key:
            return h
        h = (h + 1) & mask


@jit(_nrt=False)
def pfind(ptab: np.ndarray, pshift: int, pbits: int, key: int) -> int:
    """Row index of ``key`` or -1."""
    e = ptab[pslot(ptab, pshift, pbits, key)]
    if e == -1:
        return -1
    return e & ((np.int64(1) << pbits) - 1)


#: log2 of the run of consecutive ids kept together in the id index.
ID_RUN_BITS = 6
_RUN_MASK = (1 << ID_RUN_BITS) - 1


@jit(_nrt=False)
def ihash(ident: int, ishift: int, mask: int) -> Any:
    blk = (np.uint64(ident >> ID_RUN_BITS) * _MULT) >> np.uint64(ishift)
    return np.int64((blk << np.uint64(ID_RUN_BITS)) | np.uint64(ident & _RUN_MASK)) & mask


@jit(_nrt=False)
def islot(itab: np.ndarray, ishift: int, ident: int) -> int:
    """Slot holding ``ident`` or the empty slot where it would go."""
    mask = itab.shape[0] - 1
    h = ihash(ident, ishift, mask)
    while True:
        k = itab[h, 0]
        if k == 0 or k == ident:
            return h
        h = (h + 1) & mask


@jit(_nrt=False)
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
@jit(_nrt=False)
def find_or_create(state: np.ndarray, ptab: np.ndarray, meta: np.ndarray, key: int) -> int:
    pbits = meta[M_PBITS]
    slot = pslot(ptab, meta[M_PSHIFT], pbits, key)
    e = ptab[slot]
    if e != -1:
        return e & ((np.int64(1) << pbits) - 1)
    nchan = meta[M_NCHAN]
    pos = meta[M_NPOS]
    meta[M_NPOS] = pos + 1
    ptab[slot] = (key << pbits) | pos
    for f in range(state.shape[1]):
        state[pos, f] = 0
    state[pos, F_KEY] = key
    for c in range(nchan):
        state[pos, F_CHAN + nchan + c] = STOCK_MAX
    return pos


@jit(_nrt=False)
def position_parts(state: np.ndarray, pos: int, c: int, nchan: int) -> tuple[int, int, int, int]:
    """``(free, unused_total, unused_c, cap_room)`` of channel ``c`` at row ``pos``."""
    rbase = F_CHAN + 2 * nchan
    reserved = 0
    unused_total = 0
    for cc in range(nchan):
        r = state[pos, rbase + cc]
        reserved += r
        unused_total += unused_fence(state[pos, F_CHAN + cc], r)
    free = state[pos, F_ON_HAND] - reserved - state[pos, F_SAFETY]
    unused_c = unused_fence(state[pos, F_CHAN + c], state[pos, rbase + c])
    cap_room = state[pos, F_CHAN + nchan + c] - state[pos, rbase + c]
    return free, unused_total, unused_c, cap_room


@jit(_nrt=False)
def position_available(state: np.ndarray, pos: int, c: int, nchan: int) -> Any:
    """``available(c)`` at position row ``pos`` (the formula of ``_kernels/atp.py``)."""
    free, unused_total, unused_c, cap_room = position_parts(state, pos, c, nchan)
    return atp(free, unused_total, unused_c, cap_room)


@jit(_nrt=False)
def reserved_total(state: np.ndarray, pos: int, nchan: int) -> int:
    total = 0
    for c in range(nchan):
        total += state[pos, F_CHAN + 2 * nchan + c]
    return total


# ---------------------------------------------------------------------------
# undo log (only used inside linked groups): rows (what, index, column, old value)
U_STATE = 0  # state[index, column] = old
U_RES = 1  # res[index, column] = old
U_CREATED = 2  # reservation slot ``index`` was created in this group: void it


@jit(_nrt=False, inline="always")  # called with literal constants: one copy per site
def log_undo(
    log: bool, meta: np.ndarray, undo: np.ndarray, what: int, index: int, col: int, old: int
) -> None:
    if log:
        u = meta[M_UNDO]
        undo[u, 0] = what
        undo[u, 1] = index
        undo[u, 2] = col
        undo[u, 3] = old
        meta[M_UNDO] = u + 1


@jit(_nrt=False)
def rollback(meta: np.ndarray, undo: np.ndarray, state: np.ndarray, res: np.ndarray) -> None:
    u = meta[M_UNDO] - 1
    while u >= 0:
        what = undo[u, 0]
        if what == U_STATE:
            state[undo[u, 1], undo[u, 2]] = undo[u, 3]
        elif what == U_RES:
            res[undo[u, 1], undo[u, 2]] = undo[u, 3]
        else:
            res[undo[u, 1], R_STATE] = RS_VOID
        u -= 1
    meta[M_UNDO] = 0


# ---------------------------------------------------------------------------
# expiry heap of (expires_at, slot)
@jit(_nrt=False)
def heap_push(heap: np.ndarray, meta: np.ndarray, t: int, s: int) -> None:
    i = meta[M_HEAP]
    meta[M_HEAP] = i + 1
    while i > 0:
        p = (i - 1) >> 1
        if heap[p, 0] < t or (heap[p, 0] == t and heap[p, 1] < s):
            break
        heap[i, 0] = heap[p, 0]
        heap[i, 1] = heap[p, 1]
        i = p
    heap[i, 0] = t
    heap[i, 1] = s


@jit(_nrt=False)
def heap_pop(heap: np.ndarray, meta: np.ndarray) -> int:
    top = heap[0, 1]
    n = meta[M_HEAP] - 1
    meta[M_HEAP] = n
    t = heap[n, 0]
    s = heap[n, 1]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and (
            heap[child + 1, 0] < heap[child, 0]
            or (heap[child + 1, 0] == heap[child, 0] and heap[child + 1, 1] < heap[child, 1])
        ):
            child += 1
        if heap[child, 0] > t or (heap[child, 0] == t and heap[child, 1] > s):
            break
        heap[i, 0] = heap[child, 0]
        heap[i, 1] = heap[child, 1]
        i = child
    heap[i, 0] = t
    heap[i, 1] = s
    return top


# ---------------------------------------------------------------------------
# the rules of every event kind
@jit(_nrt=False)
def apply_event(
    state: np.ndarray,
    ptab: np.ndarray,
    itab: np.ndarray,
    res: np.ndarray,
    heap: np.ndarray,
    meta: np.ndarray,
    undo: np.ndarray,
    log: bool,
    skip: bool,
    ident: int,
    kind: int,
    sku: int,
    loc: int,
    chan: int,
    qty: int,
    ref: int,
    exp: int,
) -> tuple[int, int]:
    """Apply one event; return ``(out, id_slot)``.

    ``out`` is the result code with the ``OUT_DUPLICATE`` / ``OUT_SHORTFALL`` bits;
    ``id_slot`` is the id-index slot the event was recorded in (-1 for a duplicate,
    which changes nothing). ``skip`` records the event as ``linked_event_failed``
    without applying it (a later member of a group that already failed). ``log``
    writes undo entries (members of a linked group). The caller guarantees room for
    two more positions, one reservation and one id (``meta`` limits).
    """
    fp = fingerprint(kind, sku, loc, chan, qty, ref, exp)
    ishift = meta[M_ISHIFT]
    s = islot(itab, ishift, ident)
    if itab[s, 0] == ident:  # seen before: the first result stands, nothing changes
        v = itab[s, 1]
        code = v & 255
        if ((v >> 8) & 0xFFFFFF) != fp:
            code = C_EXISTS_DIFFERENT
        return code | OUT_DUPLICATE, -1
    nchan = meta[M_NCHAN]
    nloc = meta[M_NLOC]
    rbase = F_CHAN + 2 * nchan
    code = C_OK
    flags = 0
    rslot = -1
    if skip:
        code = C_LINKED_FAILED
    elif kind == K_EXPIRE:
        while meta[M_HEAP] > 0 and heap[0, 0] <= exp:
            rs = heap_pop(heap, meta)
            if res[rs, R_STATE] == RS_OPEN:
                state[res[rs, R_POS], rbase + res[rs, R_CHAN]] -= res[rs, R_OPEN]
                res[rs, R_OPEN] = 0
                res[rs, R_STATE] = RS_EXPIRED
                meta[M_EXPIRED] += 1
    elif kind == K_COMMIT or kind == K_RELEASE:
        rs = -1
        t = islot(itab, ishift, ref)
        if itab[t, 0] == ref:
            rs = (itab[t, 1] >> 32) - 1
        if rs < 0 or res[rs, R_STATE] == RS_VOID:
            code = C_RESERVATION_NOT_FOUND
        elif res[rs, R_STATE] == RS_COMMITTED:
            code = C_ALREADY_COMMITTED
        elif res[rs, R_STATE] == RS_RELEASED:
            code = C_ALREADY_RELEASED
        elif res[rs, R_STATE] == RS_EXPIRED:
            code = C_RESERVATION_EXPIRED
        else:
            pos = res[rs, R_POS]
            key = state[pos, F_KEY]
            if (sku >= 0 and sku != key // nloc) or (loc >= 0 and loc != key % nloc):
                code = C_MISMATCH
            else:
                open_qty = res[rs, R_OPEN]
                col = rbase + res[rs, R_CHAN]
                if kind == K_COMMIT:
                    q = open_qty if qty < 0 else qty
                    if q > open_qty:
                        code = C_EXCEEDS_RESERVED
                    elif state[pos, F_ON_HAND] < q:
                        code = C_INSUFFICIENT_ON_HAND
                    else:
                        log_undo(log, meta, undo, U_STATE, pos, F_ON_HAND, state[pos, F_ON_HAND])
                        state[pos, F_ON_HAND] -= q
                if code == C_OK:
                    log_undo(log, meta, undo, U_STATE, pos, col, state[pos, col])
                    log_undo(log, meta, undo, U_RES, rs, R_STATE, res[rs, R_STATE])
                    log_undo(log, meta, undo, U_RES, rs, R_OPEN, open_qty)
                    state[pos, col] -= open_qty
                    res[rs, R_OPEN] = 0
                    res[rs, R_STATE] = RS_COMMITTED if kind == K_COMMIT else RS_RELEASED
    else:
        key = sku * nloc + loc
        pshift = meta[M_PSHIFT]
        pbits = meta[M_PBITS]
        if kind == K_RECEIVE or kind == K_RETURN or kind == K_RETURN_NONSELLABLE:
            pos = find_or_create(state, ptab, meta, key)
            col = F_RETURNS if kind == K_RETURN_NONSELLABLE else F_ON_HAND
            if state[pos, col] > STOCK_MAX - qty:
                code = C_OVERFLOW
            else:
                log_undo(log, meta, undo, U_STATE, pos, col, state[pos, col])
                state[pos, col] += qty
        elif kind == K_SALE:
            pos = pfind(ptab, pshift, pbits, key)
            if pos < 0 or state[pos, F_ON_HAND] < qty:
                code = C_INSUFFICIENT_ON_HAND
            else:
                log_undo(log, meta, undo, U_STATE, pos, F_ON_HAND, state[pos, F_ON_HAND])
                state[pos, F_ON_HAND] -= qty
                if state[pos, F_ON_HAND] < reserved_total(state, pos, nchan):
                    flags = OUT_SHORTFALL
        elif kind == K_RESERVE:
            pos = pfind(ptab, pshift, pbits, key)
            if pos < 0:
                code = C_INSUFFICIENT_AVAILABLE
            else:
                free, unused_total, unused_c, cap_room = position_parts(state, pos, chan, nchan)
                if qty > shared_room(free, unused_total, unused_c):
                    code = C_INSUFFICIENT_AVAILABLE
                elif qty > cap_room:
                    code = C_EXCEEDS_CHANNEL_CAP
                else:
                    col = rbase + chan
                    log_undo(log, meta, undo, U_STATE, pos, col, state[pos, col])
                    state[pos, col] += qty
                    rslot = meta[M_NRES]
                    meta[M_NRES] = rslot + 1
                    res[rslot, R_ID] = ident
                    res[rslot, R_POS] = pos
                    res[rslot, R_CHAN] = chan
                    res[rslot, R_STATE] = RS_OPEN
                    res[rslot, R_QTY] = qty
                    res[rslot, R_OPEN] = qty
                    res[rslot, R_EXP] = exp
                    log_undo(log, meta, undo, U_CREATED, rslot, 0, 0)
                    if exp != NO_EXPIRY:
                        heap_push(heap, meta, exp, rslot)
        elif kind == K_TRANSFER_OUT:
            pos = pfind(ptab, pshift, pbits, key)
            if pos < 0 or state[pos, F_ON_HAND] - reserved_total(state, pos, nchan) < qty:
                code = C_INSUFFICIENT_FREE_STOCK
            else:
                dest = find_or_create(state, ptab, meta, sku * nloc + ref)
                if state[dest, F_IN_TRANSIT] > STOCK_MAX - qty:
                    code = C_OVERFLOW
                else:
                    log_undo(log, meta, undo, U_STATE, pos, F_ON_HAND, state[pos, F_ON_HAND])
                    log_undo(
                        log, meta, undo, U_STATE, dest, F_IN_TRANSIT, state[dest, F_IN_TRANSIT]
                    )
                    state[pos, F_ON_HAND] -= qty
                    state[dest, F_IN_TRANSIT] += qty
        elif kind == K_TRANSFER_IN:
            pos = pfind(ptab, pshift, pbits, key)
            if pos < 0 or state[pos, F_IN_TRANSIT] < qty:
                code = C_EXCEEDS_IN_TRANSIT
            elif state[pos, F_ON_HAND] > STOCK_MAX - qty:
                code = C_OVERFLOW
            else:
                log_undo(log, meta, undo, U_STATE, pos, F_IN_TRANSIT, state[pos, F_IN_TRANSIT])
                log_undo(log, meta, undo, U_STATE, pos, F_ON_HAND, state[pos, F_ON_HAND])
                state[pos, F_IN_TRANSIT] -= qty
                state[pos, F_ON_HAND] += qty
        else:  # adjust and the set_* policies
            pos = find_or_create(state, ptab, meta, key)
            if kind == K_ADJUST:
                col = F_ON_HAND
            elif kind == K_SET_SAFETY:
                col = F_SAFETY
            elif kind == K_SET_FENCE:
                col = F_CHAN + chan
            else:
                col = F_CHAN + nchan + chan
                if qty < 0:
                    qty = STOCK_MAX
            log_undo(log, meta, undo, U_STATE, pos, col, state[pos, col])
            state[pos, col] = qty
            if kind == K_ADJUST and qty < reserved_total(state, pos, nchan):
                flags = OUT_SHORTFALL
    itab[s, 0] = ident
    itab[s, 1] = code | (fp << 8) | ((rslot + 1) << 32)
    meta[M_NIDS] += 1
    return code | flags, s


# ---------------------------------------------------------------------------
@jit(_nrt=False)
def room_for(meta: np.ndarray, positions: int, reservations: int, ids: int) -> bool:
    """True when the tables hold ``positions``, ``reservations`` and ``ids`` more."""
    return (
        meta[M_NPOS] + positions <= meta[M_LIM_POS]
        and meta[M_NRES] + reservations <= meta[M_LIM_RES]
        and meta[M_NIDS] + ids <= meta[M_LIM_IDS]
    )


@jit(_nrt=False)
def apply_one(
    state: np.ndarray,
    ptab: np.ndarray,
    itab: np.ndarray,
    res: np.ndarray,
    heap: np.ndarray,
    meta: np.ndarray,
    undo: np.ndarray,
    ident: int,
    kind: int,
    sku: int,
    loc: int,
    chan: int,
    qty: int,
    ref: int,
    exp: int,
) -> int:
    """Check and apply one event (a group of its own).

    Returns the event's ``out`` value, ``NEED_ROOM`` when the tables are full, or
    ``-100 - reason`` when the event breaks a rule of :func:`check_event` (nothing
    is applied in either case).
    """
    reason = check_one(kind, sku, loc, chan, qty, ref, exp, meta)
    if reason != V_OK:
        return -100 - reason
    # typed values, not literals, so that each callee compiles one version for both paths
    one = np.int64(1)
    if not room_for(meta, np.int64(2), one, one):
        return NEED_ROOM
    no = np.bool_(False)
    out, _ = apply_event(
        state, ptab, itab, res, heap, meta, undo, no, no, ident, kind, sku, loc, chan, qty,
        ref, exp,
    )  # fmt: skip
    return out


#: How many events ahead the batch loop prefetches table slots (rows: half as far).
PREFETCH_DISTANCE = 16


@jit(_nrt=False)
def prefetch_event(
    e: int,
    n: int,
    ev_kind: np.ndarray,
    ev_sku: np.ndarray,
    ev_loc: np.ndarray,
    ev_ref: np.ndarray,
    state: np.ndarray,
    ptab: np.ndarray,
    itab: np.ndarray,
    meta: np.ndarray,
) -> None:
    """Start the cache misses of later events early (memory-level parallelism).

    Event ``e + D``: its position-table slot (or, for commit/release, the id-index
    slot of its reservation). Event ``e + D/2``: its state row, found through the
    slot fetched D/2 events ago. Pure hints; results do not depend on them.
    """
    nloc = meta[M_NLOC]
    pshift = meta[M_PSHIFT]
    f = e + PREFETCH_DISTANCE
    if f < n:
        k = ev_kind[f]
        if k == K_COMMIT or k == K_RELEASE:
            prefetch(itab, 2 * ihash(ev_ref[f], meta[M_ISHIFT], itab.shape[0] - 1))
        elif k != K_EXPIRE:
            prefetch(ptab, phash(ev_sku[f] * nloc + ev_loc[f], pshift))
    h = e + PREFETCH_DISTANCE // 2
    if h < n:
        k = ev_kind[h]
        if k != K_COMMIT and k != K_RELEASE and k != K_EXPIRE:
            entry = ptab[phash(ev_sku[h] * nloc + ev_loc[h], pshift)]
            if entry != -1:
                row = entry & ((np.int64(1) << meta[M_PBITS]) - 1)
                prefetch(state, row * state.shape[1])


@jit(_nrt=False)
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
    state: np.ndarray,
    ptab: np.ndarray,
    itab: np.ndarray,
    res: np.ndarray,
    heap: np.ndarray,
    meta: np.ndarray,
    undo: np.ndarray,
    gslot: np.ndarray,
    out: np.ndarray,
) -> int:
    """Apply validated events ``start..`` in order; return the index reached.

    The batch holds closed groups only (the caller strips an open chain at its end).
    Returns ``len(events)`` when done, or the index of the first group that needs
    more room (positions, reservations or ids); the caller grows the tables and calls
    again from there. Nothing of that group has been applied.

    In a group that fails, every member but the failing one reports
    ``linked_event_failed`` (duplicates keep their duplicate bit), and the ids first
    recorded in the group are recorded with that code.
    """
    n = ev_id.shape[0]
    i = start
    end = start  # single events before ``end`` surely fit (see below)
    g_start = 0
    g_end = -1  # last member of the group being applied, or -1 between groups
    log = False
    failed = -1
    while i < n:
        if g_end < 0 and (ev_link[i] or i >= end):
            if not ev_link[i]:
                # a run of single events that surely fits: each needs at most two
                # positions, one reservation and one id, so only its length is checked
                fits = min(
                    (meta[M_LIM_POS] - meta[M_NPOS]) // 2,
                    meta[M_LIM_RES] - meta[M_NRES],
                    meta[M_LIM_IDS] - meta[M_NIDS],
                )
                end = min(n, i + fits)
            if ev_link[i] or i >= end:
                # a linked group (or a single event without a sure fit): check its room
                j = i
                extra = 1 if ev_kind[i] == K_TRANSFER_OUT else 0  # a transfer adds 2
                while j < n - 1 and ev_link[j]:
                    j += 1
                    if ev_kind[j] == K_TRANSFER_OUT:
                        extra += 1
                glen = j - i + 1
                if not room_for(meta, glen + extra, glen, glen):
                    return i
                g_start = i
                g_end = j
                log = glen > 1
                meta[M_UNDO] = 0
                failed = -1
        # the one call site of apply_event, so that it is compiled into this loop
        prefetch_event(i, n, ev_kind, ev_sku, ev_loc, ev_ref, state, ptab, itab, meta)
        o, s = apply_event(
            state, ptab, itab, res, heap, meta, undo, log, failed >= 0, ev_id[i], ev_kind[i],
            ev_sku[i], ev_loc[i], ev_chan[i], ev_qty[i], ev_ref[i], ev_exp[i],
        )  # fmt: skip
        out[i] = o
        if g_end >= 0:
            gslot[i - g_start] = s
            if failed < 0 and (o & OUT_CODE) != C_OK:
                failed = i
            if i == g_end:
                if failed >= 0 and log:
                    rollback(meta, undo, state, res)
                    for e in range(g_start, g_end + 1):
                        if e == failed:
                            continue
                        out[e] = C_LINKED_FAILED | (out[e] & OUT_DUPLICATE)
                        t = gslot[e - g_start]
                        if t >= 0:
                            itab[t, 1] = (itab[t, 1] & ~np.int64(255)) | C_LINKED_FAILED
                g_end = -1
                log = False
                failed = -1
                end = i + 1  # the limits moved: the next single event checks its run again
        i += 1
    return n


# ---------------------------------------------------------------------------
# validation: one pass over a batch, before anything changes
#: Reasons :func:`check_batch` reports (the caller turns them into messages).
V_OK = 0
V_KIND = 1
V_QTY_POSITIVE = 2
V_QTY_RANGE = 3
V_QTY_NONNEG = 4
V_CAP_RANGE = 5
V_COMMIT_QTY = 6
V_REF_MISSING = 7
V_SAME_LOCATION = 8
V_EXPIRE_LINKED = 9
V_EXPIRES_NEGATIVE = 10
V_SKU = 11
V_LOCATION = 12
V_CHANNEL = 13
V_DESTINATION = 14


@jit(_nrt=False)
def check_event(
    k: int,
    sku: int,
    loc: int,
    chan: int,
    q: int,
    ref: int,
    exp: int,
    in_group: bool,
    qty_max: int,
    num_skus: int,
    num_locations: int,
    num_channels: int,
) -> int:
    """The ``V_*`` reason why one event is invalid, or ``V_OK``.

    Structure rules always; index rules against a network when ``num_skus >= 0``.
    ``in_group`` tells whether the event is a member of a linked group.
    """
    if k < 0 or k >= NUM_KINDS:
        return V_KIND
    positional = k != K_COMMIT and k != K_RELEASE and k != K_EXPIRE
    if (
        k == K_RECEIVE
        or k == K_SALE
        or k == K_RESERVE
        or k == K_TRANSFER_OUT
        or k == K_TRANSFER_IN
        or k == K_RETURN
        or k == K_RETURN_NONSELLABLE
    ):
        if q <= 0:
            return V_QTY_POSITIVE
        if q > qty_max:
            return V_QTY_RANGE
    elif k == K_ADJUST or k == K_SET_FENCE or k == K_SET_SAFETY:
        if q < 0 or q > qty_max:
            return V_QTY_NONNEG
    elif k == K_SET_CAP:
        if q < -1 or q > qty_max:
            return V_CAP_RANGE
    elif k == K_COMMIT:
        if q == 0 or q < -1 or q > qty_max:
            return V_COMMIT_QTY
    if (k == K_COMMIT or k == K_RELEASE) and ref == 0:
        return V_REF_MISSING
    if k == K_TRANSFER_OUT and ref == loc:
        return V_SAME_LOCATION
    if k == K_EXPIRE and in_group:
        return V_EXPIRE_LINKED
    if k == K_RESERVE and exp < 0:
        return V_EXPIRES_NEGATIVE
    if sku < -1:
        return V_SKU
    if loc < -1:
        return V_LOCATION
    if chan < -1:
        return V_CHANNEL
    if num_skus >= 0:
        if sku >= num_skus or (positional and sku < 0):
            return V_SKU
        if loc >= num_locations or (positional and loc < 0):
            return V_LOCATION
        needs_channel = k == K_RESERVE or k == K_SET_FENCE or k == K_SET_CAP
        if chan >= num_channels or (needs_channel and chan < 0):
            return V_CHANNEL
        if k == K_TRANSFER_OUT and (ref < 0 or ref >= num_locations):
            return V_DESTINATION
    return V_OK


@jit(_nrt=False)
def check_batch(
    kind: np.ndarray,
    sku: np.ndarray,
    loc: np.ndarray,
    chan: np.ndarray,
    qty: np.ndarray,
    ref: np.ndarray,
    exp: np.ndarray,
    link: np.ndarray,
    qty_max: int,
    num_skus: int,
    num_locations: int,
    num_channels: int,
) -> tuple[int, int]:
    """``(row, reason)`` of the first invalid event, or ``(-1, V_OK)``.

    Pass ``num_skus = -1`` to check the structure rules only.
    """
    prev_link = False
    for e in range(kind.shape[0]):
        in_group = link[e] or prev_link
        prev_link = link[e]
        reason = check_event(
            kind[e], sku[e], loc[e], chan[e], qty[e], ref[e], exp[e], in_group, qty_max,
            num_skus, num_locations, num_channels,
        )  # fmt: skip
        if reason != V_OK:
            return e, reason
    return -1, V_OK


@jit(_nrt=False)
def check_one(
    kind: int, sku: int, loc: int, chan: int, qty: int, ref: int, exp: int, meta: np.ndarray
) -> int:
    """:func:`check_event` for one unlinked event against the ledger's network."""
    return check_event(
        kind, sku, loc, chan, qty, ref, exp, np.bool_(False), meta[M_QTY_MAX], meta[M_NSKU],
        meta[M_NLOC], meta[M_NCHAN],
    )  # fmt: skip


@jit(_nrt=False)
def assign_ids(ids: np.ndarray, next_auto: int, out: np.ndarray) -> tuple[int, int]:
    """Copy ``ids`` into ``out`` giving each 0 the next ledger id (counting down).

    Returns ``(first row whose negative id the ledger never assigned or -1, ids
    assigned)``; ``out`` is only complete when the row is -1.
    """
    a = next_auto
    for e in range(ids.shape[0]):
        v = ids[e]
        if v == 0:
            out[e] = a
            a -= 1
        elif v <= next_auto:
            return e, 0
        else:
            out[e] = v
    return -1, next_auto - a


#: Undo entries each kind writes inside a linked group (see apply_event).
_UNDO = (1, 1, 2, 4, 3, 0, 2, 2, 1, 1, 1, 1, 1, 1)


@jit(_nrt=False)
def group_sizes(kind: np.ndarray, link: np.ndarray) -> tuple[int, int]:
    """``(longest group, most undo entries of one group)`` of a batch."""
    longest = 1
    most = 1
    n = kind.shape[0]
    e = 0
    while e < n:
        length = 0
        entries = 0
        while True:
            length += 1
            entries += _UNDO[kind[e]]
            if not link[e] or e == n - 1:
                break
            e += 1
        e += 1
        if length > longest:
            longest = length
        if entries > most:
            most = entries
    return longest, most


@jit(_nrt=False)
def group_length(link: np.ndarray, start: int) -> int:
    """Length of the group that starts at ``start``."""
    e = start
    while e < link.shape[0] - 1 and link[e]:
        e += 1
    return e - start + 1


@jit(_nrt=False)
def sum_by_sku(keys: np.ndarray, nloc: int, cols: np.ndarray, out: np.ndarray) -> int:
    """``out[sku] += sum of cols[row]`` over the positions; the SKU that overflows int64
    (the values are non-negative), or -1."""
    top = np.iinfo(np.int64).max
    for row in range(keys.shape[0]):
        s = keys[row] // nloc
        for c in range(cols.shape[1]):
            v = cols[row, c]
            if out[s] > top - v:
                return s
            out[s] += v
    return -1


@jit(_nrt=False)
def summarize(out: np.ndarray, codes: np.ndarray, dup: np.ndarray, counts: np.ndarray) -> int:
    """Split ``out`` into codes and duplicate flags, count codes; returns shortfalls."""
    short = 0
    for e in range(out.shape[0]):
        o = out[e]
        c = o & OUT_CODE
        codes[e] = c
        dup[e] = (o & OUT_DUPLICATE) != 0
        counts[c] += 1
        if o & OUT_SHORTFALL:
            short += 1
    return short


# ---------------------------------------------------------------------------
# table maintenance and read-side helpers
@jit(_nrt=False)
def rehash_positions(old: np.ndarray, new: np.ndarray, pshift: int, pbits: int) -> None:
    for e in old:
        if e != -1:
            new[pslot(new, pshift, pbits, e >> pbits)] = e


@jit(_nrt=False)
def rehash_ids(old: np.ndarray, new: np.ndarray, ishift: int) -> None:
    for h in range(old.shape[0]):
        k = old[h, 0]
        if k != 0:
            s = islot(new, ishift, k)
            new[s, 0] = k
            new[s, 1] = old[h, 1]


@jit(_nrt=False)
def lookup_positions(ptab: np.ndarray, meta: np.ndarray, keys: np.ndarray, out: np.ndarray) -> None:
    pshift, pbits = meta[M_PSHIFT], meta[M_PBITS]
    for i in range(keys.shape[0]):
        out[i] = pfind(ptab, pshift, pbits, keys[i])


@jit(_nrt=False)
def available_one(state: np.ndarray, ptab: np.ndarray, meta: np.ndarray, key: int, c: int) -> int:
    """available(c) at the position with ``key``; 0 for a position never touched."""
    pos = pfind(ptab, meta[M_PSHIFT], meta[M_PBITS], key)
    if pos < 0:
        return 0
    return position_available(state, pos, c, meta[M_NCHAN])


@jit(_nrt=False)
def available_many(
    state: np.ndarray,
    ptab: np.ndarray,
    meta: np.ndarray,
    keys: np.ndarray,
    chan: np.ndarray,
    out: np.ndarray,
) -> None:
    """available(c) per query; 0 for positions never touched."""
    pshift, pbits, nchan = meta[M_PSHIFT], meta[M_PBITS], meta[M_NCHAN]
    for i in range(keys.shape[0]):
        pos = pfind(ptab, pshift, pbits, keys[i])
        out[i] = 0 if pos < 0 else position_available(state, pos, chan[i], nchan)


@jit(_nrt=False)
def available_all(state: np.ndarray, npos: int, nchan: int, out: np.ndarray) -> None:
    """available(c) for every position and channel into ``out[npos, nchan]``."""
    for pos in range(npos):
        for c in range(nchan):
            out[pos, c] = position_available(state, pos, c, nchan)


@jit(_nrt=False)
def lookup_ids(itab: np.ndarray, ishift: int, ids: np.ndarray, out: np.ndarray) -> None:
    """Packed id-index value per id, or -1 when the id was never seen."""
    for i in range(ids.shape[0]):
        s = islot(itab, ishift, ids[i])
        out[i] = itab[s, 1] if itab[s, 0] == ids[i] else -1


@jit(_nrt=False)
def lookup_id(itab: np.ndarray, ishift: int, ident: int) -> int:
    """Packed id-index value of one id, or -1 when it was never seen."""
    s = islot(itab, ishift, ident)
    return itab[s, 1] if itab[s, 0] == ident else -1


@jit
def reservations_at_risk(
    res: np.ndarray,
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
    reservation below slot ``lo`` is closed. Walks from the newest and stops as soon
    as every shortage is covered, so the cost is bounded by the window of
    reservations that may still be open.
    """
    remaining = shortage.copy()
    left = 0
    for g in range(remaining.shape[0]):
        if remaining[g] > 0:
            left += 1
    k = 0
    s = nres - 1
    while s >= lo and left > 0:
        p = res[s, R_POS]
        if res[s, R_STATE] == RS_OPEN and is_short[p]:
            g = np.searchsorted(short_pos, p)
            if g < short_pos.shape[0] and short_pos[g] == p and remaining[g] > 0:
                out_id[k] = res[s, R_ID]
                out_row[k] = g
                k += 1
                remaining[g] -= res[s, R_OPEN]
                if remaining[g] <= 0:
                    left -= 1
        s -= 1
    return k


@jit(_nrt=False)
def first_open(res: np.ndarray, lo: int, nres: int) -> int:
    """The lowest slot at or above ``lo`` that is still open (``nres`` if none)."""
    while lo < nres and res[lo, R_STATE] != RS_OPEN:
        lo += 1
    return lo
