"""The batch sourcing model as flat arrays (see :mod:`allocator._kernels.optimal`).

Built once per call from :meth:`SourcingProblem.candidates`, with numpy only (no
Python loop over orders, candidates or entries).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from allocator._kernels import optimal as K
from allocator._kernels.optimal import BIG
from allocator.exceptions import ValidationError
from allocator.sourcing.orders import Service
from allocator.sourcing.plan import SourcingPlan
from allocator.sourcing.problem import SourcingProblem, ledger_views

if TYPE_CHECKING:
    from allocator.ledger import BaseLedger

__all__ = [
    "JOINT_MAX_CHANNELS",
    "Model",
    "build_model",
    "joint_rows",
    "kernel_model",
    "opportunity_per_entry",
    "plan_to_x",
    "shared_stock",
]


@dataclass(frozen=True, eq=False)
class Model:
    """Kernel-ready arrays of one batch (names as in :mod:`allocator._kernels.optimal`).

    ``e_order``, ``e_cand``, ``e_line`` and ``e_loc`` map each entry back to its order,
    candidate, global order line and location; ``e_ub`` is the most units the entry can
    give on its own (line quantity, availability and capacity); ``e_pos`` is the stock
    row of the entry's position whatever its availability. Stock row
    ``con = q * num_channels + c`` (``con < ncon``) is position list entry ``q`` for
    channel ``c``; rows from ``ncon`` on are joint rows of one position over a set of
    channels (CSR ``j_ptr``/``j_row`` by ``con``; the same pairs as ``jm_con``/``jm_row``).
    ``s_rhs[row]`` is each row's right-hand side. ``cap[loc]`` is ``BIG`` when unlimited.

    The pick-up rule is applied before the model: ``e_fix`` are the units every pick-up
    order takes from its pick-up store (:func:`~allocator._kernels.optimal.pickup_first`),
    already taken out of ``s_rhs``, ``cap`` and the line quantities ``l_qty``; the
    entries of pick-up orders at their pick-up store (``e_store``) are unusable
    (``e_con = -1``). ``o_open`` (0/1) and ``o_fixed`` are each
    order's fixed package and fixed cost.

    :attr:`kernel` is the same batch as the kernels take it.
    """

    num_orders: int
    num_locations: int
    o_ptr: np.ndarray
    l_qty: np.ndarray
    l_pen: np.ndarray
    c_ptr: np.ndarray
    c_loc: np.ndarray
    c_pkg: np.ndarray
    c_pkg_split: np.ndarray
    c_eptr: np.ndarray
    c_transfer: np.ndarray
    e_con: np.ndarray
    e_pos: np.ndarray
    e_cost: np.ndarray
    e_loc: np.ndarray
    e_order: np.ndarray
    e_cand: np.ndarray
    e_line: np.ndarray
    e_ub: np.ndarray
    e_opp: np.ndarray
    e_fix: np.ndarray
    e_store: np.ndarray
    s_rhs: np.ndarray
    cap: np.ndarray
    ncon: int
    j_ptr: np.ndarray
    j_row: np.ndarray
    jm_con: np.ndarray
    jm_row: np.ndarray
    o_open: np.ndarray
    o_fixed: np.ndarray
    max_locs: int
    split: float

    @cached_property
    def kernel(self) -> K.Model:
        """The arrays the kernels read, as one :class:`~allocator._kernels.optimal.Model`
        (built on first use, read-only)."""
        return kernel_model(**{name: getattr(self, name) for name in K.Model._fields})

    @property
    def num_entries(self) -> int:
        return int(self.e_con.shape[0])

    @property
    def num_rows(self) -> int:
        """Stock rows, joint rows included."""
        return int(self.s_rhs.shape[0])

    def true_prices(self) -> np.ndarray:
        """Per-unit cost of each entry (``inf`` where unusable)."""
        return np.where(self.e_con >= 0, self.e_cost, np.inf)

    def rows_of(self, per_con: np.ndarray) -> np.ndarray:
        """Per-row totals (``ncon`` (position, channel) rows, then joint rows) of
        per-(position, channel) values."""
        nj = self.num_rows - self.ncon
        joint = np.bincount(
            self.jm_row - self.ncon, weights=per_con[self.jm_con], minlength=nj
        ).astype(per_con.dtype)
        return np.concatenate([per_con, joint])

    def usage(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Units ``x`` draws from each stock row and each location."""
        used = x > 0
        con = np.bincount(self.e_con[used], weights=x[used], minlength=self.ncon)
        loc = np.bincount(self.e_loc[used], weights=x[used], minlength=self.num_locations)
        return self.rows_of(con.astype(np.int64)), loc.astype(np.int64)


