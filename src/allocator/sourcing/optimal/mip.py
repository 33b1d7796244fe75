"""Exact MIP of one component of the batch, solved with OR-Tools (SCIP).

The model is the plain one: integer units per (order line, candidate), a binary
package per (order, candidate), unfilled units per line, and the split excess per
order; stock rows per (position, channel) and the joint rows of shared stock, pick
capacity, and each order's fixed pick-up package counted towards its split limit.
It is assembled as one sparse matrix (``fill_model_from_sparse_data``), so
building it costs a few numpy calls whatever its size. OR-Tools is imported here,
lazily, and nothing of it leaves this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from allocator.sourcing.optimal.model import Model

__all__ = ["MipArrays", "MipResult", "mip_arrays", "solve_mip"]

logger = logging.getLogger("allocator")

#: SCIP settings of every solve: one round of cuts at the root and none of the
#: large-neighbourhood heuristics, whose root work dominates at a few thousand
#: entries (measured: 13 s to 4.4 s for the first plan of a 200-order wave); the
#: optimiser gets its neighbourhoods from its own rounds instead.
SCIP_SETTINGS = (
    "separating/maxroundsroot = 1",
    "heuristics/rens/freq = -1",
    "heuristics/alns/freq = -1",
    "heuristics/feaspump/freq = -1",
    "heuristics/locks/freq = -1",
    "heuristics/undercover/freq = -1",
    "heuristics/dins/freq = -1",
    "heuristics/rins/freq = -1",
)


@dataclass(frozen=True)
class MipResult:
    """``x`` over the component's entries (None when no solution), its objective, the
    solver's bound and whether optimality was proven."""

    x: np.ndarray | None
    objective: float
    bound: float
    optimal: bool


@dataclass(frozen=True, eq=False)
class MipArrays:
    """The plain MIP of a set of orders in matrix form:
    ``min obj·v  s.t.  row_lo <= A v <= row_hi,  var_lo <= v <= var_hi``, the first
    ``num_integer`` variables integer. Variables: units per usable entry
    (``entries_ok``), a package per candidate (``cands``), unfilled units per line
    (``lines``), split excess per order with a split penalty (``split_orders``).
    ``offset`` is the orders' fixed cost (pick-up store units), to add to the
    objective and the bound. ``stock_rows``/``stock_ids`` map matrix rows to the
    model's stock rows (joint rows included), ``cap_rows``/``cap_ids`` to locations."""

    obj: np.ndarray
    matrix: Any
    row_lo: np.ndarray
    row_hi: np.ndarray
    var_lo: np.ndarray
    var_hi: np.ndarray
    num_integer: int
    entries_ok: np.ndarray
    entry_cand: np.ndarray
    cands: np.ndarray
    cand_order: np.ndarray
    lines: np.ndarray
    entry_line: np.ndarray
    split_orders: np.ndarray
    offset: float
    stock_rows: np.ndarray
    stock_ids: np.ndarray
    cap_rows: np.ndarray
    cap_ids: np.ndarray


