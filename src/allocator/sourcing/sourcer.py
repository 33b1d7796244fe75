"""``source()``: one entry point, several methods; :class:`Sourcer` for repeated calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from allocator.exceptions import ValidationError
from allocator.network import NetworkData
from allocator.sourcing.costs import CostModel
from allocator.sourcing.orders import Orders
from allocator.sourcing.plan import SourcingPlan
from allocator.sourcing.problem import (
    LocationIndex,
    PositionIndex,
    SourcingProblem,
    check_ledger,
    location_index,
    position_index,
)

__all__ = ["Sourcer", "methods", "register_method", "source"]

Method = Callable[..., SourcingPlan]
_METHODS: dict[str, Method] = {}


def register_method(name: str, solve: Method) -> None:
    """Make ``solve(problem: SourcingProblem, **options) -> SourcingPlan`` available as
    ``source(..., method=name)``."""
    if not isinstance(name, str) or not name:
        raise ValueError("a method needs a non-empty name")
    _METHODS[name] = solve


def methods() -> tuple[str, ...]:
    """Names of the registered sourcing methods."""
    return tuple(sorted(_METHODS))


class Sourcer:
    """Reusable sourcing front end: keeps the network's location index and the
    ledger's per-SKU position index between calls.

    The position index is rebuilt when the ledger gains positions (positions are
    never removed or renumbered) or a different ledger is passed.

    Parameters
    ----------
    network
        The frozen network.
    costs
        The cost model (default :class:`CostModel()`).
    """

    def __init__(self, network: NetworkData, costs: CostModel | None = None) -> None:
        if not isinstance(network, NetworkData):
            raise TypeError("Sourcer needs a NetworkData (Network().build())")
        if costs is None:
            costs = CostModel()
        elif not isinstance(costs, CostModel):
            raise TypeError(f"costs must be a CostModel, got {type(costs).__name__}")
        costs.check(network)
        self.network = network
        self.costs = costs
        self.locations: LocationIndex = location_index(network)

    def positions(self, ledger: Any) -> PositionIndex:
        """The per-SKU position index of ``ledger`` (cached while it is current)."""
        return position_index(ledger)

    def prepare(
        self,
        ledger: Any,
        orders: Orders,
        *,
        max_splits: int | None = None,
        pick_capacity: Any = None,
    ) -> SourcingProblem:
        """Validate a call and gather its inputs (see :class:`SourcingProblem`)."""
        check_ledger(self.network, ledger)
        if not isinstance(orders, Orders):
            raise TypeError(f"expected Orders, got {type(orders).__name__}")
        orders.check_network(self.network)
        self.costs.check(self.network, orders)
        return SourcingProblem.build(
            self.network,
            ledger,
            orders,
            self.costs,
            self.positions(ledger),
            self.locations,
            max_splits=max_splits,
            pick_capacity=pick_capacity,
        )

    def source(
        self,
        ledger: Any,
        orders: Orders,
        *,
        method: str = "greedy",
        max_splits: int | None = None,
        pick_capacity: Any = None,
        **options: Any,
    ) -> SourcingPlan:
        """Source ``orders`` against ``ledger``'s availability; see :func:`source`."""
        solve = _METHODS.get(method)
        if solve is None:
            raise ValidationError(
                f"unknown method {method!r}; expected one of {methods()}",
                field="method",
                code="unknown_method",
            )
        problem = self.prepare(ledger, orders, max_splits=max_splits, pick_capacity=pick_capacity)
        return solve(problem, **options)


def source(
    network_data: NetworkData,
    ledger: Any,
    orders: Orders,
    *,
    method: str = "greedy",
    max_splits: int | None = None,
    costs: CostModel | None = None,
    pick_capacity: Any = None,
    **options: Any,
) -> SourcingPlan:
    """Choose the location(s) that fulfil each order.

    Parameters
    ----------
    network_data
        The frozen network.
    ledger
        Where channel availability comes from; it is read, never changed.
    orders
        The batch to source.
    method
        A registered method: ``"greedy"`` (real time), ``"optimal"`` (a batch sourced
        jointly with a lower bound; options ``time_limit=10.0``, ``gap=0.001``,
        ``seed=0``, ``opportunity_cost=None``, see ``docs/optimal.md``) or any added
        with :func:`register_method`.
    max_splits
        Most extra locations per order (0 = single location only; None = no limit).
    costs
        The :class:`CostModel` (default figures when None).
    pick_capacity
        Units each location may still pick (-1 = unlimited); default the network's.
    **options
        Passed to the method.

    Returns
    -------
    SourcingPlan
        Rows, per-order costs and explanations, unfilled lines with reasons.

    Notes
    -----
    Each call indexes the ledger's positions by SKU (O(positions)); for many small
    calls use a :class:`Sourcer`, which keeps the index while the ledger gains no
    positions.
    """
    return Sourcer(network_data, costs).source(
        ledger, orders, method=method, max_splits=max_splits, pick_capacity=pick_capacity, **options
    )


def _solve_optimal(problem: SourcingProblem, **options: Any) -> SourcingPlan:
    """``method="optimal"``: options ``time_limit``, ``gap``, ``seed``,
    ``opportunity_cost`` (see :func:`allocator.sourcing.optimal.solve_optimal`)."""
    from allocator.sourcing.optimal import solve_optimal

    return solve_optimal(problem, **options)


register_method("optimal", _solve_optimal)
