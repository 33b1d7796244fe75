"""The ``greedy`` sourcing method: the real-time path, the fallback and the baseline."""

from __future__ import annotations

import time

import numpy as np

from allocator._kernels import sourcing as K
from allocator.sourcing.plan import PlanStatus, SourcingPlan, build_plan
from allocator.sourcing.problem import SourcingProblem

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
    max_lines = int(np.diff(orders.indptr).max()) if n else 1
    ledger = problem.ledger
    # working availability, read from the ledger on first use (-1: not read yet)
    wav = np.full((problem.sku_loc.shape[0], net.num_channels), -1, dtype=np.int64)
    cap = np.array(problem.capacity, dtype=np.int64)
    ix = problem.locations
    loc_zone, zone_cost = problem.costs.arrays(net)
    costs = problem.costs
    stamp = np.full(nloc, -1, dtype=np.int64)
    cslot = np.empty(nloc, dtype=np.int64)
    km_tag = np.full(nloc, -1, dtype=np.int64)
    km_val = np.empty(nloc, dtype=np.float64)
    cand_loc = np.empty(nloc, dtype=np.int64)
    cand_pos = np.empty((nloc, max_lines), dtype=np.int64)
    cand_km = np.empty(nloc, dtype=np.float64)
    cand_spu = np.empty(nloc, dtype=np.float64)
    cand_ub = np.empty(nloc, dtype=np.int64)
    rem = np.empty(max_lines, dtype=np.int64)
    pq = np.full(max_lines, -1, dtype=np.int64)
    qsel = np.empty(max_lines, dtype=np.int64)
    size = 2 * n_lines + max_lines * min(problem.max_locations, max(nloc, 1))
    rows = _rows(size)
    io = np.zeros(2, dtype=np.int64)
    line_unfilled = np.zeros(n_lines, dtype=np.int64)
    line_reason = np.zeros(n_lines, dtype=np.int8)
    alt_loc = np.full(n, -1, dtype=np.int64)
    alt_cost = np.full(n, np.nan)
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
            ledger.on_hand,
            ledger.safety_stock,
            ledger.fence,
            ledger.cap,
            ledger.reserved_by_channel,
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
            stamp,
            cslot,
            km_tag,
            km_val,
            cand_loc,
            cand_pos,
            cand_km,
            cand_spu,
            cand_ub,
            rem,
            pq,
            qsel,
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
