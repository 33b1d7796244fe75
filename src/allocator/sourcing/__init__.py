"""Order sourcing: choose the store(s) or warehouse(s) that fulfil each order line.

Build an :class:`Orders` batch, call :func:`source` (or a :class:`Sourcer` for many
calls) to get a :class:`SourcingPlan`, and reserve it with
``reserve_plan(ledger, plan)``. :func:`nearby` answers "in stock near you" queries.
:func:`future_prices` and :class:`ForwardModel` price stock by a forward model of
the remaining horizon, for ``source(..., method="optimal", future=...)``.
See ``docs/sourcing.md``.
"""

from allocator.sourcing.costs import CostBreakdown, CostModel, haversine_km, plan_costs
from allocator.sourcing.future import DemandForecast, ForwardModel, FuturePrices, future_prices
from allocator.sourcing.greedy import solve_greedy
from allocator.sourcing.nearby import NearbyResult, nearby
from allocator.sourcing.orders import Orders, Service
from allocator.sourcing.plan import PlanStatus, SourcingPlan, UnfilledReason, build_plan
from allocator.sourcing.problem import Candidates, SourcingProblem
from allocator.sourcing.reserve import PlanReservations, reserve_plan
from allocator.sourcing.sourcer import METHODS, Sourcer, methods, source

__all__ = [
    "METHODS",
    "Candidates",
    "CostBreakdown",
    "CostModel",
    "DemandForecast",
    "ForwardModel",
    "FuturePrices",
    "NearbyResult",
    "Orders",
    "PlanReservations",
    "PlanStatus",
    "Service",
    "Sourcer",
    "SourcingPlan",
    "SourcingProblem",
    "UnfilledReason",
    "build_plan",
    "future_prices",
    "haversine_km",
    "methods",
    "nearby",
    "plan_costs",
    "reserve_plan",
    "solve_greedy",
    "source",
]