def kernel_model(**fields: Any) -> K.Model:
    """A :class:`~allocator._kernels.optimal.Model` of ``fields`` (one per field of
    it), each array a C-contiguous read-only view, ``max_locs`` an int and ``split`` a
    float: one numba type whatever the flags of the arrays it was given."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "max_locs":
            out[name] = int(value)
        elif name == "split":
            out[name] = float(value)
        else:
            view = np.ascontiguousarray(value).view()
            view.flags.writeable = False
            out[name] = view
    return K.Model(**out)


def opportunity_per_entry(problem: SourcingProblem, value: Any, q: np.ndarray) -> np.ndarray:
    """Per-unit opportunity cost of each entry's position (0 where ``q < 0``).

    ``value`` is None, a 1-D array over ledger position rows, or a
    ``(num_locations, num_skus)`` array.
    """
    out = np.zeros(q.shape[0])
    if value is None:
        return out
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" or arr.dtype.kind == "b":
        raise ValidationError(
            f"expected numbers, got dtype {arr.dtype}", field="opportunity_cost", code="wrong_dtype"
        )
    arr = arr.astype(np.float64)
    net = problem.network
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        where = np.argwhere(bad)[0]
        raise ValidationError(
            f"expected a finite non-negative cost, got {arr[tuple(where)]}",
            field="opportunity_cost",
            row=int(where[0]),
            code="out_of_range",
        )
    if arr.ndim == 2:
        if arr.shape != (net.num_locations, net.num_skus):
            raise ValidationError(
                f"expected shape ({net.num_locations}, {net.num_skus}) (location, sku), "
                f"got {arr.shape}",
                field="opportunity_cost",
                code="length_mismatch",
            )
        flat = arr[problem.sku_loc, _list_sku(problem)]
    elif arr.ndim == 1:
        need = int(problem.sku_row.max()) + 1 if problem.sku_row.size else 0
        if arr.shape[0] < need:
            raise ValidationError(
                f"expected one value per ledger position (at least {need}), got {arr.shape[0]}",
                field="opportunity_cost",
                code="length_mismatch",
            )
        flat = arr[problem.sku_row]
    else:
        raise ValidationError(
            f"expected a 1-D (position) or 2-D (location, sku) array, got {arr.ndim}-D",
            field="opportunity_cost",
            code="length_mismatch",
        )
    ok = q >= 0
    out[ok] = flat[q[ok]]
    return out


def _list_sku(problem: SourcingProblem) -> np.ndarray:
    """Global SKU of each position list entry."""
    counts = np.diff(problem.sku_ptr)
    return np.repeat(problem.skus, counts)


#: Most channels of one position given exact joint rows (2^k − k − 1 of them); further
#: channels at that position are held to their own unused fence.
JOINT_MAX_CHANNELS = 6


def shared_stock(
    ledger: BaseLedger, rows: np.ndarray, num_channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per ledger position row: the free shared pool
    ``S = max(0, on_hand − reserved − safety − Σ_c unused_fence[c])`` and the unused
    fences ``max(0, fence[c] − reserved[c])`` (``(len(rows), num_channels)``), from the
    ATP formula's parts (:func:`allocator._kernels.optimal.shared_pool`)."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    pool = np.empty(rows.shape[0], dtype=np.int64)
    unused = np.empty((rows.shape[0], num_channels), dtype=np.int64)
    on_hand, safety, fence, _cap, reserved = ledger_views(ledger)
    K.shared_pool(on_hand, safety, fence, reserved, rows, pool, unused)
    return pool, unused


def joint_rows(
    problem: SourcingProblem, con: np.ndarray, demand: np.ndarray, rhs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joint stock rows of the positions that several channels draw on.

    ``con`` are the (position, channel) rows the batch can use (ascending), ``demand``
    their demand and ``rhs`` every row's availability (lowered in place for channels
    beyond :data:`JOINT_MAX_CHANNELS`). For a position with free shared pool ``S`` and
    unused fences ``f_c`` the ledger accepts the takes ``x_c ≤ rhs_c`` jointly when
    ``Σ_c max(0, x_c − f_c) ≤ S``, that is for every set ``T`` of at least two of its
    channels ``Σ_{c∈T} x_c ≤ S + Σ_{c∈T} f_c``; sets implied by the per-channel rows are
    left out. Returns ``(rhs of each joint row, member con, member joint row)``.
    """
    nch = problem.network.num_channels
    empty = np.zeros(0, dtype=np.int64)
    if con.shape[0] < 2 or nch < 2:
        return empty, empty, empty
    q = con // nch
    starts = np.flatnonzero(np.r_[True, q[1:] != q[:-1]])
    counts = np.diff(np.r_[starts, q.shape[0]])
    multi = counts >= 2
    if not multi.any():
        return empty, empty, empty
    pos_q = q[starts[multi]]
    pool, fence = shared_stock(problem.ledger, problem.sku_row[pos_q], nch)
    row_rhs: list[np.ndarray] = []
    mem_con: list[np.ndarray] = []
    mem_row: list[np.ndarray] = []
    nrow = 0
    for k in np.unique(counts[multi]).tolist():
        sel = starts[counts == k]
        cons = con[sel[:, None] + np.arange(k)]
        i = np.searchsorted(pos_q, q[sel])
        chans = cons % nch
        f = fence[i[:, None], chans]
        if k > JOINT_MAX_CHANNELS:
            # keep the channels with most demand; the others stay within their fence
            order = np.argsort(-demand[np.searchsorted(con, cons)], axis=1, kind="stable")
            rest = np.take_along_axis(cons, order[:, JOINT_MAX_CHANNELS:], axis=1)
            f_rest = np.take_along_axis(f, order[:, JOINT_MAX_CHANNELS:], axis=1)
            rhs[rest] = np.minimum(rhs[rest], f_rest)
            keep = order[:, :JOINT_MAX_CHANNELS]
            cons = np.take_along_axis(cons, keep, axis=1)
            f = np.take_along_axis(f, keep, axis=1)
            k = JOINT_MAX_CHANNELS
        masks = np.array(
            [[(m >> b) & 1 for b in range(k)] for m in range(1, 1 << k) if bin(m).count("1") >= 2],
            dtype=np.int64,
        )
        r = pool[i][:, None] + f @ masks.T
        implied = r >= rhs[cons] @ masks.T
        pi, mi = np.nonzero(~implied)
        if pi.shape[0] == 0:
            continue
        row_rhs.append(r[pi, mi])
        ids = nrow + np.arange(pi.shape[0])
        member = masks[mi].astype(bool)
        mem_con.append(cons[pi][member])
        mem_row.append(np.repeat(ids, member.sum(axis=1)))
        nrow += pi.shape[0]
    if not row_rhs:
        return empty, empty, empty
    return (
        np.concatenate(row_rhs).astype(np.int64),
        np.concatenate(mem_con).astype(np.int64),
        np.concatenate(mem_row).astype(np.int64),
    )