def mip_arrays(
    model: Model,
    entries: np.ndarray,
    orders: np.ndarray,
    con_bind: np.ndarray,
    loc_bind: np.ndarray,
    s_rhs: np.ndarray | None = None,
    cap: np.ndarray | None = None,
) -> MipArrays:
    """Assemble the plain MIP of ``orders`` (entries ``entries``, ascending); only the
    stock rows (joint rows included) and capacities flagged in ``con_bind``/``loc_bind``
    get rows. ``s_rhs`` and ``cap`` replace the model's right-hand sides (what the
    other orders leave, for a neighbourhood of a plan)."""
    from scipy import sparse

    m = model
    s_rhs = m.s_rhs if s_rhs is None else s_rhs
    cap = m.cap if cap is None else cap
    e_ok = entries[m.e_con[entries] >= 0]
    ne = e_ok.shape[0]
    cands, k_of_e = np.unique(m.e_cand[e_ok], return_inverse=True)
    nk = cands.shape[0]
    starts = m.o_ptr[orders]
    counts = m.o_ptr[orders + 1] - starts
    lines = np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(
        starts - (np.cumsum(counts) - counts), counts
    )
    line_pos = np.searchsorted(lines, m.e_line[e_ok])
    nlines = lines.shape[0]
    k_order = np.searchsorted(orders, m.e_order[m.c_eptr[cands]])
    k_per_order = np.bincount(k_order, minlength=orders.shape[0])
    opened = m.o_open[orders]
    need_split = (m.split > 0) & (k_per_order + opened >= 2)
    split_orders = np.flatnonzero(need_split)
    ns = split_orders.shape[0]
    x0, y0, u0, s0 = 0, ne, ne + nk, ne + nk + nlines
    nvar = s0 + ns
    ub_e = m.e_ub[e_ok].astype(np.float64)

    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    lo: list[np.ndarray] = []
    hi: list[np.ndarray] = []
    nrow = 0

    def block(r: np.ndarray, c: np.ndarray, v: np.ndarray, lb: np.ndarray, ub: np.ndarray) -> None:
        nonlocal nrow
        rows.append(r + nrow)
        cols.append(c)
        vals.append(v)
        lo.append(lb)
        hi.append(ub)
        nrow += lb.shape[0]

    # each line: units from candidates + unfilled units = quantity
    q = m.l_qty[lines].astype(np.float64)
    block(
        np.concatenate([line_pos, np.arange(nlines)]),
        np.concatenate([x0 + np.arange(ne), u0 + np.arange(nlines)]),
        np.ones(ne + nlines),
        q,
        q,
    )
    # units only through an opened package
    block(
        np.concatenate([np.arange(ne), np.arange(ne)]),
        np.concatenate([x0 + np.arange(ne), y0 + k_of_e]),
        np.concatenate([np.ones(ne), -ub_e]),
        np.full(ne, -np.inf),
        np.zeros(ne),
    )
    # stock (each entry in its (position, channel) row and that row's joint rows)
    # and capacity that can bind
    con = m.e_con[e_ok]
    nj = m.j_ptr[con + 1] - m.j_ptr[con]
    total = int(nj.sum())
    j_at = np.repeat(m.j_ptr[con], nj) + np.arange(total) - np.repeat(np.cumsum(nj) - nj, nj)
    stock_ids = np.concatenate([con, m.j_row[j_at]])
    stock_ent = np.concatenate([np.arange(ne), np.repeat(np.arange(ne), nj)])
    mapped: list[tuple[np.ndarray, np.ndarray]] = []
    for ids, ent, rhs_all, bind in (
        (stock_ids, stock_ent, s_rhs, con_bind),
        (m.e_loc[e_ok], np.arange(ne), cap, loc_bind),
    ):
        sel = bind[ids]
        uniq = np.zeros(0, dtype=np.int64)
        first = nrow
        if sel.any():
            uniq, r = np.unique(ids[sel], return_inverse=True)
            block(
                r,
                x0 + ent[sel],
                np.ones(int(sel.sum())),
                np.full(uniq.shape[0], -np.inf),
                rhs_all[uniq].astype(np.float64),
            )
        mapped.append((first + np.arange(uniq.shape[0], dtype=np.int64), uniq))
    # at most max_locs packages per order (its fixed pick-up package included)
    limited = k_per_order + opened > m.max_locs
    if limited.any():
        sel = limited[k_order]
        uniq, r = np.unique(k_order[sel], return_inverse=True)
        block(
            r,
            y0 + np.flatnonzero(sel),
            np.ones(int(sel.sum())),
            np.full(uniq.shape[0], -np.inf),
            (m.max_locs - opened[uniq]).astype(np.float64),
        )
    # split excess: packages - s <= 1 - fixed package
    if ns:
        spos = np.full(orders.shape[0], -1, dtype=np.int64)
        spos[split_orders] = np.arange(ns)
        sel = spos[k_order] >= 0
        r = spos[k_order[sel]]
        block(
            np.concatenate([r, np.arange(ns)]),
            np.concatenate([y0 + np.flatnonzero(sel), s0 + np.arange(ns)]),
            np.concatenate([np.ones(int(sel.sum())), -np.ones(ns)]),
            np.full(ns, -np.inf),
            1.0 - opened[split_orders],
        )
    matrix = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nrow, nvar)
    )
    var_lo = np.zeros(nvar)
    var_hi = np.concatenate([ub_e, np.ones(nk), q, np.full(ns, np.inf)])
    obj = np.concatenate(
        [
            m.e_cost[e_ok],
            m.c_pkg[cands],
            m.l_pen[lines],
            np.full(ns, m.split),
        ]
    )
    return MipArrays(
        obj=obj,
        matrix=matrix,
        row_lo=np.concatenate(lo),
        row_hi=np.concatenate(hi),
        var_lo=var_lo,
        var_hi=var_hi,
        num_integer=s0,
        entries_ok=e_ok,
        entry_cand=k_of_e,
        cands=cands,
        cand_order=k_order,
        lines=lines,
        entry_line=line_pos,
        split_orders=split_orders,
        offset=float(m.o_fixed[orders].sum()),
        stock_rows=mapped[0][0],
        stock_ids=mapped[0][1],
        cap_rows=mapped[1][0],
        cap_ids=mapped[1][1],
    )


