"""The ``greedy`` sourcing method: the real-time path, the fallback and the baseline."""

from __future__ import annotations

import time

import numpy as np

from allocator._kernels import sourcing as K
from allocator.sourcing.plan import PlanStatus, SourcingPlan, build_plan
from allocator.sourcing.problem import SourcingProblem, ledger_views

__all__ = ["solve_greedy"]


def solve_greedy(problem: SourcingProblem) -> SourcingPlan:
    """Source the orders one at a time with the greedy rules (see ``docs/sourcing.md``).

    Orders are taken in ``problem.sequence`` order; each sees the availability and
    pick capacity consumed by the orders before it. The ledger is not touched.
    """
    t0 = time.perf_counter()
    net, orders = problem.network, problem.orders
    nloc = net.num_locations
    n = orders.num_orders
    n_lines = orders.num_lines
    max_lines = problem.max_lines
    # working availability state per list entry, read from the ledger on first use
    # (-1: not read yet): available(c) per channel, free, unused fences, cap rooms
    wav = np.full((problem.sku_loc.shape[0], 3 * net.num_channels + 1), -1, dtype=np.int64)
    av = K.Avail(wav, problem.sku_row, ledger_views(problem.ledger))
    cap = problem.capacity.copy()
    ix = problem.locations
    sc = ix.scratch(max_lines)
    size = 2 * n_lines + max_lines * min(problem.max_locations, max(nloc, 1))
    rows = _rows(size)
    io = sc.io
    io[0] = 0
    # written for every line and order by the kernel
    out = K.Outcome(
        np.empty(n_lines, dtype=np.int64),
        np.empty(n_lines, dtype=np.int8),
        np.empty(n, dtype=np.int64),
        np.empty(n),
    )
    args = (problem.order_data, problem.lists, av, ix.sites, ix.grid)
    costs = problem.costs
    tariff = costs.tariff(net)
    start = 0
    while start < n:
        start = K.greedy(
            problem.sequence, start, *args, tariff, cap, problem.max_locations, sc, rows, out
        )
        if start < n:
            grown = _rows(2 * rows.order.shape[0])
            for new, old in zip(grown, rows, strict=True):
                new[: io[0]] = old[: io[0]]
            rows = grown
    k = int(io[0])
    order, line, location, qty, transfer = (a[:k] for a in rows)
    return build_plan(
        net,
        orders,
        costs,
        method="greedy",
        order=order,
        line=line,
        location=location,
        qty=qty,
        transfer=transfer,
        line_unfilled=out.line_unfilled,
        line_reason=out.line_reason,
        alt_location=out.alt_loc,
        alt_cost=out.alt_cost,
        status=PlanStatus.HEURISTIC,
        runtime_s=time.perf_counter() - t0,
    )


def _rows(size: int) -> K.Rows:
    return K.Rows(
        np.empty(size, dtype=np.int64),
        np.empty(size, dtype=np.int64),
        np.empty(size, dtype=np.int64),
        np.empty(size, dtype=np.int64),
        np.empty(size, dtype=np.bool_),
    )
