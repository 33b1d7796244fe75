"""Kernels of the ``optimal`` sourcing method: per-order subproblems, Lagrangian passes,
construction and local search.

Model layout (built by :mod:`allocator.sourcing.optimal.model`):

* orders ``o`` with lines ``o_ptr[o]:o_ptr[o + 1]`` (quantity ``l_qty``, per-unit
  unfilled penalty ``l_pen``);
* candidates ``k`` of order ``o`` in ``c_ptr[o]:c_ptr[o + 1]`` with location ``c_loc[k]``
  and package cost ``c_pkg[k]``;
* entries ``e = c_eptr[k] + j`` (line ``j`` of the order at candidate ``k``; entries of
  one order are contiguous) with stock constraint ``e_con[e]`` (-1: the location cannot
  supply the line) and a per-unit price ``p[e]`` (``inf`` when unusable);
* per order, ``o_open[o]`` (1 when a package at the pick-up store is already fixed, see
  :func:`pickup_first`) and ``o_fixed[o]`` (the cost of that fixed part).

Stock rows: row ``con < ncon`` is one (position, channel) with the channel's
availability as right-hand side; rows ``>= ncon`` are joint rows of one position over
a set of channels (the stock they share). The joint rows of ``con`` are
``j_row[j_ptr[con]:j_ptr[con + 1]]``, so taking ``t`` units at ``con`` uses ``t`` of
``con`` and of each of those rows (:func:`avail`, :func:`use`).

State of a plan: ``x[e]`` units per entry, ``rem[row]`` stock left per row and
``cap_rem[loc]`` pick capacity left (``BIG`` when unlimited).

Prices ``p`` are either the true per-unit costs or those costs plus Lagrangian prices
on stock and capacity; package and split costs are never priced. The slow twins are in
``allocator._reference.optimal``.

The kernels take their arrays in named tuples (numba types each as one argument):
:class:`Model` (the batch, never written), :class:`State` (stock and capacity left),
:class:`Multipliers` (the Lagrangian prices of rows and locations), :class:`Plan`
and :class:`Subproblems` (results) and :class:`Scratch` (work space). A bundle keeps
one numba type only when it is always built with the same dtypes, layouts and
read-only flags: the solver builds each once per solve (``Model.kernel`` and
:meth:`Scratch.allocate`), so every kernel compiles for one signature.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from allocator._kernels import jit
from allocator._kernels.atp import atp, unused_fence

#: Most lines per order solved by the exact subset DP; larger orders use a weaker bound.
LMAX = 8
#: Stand-in for unlimited capacity.
BIG = 1 << 60


class Model(NamedTuple):
    """The batch as the kernels read it (layout in the module docstring).

    With ``n`` orders, ``nl`` lines, ``nc`` candidates, ``ne`` entries, ``ncon``
    (position, channel) stock rows and ``nj`` joint-row memberships:

    * ``o_ptr`` int64 ``(n + 1,)``: the lines of order ``o`` are ``o_ptr[o]:o_ptr[o + 1]``;
    * ``l_qty`` int64 ``(nl,)``: units each line still needs (the pick-up rule's
      fixed units taken out);
    * ``l_pen`` float64 ``(nl,)``: per-unit penalty of leaving the line unfilled;
    * ``o_open`` int64 ``(n,)``: 1 when the order's pick-up store package is fixed,
      else 0;
    * ``o_fixed`` float64 ``(n,)``: the cost of that fixed part;
    * ``c_ptr`` int64 ``(n + 1,)``: the candidates of order ``o`` are
      ``c_ptr[o]:c_ptr[o + 1]``;
    * ``c_loc`` int64 ``(nc,)``: each candidate's location;
    * ``c_pkg`` float64 ``(nc,)``: its package cost, and ``c_pkg_split`` that plus the
      split penalty (the package cost of an order with a fixed package open);
    * ``c_eptr`` int64 ``(nc + 1,)``: the entries of candidate ``k`` start at
      ``c_eptr[k]``, one per line of its order;
    * ``e_con`` int64 ``(ne,)``: each entry's stock row (-1: unusable);
    * ``e_pos`` int64 ``(ne,)``: the stock row of the entry's position whatever its
      availability or capacity (-1: no position);
    * ``e_cost`` float64 ``(ne,)``: each entry's true per-unit cost;
    * ``e_loc`` int64 ``(ne,)``: each entry's location;
    * ``j_ptr`` int64 ``(ncon + 1,)`` and ``j_row`` int64 ``(nj,)``: the joint rows of
      row ``con`` are ``j_row[j_ptr[con]:j_ptr[con + 1]]``;
    * ``max_locs`` int: most locations per order, a fixed package included;
    * ``split`` float: penalty per location beyond an order's first.

    Kernels never write it; the solver passes every array read-only.
    """

    o_ptr: np.ndarray
    l_qty: np.ndarray
    l_pen: np.ndarray
    o_open: np.ndarray
    o_fixed: np.ndarray
    c_ptr: np.ndarray
    c_loc: np.ndarray
    c_pkg: np.ndarray
    c_pkg_split: np.ndarray
    c_eptr: np.ndarray
    e_con: np.ndarray
    e_pos: np.ndarray
    e_cost: np.ndarray
    e_loc: np.ndarray
    j_ptr: np.ndarray
    j_row: np.ndarray
    max_locs: int
    split: float


class State(NamedTuple):
    """What a plan leaves, updated in place by the kernels that take or give back units.

    * ``rem`` int64 ``(rows,)``: stock left per row, the ``ncon`` (position, channel)
      rows then the joint rows;
    * ``cap_rem`` int64 ``(num_locations,)``: pick capacity left per location
      (``BIG`` when unlimited).
    """

    rem: np.ndarray
    cap_rem: np.ndarray


class Multipliers(NamedTuple):
    """Lagrangian prices: ``lam`` float64 ``(rows,)`` per stock row (joint rows
    included) and ``mu`` float64 ``(num_locations,)`` per location's capacity."""

    lam: np.ndarray
    mu: np.ndarray


