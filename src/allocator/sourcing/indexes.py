"""The indexes sourcing searches with: per-SKU position lists and per-network location
structures. A :class:`~allocator.sourcing.Sourcer` holds both between calls.

* :class:`PositionIndex`: the ledger's positions as per-SKU lists (CSR, locations
  ascending), built in O(positions) by a counting sort.
* :class:`LocationIndex`: per-network eligibility masks, a uniform lat/lon grid
  (same-day radius queries in the greedy kernel) and unit vectors (``nearby`` ranks
  by chord length), with the greedy kernel's per-thread scratch buffers (:func:`new_scratch`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from allocator._kernels import sourcing as K
from allocator._validate import readonly
from allocator.network import NetworkData
from allocator.sourcing.orders import Service

if TYPE_CHECKING:
    from allocator.ledger import BaseLedger

__all__ = ["LocationIndex", "PositionIndex", "new_scratch"]


@dataclass(frozen=True, eq=False)
class PositionIndex:
    """Ledger positions grouped by SKU: ``loc[ptr[s]:ptr[s + 1]]`` ascending, with the
    matching ledger position rows in ``row``."""

    num_positions: int
    ptr: np.ndarray
    row: np.ndarray
    loc: np.ndarray

    @classmethod
    def from_ledger(cls, ledger: BaseLedger) -> PositionIndex:
        network = ledger.network
        n = ledger.num_positions
        ptr = np.zeros(network.num_skus + 1, dtype=np.int64)
        row = np.empty(n, dtype=np.int64)
        loc = np.empty(n, dtype=np.int64)
        K.build_sku_index(
            np.ascontiguousarray(ledger.position_sku),
            np.ascontiguousarray(ledger.position_location),
            network.num_skus,
            network.num_locations,
            ptr,
            row,
            loc,
        )
        return cls(n, readonly(ptr), readonly(row), readonly(loc))

    @property
    def lists(self) -> K.Lists:
        """The lists as the kernels read them."""
        return K.Lists(self.ptr, self.loc, self.row)

    def subset(self, skus: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ptr, row, loc)`` restricted to ``skus`` (local SKU ``i`` is ``skus[i]``)."""
        deg = self.ptr[skus + 1] - self.ptr[skus]
        ptr = np.empty(skus.shape[0] + 1, dtype=np.int64)
        total = int(deg.sum())
        row = np.empty(total, dtype=np.int64)
        loc = np.empty(total, dtype=np.int64)
        K.subset_index(skus, self.ptr, self.row, self.loc, ptr, row, loc)
        return ptr, row, loc


def new_scratch(num_locations: int, max_lines: int) -> K.Scratch:
    """Working buffers of the sourcing kernels (``allocator._kernels.sourcing.Scratch``)
    for ``num_locations`` locations and orders of up to ``max_lines`` lines.

    ``io[1]`` keeps counting across calls, so candidate stamps and the per-order
    distance cache (``stamp``, ``km_tag``) left by earlier calls never match a new
    order; the other buffers are overwritten before they are read.
    """
    n = max(num_locations, 1)
    return K.Scratch(
        io=np.zeros(2, dtype=np.int64),
        stamp=np.full(n, -1, dtype=np.int64),
        cslot=np.empty(n, dtype=np.int64),
        km_tag=np.full(n, -1, dtype=np.int64),
        km_val=np.empty(n, dtype=np.float64),
        cand_loc=np.empty(n, dtype=np.int64),
        cand_pos=np.empty((n, max_lines), dtype=np.int64),
        cand_km=np.empty(n, dtype=np.float64),
        cand_spu=np.empty(n, dtype=np.float64),
        cand_ub=np.empty(n, dtype=np.int64),
        rem=np.empty(max_lines, dtype=np.int64),
        pq=np.full(max_lines, -1, dtype=np.int64),
        qsel=np.empty(max_lines, dtype=np.int64),
        alt=np.empty(2, dtype=np.float64),
    )


class LocationIndex:
    """Static per-network structures for candidate search (see module docstring)."""

    def __init__(self, network: NetworkData) -> None:
        self.network = network
        nl, nc = network.num_locations, network.num_channels
        open_ = ~network.excluded
        ok = np.zeros((nl, 2 * nc), dtype=np.bool_)
        ok[:, 0::2] = network.serves & open_[:, None]
        ok[:, 1::2] = ok[:, 0::2] & network.ships[:, None]
        self.ok = ok
        self.sd_max = float(network.same_day_radius_km[open_].max()) if open_.any() else 0.0
        lat, lon = network.lat, network.lon
        self.params = np.zeros(5, dtype=np.float64)
        if nl:
            span_lat = float(lat.max() - lat.min())
            span_lon = float(lon.max() - lon.min())
            cell = max(math.sqrt(max(span_lat, 1e-6) * max(span_lon, 1e-6) / nl), 1e-3)
            nrows = min(int(span_lat / cell) + 1, 4 * nl + 1)
            ncols = min(int(span_lon / cell) + 1, 4 * nl + 1)
            cell = max(cell, span_lat / nrows * 1.000001, span_lon / ncols * 1.000001)
            self.params[:] = (lat.min(), lon.min(), cell, nrows, ncols)
        else:
            self.params[:] = (0.0, 0.0, 1.0, 1, 1)
        ncells = int(self.params[K.G_NROWS] * self.params[K.G_NCOLS])
        self.g_ptr = np.zeros(ncells + 1, dtype=np.int64)
        self.g_loc = np.zeros(nl, dtype=np.int64)
        K.build_grid(
            np.ascontiguousarray(lat),
            np.ascontiguousarray(lon),
            self.params,
            self.g_ptr,
            self.g_loc,
        )
        rlat, rlon = np.radians(lat), np.radians(lon)
        self.xyz = np.column_stack(
            (np.cos(rlat) * np.cos(rlon), np.cos(rlat) * np.sin(rlon), np.sin(rlat))
        )
        #: The locations as the sourcing kernels read them.
        self.sites = K.Sites(
            network.lat, network.lon, self.xyz, ok, network.pickup, network.same_day_radius_km
        )
        #: The grid of :attr:`params`, :attr:`g_ptr` and :attr:`g_loc`, for the kernels.
        self.grid = K.Grid(self.params, self.g_ptr, self.g_loc, self.sd_max)
        self._eligible: dict[tuple[int, int], np.ndarray] = {}
        self._local = threading.local()

    def scratch(self, max_lines: int) -> K.Scratch:
        """This thread's :func:`new_scratch` buffers for orders of up to ``max_lines`` lines."""
        sc: K.Scratch | None = getattr(self._local, "scratch", None)
        if sc is None or sc.rem.shape[0] < max_lines:
            sc = new_scratch(self.network.num_locations, max(max_lines, 8))
            self._local.scratch = sc
        return sc

    def eligible(self, channel: int, service: int | None) -> np.ndarray:
        """Locations that may serve ``channel`` with ``service`` (None: any service);
        cached, read-only."""
        key = (channel, -1 if service is None else int(service))
        cached = self._eligible.get(key)
        if cached is not None:
            return cached
        net = self.network
        mask = self.ok[:, 2 * channel].copy()
        if service == Service.SHIP:
            mask &= net.ships
        elif service == Service.PICKUP:
            mask &= net.pickup
        elif service == Service.SAME_DAY:
            mask &= net.same_day_radius_km > 0
        self._eligible[key] = readonly(mask)
        return self._eligible[key]
