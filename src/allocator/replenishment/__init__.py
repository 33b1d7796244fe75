"""Replenishment and transfer suggestions for millions of SKU-locations.

The nightly run is :func:`replenish`: forecasts from sales history, policy levels
per position (safety stock from :func:`allocator.safety.safety_stock`), transfers
between locations first (a min-cost flow), purchases second, alerts, and a
:class:`ReplenishmentPlan` that explains every line. See ``docs/replenishment.md``.
"""

from allocator.replenishment.forecast import (
    Forecast,
    croston,
    exponential_smoothing,
    forecast,
    moving_average,
)
from allocator.replenishment.history import sales_history, unheld_positions
from allocator.replenishment.plan import (
    Action,
    Adjustment,
    AlertKind,
    Reason,
    ReplenishmentPlan,
    replenish,
)
from allocator.replenishment.policies import (
    Levels,
    MinMaxPolicy,
    OptimalPoissonPolicy,
    OrderUpToPolicy,
    Policy,
    ReorderPointPolicy,
    eoq,
    optimal_ss,
)
from allocator.replenishment.transfers import TransferLines, plan_transfers, transfer_cost_matrix

__all__ = [
    "Action",
    "Adjustment",
    "AlertKind",
    "Forecast",
    "Levels",
    "MinMaxPolicy",
    "OptimalPoissonPolicy",
    "OrderUpToPolicy",
    "Policy",
    "Reason",
    "ReorderPointPolicy",
    "ReplenishmentPlan",
    "TransferLines",
    "croston",
    "eoq",
    "exponential_smoothing",
    "forecast",
    "moving_average",
    "optimal_ss",
    "plan_transfers",
    "replenish",
    "sales_history",
    "transfer_cost_matrix",
    "unheld_positions",
]