class Plan(NamedTuple):
    """A plan: ``x`` int64 ``(ne,)`` units per entry and ``val`` float64 ``(n,)`` each
    order's true cost under it (its fixed part included)."""

    x: np.ndarray
    val: np.ndarray


class Subproblems(NamedTuple):
    """What :func:`lagrange_pass` writes, at the prices it was given.

    * ``value`` float64 ``(n,)``: each order's subproblem value, its fixed cost
      included;
    * ``use_con`` int64 ``(rows,)``: units the choices draw from each stock row (joint
      rows included);
    * ``use_loc`` int64 ``(num_locations,)``: units they draw from each location;
    * ``line_choice`` int64 ``(nl,)``: the candidate chosen for each line (-1:
      unfilled).
    """

    value: np.ndarray
    use_con: np.ndarray
    use_loc: np.ndarray
    line_choice: np.ndarray


class Scratch(NamedTuple):
    """Work space of the per-order kernels (contents undefined between calls).

    * ``best_g`` float64 and ``best_k`` int64 ``(2**LMAX,)``: cheapest candidate per
      subset of lines (:func:`order_dp`);
    * ``f`` float64 and ``back`` int64 ``(LMAX + 1, 2**LMAX)``: the subset DP and its
      choices;
    * ``choice`` int64 ``(max_lines,)``: the candidate of each line of the order
      solved last (-1: unfilled);
    * ``need`` int64 ``(max_lines,)``: units each line still misses (:func:`fill`);
    * ``cap_used`` int64 ``(max_cands,)``: units per candidate of the order (:func:`fill`);
    * ``xa`` and ``xb`` int64 ``(ne,)``: tentative allocations (:func:`respond`,
      :func:`improve`).

    ``max_lines`` and ``max_cands`` are the most lines and candidates of one order
    (at least 1).
    """

    best_g: np.ndarray
    best_k: np.ndarray
    f: np.ndarray
    back: np.ndarray
    choice: np.ndarray
    need: np.ndarray
    cap_used: np.ndarray
    xa: np.ndarray
    xb: np.ndarray

    @classmethod
    def allocate(cls, max_lines: int, max_cands: int, num_entries: int) -> Scratch:
        """Scratch for orders of up to ``max_lines`` lines and ``max_cands`` candidates
        in a model of ``num_entries`` entries."""
        size = 1 << LMAX
        lines = max(max_lines, 1)
        return cls(
            best_g=np.empty(size),
            best_k=np.empty(size, dtype=np.int64),
            f=np.empty((LMAX + 1, size)),
            back=np.empty((LMAX + 1, size), dtype=np.int64),
            choice=np.empty(lines, dtype=np.int64),
            need=np.empty(lines, dtype=np.int64),
            cap_used=np.empty(max(max_cands, 1), dtype=np.int64),
            xa=np.zeros(num_entries, dtype=np.int64),
            xb=np.zeros(num_entries, dtype=np.int64),
        )


class ReasonData(NamedTuple):
    """What :func:`unfilled_reasons` needs beyond the model.

    * ``l_sku`` int64 ``(nl,)``: each line's SKU;
    * ``o_chan`` int64 ``(n,)``: each order's channel;
    * ``o_same_day`` bool ``(n,)``: same-day orders;
    * ``o_unavailable`` bool ``(n,)``: pick-up orders without a pick-up store
      candidate;
    * ``s_ptr`` int64 ``(num_skus + 1,)`` and ``s_loc`` int64 ``(positions,)``: the
      position list entries ``q`` of SKU ``s`` are ``s_ptr[s]:s_ptr[s + 1]``, at
      location ``s_loc[q]`` (stock row ``q * nch + c`` for channel ``c``);
    * ``ok`` bool ``(num_locations, 2 * nch)``: ``ok[loc, 2 * c]``, the location is open
      and serves channel ``c`` (``2 * c + 1``: and ships);
    * ``nch`` int: the number of channels.
    """

    l_sku: np.ndarray
    o_chan: np.ndarray
    o_same_day: np.ndarray
    o_unavailable: np.ndarray
    s_ptr: np.ndarray
    s_loc: np.ndarray
    ok: np.ndarray
    nch: int