def solve_mip(
    model: Model,
    entries: np.ndarray,
    orders: np.ndarray,
    con_bind: np.ndarray,
    loc_bind: np.ndarray,
    hint: np.ndarray,
    time_limit: float,
    seed: int = 0,
    node_limit: int | None = None,
    s_rhs: np.ndarray | None = None,
    cap: np.ndarray | None = None,
) -> MipResult:
    """Solve the orders ``orders`` (a whole component) exactly.

    Parameters
    ----------
    entries
        Global entry indices of the component, ascending.
    con_bind, loc_bind
        Which stock constraints and capacities can bind; the others can never be
        exceeded by these orders and are left out.
    hint
        A feasible ``x`` over ``entries`` (the incumbent), given to the solver.
    time_limit
        Seconds (a safety net: a search cut by it is not reproducible).
    node_limit
        Branch-and-bound nodes (SCIP ``limits/nodes``): the deterministic budget.
    s_rhs, cap
        Right-hand sides in place of the model's (see :func:`mip_arrays`).
    """
    from ortools.linear_solver.python import model_builder_helper as mbh

    m = model
    a = mip_arrays(model, entries, orders, con_bind, loc_bind, s_rhs, cap)
    helper = mbh.ModelBuilderHelper()
    fill: Any = helper.fill_model_from_sparse_data  # OR-Tools' stubs mistype the arrays
    fill(a.var_lo, a.var_hi, a.obj, a.row_lo, a.row_hi, a.matrix)
    for i in range(a.num_integer):
        helper.set_var_integrality(i, True)
    # hint: the incumbent
    e_ok, k_of_e, line_pos = a.entries_ok, a.entry_cand, a.entry_line
    ne, nk, nlines = e_ok.shape[0], a.cands.shape[0], a.lines.shape[0]
    q = m.l_qty[a.lines].astype(np.float64)
    split_orders, k_order, ns = a.split_orders, a.cand_order, a.split_orders.shape[0]
    nvar = a.obj.shape[0]
    nrow = a.row_lo.shape[0]
    pos = np.searchsorted(entries, e_ok)
    hx = hint[pos].astype(np.float64)
    hy = np.zeros(nk)
    np.maximum.at(hy, k_of_e, (hx > 0).astype(np.float64))
    got = np.bincount(line_pos, weights=hx, minlength=nlines)
    hu = q - got
    hs = np.zeros(ns)
    if ns:
        npk = np.bincount(k_order, weights=hy, minlength=orders.shape[0]) + m.o_open[orders]
        hs = np.maximum(npk[split_orders] - 1.0, 0.0)
    for i, v in enumerate(np.concatenate([hx, hy, hu, hs]).tolist()):
        helper.add_hint(i, v)
    solver = mbh.ModelSolverHelper("scip")
    solver.set_time_limit_in_seconds(max(float(time_limit), 0.01))
    params = [*SCIP_SETTINGS, f"randomization/randomseedshift = {int(seed)}"]
    if node_limit is not None:
        params.append(f"limits/nodes = {int(node_limit)}")
    solver.set_solver_specific_parameters("\n".join(params))
    solver.solve(helper)
    status = solver.status()
    optimal = status == mbh.SolveStatus.OPTIMAL
    has = status in (mbh.SolveStatus.OPTIMAL, mbh.SolveStatus.FEASIBLE) and solver.has_solution()
    bound = float(solver.best_objective_bound()) + a.offset if has else -np.inf
    if not np.isfinite(bound):
        bound = -np.inf
    logger.debug(
        "optimal: component MIP %d orders, %d vars, %d rows: %s",
        orders.shape[0],
        nvar,
        nrow,
        status.name,
    )
    if not has:
        return MipResult(None, np.inf, bound, False)
    values = np.asarray(solver.variable_values(), dtype=np.float64)
    xs = np.zeros(entries.shape[0], dtype=np.int64)
    xs[pos] = np.rint(values[:ne]).astype(np.int64)
    return MipResult(xs, float(solver.objective_value()) + a.offset, bound, optimal)
