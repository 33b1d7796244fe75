"""The result of sourcing: :class:`SourcingPlan`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from allocator._enum import CodedEnum
from allocator._kernels import sourcing as K
from allocator._validate import readonly
from allocator.network import NetworkData
from allocator.sourcing.costs import CostBreakdown, CostModel, plan_costs
from allocator.sourcing.orders import Orders, Service

__all__ = ["PlanStatus", "SourcingPlan", "UnfilledReason", "build_plan"]


class UnfilledReason(CodedEnum):
    """Why units of a line were not allocated."""

    NONE = K.R_NONE
    NO_STOCK = K.R_NO_STOCK
    CAPACITY = K.R_CAPACITY
    RADIUS = K.R_RADIUS
    SPLIT_LIMIT = K.R_SPLIT_LIMIT
    LOCATION_UNAVAILABLE = K.R_LOCATION_UNAVAILABLE
    #: an optimiser left the units unfilled because filling them costs more than the
    #: unfilled penalty
    UNECONOMIC = 6


_REASON_TEXT = {
    UnfilledReason.NO_STOCK: "no stock in channel",
    UnfilledReason.CAPACITY: "pick capacity used up",
    UnfilledReason.RADIUS: "no stock within same-day reach",
    UnfilledReason.SPLIT_LIMIT: "split limit reached",
    UnfilledReason.LOCATION_UNAVAILABLE: "pick-up store unavailable",
    UnfilledReason.UNECONOMIC: "cheaper to leave unfilled",
}


class PlanStatus(CodedEnum):
    """What is known about the plan's objective."""

    HEURISTIC = 0  #: a rule-based plan; no optimality claim (greedy)
    GAP_MET = 1  #: an optimiser's plan within the gap target of its lower bound
    OPTIMAL = 2  #: proven optimal (within the optimiser's tolerance)
    TIME_LIMIT = 3  #: the time limit hit before the gap target; best plan found, with bound
    TIME_LIMIT_GREEDY = 4  #: the time limit hit before anything beat greedy; greedy's plan
    STALLED = 5  #: neither plan nor bound improved over a full round; best plan, with bound
    FEASIBLE = 1  #: the former name of GAP_MET


