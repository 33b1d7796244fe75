"""Transfers between locations as one min-cost flow (OR-Tools ``SimpleMinCostFlow``).

Positions holding more than they need give their surplus to positions of the same
SKU below their reorder point, where moving a unit costs less than the stockout
cost it is expected to avoid. All SKUs go into one network: a node per source and
per sink position, and one shared terminal that absorbs every unit, either as
"stays where it is" (cost 0) or through a sink (negative cost = the benefit).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from allocator._kernels import replenish as K
from allocator._validate import readonly
from allocator.exceptions import SolverError

__all__ = ["TransferLines", "haversine_km", "plan_transfers", "transfer_cost_matrix"]

logger = logging.getLogger("allocator")

#: Money is scaled to integer cost units for the solver: 1 unit = 1/COST_SCALE.
COST_SCALE = 10_000


@dataclass(frozen=True, eq=False)
class TransferLines:
    """Transfers chosen by :func:`plan_transfers` (read-only arrays, one row a move).

    ``origin`` and ``destination`` are *position rows* (indices into the arrays
    passed in), ``qty`` units, ``unit_cost`` money per unit.
    """

    origin: np.ndarray
    destination: np.ndarray
    qty: np.ndarray
    unit_cost: np.ndarray
    num_arcs: int
    objective: float

    def __len__(self) -> int:
        return int(self.qty.shape[0])


def haversine_km(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Great-circle distances (km) between every pair of points, as a square matrix."""
    la = np.radians(np.asarray(lat, dtype=np.float64))
    lo = np.radians(np.asarray(lon, dtype=np.float64))
    dlat = la[:, None] - la[None, :]
    dlon = lo[:, None] - lo[None, :]
    a = np.sin(dlat / 2) ** 2 + np.cos(la[:, None]) * np.cos(la[None, :]) * np.sin(dlon / 2) ** 2
    return 2 * 6371.0088 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def transfer_cost_matrix(
    lat: Any, lon: Any, per_unit: Any = 1.0, per_unit_km: float = 0.0
) -> np.ndarray:
    """Money to move one unit between locations: ``per_unit + per_unit_km * km``.

    ``per_unit`` is a scalar or a ``(num_locations, num_locations)`` matrix. The
    diagonal is 0.
    """
    km = haversine_km(lat, lon)
    cost = np.asarray(per_unit, dtype=np.float64) + per_unit_km * km
    cost = np.array(np.broadcast_to(cost, km.shape), dtype=np.float64)
    np.fill_diagonal(cost, 0.0)
    return cost


