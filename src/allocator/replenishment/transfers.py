"""Transfers between locations as min-cost flows (OR-Tools ``SimpleMinCostFlow``).

Positions holding more than they need give their surplus to positions of the same
SKU below their reorder point, where moving a unit costs less than the stockout
cost it is expected to avoid. No constraint couples two SKUs, so each SKU is its
own flow network (a node per source and per sink position and one terminal that
absorbs every unit, either as "stays where it is", cost 0, or through a sink,
negative cost = the benefit). Many small SKU networks are packed side by side as
disjoint components into one solver call of moderate size, and those calls may
run on threads.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from allocator._kernels import replenish as K
from allocator._kernels.geo import pairwise_km
from allocator._validate import as_float64, as_int64, first_true, readonly, same_length
from allocator.exceptions import SolverError, ValidationError

__all__ = [
    "TransferCandidates",
    "TransferLines",
    "plan_transfers",
    "transfer_candidates",
    "transfer_cost_matrix",
]

logger = logging.getLogger("allocator")

#: Money is scaled to integer cost units for the solver: 1 unit = 1/COST_SCALE.
COST_SCALE = 10_000

#: Arcs per solver call: SKU components are packed until a call holds about this many.
BATCH_ARCS = 20_000


@dataclass(frozen=True, eq=False)
class TransferLines:
    """Transfers chosen by :func:`plan_transfers` (read-only arrays, one row a move).

    ``origin`` and ``destination`` are *position rows* (indices into the arrays
    passed in), ``qty`` units, ``unit_cost`` money per unit. ``num_arcs`` counts
    the candidate source-to-sink arcs, ``num_components`` the SKUs with at least
    one arc, ``num_solves`` the solver calls they were packed into, and
    ``objective`` is the total transfer cost minus the benefit (money, <= 0).
    """

    origin: np.ndarray
    destination: np.ndarray
    qty: np.ndarray
    unit_cost: np.ndarray
    num_arcs: int
    objective: float
    num_components: int = 0
    num_solves: int = 0

    def __len__(self) -> int:
        return int(self.qty.shape[0])


def _pairwise_km(lat: Any, lon: Any) -> np.ndarray:
    """Great-circle km between every pair of points (``_kernels.geo``), a square matrix."""
    la = np.ascontiguousarray(lat, dtype=np.float64)
    lo = np.ascontiguousarray(lon, dtype=np.float64)
    out = np.empty((la.shape[0], la.shape[0]))
    pairwise_km(la, lo, out)
    return out


def transfer_cost_matrix(
    lat: Any, lon: Any, per_unit: Any = 1.0, per_unit_km: float = 0.0
) -> np.ndarray:
    """Money to move one unit between locations: ``per_unit + per_unit_km * km``.

    ``per_unit`` is a scalar or a ``(num_locations, num_locations)`` matrix. The
    diagonal is 0.
    """
    km = _pairwise_km(lat, lon)
    cost = np.asarray(per_unit, dtype=np.float64) + per_unit_km * km
    cost = np.array(np.broadcast_to(cost, km.shape), dtype=np.float64)
    np.fill_diagonal(cost, 0.0)
    return cost


def _empty(num_arcs: int = 0) -> TransferLines:
    e = readonly(np.empty(0, dtype=np.int64))
    return TransferLines(e, e, e, readonly(np.empty(0)), num_arcs, 0.0)


@dataclass(frozen=True, eq=False)
class _Network:
    """SKU components laid out side by side: nodes and arcs of component ``g`` are
    ``node_ptr[g]:node_ptr[g + 1]`` and ``arc_ptr[g]:arc_ptr[g + 1]`` (empty for SKUs
    without an arc); the transfer arcs of all components sit at ``transfer_at``."""

    tails: np.ndarray
    heads: np.ndarray
    caps: np.ndarray
    costs: np.ndarray
    supply: np.ndarray
    node_ptr: np.ndarray
    arc_ptr: np.ndarray
    transfer_at: np.ndarray


def _ranks(group: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Rank of each element within its group, for elements sorted by group."""
    first = np.concatenate(([0], np.cumsum(count)[:-1]))
    return np.arange(group.size, dtype=np.int64) - first[group]


