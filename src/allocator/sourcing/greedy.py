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
    views = ledger_views(problem.ledger)
    # working availability state per list entry, read from the ledger on first use
    # (-1: not read yet): available(c) per channel, free, unused fences, cap rooms
    nch = net.num_channels
    wav = np.full((problem.sku_loc.shape[0], 3 * nch + 1), -1, dtype=np.int64)
    cap = problem.capacity.copy()
    ix = problem.locations
    loc_zone, zone_cost = problem.costs.arrays(net)
    costs = problem.costs
    sc = ix.scratch(max_lines)
    size = 2 * n_lines + max_lines * min(problem.max_locations, max(nloc, 1))
    rows = _rows(size)
    io = sc.io
    io[0] = 0
    # written for every line and order by the kernel
    line_unfilled = np.empty(n_lines, dtype=np.int64)
    line_reason = np.empty(n_lines, dtype=np.int8)
    alt_loc = np.empty(n, dtype=np.int64)
    alt_cost = np.empty(n)
    start = 0
    while start < n:
        start = K.greedy(
            problem.sequence,
            start,
            orders.indptr,
            problem.line_sku,
            orders.qty,
            orders.channel,
            orders.service,
            problem.dest_lat,
            problem.dest_lon,
            orders.pickup_location,
            problem.dest_zone,
            problem.sku_ptr,
            problem.sku_loc,
            problem.sku_row,
            wav,
            *views,
            net.lat,
            net.lon,
            ix.xyz,
            ix.ok,
            net.pickup,
            net.same_day_radius_km,
            net.cost_multiplier,
            loc_zone,
            cap,
            ix.params,
            ix.g_ptr,
            ix.g_loc,
            ix.sd_max,
            costs.per_package,
            costs.per_unit,
            costs.per_unit_km,
            zone_cost,
            problem.max_locations,
            sc.stamp,
            sc.cslot,
            sc.km_tag,
            sc.km_val,
            sc.cand_loc,
            sc.cand_pos,
            sc.cand_km,
            sc.cand_spu,
            sc.cand_ub,
            sc.rem,
            sc.pq,
            sc.qsel,
            *rows,
            io,
            line_unfilled,
            line_reason,
            alt_loc,
            alt_cost,
        )
        if start < n:
            grown = _rows(2 * rows[0].shape[0])
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
        line_unfilled=line_unfilled,
        line_reason=line_reason,
        alt_location=alt_loc,
        alt_cost=alt_cost,
        status=PlanStatus.HEURISTIC,
        runtime_s=time.perf_counter() - t0,
    )


def _rows(size: int) -> tuple[np.ndarray, ...]:
    return (
        np.empty(size, dtype=np.int64),
        np.empty(size, dtype=np.int64),
        np.empty(size, dtype=np.int64),
        np.empty(size, dtype=np.int64),
        np.empty(size, dtype=np.bool_),
    )