@dataclass(frozen=True, eq=False)
class SourcingPlan:
    """Where each order line comes from, at what cost, and what stays unfilled.

    Allocation rows are sorted by order. Per-order arrays have length
    ``orders.num_orders``; arrays are read-only.

    Attributes
    ----------
    network, orders, costs
        The inputs the plan was made for.
    method, status
        The sourcing method and :class:`PlanStatus`.
    objective, bound, gap
        Total cost (see :func:`~allocator.sourcing.plan_costs`), a lower bound and the
        relative gap (NaN when the method gives no bound).
    runtime_s
        Wall time of the method.
    order, line, sku, location, qty, transfer
        Allocation rows; ``transfer`` marks units sent to a pick-up store.
    row_km, row_unit_cost, row_shipping_cost
        Per-row distance and cost parts.
    breakdown
        Per-order :class:`~allocator.sourcing.CostBreakdown`.
    line_unfilled, line_reason
        Per order line: units not allocated and :class:`UnfilledReason`.
    alt_location, alt_cost
        Per order: the next-cheapest location that could have filled the whole order
        alone, and its cost (-1 / NaN when there was none).
    build_s, solve_s
        Optimisers: time spent building the model and solving it (0 for greedy).
    baseline_cost
        Optimisers: each order's cost in the greedy plan of the same input (None when
        not computed); :meth:`explain` reports the difference.
    """

    network: NetworkData
    orders: Orders
    costs: CostModel
    method: str
    status: PlanStatus
    objective: float
    bound: float
    gap: float
    runtime_s: float
    order: np.ndarray
    line: np.ndarray
    sku: np.ndarray
    location: np.ndarray
    qty: np.ndarray
    transfer: np.ndarray
    breakdown: CostBreakdown
    line_unfilled: np.ndarray
    line_reason: np.ndarray
    alt_location: np.ndarray
    alt_cost: np.ndarray
    build_s: float = 0.0
    solve_s: float = 0.0
    baseline_cost: np.ndarray | None = None

    @property
    def lower_bound(self) -> float:
        """A proven lower bound on the objective of any plan for the same input (NaN
        when the method gives none); the same as :attr:`bound`."""
        return self.bound

    def __len__(self) -> int:
        return int(self.order.shape[0])

    # -- per-row views ---------------------------------------------------
    @property
    def row_km(self) -> np.ndarray:
        """Great-circle km from each row's location to the order's destination."""
        return self.breakdown.row_km

    @property
    def row_unit_cost(self) -> np.ndarray:
        return self.breakdown.row_unit_cost

    @property
    def row_shipping_cost(self) -> np.ndarray:
        return self.breakdown.row_shipping_cost

    # -- per-order views -------------------------------------------------
    @property
    def cost(self) -> np.ndarray:
        """Total cost per order."""
        return self.breakdown.cost

    @property
    def packages(self) -> np.ndarray:
        """Locations used per order."""
        return self.breakdown.packages

    @property
    def split(self) -> np.ndarray:
        """True for orders served from more than one location."""
        return self.breakdown.packages > 1

    @property
    def km(self) -> np.ndarray:
        """Sum of package distances per order."""
        return self.breakdown.km

    @property
    def unfilled_units(self) -> np.ndarray:
        return self.breakdown.unfilled_units

    @property
    def filled(self) -> np.ndarray:
        """True for orders with every unit allocated."""
        return self.breakdown.unfilled_units == 0

    # -- unfilled rows -----------------------------------------------------
    @cached_property
    def unfilled(self) -> dict[str, np.ndarray]:
        """Unfilled rows: ``order, line, sku, qty, reason`` (one per short line)."""
        rows = np.flatnonzero(self.line_unfilled > 0)
        return {
            "order": readonly(self.orders.line_order[rows]),
            "line": readonly(rows),
            "sku": readonly(self.orders.sku[rows]),
            "qty": readonly(self.line_unfilled[rows]),
            "reason": readonly(self.line_reason[rows]),
        }

    @property
    def fill_rate(self) -> float:
        """Share of ordered units allocated."""
        total = int(self.orders.qty.sum())
        return 1.0 if total == 0 else 1.0 - int(self.line_unfilled.sum()) / total

    # -- explanations --------------------------------------------------------
    def explain(self, i: int) -> str:
        """One line for a store manager on how order ``i`` is fulfilled."""
        names = self.network.location_names
        o = self.orders
        lo, hi = self._row_span[i], self._row_span[i + 1]
        nlines = int(o.indptr[i + 1] - o.indptr[i])
        short = self.line_unfilled[o.indptr[i] : o.indptr[i + 1]] > 0
        cost = float(self.breakdown.cost[i])
        tail = ""
        if short.any():
            reasons = sorted(
                {
                    UnfilledReason(int(r))
                    for r in self.line_reason[o.indptr[i] : o.indptr[i + 1]][short]
                }
            )
            tail = (
                f"; {int(short.sum())} of {nlines} lines short "
                f"({', '.join(_REASON_TEXT[r] for r in reasons)})"
            )
        if hi == lo:
            return f"nothing allocated{tail.replace('; ', ': ', 1)}" + self._versus_baseline(
                i, cost
            )
        locs, first = np.unique(self.location[lo:hi], return_index=True)
        locs = locs[np.argsort(first)]
        parts = []
        for loc in locs.tolist():
            mask = self.location[lo:hi] == loc
            n = int(np.unique(self.line[lo:hi][mask]).shape[0])
            km = float(self.row_km[lo:hi][mask][0])
            label = f"{n} line" + ("" if n == 1 else "s")
            if len(locs) == 1 and n == nlines and nlines > 1:
                label = f"all {label}"
            if self.transfer[lo:hi][mask].any():
                label += f" transferred to {names[int(o.pickup_location[i])]}"
            elif Service(int(o.service[i])) == Service.PICKUP:
                label += " picked in store"
            parts.append(f"{names[loc]}: {label}, {km:.1f} km")
        text = " + ".join(parts) + f", {cost:.2f}"
        if len(locs) == 1 and self.alt_location[i] >= 0:
            text += (
                f" — {names[int(self.alt_location[i])]} would cost {float(self.alt_cost[i]):.2f}"
            )
        elif len(locs) > 1 and not short.any() and Service(int(o.service[i])) != Service.PICKUP:
            text += f" — no single location had all {nlines} lines"
        return text + tail + self._versus_baseline(i, cost)

    def _versus_baseline(self, i: int, cost: float) -> str:
        if self.baseline_cost is None:
            return ""
        base = float(self.baseline_cost[i])
        if abs(base - cost) < 0.005:
            return ""
        if cost < base:
            return f"; saves {base - cost:.2f} against greedy ({base:.2f})"
        return f"; {cost - base:.2f} dearer than greedy ({base:.2f}) to free stock for others"

    @cached_property
    def explanations(self) -> tuple[str, ...]:
        """:meth:`explain` for every order."""
        return tuple(self.explain(i) for i in range(self.orders.num_orders))

    @cached_property
    def _row_span(self) -> np.ndarray:
        return np.searchsorted(self.order, np.arange(self.orders.num_orders + 1))

    def rows_of(self, i: int) -> slice:
        """Slice of the allocation rows of order ``i``."""
        return slice(int(self._row_span[i]), int(self._row_span[i + 1]))

    # -- reporting -------------------------------------------------------------
    def summary(self) -> str:
        n = self.orders.num_orders
        split = int(self.split.sum())
        full = int(self.filled.sum())
        gap = "" if np.isnan(self.gap) else f", gap {self.gap:.2%}"
        counts = np.bincount(
            self.line_reason[self.line_unfilled > 0], minlength=len(UnfilledReason)
        )
        reasons = ", ".join(f"{r.slug}={int(counts[r])}" for r in UnfilledReason if counts[r])
        return (
            f"SourcingPlan ({self.method}, {self.status.slug}{gap}): {n} orders, "
            f"{full} filled, {split} split, fill rate {self.fill_rate:.1%}, "
            f"{int(self.breakdown.packages.sum())} packages, objective {self.objective:,.2f}, "
            f"{self.runtime_s * 1e3:.1f} ms" + (f"; unfilled lines: {reasons}" if reasons else "")
        )

    def to_frame(self) -> Any:
        """Allocation rows as a DataFrame (names resolved)."""
        import pandas as pd

        net = self.network
        return pd.DataFrame(
            {
                "order": self.orders.id[self.order],
                "line": self.line,
                "sku": [net.sku_names[s] for s in self.sku.tolist()],
                "location": [net.location_names[loc] for loc in self.location.tolist()],
                "qty": self.qty,
                "transfer": self.transfer,
                "km": self.row_km,
                "unit_cost": self.row_unit_cost,
                "shipping_cost": self.row_shipping_cost,
            }
        )

    def orders_frame(self) -> Any:
        """One row per order: totals, cost parts and the explanation."""
        import pandas as pd

        b = self.breakdown
        return pd.DataFrame(
            {
                "order": self.orders.id,
                "packages": b.packages,
                "split": self.split,
                "units": b.units,
                "unfilled_units": b.unfilled_units,
                "km": b.km,
                "package_cost": b.package_cost,
                "unit_cost": b.unit_cost,
                "shipping_cost": b.shipping_cost,
                "split_cost": b.split_cost,
                "unfilled_cost": b.unfilled_cost,
                "cost": b.cost,
                "explanation": list(self.explanations),
            }
        )

    def unfilled_frame(self) -> Any:
        """Unfilled rows with reasons."""
        import pandas as pd

        u = self.unfilled
        return pd.DataFrame(
            {
                "order": self.orders.id[u["order"]],
                "line": u["line"],
                "sku": [self.network.sku_names[s] for s in u["sku"].tolist()],
                "qty": u["qty"],
                "reason": [UnfilledReason(int(r)).slug for r in u["reason"].tolist()],
            }
        )