@jit
def shared_pool(
    on_hand: np.ndarray,
    safety: np.ndarray,
    fence: np.ndarray,
    reserved: np.ndarray,
    rows: np.ndarray,
    pool: np.ndarray,
    unused: np.ndarray,
) -> None:
    """Per ledger position ``rows[i]``: the unused fences ``unused[i, c]`` and the free
    shared pool ``pool[i]``, which is what a channel with no fence and no cap could
    take (:func:`allocator._kernels.atp.atp` with ``unused_c = 0``, no cap)."""
    nch = fence.shape[1]
    no_fence = np.int64(0)
    no_cap = np.int64(BIG)
    for i in range(rows.shape[0]):
        row = rows[i]
        total = 0
        fsum = np.int64(0)
        for c in range(nch):
            r = reserved[row, c]
            total += r
            u = unused_fence(fence[row, c], r)
            unused[i, c] = u
            fsum += u
        pool[i] = atp(on_hand[row] - total - safety[row], fsum, no_fence, no_cap)


@jit(inline="always")
def avail(con: int, rem: np.ndarray, j_ptr: np.ndarray, j_row: np.ndarray) -> int:
    """Units row ``con`` can still give: ``min(rem[con], rem[r] for its joint rows r)``."""
    a = rem[con]
    if j_row.shape[0] == 0:
        return a
    for i in range(j_ptr[con], j_ptr[con + 1]):
        v = rem[j_row[i]]
        if v < a:
            a = v
    return a


@jit(inline="always")
def use(con: int, t: int, rem: np.ndarray, j_ptr: np.ndarray, j_row: np.ndarray) -> None:
    """Take ``t`` units (negative: give back) from row ``con`` and its joint rows."""
    rem[con] -= t
    if j_row.shape[0] == 0:
        return
    for i in range(j_ptr[con], j_ptr[con + 1]):
        rem[j_row[i]] -= t


@jit
def prices(m: Model, mult: Multipliers, out: np.ndarray) -> None:
    """``out[e] = e_cost[e] + lam[con] + Σ_{joint rows r of con} lam[r] + mu[e_loc[e]]``
    with ``con = e_con[e]`` (``inf`` when unusable)."""
    e_cost, e_con, e_loc = m.e_cost, m.e_con, m.e_loc
    j_ptr, j_row = m.j_ptr, m.j_row
    lam, mu = mult.lam, mult.mu
    joint = j_row.shape[0] > 0
    for e in range(e_cost.shape[0]):
        con = e_con[e]
        if con < 0:
            out[e] = np.inf
        else:
            v = e_cost[e] + lam[con] + mu[e_loc[e]]
            if joint:
                for i in range(j_ptr[con], j_ptr[con + 1]):
                    v += lam[j_row[i]]
            out[e] = v


@jit
def pickup_first(seq: np.ndarray, o_pick: np.ndarray, m: Model, st: State, fix: np.ndarray) -> None:
    """The pick-up rule: every pick-up order (``o_pick``), in ``seq`` order, takes from
    its pick-up store (its first candidate) all the store has of each line, lines in
    order, within the store's remaining pick capacity (the greedy method's step).
    ``m`` is the model before the rule (full line quantities, the store entries
    usable); ``fix[e]`` receives the units per entry; ``st`` is consumed."""
    o_ptr, l_qty, c_ptr = m.o_ptr, m.l_qty, m.c_ptr
    c_loc, c_eptr, e_con = m.c_loc, m.c_eptr, m.e_con
    j_ptr, j_row = m.j_ptr, m.j_row
    rem, cap_rem = st.rem, st.cap_rem
    for t in range(seq.shape[0]):
        o = seq[t]
        if not o_pick[o] or c_ptr[o + 1] == c_ptr[o]:
            continue
        k = c_ptr[o]
        loc = c_loc[k]
        eb = c_eptr[k]
        b = o_ptr[o]
        for j in range(o_ptr[o + 1] - b):
            con = e_con[eb + j]
            if con < 0:
                continue
            u = l_qty[b + j]
            a = avail(con, rem, j_ptr, j_row)
            if a < u:
                u = a
            if cap_rem[loc] < u:
                u = cap_rem[loc]
            if u <= 0:
                continue
            fix[eb + j] = u
            use(con, u, rem, j_ptr, j_row)
            cap_rem[loc] -= u


