"""The LP relaxation bound of a set of orders, solved by HiGHS through scipy.

The relaxation is the plain MIP of :func:`~allocator.sourcing.optimal.mip.mip_arrays`
with its integrality dropped (packages ``0 ≤ y ≤ 1``). It keeps each entry's own
limit ``x ≤ min(q, available, capacity) · y``, which the Lagrangian subproblems drop,
so on instances with tight local stock it can be the stronger of the two bounds; the
optimiser reports the better one. Its duals of the stock and capacity rows are valid
Lagrangian prices, and the optimiser starts its subgradient steps from them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from allocator.sourcing.optimal.mip import mip_arrays
from allocator.sourcing.optimal.model import Model

__all__ = ["LpBound", "lp_bound"]

logger = logging.getLogger("allocator")


@dataclass(frozen=True)
class LpBound:
    """The LP bound of a set of orders (``-inf`` when HiGHS found none) and the prices
    ``-dual ≥ 0`` of the stock rows ``stock_ids`` and capacities ``cap_ids``."""

    bound: float
    stock_ids: np.ndarray
    stock_price: np.ndarray
    cap_ids: np.ndarray
    cap_price: np.ndarray


def lp_bound(
    model: Model,
    entries: np.ndarray,
    orders: np.ndarray,
    con_bind: np.ndarray,
    loc_bind: np.ndarray,
) -> LpBound:
    """Solve the LP relaxation of ``orders`` (a whole component) with HiGHS (dual
    simplex, deterministic)."""
    from scipy.optimize import linprog

    a = mip_arrays(model, entries, orders, con_bind, loc_bind)
    eq = a.row_lo == a.row_hi
    ub = ~eq
    rows_ub = np.flatnonzero(ub)
    res = linprog(
        a.obj,
        A_ub=a.matrix[rows_ub] if rows_ub.size else None,
        b_ub=a.row_hi[rows_ub] if rows_ub.size else None,
        A_eq=a.matrix[eq] if eq.any() else None,
        b_eq=a.row_hi[eq] if eq.any() else None,
        bounds=np.column_stack((a.var_lo, a.var_hi)),
        method="highs-ds",
    )
    empty = np.zeros(0, dtype=np.int64)
    if res.status != 0:
        logger.debug("optimal: LP bound not found (%s)", res.message)
        return LpBound(-np.inf, empty, np.zeros(0), empty, np.zeros(0))
    # position of each matrix row among the <= rows
    where = np.full(a.row_lo.shape[0], -1, dtype=np.int64)
    where[rows_ub] = np.arange(rows_ub.shape[0])
    marg = np.asarray(res.ineqlin.marginals, dtype=np.float64)
    stock_price = np.maximum(-marg[where[a.stock_rows]], 0.0)
    cap_price = np.maximum(-marg[where[a.cap_rows]], 0.0)
    return LpBound(float(res.fun) + a.offset, a.stock_ids, stock_price, a.cap_ids, cap_price)
