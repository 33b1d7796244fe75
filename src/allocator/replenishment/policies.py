"""Inventory policies as frozen dataclasses, and the levels they set per position.

Every policy turns a per-period forecast, a lead time ``L`` and a review period
``R`` into integer levels per position: a ``reorder_point`` ``s`` (order when the
inventory position is at or below it), an ``order_up_to_level`` ``S`` and, for
fixed-quantity policies, a ``batch`` ``Q`` (0 otherwise). Safety stock always comes
from :func:`allocator.safety.safety_stock`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from allocator._kernels import replenish as K
from allocator._validate import as_float64, first_true, readonly
from allocator.exceptions import ValidationError
from allocator.safety import safety_stock

__all__ = [
    "Levels",
    "MinMaxPolicy",
    "OptimalPoissonPolicy",
    "OrderUpToPolicy",
    "Policy",
    "ReorderPointPolicy",
    "eoq",
    "optimal_ss",
]

Distribution = Literal["normal", "poisson"]


@dataclass(frozen=True, eq=False)
class Levels:
    """Integer policy levels per position (read-only int64 arrays) and safety stock."""

    reorder_point: np.ndarray
    order_up_to_level: np.ndarray
    batch: np.ndarray
    safety_stock: np.ndarray


def eoq(demand_rate: Any, order_cost: Any, holding_cost: Any) -> np.ndarray:
    """Economic order quantity :math:`Q^* = \\sqrt{2 K D / h}`.

    Parameters
    ----------
    demand_rate
        Demand per period ``D``.
    order_cost
        Fixed cost per order ``K``.
    holding_cost
        Holding cost per unit and period ``h`` (> 0).

    Returns
    -------
    numpy.ndarray
        Float64 :math:`Q^*` (not rounded).

    Examples
    --------
    >>> float(eoq(1000.0, 50.0, 2.5)[0])
    200.0
    """
    d = as_float64(demand_rate, "demand_rate", lo=0.0)
    k = as_float64(order_cost, "order_cost", lo=0.0)
    h = as_float64(holding_cost, "holding_cost", lo=0.0)
    if np.any(h <= 0):
        raise ValidationError(
            "expected holding_cost > 0", field="holding_cost", row=first_true(h <= 0)
        )
    return np.sqrt(2.0 * k * d / h)


def _target_kwargs(service_level: Any, fill_rate: Any) -> dict[str, Any]:
    if service_level is not None and fill_rate is not None:
        raise ValidationError(
            "give one of service_level and fill_rate, not both",
            field="service_level",
            code="invalid_choice",
        )
    if fill_rate is not None:
        return {"fill_rate": fill_rate}
    return {"service_level": 0.95 if service_level is None else service_level}


def _level(x: np.ndarray) -> np.ndarray:
    # Poisson levels are integers up to float noise; normal ones round up.
    return np.ceil(x - 1e-9).astype(np.int64)


def _ss(
    policy: Any,
    mean: np.ndarray,
    std: np.ndarray,
    lead_time: np.ndarray,
    review_period: np.ndarray,
    order_quantity: Any = None,
) -> np.ndarray:
    kwargs = _target_kwargs(policy.service_level, policy.fill_rate)
    if policy.distribution == "poisson":
        return safety_stock(
            mean,
            lead_time=lead_time,
            review_period=review_period,
            order_quantity=order_quantity,
            distribution="poisson",
            **kwargs,
        )
    return safety_stock(
        mean,
        std,
        lead_time=lead_time,
        review_period=review_period,
        order_quantity=order_quantity,
        **kwargs,
    )


@dataclass(frozen=True)
class OrderUpToPolicy:
    """Periodic review order-up-to (R, S).

    Every review, order ``S - IP`` when the inventory position is below ``S``.

    Notes
    -----
    :math:`S = \\lceil \\mu (L + R) + SS_{L+R} \\rceil` and :math:`s = S - 1`.
    """

    service_level: float | None = None
    fill_rate: float | None = None
    distribution: Distribution = "normal"
    name = "order_up_to"

    def levels(
        self, mean: np.ndarray, std: np.ndarray, lead_time: np.ndarray, review_period: np.ndarray
    ) -> Levels:
        """Levels per position (see the class notes)."""
        ss = _ss(self, mean, std, lead_time, review_period)
        big_s = _level(mean * (lead_time + review_period) + ss)
        big_s = np.where(mean > 0, np.maximum(big_s, 0), 0)
        return _freeze(big_s - 1, big_s, np.zeros_like(big_s), ss)


def _batch(policy: Any, mean: np.ndarray) -> np.ndarray:
    if policy.order_quantity is not None:
        q = np.broadcast_to(np.asarray(policy.order_quantity), mean.shape)
        if q.dtype.kind not in "iu":
            raise ValidationError(
                "expected integer order quantities",
                field="order_quantity",
                code="quantity_must_be_integer",
            )
        if np.any(q < 1):
            raise ValidationError(
                "expected order quantities >= 1", field="order_quantity", row=first_true(q < 1)
            )
        return q.astype(np.int64)
    if policy.order_cost is None or policy.holding_cost is None:
        raise ValidationError(
            "give order_quantity, or order_cost and holding_cost for EOQ",
            field="order_quantity",
            code="missing_value",
        )
    q = eoq(
        mean,
        np.broadcast_to(policy.order_cost, mean.shape),
        np.broadcast_to(policy.holding_cost, mean.shape),
    )
    return np.maximum(np.round(q), 1).astype(np.int64)


@dataclass(frozen=True)
class ReorderPointPolicy:
    """Reorder point, fixed quantity (s, Q).

    When the inventory position is at or below ``s``, order the smallest multiple of
    ``Q`` that lifts it above ``s``. ``Q`` is ``order_quantity`` or the EOQ from
    ``order_cost`` and ``holding_cost`` (per unit and period).

    Notes
    -----
    :math:`s = \\lceil \\mu (L + R) + SS_{L+R} \\rceil` (with :math:`R = 0` for
    continuous review), :math:`S = s + Q`. A fill-rate target uses :math:`Q` as the
    demand per cycle.
    """

    order_quantity: Any = None
    order_cost: Any = None
    holding_cost: Any = None
    service_level: float | None = None
    fill_rate: float | None = None
    distribution: Distribution = "normal"
    name = "reorder_point"

    def levels(
        self, mean: np.ndarray, std: np.ndarray, lead_time: np.ndarray, review_period: np.ndarray
    ) -> Levels:
        """Levels per position (see the class notes)."""
        q = _batch(self, mean)
        ss = _ss(self, mean, std, lead_time, review_period, order_quantity=q.astype(float))
        s = _level(mean * (lead_time + review_period) + ss)
        s = np.where(mean > 0, s, -1)
        return _freeze(s, s + q, q, ss)


@dataclass(frozen=True)
class MinMaxPolicy:
    """Reorder point, order-up-to level (s, S) ("min/max").

    Notes
    -----
    :math:`s` as for :class:`ReorderPointPolicy`; :math:`S = s + Q` with :math:`Q`
    given or the EOQ. When triggered, order :math:`S - IP`.
    """

    order_quantity: Any = None
    order_cost: Any = None
    holding_cost: Any = None
    service_level: float | None = None
    fill_rate: float | None = None
    distribution: Distribution = "normal"
    name = "min_max"

    def levels(
        self, mean: np.ndarray, std: np.ndarray, lead_time: np.ndarray, review_period: np.ndarray
    ) -> Levels:
        """Levels per position (see the class notes)."""
        lv = ReorderPointPolicy.levels(self, mean, std, lead_time, review_period)  # type: ignore[arg-type]
        return _freeze(
            lv.reorder_point,
            lv.order_up_to_level,
            np.zeros(mean.shape[0], dtype=np.int64),
            lv.safety_stock,
        )


@dataclass(frozen=True)
class OptimalPoissonPolicy:
    """Exact optimal (s, S) for Poisson demand (Zheng & Federgruen, 1991).

    Parameters are per unit and period (scalars or arrays over positions):
    ``order_cost`` K per order, ``holding_cost`` h, ``backorder_cost`` p.

    Notes
    -----
    Minimises the long-run average cost
    :math:`c(s,S) = \\big(K + \\sum_{d=0}^{S-s-1} m(d)\\,G(S-d)\\big) / M(S-s)` with
    :math:`G(y) = h\\,E(y-D)^+ + p\\,E(D-y)^+`, :math:`D` the demand over
    :math:`L + R` periods (:math:`R = 1` is the daily review), :math:`m` the renewal
    function of one period's demand and :math:`M(j) = \\sum_{d<j} m(d)`. Lead times
    and review periods must be whole periods.
    """

    order_cost: Any = 1.0
    holding_cost: Any = 1.0
    backorder_cost: Any = 9.0
    name = "optimal_poisson"

    def levels(
        self, mean: np.ndarray, std: np.ndarray, lead_time: np.ndarray, review_period: np.ndarray
    ) -> Levels:
        """Levels per position from the exact (s, S) search."""
        s, big_s, _ = optimal_ss(
            mean,
            lead_time + review_period - 1,
            self.order_cost,
            self.holding_cost,
            self.backorder_cost,
        )
        ss = np.where(mean > 0, s - mean * (lead_time + review_period), 0.0)
        return _freeze(s, big_s, np.zeros_like(s), ss)


Policy = OrderUpToPolicy | ReorderPointPolicy | MinMaxPolicy | OptimalPoissonPolicy


def optimal_ss(
    mean: Any,
    lead_time: Any = 0,
    order_cost: Any = 1.0,
    holding_cost: Any = 1.0,
    backorder_cost: Any = 9.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact optimal (s, S) and average cost per period, Poisson demand.

    Parameters
    ----------
    mean
        Poisson demand per period (>= 0).
    lead_time
        Whole periods between ordering and receipt (the cost of a period is charged
        on demand over ``lead_time + 1`` periods).
    order_cost, holding_cost, backorder_cost
        ``K``, ``h`` and ``p``; scalars or arrays over positions.

    Returns
    -------
    (s, S, cost)
        int64 reorder points, int64 order-up-to levels and float64 average cost.

    Notes
    -----
    Zheng & Federgruen (1991), "Finding optimal (s, S) policies is about as simple
    as evaluating a single policy". See :class:`OptimalPoissonPolicy`.

    Examples
    --------
    >>> s, S, c = optimal_ss(6.0, 0, order_cost=5.0, holding_cost=1.0, backorder_cost=4.0)
    >>> int(s[0]), int(S[0]), round(float(c[0]), 4)
    (4, 10, 8.0341)
    """
    lam = as_float64(mean, "mean", lo=0.0)
    n = lam.shape[0]
    lt_f = as_float64(lead_time, "lead_time", lo=0.0)
    if np.any(lt_f != np.round(lt_f)):
        row = first_true(lt_f != np.round(lt_f))
        raise ValidationError(
            "exact (s, S) needs whole-period lead times", field="lead_time", row=row
        )
    cols = {
        "lead_time": lt_f,
        "order_cost": as_float64(order_cost, "order_cost", lo=0.0),
        "holding_cost": as_float64(holding_cost, "holding_cost", lo=0.0),
        "backorder_cost": as_float64(backorder_cost, "backorder_cost", lo=0.0),
    }
    for name, arr in cols.items():
        if arr.shape[0] not in (1, n):
            raise ValidationError(
                f"expected {n} rows, got {arr.shape[0]}", field=name, code="length_mismatch"
            )
        cols[name] = np.ascontiguousarray(np.broadcast_to(arr, (n,)))
    if np.any(cols["holding_cost"] + cols["backorder_cost"] <= 0):
        raise ValidationError(
            "holding_cost + backorder_cost must be > 0",
            field="holding_cost",
            row=first_true(cols["holding_cost"] + cols["backorder_cost"] <= 0),
        )
    s = np.empty(n, dtype=np.int64)
    big_s = np.empty(n, dtype=np.int64)
    cost = np.empty(n)
    K.optimal_ss(
        lam,
        cols["lead_time"].astype(np.int64),
        cols["order_cost"],
        cols["holding_cost"],
        cols["backorder_cost"],
        s,
        big_s,
        cost,
    )
    return readonly(s), readonly(big_s), readonly(cost)


def _freeze(s: np.ndarray, big_s: np.ndarray, q: np.ndarray, ss: np.ndarray) -> Levels:
    return Levels(
        readonly(np.ascontiguousarray(s, dtype=np.int64)),
        readonly(np.ascontiguousarray(big_s, dtype=np.int64)),
        readonly(np.ascontiguousarray(q, dtype=np.int64)),
        readonly(np.asarray(ss, dtype=np.float64)),
    )