@jit
def order_dp(o: int, model: Model, p: np.ndarray, use_rem: bool, st: State, scr: Scratch) -> float:
    """Cheapest way to serve order ``o`` when each line comes whole from one location.

    Enumerates, for every subset ``G`` of lines, the cheapest candidate holding all of
    ``G`` (``best_g[G] = min_k c_pkg[k] + Σ_{j∈G} q_j p[k, j]``), then partitions the
    lines into at most ``max_locs`` such groups plus an unfilled rest by a subset DP
    (``f[t, mask]``: ``mask`` covered by exactly ``t`` groups). With ``use_rem`` a
    line may only go where ``st.rem`` holds its whole quantity and a group only where
    ``st.cap_rem`` holds its units (without it ``st`` is not read). ``scr.choice[j]``
    receives the candidate of line ``j`` (-1: unfilled). Returns the cost (the fixed
    part ``o_fixed`` excluded); ``inf`` when the order has more than ``LMAX`` lines
    and ``use_rem`` is set (the caller falls back to other moves).

    An order with a fixed package already open (``o_open[o] = 1``, the pick-up
    store's) is solved with ``max_locs − 1``, a split penalty of 0 and
    ``c_pkg_split = c_pkg + split`` per package (every new package then adds one
    split).

    Without ``use_rem`` this is the exact Lagrangian subproblem of the order (local
    stock limits dropped); orders above ``LMAX`` lines get the valid weaker bound
    ``min(Σ q pen, min_k c_pkg + Σ_j q_j min(pen_j, min_k p[k, j]))``.
    """
    # (``model``, not ``m``: here ``m`` is a subset of lines)
    o_ptr, l_qty, l_pen = model.o_ptr, model.l_qty, model.l_pen
    c_ptr, c_loc, c_eptr = model.c_ptr, model.c_loc, model.c_eptr
    e_con, j_ptr, j_row = model.e_con, model.j_ptr, model.j_row
    open_ = model.o_open[o]
    c_pkg = model.c_pkg_split if open_ > 0 else model.c_pkg
    max_locs = model.max_locs - open_
    split = 0.0 if open_ > 0 else model.split
    rem, cap_rem = st.rem, st.cap_rem
    best_g, best_k, f = scr.best_g, scr.best_k, scr.f
    back, choice = scr.back, scr.choice
    b = o_ptr[o]
    nl = o_ptr[o + 1] - b
    kb = c_ptr[o]
    ke = c_ptr[o + 1]
    nothing = 0.0
    for j in range(nl):
        nothing += l_qty[b + j] * l_pen[b + j]
        choice[j] = -1
    if nl == 0:
        return 0.0
    if nl > LMAX:
        if use_rem:
            return np.inf
        min_pkg = np.inf
        for k in range(kb, ke):
            if c_pkg[k] < min_pkg:
                min_pkg = c_pkg[k]
        total = min_pkg
        for j in range(nl):
            bestp = l_pen[b + j]
            for k in range(kb, ke):
                v = p[c_eptr[k] + j]
                if v < bestp:
                    bestp = v
                    choice[j] = k
            total += l_qty[b + j] * bestp
        return total if total < nothing else nothing
    full = (1 << nl) - 1
    for m in range(full + 1):
        best_g[m] = np.inf
        best_k[m] = -1
    for k in range(kb, ke):
        eb = c_eptr[k]
        loc = c_loc[k]
        mask = 0
        for j in range(nl):
            e = eb + j
            if e_con[e] < 0 or p[e] == np.inf:
                continue
            if use_rem and avail(e_con[e], rem, j_ptr, j_row) < l_qty[b + j]:
                continue
            mask |= 1 << j
        if mask == 0:
            continue
        sub = mask
        while sub > 0:
            cost = c_pkg[k]
            units = 0
            for j in range(nl):
                if (sub >> j) & 1:
                    q = l_qty[b + j]
                    cost += q * p[eb + j]
                    units += q
            if not (use_rem and units > cap_rem[loc]):
                if cost < best_g[sub]:
                    best_g[sub] = cost
                    best_k[sub] = k
            sub = (sub - 1) & mask
    tmax = max_locs if max_locs < nl else nl
    if tmax == nl:
        # no binding split limit: one layer, the split penalty charged per group
        # (Σ_groups split − split = split · (t − 1))
        f[0, 0] = 0.0
        best = nothing
        best_m = 0
        for m in range(1, full + 1):
            low = m & (-m)
            rest = m ^ low
            s = rest
            bv = np.inf
            bg = 0
            while True:
                g = s | low
                v = best_g[g] + split + f[0, m ^ g]
                if v < bv:
                    bv = v
                    bg = g
                if s == 0:
                    break
                s = (s - 1) & rest
            f[0, m] = bv
            back[0, m] = bg
            if bv < np.inf:
                pen = 0.0
                for j in range(nl):
                    if not (m >> j) & 1:
                        pen += l_qty[b + j] * l_pen[b + j]
                total = bv - split + pen
                if total < best:
                    best = total
                    best_m = m
        m = best_m
        while m > 0:
            g = back[0, m]
            k = best_k[g]
            for j in range(nl):
                if (g >> j) & 1:
                    choice[j] = k
            m ^= g
        return best
    f[0, 0] = 0.0
    for m in range(1, full + 1):
        f[0, m] = np.inf
    best = nothing
    best_t = 0
    best_m = 0
    for t in range(1, tmax + 1):
        f[t, 0] = np.inf
        for m in range(1, full + 1):
            low = m & (-m)
            rest = m ^ low
            s = rest
            bv = np.inf
            bg = 0
            while True:
                g = s | low
                v = best_g[g] + f[t - 1, m ^ g]
                if v < bv:
                    bv = v
                    bg = g
                if s == 0:
                    break
                s = (s - 1) & rest
            f[t, m] = bv
            back[t, m] = bg
            if bv < np.inf:
                pen = 0.0
                for j in range(nl):
                    if not (m >> j) & 1:
                        pen += l_qty[b + j] * l_pen[b + j]
                total = bv + pen + split * (t - 1)
                if total < best:
                    best = total
                    best_t = t
                    best_m = m
    m = best_m
    t = best_t
    while t > 0:
        g = back[t, m]
        k = best_k[g]
        for j in range(nl):
            if (g >> j) & 1:
                choice[j] = k
        m ^= g
        t -= 1
    return best


