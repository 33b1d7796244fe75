"""The batch sourcing model as flat arrays (see :mod:`allocator._kernels.optimal`).

Built once per call from :meth:`SourcingProblem.candidates`, with numpy only (no
Python loop over orders, candidates or entries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from allocator._kernels.optimal import BIG
from allocator.exceptions import ValidationError
from allocator.sourcing.plan import SourcingPlan
from allocator.sourcing.problem import SourcingProblem

__all__ = ["Model", "build_model", "opportunity_per_entry", "plan_to_x"]


@dataclass(frozen=True, eq=False)
class Model:
    """Kernel-ready arrays of one batch (names as in :mod:`allocator._kernels.optimal`).

    ``e_order``, ``e_cand``, ``e_line`` and ``e_loc`` map each entry back to its order,
    candidate, global order line and location; ``e_ub`` is the most units the entry can
    give on its own (line quantity, availability and capacity); ``e_pos`` is the stock
    constraint of the entry's position whatever its availability. Stock constraint
    ``con = q * num_channels + c`` is position list entry ``q`` for channel ``c``;
    ``s_rhs[con]`` its availability. ``cap[loc]`` is ``BIG`` when unlimited.
    """

    num_orders: int
    num_locations: int
    o_ptr: np.ndarray
    l_qty: np.ndarray
    l_pen: np.ndarray
    c_ptr: np.ndarray
    c_loc: np.ndarray
    c_pkg: np.ndarray
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
    s_rhs: np.ndarray
    cap: np.ndarray
    max_locs: int
    split: float

    @property
    def num_entries(self) -> int:
        return int(self.e_con.shape[0])

    def true_prices(self) -> np.ndarray:
        """Per-unit cost of each entry (``inf`` where unusable)."""
        return np.where(self.e_con >= 0, self.e_cost, np.inf)

    def usage(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Units ``x`` draws from each stock constraint and each location."""
        used = x > 0
        con = np.bincount(self.e_con[used], weights=x[used], minlength=self.s_rhs.shape[0])
        loc = np.bincount(self.e_loc[used], weights=x[used], minlength=self.num_locations)
        return con.astype(np.int64), loc.astype(np.int64)


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


def build_model(problem: SourcingProblem, opportunity_cost: Any = None) -> Model:
    """Flatten ``problem``'s candidates, costs, stock and capacity into a :class:`Model`."""
    net, orders, costs = problem.network, problem.orders, problem.costs
    cand = problem.candidates()
    n = orders.num_orders
    nch = net.num_channels
    n_cand = int(cand.location.shape[0])
    c_order = np.repeat(np.arange(n, dtype=np.int64), np.diff(cand.ptr))
    e_cand = np.repeat(np.arange(n_cand, dtype=np.int64), np.diff(cand.line_ptr))
    e_order = c_order[e_cand]
    e_j = np.arange(e_cand.shape[0], dtype=np.int64) - cand.line_ptr[:-1][e_cand]
    e_line = orders.indptr[:-1][e_order] + e_j
    e_loc = cand.location[e_cand]
    q = np.asarray(cand.entry, dtype=np.int64)
    chan = orders.channel[e_order]
    avail = np.asarray(problem.avail, dtype=np.int64)
    a = np.zeros(q.shape[0], dtype=np.int64)
    has = q >= 0
    a[has] = avail[q[has], chan[has]]
    cap = np.where(problem.capacity < 0, BIG, problem.capacity).astype(np.int64)
    usable = (q >= 0) & (a > 0) & (cap[e_loc] > 0)
    e_con = np.where(usable, q * nch + chan, -1).astype(np.int64)
    mult = net.cost_multiplier
    e_opp = opportunity_per_entry(problem, opportunity_cost, q)
    e_cost = mult[e_loc] * costs.per_unit + cand.ship_per_unit[e_cand] + e_opp
    c_pkg = mult[cand.location] * costs.per_package
    l_qty = np.asarray(orders.qty, dtype=np.int64)
    e_ub = np.minimum(np.minimum(l_qty[e_line], a), cap[e_loc])
    e_ub = np.where(usable, e_ub, 0)
    return Model(
        num_orders=n,
        num_locations=net.num_locations,
        o_ptr=np.asarray(orders.indptr, dtype=np.int64),
        l_qty=l_qty,
        l_pen=np.asarray(costs.unit_penalty(net, orders.sku), dtype=np.float64),
        c_ptr=np.asarray(cand.ptr, dtype=np.int64),
        c_loc=np.asarray(cand.location, dtype=np.int64),
        c_pkg=np.ascontiguousarray(c_pkg, dtype=np.float64),
        c_eptr=np.asarray(cand.line_ptr, dtype=np.int64),
        c_transfer=np.asarray(cand.transfer, dtype=np.bool_),
        e_con=e_con,
        e_pos=np.where(q >= 0, q * nch + chan, -1).astype(np.int64),
        e_cost=np.ascontiguousarray(e_cost, dtype=np.float64),
        e_loc=e_loc,
        e_order=e_order,
        e_cand=e_cand,
        e_line=e_line,
        e_ub=e_ub.astype(np.int64),
        e_opp=e_opp,
        s_rhs=avail.reshape(-1).copy(),
        cap=cap,
        max_locs=int(problem.max_locations),
        split=float(costs.split_penalty),
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