def _component_network(
    num_groups: int,
    src_group: np.ndarray,
    sink_group: np.ndarray,
    arc_src: np.ndarray,
    arc_sink: np.ndarray,
    supply_src: np.ndarray,
    need_sink: np.ndarray,
    benefit_sink: np.ndarray,
    arc_cost: np.ndarray,
) -> _Network:
    """One flow component per SKU group, built with array operations only.

    Arcs arrive grouped by SKU group (as :func:`candidate_arcs` writes them).
    Component ``g`` holds its used sources, then its used sinks, then its
    terminal; its arcs are the transfer arcs, then sink -> terminal (capacity
    = need, cost = -benefit), then source -> terminal (capacity = supply, cost 0).
    """
    g_count = num_groups
    used_src = np.unique(arc_src)
    used_sink = np.unique(arc_sink)
    gs = src_group[used_src]
    gk = sink_group[used_sink]
    arc_group = src_group[arc_src]
    ns = np.bincount(gs, minlength=g_count)
    nk = np.bincount(gk, minlength=g_count)
    na = np.bincount(arc_group, minlength=g_count)
    has = na > 0
    nodes = np.where(has, ns + nk + 1, 0)
    node_ptr = np.concatenate(([0], np.cumsum(nodes))).astype(np.int64)
    arc_ptr = np.concatenate(([0], np.cumsum(na + nk + ns))).astype(np.int64)
    terminal = node_ptr[1:] - 1

    src_rank = _ranks(gs, ns)
    sink_rank = _ranks(gk, nk)
    src_node = np.full(src_group.size, -1, dtype=np.int64)
    src_node[used_src] = node_ptr[gs] + src_rank
    sink_node = np.full(sink_group.size, -1, dtype=np.int64)
    sink_node[used_sink] = node_ptr[gk] + ns[gk] + sink_rank

    m = int(arc_ptr[-1])
    tails = np.empty(m, dtype=np.int64)
    heads = np.empty(m, dtype=np.int64)
    caps = np.empty(m, dtype=np.int64)
    costs = np.empty(m, dtype=np.int64)
    e = supply_src[used_src]
    n = need_sink[used_sink]
    # transfer arcs
    at = arc_ptr[arc_group] + _ranks(arc_group, na)
    tails[at] = src_node[arc_src]
    heads[at] = sink_node[arc_sink]
    caps[at] = np.minimum(supply_src[arc_src], need_sink[arc_sink])
    costs[at] = arc_cost
    # sink -> terminal
    k_at = arc_ptr[gk] + na[gk] + sink_rank
    tails[k_at] = sink_node[used_sink]
    heads[k_at] = terminal[gk]
    caps[k_at] = n
    costs[k_at] = -benefit_sink[used_sink]
    # source -> terminal (the stock stays)
    s_at = arc_ptr[gs] + na[gs] + nk[gs] + src_rank
    tails[s_at] = src_node[used_src]
    heads[s_at] = terminal[gs]
    caps[s_at] = e
    costs[s_at] = 0

    supply = np.zeros(int(node_ptr[-1]), dtype=np.int64)
    supply[src_node[used_src]] = e
    cum = np.concatenate(([0], np.cumsum(e)))
    first = np.concatenate(([0], np.cumsum(ns)))
    total = cum[first[1:]] - cum[first[:-1]]
    supply[terminal[has]] = -total[has]
    return _Network(tails, heads, caps, costs, supply, node_ptr, arc_ptr, at)


def _solve_range(net: _Network, g0: int, g1: int, flow: np.ndarray) -> int:
    """Solve components ``g0:g1`` in one call; write their flows; return the cost."""
    from ortools.graph.python import min_cost_flow

    a0, a1 = int(net.arc_ptr[g0]), int(net.arc_ptr[g1])
    n0, n1 = int(net.node_ptr[g0]), int(net.node_ptr[g1])
    solver = min_cost_flow.SimpleMinCostFlow()
    arcs = solver.add_arcs_with_capacity_and_unit_cost(
        (net.tails[a0:a1] - n0).astype(np.int32),
        (net.heads[a0:a1] - n0).astype(np.int32),
        net.caps[a0:a1],
        net.costs[a0:a1],
    )
    solver.set_nodes_supplies(np.arange(n1 - n0, dtype=np.int32), net.supply[n0:n1])
    status = solver.solve()
    if status != solver.OPTIMAL:
        raise SolverError(f"min-cost flow ended with status {status}")
    flow[a0:a1] = solver.flows(arcs)
    return int(solver.optimal_cost())