@jit
def lagrange_pass(m: Model, p: np.ndarray, out: Subproblems, scr: Scratch) -> None:
    """Solve every order's Lagrangian subproblem at prices ``p``.

    Writes each order's value (its fixed cost included) to ``out.value``, the chosen
    candidate of each line to ``out.line_choice`` and the units the choices draw from
    each stock row (joint rows included) and location to ``out.use_con`` and
    ``out.use_loc`` (the subgradient before subtracting the right-hand sides).
    """
    o_ptr, l_qty, c_loc = m.o_ptr, m.l_qty, m.c_loc
    c_eptr, e_con, o_fixed = m.c_eptr, m.e_con, m.o_fixed
    j_ptr, j_row = m.j_ptr, m.j_row
    sub_val, use_con = out.value, out.use_con
    use_loc, line_choice = out.use_loc, out.line_choice
    choice = scr.choice
    use_con[:] = 0
    use_loc[:] = 0
    dummy = np.zeros(1, dtype=np.int64)
    unlimited = State(dummy, dummy)
    use_rem = np.bool_(False)
    for o in range(o_ptr.shape[0] - 1):
        sub_val[o] = o_fixed[o] + order_dp(o, m, p, use_rem, unlimited, scr)
        b = o_ptr[o]
        for j in range(o_ptr[o + 1] - b):
            k = choice[j]
            line_choice[b + j] = k
            if k >= 0:
                q = l_qty[b + j]
                use(e_con[c_eptr[k] + j], -q, use_con, j_ptr, j_row)
                use_loc[c_loc[k]] += q


@jit
def order_cost(o: int, m: Model, p: np.ndarray, x: np.ndarray) -> float:
    """Cost of order ``o``'s allocation ``x`` at prices ``p``: the fixed part
    (``o_fixed[o]``, ``o_open[o]`` packages), packages, units, split penalty and
    unfilled penalty."""
    o_ptr, l_qty, l_pen = m.o_ptr, m.l_qty, m.l_pen
    c_ptr, c_pkg = m.c_ptr, m.c_pkg
    c_eptr, split = m.c_eptr, m.split
    fixed = m.o_fixed[o]
    open_ = m.o_open[o]
    b = o_ptr[o]
    nl = o_ptr[o + 1] - b
    total = fixed
    npk = open_
    for j in range(nl):
        got = 0
        for k in range(c_ptr[o], c_ptr[o + 1]):
            got += x[c_eptr[k] + j]
        total += (l_qty[b + j] - got) * l_pen[b + j]
    for k in range(c_ptr[o], c_ptr[o + 1]):
        eb = c_eptr[k]
        used = False
        for j in range(nl):
            xe = x[eb + j]
            if xe > 0:
                used = True
                total += xe * p[eb + j]
        if used:
            npk += 1
            total += c_pkg[k]
    if npk > 1:
        total += split * (npk - 1)
    return total


@jit
def take(o: int, m: Model, st: State, x: np.ndarray, sign: int) -> None:
    """Remove (``sign = 1``) from ``st`` or return (``sign = -1``) to it order ``o``'s
    units ``x``."""
    o_ptr, c_ptr, c_loc = m.o_ptr, m.c_ptr, m.c_loc
    c_eptr, e_con = m.c_eptr, m.e_con
    j_ptr, j_row = m.j_ptr, m.j_row
    rem, cap_rem = st.rem, st.cap_rem
    nl = o_ptr[o + 1] - o_ptr[o]
    for k in range(c_ptr[o], c_ptr[o + 1]):
        eb = c_eptr[k]
        loc = c_loc[k]
        for j in range(nl):
            xe = x[eb + j]
            if xe > 0:
                use(e_con[eb + j], sign * xe, rem, j_ptr, j_row)
                cap_rem[loc] -= sign * xe