def build_plan(
    network: NetworkData,
    orders: Orders,
    costs: CostModel,
    *,
    method: str,
    order: np.ndarray,
    line: np.ndarray,
    location: np.ndarray,
    qty: np.ndarray,
    transfer: np.ndarray,
    line_unfilled: np.ndarray,
    line_reason: np.ndarray,
    alt_location: np.ndarray | None = None,
    alt_cost: np.ndarray | None = None,
    status: PlanStatus = PlanStatus.HEURISTIC,
    bound: float = float("nan"),
    runtime_s: float = 0.0,
    build_s: float = 0.0,
    solve_s: float = 0.0,
    baseline_cost: np.ndarray | None = None,
    opportunity: np.ndarray | None = None,
) -> SourcingPlan:
    """Assemble a :class:`SourcingPlan` from raw allocation rows; any method calls this.

    Rows are sorted by order (stable), priced with :func:`plan_costs` (with
    ``opportunity``, a per-unit opportunity cost of each row, when given), and ``gap``
    is ``(objective − bound) / max(|objective|, 1e-9)`` when a bound is given.
    """
    perm = np.argsort(order, kind="stable")
    order, line, location = order[perm], line[perm], location[perm]
    qty, transfer = qty[perm], transfer[perm].astype(np.bool_)
    if opportunity is not None:
        opportunity = np.asarray(opportunity, dtype=np.float64)[perm]
    breakdown = plan_costs(
        network,
        orders,
        costs,
        order=order,
        location=location,
        qty=qty,
        line_unfilled=line_unfilled,
        opportunity=opportunity,
    )
    objective = breakdown.objective
    gap = float("nan") if np.isnan(bound) else (objective - bound) / max(abs(objective), 1e-9)
    n = orders.num_orders
    if alt_location is None:
        alt_location = np.full(n, -1, dtype=np.int64)
    if alt_cost is None:
        alt_cost = np.full(n, np.nan)
    return SourcingPlan(
        network=network,
        orders=orders,
        costs=costs,
        method=method,
        status=status,
        objective=objective,
        bound=float(bound),
        gap=gap,
        runtime_s=float(runtime_s),
        order=readonly(order),
        line=readonly(line),
        sku=readonly(orders.sku[line]),
        location=readonly(location),
        qty=readonly(qty),
        transfer=readonly(transfer),
        breakdown=breakdown,
        line_unfilled=readonly(np.asarray(line_unfilled, dtype=np.int64)),
        line_reason=readonly(np.asarray(line_reason, dtype=np.int8)),
        alt_location=readonly(np.asarray(alt_location, dtype=np.int64)),
        alt_cost=readonly(np.asarray(alt_cost, dtype=np.float64)),
        build_s=float(build_s),
        solve_s=float(solve_s),
        baseline_cost=None if baseline_cost is None else readonly(np.array(baseline_cost)),
    )