def _check(
    sku: Any, location: Any, surplus: Any, need: Any, benefit: Any, unit_cost: Any
) -> tuple[np.ndarray, ...]:
    sku_a = as_int64(sku, "sku", lo=0)
    loc_a = as_int64(location, "location", lo=0)
    surplus_a = as_int64(surplus, "surplus", lo=0)
    need_a = as_int64(need, "need", lo=0)
    benefit_a = as_float64(benefit, "benefit", allow_nan=True)
    same_length(
        [
            ("sku", sku_a),
            ("location", loc_a),
            ("surplus", surplus_a),
            ("need", need_a),
            ("benefit", benefit_a),
        ]
    )
    bad = (need_a > 0) & ~np.isfinite(benefit_a)
    if bad.any():
        raise ValidationError(
            "a needy position has no finite benefit",
            field="benefit",
            row=first_true(bad),
            code="not_finite",
        )
    cost = np.asarray(unit_cost, dtype=np.float64)
    size = int(loc_a.max()) + 1 if loc_a.size else 0
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1] or cost.shape[0] < size:
        raise ValidationError(
            f"expected a square matrix over at least {size} locations, got shape {cost.shape}",
            field="unit_cost",
            code="wrong_shape",
        )
    if not np.all(np.isfinite(cost)) or np.any(cost < 0):
        raise ValidationError(
            "transfer costs must be finite and >= 0", field="unit_cost", code="out_of_range"
        )
    return sku_a, loc_a, surplus_a, need_a, benefit_a, cost


@dataclass(frozen=True, eq=False)
class TransferCandidates:
    """Sources and sinks grouped by SKU (``skus``) and the candidate arcs between
    them. Group ``g`` owns ``src_rows[src_ptr[g]:src_ptr[g + 1]]``, the sinks
    likewise, and arcs ``arc_ptr[g]:arc_ptr[g + 1]``; ``arc_src`` / ``arc_sink``
    index ``src_rows`` / ``sink_rows``."""

    skus: np.ndarray
    src_rows: np.ndarray
    sink_rows: np.ndarray
    src_ptr: np.ndarray
    sink_ptr: np.ndarray
    arc_ptr: np.ndarray
    arc_src: np.ndarray
    arc_sink: np.ndarray