def build_model(problem: SourcingProblem, opportunity_cost: Any = None) -> Model:
    """Flatten ``problem``'s candidates, costs, stock and capacity into a :class:`Model`,
    with joint rows for stock shared by channels and the pick-up rule applied."""
    net, orders, costs = problem.network, problem.orders, problem.costs
    cand = problem.candidates()
    n = orders.num_orders
    nch = net.num_channels
    n_cand = int(cand.location.shape[0])
    c_ptr = np.asarray(cand.ptr, dtype=np.int64)
    c_loc = np.asarray(cand.location, dtype=np.int64)
    c_eptr = np.asarray(cand.line_ptr, dtype=np.int64)
    o_ptr = np.asarray(orders.indptr, dtype=np.int64)
    c_order = np.repeat(np.arange(n, dtype=np.int64), np.diff(c_ptr))
    e_cand = np.repeat(np.arange(n_cand, dtype=np.int64), np.diff(c_eptr))
    e_order = c_order[e_cand]
    e_j = np.arange(e_cand.shape[0], dtype=np.int64) - c_eptr[:-1][e_cand]
    e_line = o_ptr[:-1][e_order] + e_j
    e_loc = c_loc[e_cand]
    q = np.asarray(cand.entry, dtype=np.int64)
    chan = orders.channel[e_order]
    avail = np.asarray(problem.avail, dtype=np.int64)
    a = np.zeros(q.shape[0], dtype=np.int64)
    has = q >= 0
    a[has] = avail[q[has], chan[has]]
    cap = np.where(problem.capacity < 0, BIG, problem.capacity).astype(np.int64)
    l_full = np.asarray(orders.qty, dtype=np.int64)
    ncon = avail.size
    usable = (q >= 0) & (a > 0) & (cap[e_loc] > 0)
    e_con = np.where(usable, q * nch + chan, -1).astype(np.int64)
    # joint rows over the stock the batch's channels share
    con_rhs = avail.reshape(-1).copy()
    if np.unique(orders.channel).shape[0] >= 2:
        dem = np.bincount(e_con[usable], weights=l_full[e_line[usable]], minlength=ncon)
        cons = np.flatnonzero(dem > 0)
        j_rhs, jm_con, jm_row = joint_rows(problem, cons, dem[cons], con_rhs)
    else:
        j_rhs = jm_con = jm_row = np.zeros(0, dtype=np.int64)
    jm_row = jm_row + ncon
    by_con = np.argsort(jm_con, kind="stable")
    jm_con, jm_row = jm_con[by_con], jm_row[by_con]
    j_ptr = np.zeros(ncon + 1, dtype=np.int64)
    np.cumsum(np.bincount(jm_con, minlength=ncon), out=j_ptr[1:])
    rem = np.concatenate([con_rhs, j_rhs]).astype(np.int64)
    l_pen = costs.line_penalty(net, orders)
    mult = net.cost_multiplier
    e_opp = opportunity_per_entry(problem, opportunity_cost, q)
    e_cost = np.ascontiguousarray(
        mult[e_loc] * costs.per_unit + cand.ship_per_unit[e_cand] + e_opp, dtype=np.float64
    )
    c_pkg = np.ascontiguousarray(mult[c_loc] * costs.per_package, dtype=np.float64)
    c_pkg_split = np.ascontiguousarray(c_pkg + costs.split_penalty, dtype=np.float64)
    e_pos = np.where(q >= 0, q * nch + chan, -1).astype(np.int64)
    max_locs = int(problem.max_locations)
    split = float(costs.split_penalty)
    # the pick-up rule: each pick-up order first takes what its store has, in the
    # model before the rule (full quantities, nothing fixed, the stores usable)
    before = kernel_model(
        o_ptr=o_ptr,
        l_qty=l_full,
        l_pen=l_pen,
        o_open=np.zeros(n, dtype=np.int64),
        o_fixed=np.zeros(n, dtype=np.float64),
        c_ptr=c_ptr,
        c_loc=c_loc,
        c_pkg=c_pkg,
        c_pkg_split=c_pkg_split,
        c_eptr=c_eptr,
        e_con=e_con,
        e_pos=e_pos,
        e_cost=e_cost,
        e_loc=e_loc,
        j_ptr=j_ptr,
        j_row=jm_row,
        max_locs=max_locs,
        split=split,
    )
    o_pick = np.asarray(orders.service == Service.PICKUP, dtype=np.bool_)
    fix = np.zeros(q.shape[0], dtype=np.int64)
    K.pickup_first(
        np.asarray(problem.sequence, dtype=np.int64), o_pick, before, K.State(rem, cap), fix
    )
    # entries of pick-up orders at their store: the first candidate's
    picks = np.flatnonzero(o_pick & (c_ptr[1:] > c_ptr[:-1]))
    first = c_eptr[c_ptr[picks]]
    nl = o_ptr[picks + 1] - o_ptr[picks]
    store_e = np.repeat(first - np.cumsum(nl) + nl, nl) + np.arange(int(nl.sum()))
    at_store = np.zeros(q.shape[0], dtype=np.bool_)
    at_store[store_e] = True
    fixed_e = store_e[fix[store_e] > 0]
    l_qty = l_full.copy()
    l_qty[e_line[fixed_e]] -= fix[fixed_e]
    o_open = np.zeros(n, dtype=np.int64)
    o_open[e_order[fixed_e]] = 1
    o_fixed = np.bincount(
        e_order[fixed_e], weights=fix[fixed_e] * e_cost[fixed_e], minlength=n
    ).astype(np.float64)
    opened = np.flatnonzero(o_open)
    o_fixed[opened] += c_pkg[c_ptr[opened]]
    rem_e = np.zeros(q.shape[0], dtype=np.int64)
    rem_e[usable] = rem[e_con[usable]]
    usable &= (l_qty[e_line] > 0) & (rem_e > 0) & (cap[e_loc] > 0)
    usable[store_e] = False
    e_con = np.where(usable, e_con, -1).astype(np.int64)
    e_ub = np.minimum(np.minimum(l_qty[e_line], rem_e), cap[e_loc])
    e_ub = np.where(usable, e_ub, 0)
    return Model(
        num_orders=n,
        num_locations=net.num_locations,
        o_ptr=o_ptr,
        l_qty=l_qty,
        l_pen=l_pen,
        c_ptr=c_ptr,
        c_loc=c_loc,
        c_pkg=c_pkg,
        c_pkg_split=c_pkg_split,
        c_eptr=c_eptr,
        c_transfer=np.asarray(cand.transfer, dtype=np.bool_),
        e_con=e_con,
        e_pos=e_pos,
        e_cost=e_cost,
        e_loc=e_loc,
        e_order=e_order,
        e_cand=e_cand,
        e_line=e_line,
        e_ub=e_ub.astype(np.int64),
        e_opp=e_opp,
        e_fix=fix,
        e_store=at_store,
        s_rhs=rem,
        cap=cap,
        ncon=int(ncon),
        j_ptr=j_ptr,
        j_row=jm_row,
        jm_con=jm_con,
        jm_row=jm_row,
        o_open=o_open,
        o_fixed=o_fixed,
        max_locs=max_locs,
        split=split,
    )


def plan_to_x(model: Model, plan: SourcingPlan) -> np.ndarray:
    """Units per entry of a plan whose rows all lie on the model's candidates."""
    x = np.zeros(model.num_entries, dtype=np.int64)
    if len(plan) == 0:
        return x
    nloc = max(model.num_locations, 1)
    c_order = np.repeat(np.arange(model.num_orders, dtype=np.int64), np.diff(model.c_ptr))
    key = c_order * nloc + model.c_loc
    order_k = np.argsort(key, kind="stable")
    row_key = plan.order * nloc + plan.location
    pos = np.searchsorted(key, row_key, sorter=order_k)
    k = order_k[np.minimum(pos, key.shape[0] - 1)]
    if key.shape[0] == 0 or not np.array_equal(key[k], row_key):
        raise ValueError("plan rows outside the candidates")
    j = plan.line - model.o_ptr[plan.order]
    np.add.at(x, model.c_eptr[k] + j, plan.qty)
    return x