@jit
def fill(
    o: int, m: Model, p: np.ndarray, st: State, cover_rule: bool, x: np.ndarray, scr: Scratch
) -> None:
    """Extend order ``o``'s tentative allocation ``x`` one location at a time.

    ``st`` excludes ``x`` (it is the state before this order). Savings rule
    (``cover_rule`` False): take the candidate whose units save the most against
    leaving them unfilled, counting its package (and split penalty) when it is new;
    each line only where its price is below its penalty. Cover rule: the greedy
    method's step (cheapest candidate that supplies everything missing, else the one
    supplying most units) on the remaining lines. Stops when nothing is missing, no
    step helps, or ``max_locs`` locations are used (``o_open[o]`` fixed packages
    included). Uses ``scr.need`` and ``scr.cap_used``.
    """
    o_ptr, l_qty, l_pen = m.o_ptr, m.l_qty, m.l_pen
    c_ptr, c_loc, c_pkg = m.c_ptr, m.c_loc, m.c_pkg
    c_eptr, e_con = m.c_eptr, m.e_con
    j_ptr, j_row = m.j_ptr, m.j_row
    max_locs, split = m.max_locs, m.split
    open_ = m.o_open[o]
    rem, cap_rem = st.rem, st.cap_rem
    need, cap_used = scr.need, scr.cap_used
    b = o_ptr[o]
    nl = o_ptr[o + 1] - b
    kb = c_ptr[o]
    ke = c_ptr[o + 1]
    total = 0
    for j in range(nl):
        got = 0
        for k in range(kb, ke):
            got += x[c_eptr[k] + j]
        need[j] = l_qty[b + j] - got
        total += need[j]
    used = open_
    for k in range(kb, ke):
        s = 0
        eb = c_eptr[k]
        for j in range(nl):
            s += x[eb + j]
        cap_used[k - kb] = s
        if s > 0:
            used += 1
    while total > 0:
        best = -1
        best_v = 0.0 if not cover_rule else np.inf
        best_full = False
        best_units = 0
        for k in range(kb, ke):
            eb = c_eptr[k]
            loc = c_loc[k]
            is_used = cap_used[k - kb] > 0
            if not is_used and used >= max_locs:
                continue
            room = cap_rem[loc] - cap_used[k - kb]
            if room <= 0:
                continue
            units = 0
            gain = 0.0
            cost = 0.0
            for j in range(nl):
                nj = need[j]
                e = eb + j
                if nj <= 0 or e_con[e] < 0 or p[e] == np.inf:
                    continue
                if not cover_rule and p[e] >= l_pen[b + j]:
                    continue
                a = avail(e_con[e], rem, j_ptr, j_row) - x[e]
                t = nj if nj < a else a
                if t > room - units:
                    t = room - units
                if t <= 0:
                    continue
                units += t
                cost += t * p[e]
                gain += t * l_pen[b + j]
            if units <= 0:
                continue
            if not is_used:
                cost += c_pkg[k]
                if used >= 1:
                    cost += split
            if cover_rule:
                full = units == total
                if full and not best_full:
                    best, best_v, best_full, best_units = k, cost, True, units
                elif full == best_full:
                    if full:
                        if cost < best_v:
                            best, best_v, best_units = k, cost, units
                    elif units > best_units or (units == best_units and cost < best_v):
                        best, best_v, best_units = k, cost, units
            else:
                v = gain - cost
                if v > best_v:
                    best, best_v = k, v
        if best < 0:
            break
        eb = c_eptr[best]
        loc = c_loc[best]
        if cap_used[best - kb] == 0:
            used += 1
        room = cap_rem[loc] - cap_used[best - kb]
        for j in range(nl):
            nj = need[j]
            e = eb + j
            if nj <= 0 or e_con[e] < 0 or p[e] == np.inf:
                continue
            if not cover_rule and p[e] >= l_pen[b + j]:
                continue
            a = avail(e_con[e], rem, j_ptr, j_row) - x[e]
            t = nj if nj < a else a
            if t > room:
                t = room
            if t <= 0:
                continue
            x[e] += t
            need[j] -= t
            total -= t
            room -= t
            cap_used[best - kb] += t


@jit
def respond(
    o: int, m: Model, p: np.ndarray, st: State, x: np.ndarray, scr: Scratch, variants: int
) -> float:
    """Best response of order ``o`` to the state ``st`` (which excludes its own units)
    at prices ``p``.

    Candidates: the subset-DP pattern of whole lines extended by the savings rule
    (partial lines), the savings rule alone, and the greedy cover rule. The cheapest
    at prices ``p`` is written into ``x`` (the order's entries only); returns its cost.
    ``scr.xa`` holds each candidate in turn; ``variants`` (1-3) says how many of the
    three are tried, in that order.
    """
    o_ptr, l_qty, c_ptr = m.o_ptr, m.l_qty, m.c_ptr
    c_loc, c_eptr = m.c_loc, m.c_eptr
    cap_rem = st.cap_rem
    xa, choice = scr.xa, scr.choice
    eb = c_eptr[c_ptr[o]]
    ee = c_eptr[c_ptr[o + 1]]
    nl = o_ptr[o + 1] - o_ptr[o]
    best = np.inf
    use_rem = np.bool_(True)
    for variant in range(variants):
        for e in range(eb, ee):
            xa[e] = 0
        if variant == 0:
            v = order_dp(o, m, p, use_rem, st, scr)
            if v == np.inf:
                continue
            b = o_ptr[o]
            for k in range(c_ptr[o], c_ptr[o + 1]):
                loc = c_loc[k]
                room = cap_rem[loc]
                for j in range(nl):
                    if choice[j] == k:
                        t = l_qty[b + j]
                        if t > room:
                            t = room
                        if t > 0:
                            xa[c_eptr[k] + j] = t
                            room -= t
        fill(o, m, p, st, variant == 2, xa, scr)
        v = order_cost(o, m, p, xa)
        if v < best - 1e-9:
            best = v
            for e in range(eb, ee):
                x[e] = xa[e]
    return best


