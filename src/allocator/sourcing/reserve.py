"""Turning a :class:`SourcingPlan` into reservations on the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from allocator._validate import as_int64, readonly
from allocator.events import ALL, NO_EXPIRY, EventKind, Events, ResultCode
from allocator.exceptions import DTypeError, ValidationError
from allocator.ledger import ApplyResult, BaseLedger
from allocator.sourcing.orders import Orders
from allocator.sourcing.plan import SourcingPlan

__all__ = ["PlanReservations", "reserve_plan"]


@dataclass(frozen=True, eq=False, repr=False)
class PlanReservations:
    """What the ledger did with a plan's reservations, and the order-level follow-up.

    Attributes
    ----------
    apply
        The ledger's :class:`~allocator.ledger.ApplyResult` for the reserve events
        (one per plan row, in plan row order).
    reservation
        Reservation id per plan row; 0 where the order was rejected.
    order_id
        The client order id of each plan row.
    accepted
        Order indices (into ``plan.orders``) reserved in full.
    rejected
        Order indices rejected as a group (stock moved since planning).
    resource
        The rejected orders as a new :class:`Orders` batch, for re-sourcing.
    orders
        The plan's orders (``accepted`` and ``rejected`` index them).
    ledger
        The ledger holding the reservations (:meth:`commit` and :meth:`release`
        write to it).

    Notes
    -----
    The checkout cycle: ``source`` a plan, ``reserve_plan`` it (one linked group per
    order, so an order is held whole or not at all), take the payment, then
    ``commit(order_id)`` (ship or pick) or ``release(order_id)`` (payment failed,
    customer cancelled). Holds that are never resolved lapse at their
    ``expires_at`` when the caller runs ``ledger.expire(now)``. Orders in
    ``resource`` go back to ``source``. See ``docs/sourcing.md``.
    """

    apply: ApplyResult
    reservation: np.ndarray
    order_id: np.ndarray
    accepted: np.ndarray
    rejected: np.ndarray
    resource: Orders
    orders: Orders
    ledger: BaseLedger

    @property
    def ok(self) -> bool:
        return self.rejected.shape[0] == 0

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"PlanReservations({self.summary()})"

    @property
    def accepted_orders(self) -> np.ndarray:
        """Client ids of the orders reserved in full."""
        return readonly(self.orders.id[self.accepted])

    @property
    def rejected_orders(self) -> np.ndarray:
        """Client ids of the orders rejected (to re-source)."""
        return readonly(self.orders.id[self.rejected])

    def reservations(self, order_id: int) -> np.ndarray:
        """Reservation ids held for the client order ``order_id`` (empty if none)."""
        oid = _order_id(order_id)
        rows = np.flatnonzero((self.order_id == oid) & (self.reservation != 0))
        return readonly(self.reservation[rows])

    def _resolve(self, kind: EventKind, order_id: int, first_id: int | None) -> ApplyResult:
        holds = self.reservations(order_id)
        if holds.shape[0] == 0:
            raise ValidationError(
                f"order {order_id} holds no reservations here (rejected, or not in the plan)",
                field="order_id",
                code="order_not_reserved",
            )
        if first_id is None:
            ids: Any = 0
        else:
            start = int(as_int64(first_id, "id", lo=1, code="invalid_identifier")[0])
            ids = np.arange(start, start + holds.shape[0], dtype=np.int64)
        qty = ALL if kind == EventKind.COMMIT else 0
        events = Events.from_arrays(
            kind=np.full(holds.shape[0], int(kind), dtype=np.int64), id=ids, ref=holds, qty=qty
        )
        return self.ledger.apply(events.linked())

    def commit(self, order_id: int, *, id: int | None = None) -> ApplyResult:
        """Ship or pick every line of one order: one linked group of commits.

        All or nothing: if any hold can no longer be committed (released, expired),
        none is, and the codes say why. ``id`` is the client id of the first commit
        event (the others follow consecutively), which makes a retry idempotent.
        """
        return self._resolve(EventKind.COMMIT, order_id, id)

    def release(self, order_id: int, *, id: int | None = None) -> ApplyResult:
        """Cancel every hold of one order (payment failed, customer cancelled)."""
        return self._resolve(EventKind.RELEASE, order_id, id)

    def summary(self) -> str:
        return (
            f"{self.accepted.shape[0]} orders reserved, {self.rejected.shape[0]} rejected "
            f"for re-sourcing, {int((self.reservation != 0).sum())} reservations"
        )


def _order_id(value: Any) -> int:
    if type(value) is int or (isinstance(value, np.integer) and type(value) is not np.bool_):
        return int(value)
    raise DTypeError(
        f"expected a client order id (int), got {type(value).__name__}",
        field="order_id",
        code="order_id_must_be_integer",
    )


def reserve_plan(
    ledger: BaseLedger,
    plan: SourcingPlan,
    *,
    expires_at: int | None = None,
    first_id: int | None = None,
) -> PlanReservations:
    """Reserve every allocation row of ``plan``: one linked group per order.

    Each row becomes a reserve event for the order's channel at the row's location
    (transfer rows reserve at their origin). A group fails as a whole when any line
    no longer has the availability the plan saw; those orders come back in
    ``resource``. Orders without rows create no events.

    Parameters
    ----------
    expires_at
        Expiry of every reservation (default: never).
    first_id
        Client id of the first event; the others follow consecutively (default:
        ledger-assigned ids). Client ids make a retried call idempotent.
    """
    if not isinstance(plan, SourcingPlan):
        raise TypeError(f"expected a SourcingPlan, got {type(plan).__name__}")
    ledger.network.require_same(plan.network, "plan", "the plan")
    n = len(plan)
    exp = NO_EXPIRY if expires_at is None else int(as_int64(expires_at, "expires_at", lo=0)[0])
    if first_id is None:
        ids: Any = 0
    else:
        start = int(as_int64(first_id, "first_id", lo=1, code="invalid_identifier")[0])
        ids = np.arange(start, start + n, dtype=np.int64)
    orders = plan.orders
    link = np.ones(n, dtype=np.bool_)
    if n:
        link[np.flatnonzero(np.diff(plan.order))] = False
        link[-1] = False
    events = Events.from_arrays(
        kind=np.full(n, int(EventKind.RESERVE), dtype=np.int64),
        id=ids,
        sku=plan.sku,
        location=plan.location,
        channel=orders.channel[plan.order],
        qty=plan.qty,
        expires_at=exp,
        link=link,
    )
    result = ledger.apply(events)
    ok_row = result.codes == ResultCode.OK
    has_rows = np.bincount(plan.order, minlength=orders.num_orders) > 0
    bad_rows = np.bincount(plan.order, weights=~ok_row, minlength=orders.num_orders) > 0
    rejected = np.flatnonzero(has_rows & bad_rows)
    accepted = np.flatnonzero(has_rows & ~bad_rows)
    reservation = np.where(ok_row, result.ids, 0)
    return PlanReservations(
        apply=result,
        reservation=readonly(reservation),
        order_id=readonly(orders.id[plan.order]),
        accepted=readonly(accepted),
        rejected=readonly(rejected),
        resource=orders.take(rejected),
        orders=orders,
        ledger=ledger,
    )
