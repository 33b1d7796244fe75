"""The sourcing cost model and the one function that prices a plan.

Every sourcing method minimises the same objective, :func:`plan_costs`; see
``docs/sourcing.md`` for the formula.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from allocator._kernels import sourcing as K
from allocator._kernels.geo import EARTH_RADIUS_KM, haversine_many
from allocator._validate import as_float64, as_int64, readonly
from allocator.exceptions import ValidationError
from allocator.network import NetworkData
from allocator.sourcing.orders import Orders

__all__ = [
    "EARTH_RADIUS_KM",
    "MUST_SERVE_PENALTY",
    "UNFILLED_RULES",
    "CostBreakdown",
    "CostModel",
    "haversine_km",
    "plan_costs",
]

#: Names of the unfilled-penalty rules (see :class:`CostModel`).
UNFILLED_RULES = ("price", "margin", "must_serve", "per_line", "flat")
#: Penalty per unfilled unit under the ``"must_serve"`` rule: far above any landed cost,
#: so a unit is left unfilled only when no location can supply it.
MUST_SERVE_PENALTY = 10_000.0

# per-order parts of a CostBreakdown, in the order the pricing kernel writes them
_ORDER_PARTS = (
    "packages",
    "units",
    "km",
    "package_cost",
    "unit_cost",
    "shipping_cost",
    "split_cost",
    "unfilled_units",
    "unfilled_cost",
    "cost",
)
_COUNTS = ("packages", "units", "unfilled_units")
# per-row parts, likewise
_ROW_PARTS = ("row_km", "row_unit_cost", "row_shipping_cost")


@functools.lru_cache(maxsize=16)
def _no_zones(num_locations: int) -> tuple[np.ndarray, np.ndarray]:
    """The zone arrays of a model without zones (shared, read-only)."""
    return (
        readonly(np.full(num_locations, -1, dtype=np.int64)),
        readonly(np.zeros((0, 0), dtype=np.float64)),
    )


def haversine_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> Any:
    """Great-circle distance in km (vectorised, broadcasting; degrees in).

    Notes
    -----
    ``d = 2 R asin(sqrt(sin²(Δφ/2) + cos φ1 cos φ2 sin²(Δλ/2)))`` with the mean Earth
    radius ``R = 6371.0088`` km (``EARTH_RADIUS_KM``; the formula lives in
    ``allocator._kernels.geo``, shared with the kernels).
    """
    parts = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (lat1, lon1, lat2, lon2))
    )
    shape = parts[0].shape
    flat = [np.ascontiguousarray(p.ravel()) for p in parts]
    out = np.empty(flat[0].shape[0])
    haversine_many(*flat, out)
    return float(out[0]) if shape == () else out.reshape(shape)


@dataclass(frozen=True, eq=False)
class CostModel:
    """Landed cost of fulfilling orders from locations.

    Parameters
    ----------
    per_package
        Cost of each package (each location used by an order), before the location's
        ``cost_multiplier``. Default 8.759.
    per_unit
        Handling cost per unit, before the multiplier. Default 0.423.
    per_unit_km
        Transport cost per unit and great-circle km. Default 0.000336.
    split_penalty
        Extra cost per location beyond the first in one order. Default 0.
    unfilled
        The rule that prices an unfilled unit (:data:`UNFILLED_RULES`):

        * ``"price"`` (default): the SKU's ``sku_price`` (revenue lost);
        * ``"margin"``: ``sku_price − sku_unit_cost`` (margin lost, never below 0);
        * ``"must_serve"``: :data:`MUST_SERVE_PENALTY` per unit, so every unit that
          can be filled is filled, whatever it costs;
        * ``"per_line"``: each order line's own ``Orders.penalty``;
        * ``"flat"``: ``unfilled_penalty`` for every unit.

        Where a rule's figure is unknown (no price, no unit cost, a line without a
        penalty) ``unfilled_penalty`` is used.
    unfilled_penalty
        Cost per unfilled unit where the rule has no figure, and for every unit under
        ``"flat"``. Default 50.
    unfilled_at_price
        Kept for compatibility: False is the ``"flat"`` rule.
    location_zone, zone_cost
        Optional zone model: ``location_zone[l]`` (-1 = none) and a square matrix
        ``zone_cost[origin zone, destination zone]`` per unit that replaces the
        per-unit-km term when both the location and the order have a zone.

    Notes
    -----
    The defaults are the per-package, per-unit and per-unit-km figures used in
    published ship-from-store fulfilment studies. For a package of ``u`` units from
    location ``l`` with multiplier ``m_l`` at ``d`` km::

        cost = m_l (per_package + per_unit u) + per_unit_km u d
    """

    per_package: float = 8.759
    per_unit: float = 0.423
    per_unit_km: float = 0.000336
    split_penalty: float = 0.0
    unfilled_penalty: float = 50.0
    unfilled_at_price: bool = True
    unfilled: str = "price"
    location_zone: np.ndarray | None = None
    zone_cost: np.ndarray | None = None
    _checked: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("per_package", "per_unit", "per_unit_km", "split_penalty", "unfilled_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ValidationError(
                    f"expected a number, got {value!r}", field=name, code="wrong_dtype"
                )
            v = float(value)
            if not np.isfinite(v) or v < 0:
                raise ValidationError(
                    f"expected a finite non-negative number, got {v}",
                    field=name,
                    code="not_finite" if not np.isfinite(v) else "out_of_range",
                )
            object.__setattr__(self, name, v)
        if self.unfilled not in UNFILLED_RULES:
            raise ValidationError(
                f"unknown unfilled rule {self.unfilled!r}; expected one of {UNFILLED_RULES}",
                field="unfilled",
                code="invalid_choice",
            )
        if not self.unfilled_at_price and self.unfilled == "price":
            object.__setattr__(self, "unfilled", "flat")
        object.__setattr__(self, "unfilled_at_price", self.unfilled == "price")
        if (self.location_zone is None) != (self.zone_cost is None):
            raise ValidationError(
                "give both location_zone and zone_cost, or neither",
                field="zone_cost" if self.zone_cost is None else "location_zone",
                code="missing_field",
            )
        if self.zone_cost is not None:
            zc = np.asarray(self.zone_cost)
            if zc.ndim != 2 or zc.shape[0] != zc.shape[1] or zc.dtype.kind not in "iuf":
                raise ValidationError(
                    f"expected a square numeric matrix, got {zc.shape}", field="zone_cost"
                )
            flat = as_float64(zc.ravel(), "zone_cost", lo=0.0)
            zones = as_int64(
                self.location_zone,
                "location_zone",
                lo=-1,
                hi=zc.shape[0] - 1,
                code="zone_not_found",
            )
            object.__setattr__(self, "zone_cost", readonly(flat.reshape(zc.shape)))
            object.__setattr__(self, "location_zone", readonly(zones))

    @property
    def num_zones(self) -> int:
        return 0 if self.zone_cost is None else int(self.zone_cost.shape[0])

    def check(self, network: NetworkData, orders: Orders | None = None) -> None:
        """Raise when the zone model does not fit ``network`` (and ``orders``)."""
        if self.location_zone is not None and self.location_zone.shape[0] != network.num_locations:
            raise ValidationError(
                f"expected {network.num_locations} rows, got {self.location_zone.shape[0]}",
                field="location_zone",
                code="length_mismatch",
            )
        if orders is not None:
            bad = orders.zone >= self.num_zones
            if bad.any():
                row = int(np.argmax(bad))
                raise ValidationError(
                    f"zone {orders.zone[row]} outside [-1, {self.num_zones})",
                    field="zone",
                    row=int(orders.indptr[row]),
                    code="zone_not_found",
                )

    def arrays(self, network: NetworkData) -> tuple[np.ndarray, np.ndarray]:
        """``(location_zone, zone_cost)`` as kernel inputs (empty when unused; read-only)."""
        if self.zone_cost is None or self.location_zone is None:
            return _no_zones(network.num_locations)
        return np.asarray(self.location_zone), np.asarray(self.zone_cost)

    def tariff(self, network: NetworkData) -> K.Tariff:
        """The model as the sourcing kernels price it (``allocator._kernels.sourcing.Tariff``)."""
        zone, zone_cost = self.arrays(network)
        return K.Tariff(
            self.per_package,
            self.per_unit,
            self.per_unit_km,
            network.cost_multiplier,
            zone,
            zone_cost,
        )

    def sku_penalty(self, network: NetworkData) -> np.ndarray:
        """Cost per unfilled unit of every SKU under the rule (``"per_line"``: the
        ``"price"`` figures, which lines without a penalty of their own use)."""
        flat = np.full(network.num_skus, self.unfilled_penalty)
        if self.unfilled == "flat":
            return flat
        if self.unfilled == "must_serve":
            return np.full(network.num_skus, MUST_SERVE_PENALTY)
        price = np.asarray(network.sku_price, dtype=np.float64)
        if self.unfilled == "margin":
            value = np.maximum(price - np.asarray(network.sku_unit_cost, dtype=np.float64), 0.0)
        else:
            value = price
        return np.where(np.isnan(value), flat, value)

    def unit_penalty(self, network: NetworkData, sku: np.ndarray) -> np.ndarray:
        """Cost per unfilled unit of each SKU in ``sku`` (per-SKU rules)."""
        return self.sku_penalty(network)[np.asarray(sku, dtype=np.int64)]

    def line_penalty(self, network: NetworkData, orders: Orders) -> np.ndarray:
        """Cost per unfilled unit of every order line under the rule."""
        pen = self.unit_penalty(network, orders.sku)
        if self.unfilled == "per_line":
            own = orders.penalty
            pen = np.where(np.isnan(own), pen, own)
        return np.ascontiguousarray(pen, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class CostBreakdown:
    """Per-row and per-order cost parts of a plan (see :func:`plan_costs`)."""

    row_km: np.ndarray
    row_unit_cost: np.ndarray
    row_shipping_cost: np.ndarray
    packages: np.ndarray
    units: np.ndarray
    km: np.ndarray
    package_cost: np.ndarray
    unit_cost: np.ndarray
    shipping_cost: np.ndarray
    split_cost: np.ndarray
    unfilled_units: np.ndarray
    unfilled_cost: np.ndarray
    cost: np.ndarray
    #: Per-row and per-order opportunity cost (zeros unless a method charged one).
    row_opportunity_cost: np.ndarray | None = None
    opportunity_cost: np.ndarray | None = None

    @property
    def objective(self) -> float:
        return float(self.cost.sum())


def plan_costs(
    network: NetworkData,
    orders: Orders,
    costs: CostModel,
    *,
    order: np.ndarray,
    location: np.ndarray,
    qty: np.ndarray,
    line_unfilled: np.ndarray,
    opportunity: np.ndarray | None = None,
) -> CostBreakdown:
    """Price a plan: the objective every sourcing method minimises.

    Parameters
    ----------
    order, location, qty
        Allocation rows: order index, location and units.
    line_unfilled
        Units not filled per order line (length ``orders.num_lines``).
    opportunity
        Optional opportunity cost per unit of each row (the price of depleting the
        row's position); it adds ``Σ_rows opportunity · q`` to the order's cost.

    Notes
    -----
    For order ``o`` with packages ``P_o`` (the distinct locations it uses), rows
    ``(l, q)`` and unfilled units ``u_j`` of line ``j``::

        cost_o = Σ_{l∈P_o} m_l per_package
               + Σ_rows (m_l per_unit q + q ship(l, o))
               + split_penalty max(0, |P_o| − 1)
               + Σ_j u_j penalty_j
               + Σ_rows opportunity_r q          (only when ``opportunity`` is given)

    ``ship(l, o) = zone_cost[zone_l, zone_o]`` when both zones are set, else
    ``per_unit_km · d(l, o)`` with ``d`` the great-circle km to the destination (the
    pick-up store for pick-up orders, so a pick at the pick-up store ships nothing).
    ``penalty_j`` is the line's cost per unfilled unit under the model's ``unfilled``
    rule (:meth:`CostModel.line_penalty`).
    """
    n = orders.num_orders
    order = np.ascontiguousarray(order, dtype=np.int64)
    location = np.ascontiguousarray(location, dtype=np.int64)
    qty = np.ascontiguousarray(qty, dtype=np.int64)
    line_unfilled = np.ascontiguousarray(line_unfilled, dtype=np.int64)
    nr = order.shape[0]
    if location.shape != (nr,) or qty.shape != (nr,):
        raise ValidationError(
            f"order, location and qty differ in length ({nr}, {location.shape}, {qty.shape})",
            field="qty" if location.shape == (nr,) else "location",
            code="length_mismatch",
        )
    if line_unfilled.shape != (orders.num_lines,):
        raise ValidationError(
            f"expected {orders.num_lines} entries, got {line_unfilled.shape}",
            field="line_unfilled",
            code="length_mismatch",
        )
    parts: dict[str, np.ndarray] = {name: np.empty(nr) for name in _ROW_PARTS}
    for name in _ORDER_PARTS:
        parts[name] = np.zeros(n, dtype=np.int64 if name in _COUNTS else np.float64)
    bad = K.price(
        order,
        location,
        qty,
        K.OrderData(
            orders.indptr,
            orders.sku,
            orders.qty,
            orders.channel,
            orders.service,
            orders.lat,
            orders.lon,
            orders.pickup_location,
            orders.zone,
        ),
        costs.line_penalty(network, orders),
        line_unfilled,
        network.lat,
        network.lon,
        costs.tariff(network),
        costs.split_penalty,
        K.RowCosts(*(parts[name] for name in _ROW_PARTS)),
        K.OrderCosts(*(parts[name] for name in _ORDER_PARTS)),
    )
    if bad >= 0:
        field = "location" if 0 <= order[bad] < n else "order"
        value = int((location if field == "location" else order)[bad])
        raise ValidationError(f"{field} {value} out of range", field=field, row=int(bad))
    row_opp: np.ndarray = np.zeros(nr)
    opp: np.ndarray = np.zeros(n)
    if opportunity is not None:
        row_opp = np.asarray(opportunity, dtype=np.float64) * qty
        opp = np.bincount(order, weights=row_opp, minlength=n)
        parts["cost"] = parts["cost"] + opp
    parts["row_opportunity_cost"] = row_opp
    parts["opportunity_cost"] = opp
    for arr in parts.values():  # all freshly made here: freeze in place, no views
        arr.flags.writeable = False
    return CostBreakdown(**parts)
