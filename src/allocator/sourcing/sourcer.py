"""``source()``: one entry point, several methods; :class:`Sourcer` for repeated calls."""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from allocator.exceptions import ValidationError
from allocator.network import NetworkData
from allocator.sourcing.costs import CostModel
from allocator.sourcing.indexes import LocationIndex, PositionIndex
from allocator.sourcing.orders import Orders
from allocator.sourcing.plan import SourcingPlan
from allocator.sourcing.problem import SourcingProblem, check_ledger

if TYPE_CHECKING:
    from allocator.ledger import BaseLedger

__all__ = ["METHODS", "Sourcer", "methods", "solve", "source"]

#: The sourcing methods, by name.
METHODS = ("greedy", "optimal")


def methods() -> tuple[str, ...]:
    """Names of the sourcing methods (:data:`METHODS`)."""
    return METHODS


def solve(problem: SourcingProblem, method: str = "greedy", **options: Any) -> SourcingPlan:
    """Run the sourcing ``method`` on a prepared ``problem`` (explicit dispatch).

    ``"greedy"`` takes no options; ``"optimal"`` takes those of
    :func:`allocator.sourcing.optimal.solve_optimal`.
    """
    if method == "greedy":
        from allocator.sourcing.greedy import solve_greedy

        if options:
            raise ValidationError(
                f"the greedy method takes no options, got {sorted(options)}",
                field=sorted(options)[0],
                code="field_not_allowed",
            )
        return solve_greedy(problem)
    if method == "optimal":
        from allocator.sourcing.optimal import solve_optimal

        return solve_optimal(problem, **options)
    raise ValidationError(
        f"unknown method {method!r}; expected one of {METHODS}",
        field="method",
        code="unknown_method",
    )


class Sourcer:
    """Reusable sourcing front end: holds the network's location index and the
    ledger's per-SKU position index between calls (nothing is cached at module
    level: a :func:`source` or :func:`~allocator.sourcing.nearby` call builds its own).

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
        self.locations = LocationIndex(network)
        self._ledger: weakref.ref[BaseLedger] | None = None
        self._positions: PositionIndex | None = None
        self._lock = threading.Lock()

    def positions(self, ledger: BaseLedger) -> PositionIndex:
        """The per-SKU position index of ``ledger``, kept while it is the ledger of
        the last call and has gained no positions."""
        with self._lock:
            held = self._positions
            same = self._ledger is not None and self._ledger() is ledger
            if held is None or not same or held.num_positions != ledger.num_positions:
                held = PositionIndex.from_ledger(ledger)
                self._positions = held
                self._ledger = weakref.ref(ledger)
            return held

    def nearby(
        self,
        ledger: BaseLedger,
        sku: Any,
        lat: float,
        lon: float,
        *,
        channel: Any,
        k: int = 3,
        radius_km: float | None = None,
        service: Any = None,
    ) -> Any:
        """:func:`~allocator.sourcing.nearby` through this sourcer's indexes."""
        from allocator.sourcing.nearby import nearby_with

        check_ledger(self.network, ledger)
        return nearby_with(
            self.locations,
            self.positions(ledger),
            ledger,
            sku,
            lat,
            lon,
            channel=channel,
            k=k,
            radius_km=radius_km,
            service=service,
        )

    def prepare(
        self,
        ledger: BaseLedger,
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
        ledger: BaseLedger,
        orders: Orders,
        *,
        method: str = "greedy",
        max_splits: int | None = None,
        pick_capacity: Any = None,
        **options: Any,
    ) -> SourcingPlan:
        """Source ``orders`` against ``ledger``'s availability; see :func:`source`."""
        if method not in METHODS:
            raise ValidationError(
                f"unknown method {method!r}; expected one of {METHODS}",
                field="method",
                code="unknown_method",
            )
        problem = self.prepare(ledger, orders, max_splits=max_splits, pick_capacity=pick_capacity)
        return solve(problem, method, **options)


def source(
    network_data: NetworkData,
    ledger: BaseLedger,
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
        ``"greedy"`` (real time) or ``"optimal"`` (a batch sourced jointly with a
        lower bound; options ``time_limit=10.0``, ``gap=0.001``, ``seed=0``,
        ``opportunity_cost=None``, ``future=None``, see ``docs/optimal.md``).
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
