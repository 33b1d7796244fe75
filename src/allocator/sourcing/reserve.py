"""Turning a :class:`SourcingPlan` into reservations on the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from allocator._validate import as_int64, readonly
from allocator.events import NO_EXPIRY, EventKind, Events, ResultCode
from allocator.exceptions import ValidationError
from allocator.sourcing.orders import Orders
from allocator.sourcing.plan import SourcingPlan

__all__ = ["PlanReservations", "reserve_plan"]


@dataclass(frozen=True, eq=False)
class PlanReservations:
    """What the ledger did with a plan's reservations.

    Attributes
    ----------
    apply
        The ledger's :class:`~allocator.ApplyResult` for the reserve events (one per
        plan row, in plan row order).
    reservation
        Reservation id per plan row; 0 where the order was rejected.
    accepted
        Order indices (into ``plan.orders``) reserved in full.
    rejected
        Order indices rejected as a group (stock moved since planning).
    resource
        The rejected orders as a new :class:`Orders` batch, for re-sourcing.
    """

    apply: Any
    reservation: np.ndarray
    accepted: np.ndarray
    rejected: np.ndarray
    resource: Orders

    @property
    def ok(self) -> bool:
        return self.rejected.shape[0] == 0

    def summary(self) -> str:
        return (
            f"{self.accepted.shape[0]} orders reserved, {self.rejected.shape[0]} rejected "
            f"for re-sourcing, {int((self.reservation != 0).sum())} reservations"
        )


def reserve_plan(
    ledger: Any, plan: SourcingPlan, *, expires_at: int | None = None, first_id: int | None = None
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
    net = ledger.network
    if net is not plan.network and (
        net.sku_names != plan.network.sku_names
        or net.location_names != plan.network.location_names
        or net.channel_names != plan.network.channel_names
    ):
        raise ValidationError(
            "the plan belongs to a different network", field="plan", code="network_mismatch"
        )
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
        accepted=readonly(accepted),
        rejected=readonly(rejected),
        resource=orders.take(rejected),
    )
