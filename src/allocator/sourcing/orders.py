"""A batch of online orders to source: :class:`Orders` and the :class:`Service` codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from allocator._enum import CodedEnum
from allocator._kernels import sourcing as K
from allocator._validate import QTY_MAX, as_int64, first_true, readonly, same_length
from allocator.exceptions import (
    BatchTooLargeError,
    DTypeError,
    UnknownNameError,
    ValidationError,
)
from allocator.network import NetworkData

__all__ = ["MAX_LINES", "MAX_LINES_PER_ORDER", "Orders", "Service"]

#: The most lines one batch may hold.
MAX_LINES = 10_000_000
#: The most lines one order may hold.
MAX_LINES_PER_ORDER = 1_000


class Service(CodedEnum):
    """How the customer receives an order."""

    SHIP = K.S_SHIP
    PICKUP = K.S_PICKUP
    SAME_DAY = K.S_SAME_DAY


_ORDER_FIELDS = ("id", "channel", "service", "lat", "lon", "pickup_location", "priority", "zone")


def _services(value: Any, n: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind in "UO":
        flat = np.broadcast_to(arr, (n,)) if arr.ndim == 0 else arr
        out = np.empty(flat.shape[0], dtype=np.int64)
        for row, item in enumerate(flat.tolist()):
            if isinstance(item, Service):
                out[row] = int(item)
            elif isinstance(item, str) and item.upper() in Service.__members__:
                out[row] = int(Service[item.upper()])
            else:
                raise ValidationError(
                    f"unknown service {item!r}; expected ship, pickup or same_day",
                    field="service",
                    row=row,
                    code="unknown_service",
                )
        return out
    return as_int64(value, "service", size=n, lo=0, hi=len(Service) - 1, code="unknown_service")


def _coords(value: Any, field: str, n: int, lo: float, hi: float) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "iuf" or arr.dtype.kind == "b":
        raise DTypeError(
            f"expected numbers, got dtype {arr.dtype}", field=field, code="wrong_dtype"
        )
    out = np.full(n, arr, dtype=np.float64) if arr.ndim == 0 else arr.astype(np.float64)
    if out.ndim != 1 or out.shape[0] != n:
        raise ValidationError(
            f"expected {n} rows, got shape {arr.shape}", field=field, code="length_mismatch"
        )
    bad = np.isinf(out) | (out < lo) | (out > hi)
    if bad.any():
        row = first_true(bad)
        raise ValidationError(
            f"{out[row]} outside [{lo}, {hi}]", field=field, row=row, code="bad_coordinate"
        )
    return out


def _penalties(value: Any, n: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "iuf" or arr.dtype.kind == "b":
        raise DTypeError(
            f"expected numbers, got dtype {arr.dtype}", field="penalty", code="wrong_dtype"
        )
    out = np.full(n, arr, dtype=np.float64) if arr.ndim == 0 else arr.astype(np.float64)
    if out.ndim != 1 or out.shape[0] != n:
        raise ValidationError(
            f"expected {n} rows, got shape {arr.shape}", field="penalty", code="length_mismatch"
        )
    bad = np.isinf(out) | (out < 0)
    if bad.any():
        row = first_true(bad)
        raise ValidationError(
            f"expected a finite penalty >= 0 or NaN, got {out[row]}",
            field="penalty",
            row=row,
            code="out_of_range",
        )
    return out


def _locations(value: Any, n: int, network: NetworkData | None) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind in "UO":
        flat = np.broadcast_to(arr, (n,)).astype(object) if arr.ndim == 0 else arr
        out = np.full(flat.shape[0], -1, dtype=np.int64)
        for row, item in enumerate(flat.tolist()):
            if item is None or (isinstance(item, float) and np.isnan(item)):
                continue
            if network is None and isinstance(item, str):
                raise ValidationError(
                    "location names need the network",
                    field="pickup_location",
                    row=row,
                    code="location_not_found",
                )
            if network is not None:
                try:
                    out[row] = network.location_index(item, "pickup_location")
                except ValidationError as exc:
                    raise type(exc)(
                        str(exc).split(": ", 1)[-1].rsplit(" [", 1)[0],
                        field="pickup_location",
                        row=row,
                        code=exc.code,
                    ) from None
            else:
                out[row] = as_int64(item, "pickup_location")[0]
        return out
    return as_int64(value, "pickup_location", size=n, lo=-1, code="location_not_found")


@dataclass(frozen=True, eq=False)
class Orders:
    """A batch of orders: order-level fields plus CSR lines.

    Orders keep their arrival order (the order of first appearance); lines of order
    ``i`` are ``sku[indptr[i]:indptr[i + 1]]``, ``qty[...]``. Arrays are read-only.

    Attributes
    ----------
    id
        Client order id (positive int64, unique in the batch).
    channel
        Channel index of each order.
    service
        :class:`Service` code: ship, pick-up in store or same-day delivery.
    lat, lon
        Destination in degrees (NaN allowed for pick-up orders).
    pickup_location
        Pick-up store of pick-up orders, -1 for the others.
    priority
        Larger values are sourced first; ties keep arrival order.
    zone
        Destination zone for a zone cost matrix (-1: none, use distance).
    indptr
        ``num_orders + 1`` offsets into the line arrays.
    sku, qty
        Lines: SKU index and quantity (positive).
    penalty
        Per line: cost per unfilled unit under the ``"per_line"`` rule of
        :class:`~allocator.sourcing.CostModel` (NaN: the rule's fallback).
    """

    id: np.ndarray
    channel: np.ndarray
    service: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    pickup_location: np.ndarray
    priority: np.ndarray
    zone: np.ndarray
    indptr: np.ndarray
    sku: np.ndarray
    qty: np.ndarray
    penalty: np.ndarray

    FIELDS = (*_ORDER_FIELDS, "indptr", "sku", "qty", "penalty")

    def __post_init__(self) -> None:
        for name in self.FIELDS:
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.flags.writeable:
                raise TypeError("build Orders with Orders.from_lines or Orders.from_frame")

    def __len__(self) -> int:
        return int(self.id.shape[0])

    @property
    def num_orders(self) -> int:
        return int(self.id.shape[0])

    @property
    def num_lines(self) -> int:
        return int(self.sku.shape[0])

    @property
    def line_order(self) -> np.ndarray:
        """Order index of each line."""
        return np.repeat(np.arange(self.num_orders, dtype=np.int64), np.diff(self.indptr))

    # ------------------------------------------------------------------
    @classmethod
    def from_lines(
        cls,
        *,
        order: Any,
        sku: Any,
        qty: Any,
        channel: Any,
        lat: Any = np.nan,
        lon: Any = np.nan,
        service: Any = "ship",
        pickup_location: Any = -1,
        priority: Any = 0,
        zone: Any = -1,
        penalty: Any = np.nan,
        network: NetworkData | None = None,
    ) -> Orders:
        """Build a batch from one row per line; order-level fields repeat on each line.

        Parameters
        ----------
        order
            Client order id of each line (positive int64). Lines of one order need not
            be adjacent; orders keep the order of their first line.
        sku, qty
            SKU (index, or name with ``network``) and positive integer quantity.
        channel
            Channel (index, or name with ``network``).
        lat, lon
            Destination in degrees; required for ship and same-day orders.
        service
            ``"ship"``, ``"pickup"``, ``"same_day"`` or :class:`Service` codes.
        pickup_location
            Pick-up store (index, or name with ``network``) of pick-up orders; ``-1``
            (or ``None``) for the others.
        priority
            Larger first; ties keep arrival order.
        zone
            Destination zone for :class:`~allocator.sourcing.CostModel` zone costs.
        penalty
            Cost per unfilled unit of the line, for the ``"per_line"`` unfilled rule
            (finite and >= 0, or NaN for the rule's fallback).
        network
            When given, names are resolved and indices checked against it.

        Notes
        -----
        Scalars broadcast to every line. Order-level fields must agree on every line
        of an order. Raises :class:`~allocator.ValidationError` (field and row) on bad
        input; nothing is built then.
        """
        order_arr = as_int64(order, "order", lo=1, code="invalid_identifier")
        n = order_arr.shape[0]
        if n > MAX_LINES:
            raise BatchTooLargeError(f"{n} lines exceed the maximum of {MAX_LINES}", field="order")
        sku_in, chan_in = sku, channel
        if network is not None:
            sku_in = _names(network.sku_index, sku, "sku", n)
            chan_in = _names(network.channel_index, channel, "channel", n)
        cols = {
            "order": order_arr,
            "sku": as_int64(sku_in, "sku", size=n, lo=0, code="sku_not_found"),
            "qty": as_int64(qty, "qty", size=n, lo=1, code="quantity_must_be_positive"),
            "channel": as_int64(chan_in, "channel", size=n, lo=0, code="channel_not_found"),
            "service": _services(service, n),
            "lat": _coords(lat, "lat", n, -90.0, 90.0),
            "lon": _coords(lon, "lon", n, -180.0, 180.0),
            "pickup_location": _locations(pickup_location, n, network),
            "priority": as_int64(priority, "priority", size=n),
            "zone": as_int64(zone, "zone", size=n, lo=-1, code="zone_not_found"),
            "penalty": _penalties(penalty, n),
        }
        same_length(list(cols.items()))
        check_range_qty(cols["qty"])
        if network is not None:
            _check_line_indices(cols, network)
        # group lines by order, orders by first appearance
        ids, first, inverse = np.unique(order_arr, return_index=True, return_inverse=True)
        rank = np.empty(ids.shape[0], dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(ids.shape[0])
        line_rank = rank[inverse]
        perm = np.argsort(line_rank, kind="stable")
        counts = np.bincount(line_rank, minlength=ids.shape[0])
        if counts.size and counts.max() > MAX_LINES_PER_ORDER:
            big = int(np.argmax(counts > MAX_LINES_PER_ORDER))
            raise BatchTooLargeError(
                f"order {int(ids[np.argsort(first)][big])} has {int(counts[big])} lines; "
                f"at most {MAX_LINES_PER_ORDER}",
                field="order",
                row=int(first[np.argsort(first)][big]),
                code="order_too_large",
            )
        first_sorted = np.sort(first)
        out: dict[str, np.ndarray] = {}
        for name in _ORDER_FIELDS:
            src = order_arr if name == "id" else cols[name]
            head = src[first_sorted]
            per_line = head[line_rank]
            differ = ~(
                (per_line == src) | (np.isnan(per_line) & np.isnan(src))
                if src.dtype.kind == "f"
                else per_line == src
            )
            if differ.any():
                row = first_true(differ)
                raise ValidationError(
                    f"order {int(order_arr[row])} has {name} {src[row]!r} on this line but "
                    f"{per_line[row]!r} on its first line",
                    field=name,
                    row=row,
                    code="inconsistent_order_field",
                )
            out[name] = head
        indptr = np.zeros(ids.shape[0] + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        line_sku = cols["sku"][perm]
        out.update(
            indptr=indptr, sku=line_sku, qty=cols["qty"][perm], penalty=cols["penalty"][perm]
        )
        _check_orders(out, perm)
        orders = cls(**{name: readonly(np.ascontiguousarray(out[name])) for name in cls.FIELDS})
        if network is not None:
            orders.check_network(network)
        return orders

    @classmethod
    def from_frame(cls, frame: Any, network: NetworkData | None = None) -> Orders:
        """Build from a DataFrame with one row per line and the columns of
        :meth:`from_lines` (``order, sku, qty, channel`` required)."""
        for col in ("order", "sku", "qty", "channel"):
            if col not in frame.columns:
                raise ValidationError("missing column", field=col, code="missing_field")
        allowed = {
            "order",
            "sku",
            "qty",
            "channel",
            "lat",
            "lon",
            "service",
            "pickup_location",
            "priority",
            "zone",
            "penalty",
        }
        unknown = set(frame.columns) - allowed
        if unknown:
            raise ValidationError(
                f"unexpected columns {sorted(unknown)}",
                field=sorted(unknown)[0],
                code="field_not_allowed",
            )
        cols = {c: frame[c].to_numpy() for c in allowed if c in frame.columns}
        return cls.from_lines(**cols, network=network)

    def check_network(self, network: NetworkData) -> None:
        """Raise :class:`~allocator.ValidationError` if an index lies outside ``network``
        or a pick-up order names a location that is not a pick-up point."""
        if K.orders_fit(
            self.sku,
            self.channel,
            self.service,
            self.pickup_location,
            network.num_skus,
            network.num_channels,
            network.pickup,
        ):
            return
        # something is wrong: find the first bad row of the first bad field
        for field, arr, limit in (
            ("sku", self.sku, network.num_skus),
            ("channel", self.channel, network.num_channels),
            ("pickup_location", self.pickup_location, network.num_locations),
        ):
            bad = arr >= limit
            if bad.any():
                row = first_true(bad)
                code = "location_not_found" if field == "pickup_location" else f"{field}_not_found"
                raise UnknownNameError(
                    f"{field} {arr[row]} outside [0, {limit})",
                    field=field,
                    row=self._line_row(field, row),
                    code=code,
                )
        pick = self.service == Service.PICKUP
        bad = pick & ~network.pickup[np.where(pick, self.pickup_location, 0)]
        if bad.any():
            row = first_true(bad)
            raise ValidationError(
                f"location {network.location_names[self.pickup_location[row]]!r} is not a "
                "pick-up point",
                field="pickup_location",
                row=self._line_row("order", row),
                code="not_a_pickup_point",
            )

    def _line_row(self, field: str, row: int) -> int:
        """Rows in errors refer to lines; order-level rows map to the order's first line."""
        return row if field == "sku" else int(self.indptr[row])

    # ------------------------------------------------------------------
    def take(self, index: Any) -> Orders:
        """A sub-batch of the given orders (indices, slice or mask), in that order."""
        sel = np.arange(self.num_orders)[index]
        starts, ends = self.indptr[sel], self.indptr[sel + 1]
        counts = ends - starts
        indptr = np.zeros(sel.shape[0] + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        lines = np.repeat(starts - indptr[:-1], counts) + np.arange(int(indptr[-1]))
        cols = {name: getattr(self, name)[sel] for name in _ORDER_FIELDS}
        cols.update(
            indptr=indptr, sku=self.sku[lines], qty=self.qty[lines], penalty=self.penalty[lines]
        )
        return type(self)(**{k: readonly(np.ascontiguousarray(v)) for k, v in cols.items()})

    def destination(self, network: NetworkData) -> tuple[np.ndarray, np.ndarray]:
        """Where each order goes: the pick-up store for pick-up orders, else lat/lon."""
        pick = self.service == Service.PICKUP
        loc = np.where(pick, self.pickup_location, 0)
        return (
            np.where(pick, network.lat[loc], self.lat),
            np.where(pick, network.lon[loc], self.lon),
        )

    def to_frame(self, network: NetworkData | None = None) -> Any:
        """One row per line with the order-level fields repeated."""
        import pandas as pd

        per = self.line_order
        data: dict[str, Any] = {"order": self.id[per]}
        for name in _ORDER_FIELDS[1:]:
            data[name] = getattr(self, name)[per]
        data["service"] = [Service(s).slug for s in data["service"].tolist()]
        data["sku"] = self.sku
        data["qty"] = self.qty
        data["penalty"] = self.penalty
        frame = pd.DataFrame(data)
        if network is not None:
            frame["sku_name"] = [network.sku_names[i] for i in self.sku.tolist()]
            frame["channel_name"] = [network.channel_names[i] for i in frame["channel"]]
        return frame

    def summary(self) -> str:
        services = np.bincount(self.service, minlength=len(Service))
        parts = ", ".join(f"{int(services[s])} {s.slug}" for s in Service)
        return (
            f"Orders: {self.num_orders} orders ({parts}), {self.num_lines} lines, "
            f"{int(self.qty.sum())} units"
        )


def check_range_qty(qty: np.ndarray) -> None:
    bad = qty > QTY_MAX
    if bad.any():
        row = first_true(bad)
        raise ValidationError(
            f"quantity {qty[row]} above {QTY_MAX}",
            field="qty",
            row=row,
            code="quantity_out_of_range",
        )


def _names(lookup: Any, value: Any, field: str, n: int) -> Any:
    arr = np.asarray(value)
    if arr.dtype.kind in "UO":
        return lookup(np.broadcast_to(arr, (n,)).astype(object) if arr.ndim == 0 else arr, field)
    return value


def _check_orders(cols: dict[str, np.ndarray], perm: np.ndarray) -> None:
    """Rules spanning fields; rows reported are input line rows."""
    heads = cols["indptr"][:-1]
    service = cols["service"]
    pick = service == Service.PICKUP
    bad = pick & (cols["pickup_location"] < 0)
    if bad.any():
        row = int(perm[heads[first_true(bad)]])
        raise ValidationError(
            "a pick-up order needs a pickup_location",
            field="pickup_location",
            row=row,
            code="missing_field",
        )
    bad = ~pick & (cols["pickup_location"] >= 0)
    if bad.any():
        row = int(perm[heads[first_true(bad)]])
        raise ValidationError(
            "only pick-up orders take a pickup_location",
            field="pickup_location",
            row=row,
            code="field_not_allowed",
        )
    for name in ("lat", "lon"):
        bad = ~pick & np.isnan(cols[name])
        if bad.any():
            row = int(perm[heads[first_true(bad)]])
            raise ValidationError(
                "ship and same-day orders need a destination",
                field=name,
                row=row,
                code="bad_coordinate",
            )
    # the same SKU twice in one order would double-count a position's stock
    sku = cols["sku"]
    n_orders = heads.shape[0]
    line_order = np.repeat(np.arange(n_orders), np.diff(cols["indptr"]))
    key = line_order * (int(sku.max()) + 1 if sku.size else 1) + sku
    order_sorted = np.argsort(key, kind="stable")
    dup = np.zeros(sku.shape[0], dtype=np.bool_)
    dup[order_sorted[1:]] = key[order_sorted[1:]] == key[order_sorted[:-1]]
    if dup.any():
        row = int(perm[first_true(dup)])
        raise ValidationError(
            "the same SKU appears on two lines of one order; merge them",
            field="sku",
            row=row,
            code="duplicate_sku_in_order",
        )


def _check_line_indices(cols: dict[str, np.ndarray], network: NetworkData) -> None:
    for field, limit in (
        ("sku", network.num_skus),
        ("channel", network.num_channels),
        ("pickup_location", network.num_locations),
    ):
        bad = cols[field] >= limit
        if bad.any():
            row = first_true(bad)
            code = "location_not_found" if field == "pickup_location" else f"{field}_not_found"
            raise UnknownNameError(
                f"{field} {cols[field][row]} outside [0, {limit})", field=field, row=row, code=code
            )