@jit
def construct(
    seq: np.ndarray,
    m: Model,
    p: np.ndarray,
    p_true: np.ndarray,
    st: State,
    plan: Plan,
    scr: Scratch,
) -> None:
    """Build a plan order by order (``seq``): each order takes its best response at
    prices ``p`` given what the earlier ones took; ``plan.val[o]`` gets its true cost
    (prices ``p_true``). ``plan.x`` and ``st`` must describe the empty plan on entry."""
    x, val = plan.x, plan.val
    variants = np.int64(2)
    remove = np.int64(1)
    for t in range(seq.shape[0]):
        o = seq[t]
        respond(o, m, p, st, x, scr, variants)
        take(o, m, st, x, remove)
        val[o] = order_cost(o, m, p_true, x)


@jit
def improve(
    seq: np.ndarray,
    passes: int,
    m: Model,
    p_true: np.ndarray,
    st: State,
    plan: Plan,
    scr: Scratch,
) -> float:
    """Local search: re-source one order at a time against the others (true costs
    ``p_true``), keeping strict improvements, for up to ``passes`` sweeps over
    ``seq``. ``plan`` and its state ``st`` are updated in place (``scr.xb`` holds each
    response). Returns the total saving."""
    c_ptr, c_eptr = m.c_ptr, m.c_eptr
    x, val = plan.x, plan.val
    xb = scr.xb
    saved = 0.0
    variants = np.int64(3)
    remove = np.int64(1)
    give_back = np.int64(-1)
    for _ in range(passes):
        gain = 0.0
        for t in range(seq.shape[0]):
            o = seq[t]
            take(o, m, st, x, give_back)
            v = respond(o, m, p_true, st, xb, scr, variants)
            if v < val[o] - 1e-7:
                eb = c_eptr[c_ptr[o]]
                ee = c_eptr[c_ptr[o + 1]]
                for e in range(eb, ee):
                    x[e] = xb[e]
                gain += val[o] - v
                val[o] = v
            take(o, m, st, x, remove)
        saved += gain
        if gain <= 1e-7:
            break
    return saved


@jit
def repair(seq: np.ndarray, m: Model, st: State, x_in: np.ndarray, x: np.ndarray) -> int:
    """Make a plan feasible by keeping what fits: orders in ``seq`` order, each entry
    keeps ``min(x_in[e], what its line still needs, what its stock rows and location
    still give)``, and an order opens no location beyond ``max_locs`` (``o_open``
    fixed packages included). ``x`` (zero on entry) receives the plan, ``st`` (the
    empty plan's state on entry) is consumed. Returns the units dropped."""
    o_ptr, l_qty, c_ptr = m.o_ptr, m.l_qty, m.c_ptr
    c_loc, c_eptr, e_con = m.c_loc, m.c_eptr, m.e_con
    max_locs, o_open = m.max_locs, m.o_open
    j_ptr, j_row = m.j_ptr, m.j_row
    rem, cap_rem = st.rem, st.cap_rem
    dropped = 0
    for t in range(seq.shape[0]):
        o = seq[t]
        b = o_ptr[o]
        nl = o_ptr[o + 1] - b
        used = o_open[o]
        for k in range(c_ptr[o], c_ptr[o + 1]):
            eb = c_eptr[k]
            loc = c_loc[k]
            opened = False
            for j in range(nl):
                e = eb + j
                want = x_in[e]
                if want <= 0:
                    continue
                u = want
                con = e_con[e]
                if con < 0 or (not opened and used >= max_locs):
                    u = 0
                else:
                    got = 0
                    for kk in range(c_ptr[o], c_ptr[o + 1]):
                        got += x[c_eptr[kk] + j]
                    if l_qty[b + j] - got < u:
                        u = l_qty[b + j] - got
                    a = avail(con, rem, j_ptr, j_row)
                    if a < u:
                        u = a
                    if cap_rem[loc] < u:
                        u = cap_rem[loc]
                    if u < 0:
                        u = 0
                dropped += want - u
                if u > 0:
                    if not opened:
                        opened = True
                        used += 1
                    x[e] = u
                    use(con, u, rem, j_ptr, j_row)
                    cap_rem[loc] -= u
    return dropped