def plan_transfers(
    sku: np.ndarray,
    location: np.ndarray,
    surplus: np.ndarray,
    need: np.ndarray,
    benefit: np.ndarray,
    unit_cost: np.ndarray,
    *,
    max_sources: int = 8,
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
        Expected stockout cost avoided per unit received, per position (money).
    unit_cost
        ``(num_locations, num_locations)`` money per unit moved.
    max_sources
        Each needy position considers at most this many cheapest sources.

    Returns
    -------
    TransferLines

    Notes
    -----
    For sources :math:`i` (supply :math:`e_i`), sinks :math:`j` (need
    :math:`n_j`, benefit :math:`b_j`) and a terminal :math:`T`:

    .. math::
        \\min \\sum_{ij} c_{ij} x_{ij} - \\sum_j b_j y_j
        \\quad\\text{s.t.}\\quad \\sum_j x_{ij} + k_i = e_i,\\;
        y_j = \\sum_i x_{ij} \\le n_j

    where :math:`k_i` (cost 0) is the stock that stays. Only arcs with
    :math:`c_{ij} < b_j` are built, so every unit moved lowers the cost.
    """
    from ortools.graph.python import min_cost_flow

    src_rows = np.flatnonzero(surplus > 0)
    sink_rows = np.flatnonzero(need > 0)
    empty = np.empty(0, dtype=np.int64)
    if src_rows.size == 0 or sink_rows.size == 0:
        return TransferLines(
            readonly(empty), readonly(empty), readonly(empty), readonly(np.empty(0)), 0, 0.0
        )
    # Group both sides by SKU (stable, so results do not depend on input order ties).
    src_rows = src_rows[np.argsort(sku[src_rows], kind="stable")]
    sink_rows = sink_rows[np.argsort(sku[sink_rows], kind="stable")]
    skus = np.union1d(sku[src_rows], sku[sink_rows])
    src_ptr = np.searchsorted(sku[src_rows], skus, side="left")
    src_ptr = np.append(src_ptr, src_rows.size)
    sink_ptr = np.searchsorted(sku[sink_rows], skus, side="left")
    sink_ptr = np.append(sink_ptr, sink_rows.size)
    cap = sink_rows.size * max_sources
    arc_src = np.empty(cap, dtype=np.int64)
    arc_sink = np.empty(cap, dtype=np.int64)
    n_arcs = K.candidate_arcs(
        skus.astype(np.int64),
        src_rows.astype(np.int64),
        src_ptr.astype(np.int64),
        sink_rows.astype(np.int64),
        sink_ptr.astype(np.int64),
        np.ascontiguousarray(location),
        np.ascontiguousarray(unit_cost, dtype=np.float64),
        np.ascontiguousarray(benefit[sink_rows], dtype=np.float64),
        int(max_sources),
        arc_src,
        arc_sink,
    )
    arc_src = arc_src[:n_arcs]
    arc_sink = arc_sink[:n_arcs]
    if n_arcs == 0:
        return TransferLines(
            readonly(empty), readonly(empty), readonly(empty), readonly(np.empty(0)), 0, 0.0
        )
    # Keep only sources and sinks that some arc touches.
    used_src = np.unique(arc_src)
    used_sink = np.unique(arc_sink)
    src_node = np.full(src_rows.size, -1, dtype=np.int64)
    src_node[used_src] = np.arange(used_src.size)
    sink_node = np.full(sink_rows.size, -1, dtype=np.int64)
    sink_node[used_sink] = used_src.size + np.arange(used_sink.size)
    terminal = used_src.size + used_sink.size

    e = surplus[src_rows[used_src]].astype(np.int64)
    n = need[sink_rows[used_sink]].astype(np.int64)
    c = unit_cost[location[src_rows[arc_src]], location[sink_rows[arc_sink]]]
    b = benefit[sink_rows[used_sink]]
    if max(float(np.max(b, initial=0.0)), float(np.max(c, initial=0.0))) * COST_SCALE > 2**52:
        logger.warning("transfer costs are too large to scale exactly; results may round")
    tails = np.concatenate([src_node[arc_src], sink_node[used_sink], src_node[used_src]])
    heads = np.concatenate(
        [sink_node[arc_sink], np.full(used_sink.size, terminal), np.full(used_src.size, terminal)]
    )
    arc_cap = np.minimum(e[src_node[arc_src]], n[np.searchsorted(used_sink, arc_sink)])
    caps = np.concatenate([arc_cap, n, e])
    costs = np.concatenate(
        [
            np.round(c * COST_SCALE),
            -np.round(b * COST_SCALE),
            np.zeros(used_src.size),
        ]
    ).astype(np.int64)
    flow = min_cost_flow.SimpleMinCostFlow()
    arcs = flow.add_arcs_with_capacity_and_unit_cost(
        tails.astype(np.int32), heads.astype(np.int32), caps.astype(np.int64), costs
    )
    nodes = np.arange(terminal + 1, dtype=np.int32)
    supplies = np.zeros(terminal + 1, dtype=np.int64)
    supplies[: used_src.size] = e
    supplies[terminal] = -int(e.sum())
    flow.set_nodes_supplies(nodes, supplies)
    status = flow.solve()
    if status != flow.OPTIMAL:
        raise SolverError(f"min-cost flow ended with status {status}")
    x = np.asarray(flow.flows(arcs[:n_arcs]), dtype=np.int64)
    moved = x > 0
    origin = src_rows[arc_src[moved]]
    dest = sink_rows[arc_sink[moved]]
    order = np.lexsort((dest, origin, sku[origin]))
    return TransferLines(
        readonly(origin[order].astype(np.int64)),
        readonly(dest[order].astype(np.int64)),
        readonly(x[moved][order]),
        readonly(c[moved][order]),
        int(n_arcs),
        float(flow.optimal_cost()) / COST_SCALE,
    )