def transfer_candidates(
    sku: np.ndarray,
    location: np.ndarray,
    surplus: np.ndarray,
    need: np.ndarray,
    benefit: np.ndarray,
    unit_cost: np.ndarray,
    k: int,
    batch_arcs: int = BATCH_ARCS,
    threads: int = 1,
) -> TransferCandidates | None:
    """Candidate source-to-sink arcs per SKU, as :func:`plan_transfers` builds them
    (``k = 0``: every source cheaper than the benefit, else each sink's ``k``
    cheapest); ``None`` when there is none. Inputs as :func:`plan_transfers` takes
    them after its checks (int64 and float64 arrays, a square cost matrix)."""
    src_rows = np.flatnonzero(surplus > 0)
    sink_rows = np.flatnonzero(need > 0)
    if src_rows.size == 0 or sink_rows.size == 0:
        return None
    # Group both sides by SKU (stable: rows stay ascending within a SKU).
    src_rows = src_rows[np.argsort(sku[src_rows], kind="stable")]
    sink_rows = sink_rows[np.argsort(sku[sink_rows], kind="stable")]
    skus = np.intersect1d(sku[src_rows], sku[sink_rows])
    if skus.size == 0:
        return None
    src_rows = src_rows[np.isin(sku[src_rows], skus)]
    sink_rows = sink_rows[np.isin(sku[sink_rows], skus)]
    bounds = np.arange(skus.size + 1)
    src_ptr = np.searchsorted(np.searchsorted(skus, sku[src_rows]), bounds).astype(np.int64)
    sink_ptr = np.searchsorted(np.searchsorted(skus, sku[sink_rows]), bounds).astype(np.int64)
    per_sink = np.diff(src_ptr) if k == 0 else np.minimum(np.diff(src_ptr), k)
    arc_count = np.concatenate(([0], np.cumsum(per_sink * np.diff(sink_ptr))))
    src_loc = location[src_rows]
    sink_loc = location[sink_rows]
    cost_to = np.ascontiguousarray(unit_cost.T)
    sink_benefit = np.ascontiguousarray(benefit[sink_rows])

    def scan(g0: int, g1: int) -> tuple[np.ndarray, np.ndarray]:
        out_src = np.empty(int(arc_count[g1] - arc_count[g0]), dtype=np.int64)
        out_sink = np.empty(out_src.size, dtype=np.int64)
        m = K.candidate_arcs(
            g0,
            g1,
            src_loc,
            src_ptr,
            sink_loc,
            sink_ptr,
            cost_to,
            sink_benefit,
            k,
            out_src,
            out_sink,
        )
        return out_src[:m], out_sink[:m]

    # The scan is the costliest step after the flows: split it like them.
    parts = _run([partial(scan, g0, g1) for g0, g1 in _chunks(arc_count, batch_arcs)], threads)
    if not parts:
        return None
    arc_src = np.concatenate([p[0] for p in parts])
    arc_sink = np.concatenate([p[1] for p in parts])
    if arc_src.size == 0:
        return None
    # arcs come out group by group, so a group's arcs start where its sinks' do
    arc_ptr = np.searchsorted(arc_sink, sink_ptr).astype(np.int64)
    return TransferCandidates(
        skus, src_rows, sink_rows, src_ptr, sink_ptr, arc_ptr, arc_src, arc_sink
    )


def _chunks(ptr: np.ndarray, size: int) -> list[tuple[int, int]]:
    """Consecutive groups ``[g0, g1)`` holding about ``size`` arcs each (only
    groups with arcs start a chunk; a group is never split)."""
    groups = np.flatnonzero(np.diff(ptr) > 0)
    if groups.size == 0:
        return []
    bucket = ptr[groups] // size
    starts = groups[np.concatenate(([0], np.flatnonzero(np.diff(bucket)) + 1))]
    bounds = np.append(starts, ptr.size - 1)
    return [(int(bounds[i]), int(bounds[i + 1])) for i in range(bounds.size - 1)]


def _run(jobs: list[Any], threads: int) -> list[Any]:
    if threads > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(lambda job: job(), jobs))
    return [job() for job in jobs]