@jit
def component_labels(
    m: Model, con_bind: np.ndarray, loc_bind: np.ndarray, label: np.ndarray
) -> int:
    """Label orders by connected component: two orders are joined when both could
    draw on one binding stock row (joint rows included, ``con_bind``) or one binding
    capacity (``loc_bind``). ``label[o]`` receives the labels, consecutive from 0 in
    order of first appearance; returns their count."""
    o_ptr, c_ptr, c_loc = m.o_ptr, m.c_ptr, m.c_loc
    c_eptr, e_con = m.c_eptr, m.e_con
    j_ptr, j_row = m.j_ptr, m.j_row
    n = o_ptr.shape[0] - 1
    parent = np.arange(n)
    con_first = np.full(con_bind.shape[0], -1, dtype=np.int64)
    loc_first = np.full(loc_bind.shape[0], -1, dtype=np.int64)
    for o in range(n):
        nl = o_ptr[o + 1] - o_ptr[o]
        for k in range(c_ptr[o], c_ptr[o + 1]):
            loc = c_loc[k]
            any_use = False
            for j in range(nl):
                con = c_eptr[k] + j
                con = e_con[con]
                if con < 0:
                    continue
                any_use = True
                for i in range(j_ptr[con] - 1, j_ptr[con + 1]):
                    row = con if i < j_ptr[con] else j_row[i]
                    if con_bind[row]:
                        r = con_first[row]
                        if r < 0:
                            con_first[row] = o
                        else:
                            _union(parent, r, o)
            if any_use and loc_bind[loc]:
                r = loc_first[loc]
                if r < 0:
                    loc_first[loc] = o
                else:
                    _union(parent, r, o)
    count = 0
    root_label = np.full(n, -1, dtype=np.int64)
    for o in range(n):
        r = _find(parent, o)
        if root_label[r] < 0:
            root_label[r] = count
            count += 1
        label[o] = root_label[r]
    return count


@jit
def _find(parent: np.ndarray, a: int) -> int:
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@jit
def _union(parent: np.ndarray, a: int, b: int) -> None:
    ra = _find(parent, a)
    rb = _find(parent, b)
    if ra != rb:
        if ra < rb:
            parent[rb] = ra
        else:
            parent[ra] = rb


@jit
def order_costs(m: Model, p: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
    """:func:`order_cost` of every order, into ``out``."""
    for o in range(m.o_ptr.shape[0] - 1):
        out[o] = order_cost(o, m, p, x)


@jit
def unfilled_reasons(
    m: Model, rd: ReasonData, st: State, x: np.ndarray, reason: np.ndarray
) -> None:
    """Reason code of every short line of plan ``x`` in its final state ``st``, into
    ``reason`` (codes as in :mod:`allocator._kernels.sourcing`, plus 6: cheaper to
    leave unfilled).

    Reads ``m.e_pos``, the stock constraint of each entry's position whatever its
    availability or capacity (-1: no position).
    """
    o_ptr, l_qty, c_ptr = m.o_ptr, m.l_qty, m.c_ptr
    c_loc, c_eptr, e_pos = m.c_loc, m.c_eptr, m.e_pos
    max_locs, o_open = m.max_locs, m.o_open
    j_ptr, j_row = m.j_ptr, m.j_row
    l_sku, o_chan, o_same_day = rd.l_sku, rd.o_chan, rd.o_same_day
    o_unavailable, s_ptr, s_loc = rd.o_unavailable, rd.s_ptr, rd.s_loc
    ok, nch = rd.ok, rd.nch
    rem, cap_rem = st.rem, st.cap_rem
    for o in range(o_ptr.shape[0] - 1):
        b = o_ptr[o]
        nl = o_ptr[o + 1] - b
        c = o_chan[o]
        npk = o_open[o]
        for k in range(c_ptr[o], c_ptr[o + 1]):
            for j in range(nl):
                if x[c_eptr[k] + j] > 0:
                    npk += 1
                    break
        for j in range(nl):
            got = 0
            for k in range(c_ptr[o], c_ptr[o + 1]):
                got += x[c_eptr[k] + j]
            if got >= l_qty[b + j]:
                reason[b + j] = 0
                continue
            if o_unavailable[o]:
                reason[b + j] = 5
                continue
            has_open = False
            has_blocked = False
            for k in range(c_ptr[o], c_ptr[o + 1]):
                con = e_pos[c_eptr[k] + j]
                if con >= 0 and avail(con, rem, j_ptr, j_row) > 0:
                    if cap_rem[c_loc[k]] > 0:
                        has_open = True
                    else:
                        has_blocked = True
            if has_open:
                reason[b + j] = 4 if npk >= max_locs else 6
            elif has_blocked:
                reason[b + j] = 2
            else:
                r = 1
                if o_same_day[o]:
                    s = l_sku[b + j]
                    for q in range(s_ptr[s], s_ptr[s + 1]):
                        if ok[s_loc[q], 2 * c] and avail(q * nch + c, rem, j_ptr, j_row) > 0:
                            r = 3
                            break
                reason[b + j] = r
