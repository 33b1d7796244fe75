"""What every sourcing method starts from: a prepared problem and its candidates.

* :class:`SourcingProblem`: one call's inputs as kernel-ready arrays, with
  :meth:`SourcingProblem.candidates` for methods that want every candidate up front;
* :class:`Candidates`: every order's candidate locations (CSR);
* :func:`check_ledger` and :func:`availability`: the ledger checks and reads.

The indexes it is built from live in :mod:`allocator.sourcing.indexes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from allocator._kernels import sourcing as K
from allocator._validate import as_int64, readonly
from allocator.exceptions import ValidationError
from allocator.ledger import BaseLedger
from allocator.network import NetworkData
from allocator.sourcing.costs import CostModel
from allocator.sourcing.indexes import LocationIndex, PositionIndex, new_scratch
from allocator.sourcing.orders import Orders

__all__ = ["Candidates", "SourcingProblem", "availability", "check_ledger", "ledger_views"]

# Above this share of the ledger's positions one available_all() beats point lookups.
_DENSE_SHARE = 0.125


def ledger_views(ledger: BaseLedger) -> K.Stock:
    """``(on_hand, safety_stock, fence, cap, reserved_by_channel)`` of ``ledger`` for
    the kernels, always in numba's ``A`` (strided) layout.

    The ledger's per-position arrays are strided views of its state, except for a
    ledger so small that a view is contiguous; numba would then compile every kernel
    that reads them a second time (35 s for greedy). Those small arrays are copied
    into a strided buffer, two rows longer than needed, so the layout never changes.
    """
    out = []
    for arr in (
        ledger.on_hand,
        ledger.safety_stock,
        ledger.fence,
        ledger.cap,
        ledger.reserved_by_channel,
    ):
        a = np.asarray(arr)
        if a.flags.c_contiguous or a.flags.f_contiguous:
            # at least two rows: numpy calls any array of one row contiguous
            buf = np.zeros((2 * (a.shape[0] + 2), *a.shape[1:]), dtype=a.dtype)
            view = buf[::2]
            view[: a.shape[0]] = a
            view.flags.writeable = False
            a = view
        out.append(a)
    return K.Stock(*out)


def check_ledger(network: NetworkData, ledger: BaseLedger) -> None:
    """Raise unless ``ledger`` is a ledger (in memory, durable or shared) of ``network``."""
    if not isinstance(ledger, BaseLedger):
        raise TypeError(f"expected a Ledger, got {type(ledger).__name__}")
    network.require_same(ledger.network, "ledger", "the ledger")


def availability(
    ledger: BaseLedger,
    skus: np.ndarray,
    ptr: np.ndarray,
    row: np.ndarray,
    loc: np.ndarray,
    channels: np.ndarray,
) -> np.ndarray:
    """``(len(row), num_channels)`` ATP of the listed positions for ``channels`` (other
    channels 0), read from the ledger."""
    nchan = ledger.network.num_channels
    m = row.shape[0]
    if m > _DENSE_SHARE * max(ledger.num_positions, 1):
        return np.array(ledger.available_all()[row], dtype=np.int64)
    out = np.zeros((m, nchan), dtype=np.int64)
    if m:
        # the rows are known, so read the ledger's per-position arrays directly
        # (the ledger's ATP formula) instead of hashing (sku, location) keys again
        K.atp_rows(ledger_views(ledger), row, channels.astype(np.int64), out)
    return out


@dataclass(frozen=True, eq=False)
class Candidates:
    """Every candidate location of every order, as CSR.

    Candidates of order ``o`` are ``location[ptr[o]:ptr[o + 1]]`` with distance ``km``
    to the order's destination, shipping cost per unit ``ship_per_unit`` and
    ``transfer`` (True for sources of a pick-up order other than its pick-up store).
    ``entry[line_ptr[k] + j]`` is the availability row (into
    :attr:`SourcingProblem.avail`) of line ``j`` at candidate ``k``, -1 when the
    location does not hold the SKU.
    """

    ptr: np.ndarray
    location: np.ndarray
    km: np.ndarray
    ship_per_unit: np.ndarray
    transfer: np.ndarray
    line_ptr: np.ndarray
    entry: np.ndarray


@dataclass(frozen=True, eq=False)
class SourcingProblem:
    """One sourcing call's inputs, prepared once and shared by every method.

    Attributes
    ----------
    network, orders, costs
        The validated inputs.
    max_locations
        Most locations per order (``max_splits + 1``; ``num_locations`` when unlimited).
    sequence
        Orders in processing order: priority descending, then arrival.
    line_sku
        Local SKU of each order line (into the ``sku_*`` lists).
    skus
        Global SKU of each local SKU.
    sku_ptr, sku_loc, sku_row
        Per-local-SKU position lists (locations ascending; ledger position rows).
    ledger
        The ledger availability is read from (never changed).
    avail
        ``(len(sku_loc), num_channels)`` ATP of the listed positions for the orders'
        channels (other channels 0), read from the ledger on first use (methods copy
        it). The greedy method reads only the positions it looks at, straight from
        the ledger.
    capacity
        Remaining pick capacity per location (-1 = unlimited).
    dest_lat, dest_lon, dest_zone
        Destination per order (the pick-up store for pick-up orders).
    locations
        The network's :class:`LocationIndex`.
    max_lines
        The most lines of an order (at least 1).
    """

    network: NetworkData
    orders: Orders
    costs: CostModel
    max_locations: int
    sequence: np.ndarray
    line_sku: np.ndarray
    skus: np.ndarray
    sku_ptr: np.ndarray
    sku_loc: np.ndarray
    sku_row: np.ndarray
    ledger: BaseLedger
    capacity: np.ndarray
    dest_lat: np.ndarray
    dest_lon: np.ndarray
    dest_zone: np.ndarray
    locations: LocationIndex
    max_lines: int = 1

    @cached_property
    def lists(self) -> K.Lists:
        """The per-SKU position lists as the kernels read them."""
        return K.Lists(self.sku_ptr, self.sku_loc, self.sku_row)

    @cached_property
    def order_data(self) -> K.OrderData:
        """The orders as the kernels read them (lines by local SKU, destinations)."""
        o = self.orders
        return K.OrderData(
            o.indptr,
            self.line_sku,
            o.qty,
            o.channel,
            o.service,
            self.dest_lat,
            self.dest_lon,
            o.pickup_location,
            self.dest_zone,
        )

    @cached_property
    def avail(self) -> np.ndarray:
        """``(len(sku_loc), num_channels)`` ATP of the listed positions (read-only)."""
        channels = np.unique(self.orders.channel)
        return readonly(
            availability(self.ledger, self.skus, self.sku_ptr, self.sku_row, self.sku_loc, channels)
        )

    @classmethod
    def build(
        cls,
        network: NetworkData,
        ledger: BaseLedger,
        orders: Orders,
        costs: CostModel,
        positions: PositionIndex,
        locations: LocationIndex,
        *,
        max_splits: int | None = None,
        pick_capacity: Any = None,
    ) -> SourcingProblem:
        """Validate the call's arguments and gather its data (the ledger is only read)."""
        nl = network.num_locations
        if max_splits is None:
            max_locs = max(nl, 1)
        else:
            if (
                isinstance(max_splits, bool)
                or not isinstance(max_splits, int | np.integer)
                or max_splits < 0
            ):
                raise ValidationError(
                    f"expected None or an int >= 0, got {max_splits!r}",
                    field="max_splits",
                    code="out_of_range",
                )
            max_locs = max(1, min(int(max_splits) + 1, nl))
        if pick_capacity is None:
            capacity = readonly(network.pick_capacity)
        else:
            capacity = readonly(
                as_int64(pick_capacity, "pick_capacity", size=nl, lo=-1, code="negative_capacity")
            )
        n, n_lines = orders.num_orders, orders.num_lines
        seq = np.empty(n, dtype=np.int64)
        line_sku = np.empty(n_lines, dtype=np.int64)
        skus = np.empty(n_lines, dtype=np.int64)
        dlat, dlon = np.empty(n), np.empty(n)
        dzone = np.empty(n, dtype=np.int64)
        out = np.zeros(3, dtype=np.int64)
        zones, _ = costs.arrays(network)
        K.prepare_orders(
            orders.indptr,
            orders.sku,
            orders.priority,
            orders.service,
            orders.pickup_location,
            orders.lat,
            orders.lon,
            orders.zone,
            network.lat,
            network.lon,
            zones,
            positions.ptr,
            seq,
            line_sku,
            skus,
            dlat,
            dlon,
            dzone,
            out,
        )
        skus = skus[: out[0]]
        ptr = np.empty(skus.shape[0] + 1, dtype=np.int64)
        row = np.empty(out[1], dtype=np.int64)
        loc = np.empty(out[1], dtype=np.int64)
        K.subset_index(skus, positions.ptr, positions.row, positions.loc, ptr, row, loc)
        return cls(
            network=network,
            orders=orders,
            costs=costs,
            max_locations=max_locs,
            sequence=seq,
            line_sku=line_sku,
            skus=skus,
            sku_ptr=ptr,
            sku_loc=loc,
            sku_row=row,
            ledger=ledger,
            capacity=capacity,
            dest_lat=dlat,
            dest_lon=dlon,
            dest_zone=dzone,
            locations=locations,
            max_lines=max(int(out[2]), 1),
        )

    def candidates(self) -> Candidates:
        """Every order's candidate locations (the same rules the greedy kernel uses,
        without looking at availability or capacity)."""
        o = self.orders
        max_lines = int(np.diff(o.indptr).max()) if o.num_orders else 1
        # its own buffers: candidate stamps here are order indexes, not the counter
        scratch = new_scratch(self.network.num_locations, max(max_lines, 1))
        args = (
            self.order_data,
            self.lists,
            self.locations.sites,
            self.locations.grid,
            self.costs.tariff(self.network),
            scratch,
        )
        counts = np.zeros(2, dtype=np.int64)
        K.candidates(
            *args,
            K.Table(
                counts,
                np.zeros(1, dtype=np.int64),
                np.zeros(1, dtype=np.int64),
                np.zeros(0),
                np.zeros(0),
                np.zeros(0, dtype=np.bool_),
                np.zeros(1, dtype=np.int64),
                np.zeros(0, dtype=np.int64),
            ),
            False,
        )
        n_cand, n_entry = int(counts[0]), int(counts[1])
        table = K.Table(
            counts,
            np.zeros(o.num_orders + 1, dtype=np.int64),
            np.empty(n_cand, dtype=np.int64),
            np.empty(n_cand),
            np.empty(n_cand),
            np.empty(n_cand, dtype=np.bool_),
            np.zeros(n_cand + 1, dtype=np.int64),
            np.empty(n_entry, dtype=np.int64),
        )
        scratch.stamp.fill(-1)  # fresh candidate stamps for the second pass
        K.candidates(*args, table, True)
        return Candidates(*(readonly(a) for a in table[1:]))