def plan_transfers(
    sku: Any,
    location: Any,
    surplus: Any,
    need: Any,
    benefit: Any,
    unit_cost: Any,
    *,
    max_sources: int | None = 8,
    solver: str = "shortest_paths",
    batch_arcs: int = BATCH_ARCS,
    threads: int = 1,
) -> TransferLines:
    """Min-cost transfers from surplus positions to needy positions of the same SKU.

    Parameters
    ----------
    sku, location
        Per position (int64).
    surplus
        Units each position may give away (0 for most).
    need
        Units each position would take (0 for most).
    benefit
        Expected stockout cost avoided per unit received, per position (money;
        only read where ``need > 0``).
    unit_cost
        ``(num_locations, num_locations)`` money per unit moved, origin by row.
    max_sources
        Each needy position considers at most this many cheapest sources
        (``None`` or ``0``: every source whose unit cost is below its benefit).
    solver
        ``"shortest_paths"`` (default): an exact successive-shortest-path kernel
        per SKU (numba); ``"ortools"``: OR-Tools ``SimpleMinCostFlow``, with SKU
        components packed side by side into calls of about ``batch_arcs`` arcs.
        Both reach the same optimal cost.
    batch_arcs
        SKUs are handed out (to a kernel call or a solver call) in chunks of
        about this many arcs; a SKU is never split.
    threads
        Solver calls run on this many threads (the result does not depend on it).

    Returns
    -------
    TransferLines

    Notes
    -----
    Per SKU, for sources :math:`i` (supply :math:`e_i`), sinks :math:`j` (need
    :math:`n_j`, benefit :math:`b_j`) and a terminal :math:`T`:

    .. math::
        \\min \\sum_{ij} c_{ij} x_{ij} - \\sum_j b_j y_j
        \\quad\\text{s.t.}\\quad \\sum_j x_{ij} + k_i = e_i,\\;
        y_j = \\sum_i x_{ij} \\le n_j

    where :math:`k_i` (cost 0) is the stock that stays. Only arcs with
    :math:`c_{ij} < b_j` are built: a unit on any other arc would cost at least
    what it saves, so dropping them never changes the optimum. No constraint
    links two SKUs, so the sum of the per-SKU optima equals the optimum of one
    network over all SKUs. Limiting each sink to its ``max_sources`` cheapest
    sources is the only approximation (none when ``max_sources`` is ``None``).
    """
    sku, location, surplus, need, benefit, unit_cost = _check(
        sku, location, surplus, need, benefit, unit_cost
    )
    if batch_arcs < 1 or threads < 1:
        raise ValidationError(
            "batch_arcs and threads must be >= 1",
            field="batch_arcs" if batch_arcs < 1 else "threads",
        )
    if solver not in ("shortest_paths", "ortools"):
        raise ValidationError(
            f"unknown solver {solver!r}; expected 'shortest_paths' or 'ortools'",
            field="solver",
            code="unknown_method",
        )
    k = 0 if max_sources is None else int(max_sources)
    if k < 0:
        raise ValidationError("expected max_sources >= 0 or None", field="max_sources")
    cand = transfer_candidates(
        sku, location, surplus, need, benefit, unit_cost, k, batch_arcs, threads
    )
    if cand is None:
        return _empty()
    src_rows, sink_rows = cand.src_rows, cand.sink_rows
    arc_src, arc_sink = cand.arc_src, cand.arc_sink
    c = unit_cost[location[src_rows[arc_src]], location[sink_rows[arc_sink]]]
    b = benefit[sink_rows]
    if max(float(np.max(b[arc_sink])), float(np.max(c))) * COST_SCALE > 2**52:
        logger.warning("transfer costs are too large to scale exactly; results may round")
    c_int = np.round(c * COST_SCALE).astype(np.int64)
    b_int = np.zeros(b.size, dtype=np.int64)
    b_int[arc_sink] = np.round(b[arc_sink] * COST_SCALE).astype(np.int64)
    e, n = surplus[src_rows], need[sink_rows]
    flow = np.zeros(arc_src.size, dtype=np.int64)
    if solver == "shortest_paths":
        chunks = _chunks(cand.arc_ptr, batch_arcs)
        jobs = [
            partial(
                K.transfer_flows,
                g0,
                g1,
                cand.src_ptr,
                cand.sink_ptr,
                cand.arc_ptr,
                arc_src,
                arc_sink,
                c_int,
                e,
                n,
                b_int,
                flow,
            )
            for g0, g1 in chunks
        ]
        parts = _run(jobs, threads)
        x = flow
    else:
        net = _component_network(
            cand.skus.size,
            np.repeat(np.arange(cand.skus.size), np.diff(cand.src_ptr)),
            np.repeat(np.arange(cand.skus.size), np.diff(cand.sink_ptr)),
            arc_src,
            arc_sink,
            e,
            n,
            b_int,
            c_int,
        )
        chunks = _chunks(net.arc_ptr, batch_arcs)
        full = np.zeros(net.tails.size, dtype=np.int64)
        parts = _run([partial(_solve_range, net, g0, g1, full) for g0, g1 in chunks], threads)
        x = full[net.transfer_at]
    moved = x > 0
    origin = src_rows[arc_src[moved]]
    dest = sink_rows[arc_sink[moved]]
    order = np.lexsort((dest, origin, sku[origin]))
    return TransferLines(
        readonly(origin[order].astype(np.int64)),
        readonly(dest[order].astype(np.int64)),
        readonly(x[moved][order]),
        readonly(c[moved][order]),
        int(arc_src.size),
        float(sum(parts)) / COST_SCALE,
        int(np.count_nonzero(np.diff(cand.arc_ptr))),
        len(chunks),
    )
