"""The nightly replenishment run: :func:`replenish` and its :class:`ReplenishmentPlan`."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np

from allocator._kernels import replenish as K
from allocator._validate import as_float64, as_int64, first_true, readonly
from allocator.events import Events
from allocator.exceptions import ValidationError
from allocator.ledger import Ledger
from allocator.network import NetworkData
from allocator.replenishment.forecast import Forecast, check_history, forecast
from allocator.replenishment.policies import Levels, OrderUpToPolicy, Policy
from allocator.replenishment.transfers import plan_transfers, transfer_cost_matrix
from allocator.safety import normal_loss, poisson_loss

__all__ = ["Action", "Adjustment", "AlertKind", "Reason", "ReplenishmentPlan", "replenish"]


class Action(enum.IntEnum):
    """What a suggestion does."""

    BUY = 0
    TRANSFER = 1


class Reason(enum.IntEnum):
    """Why a suggestion was made."""

    BELOW_REORDER_POINT = 0  # (s, Q) / (s, S): inventory position <= s
    BELOW_ORDER_UP_TO = 1  # (R, S): inventory position < S at the review
    SURPLUS_ELSEWHERE = 2  # transfer: another location holds more than it needs


class Adjustment(enum.IntFlag):
    """How a purchase quantity was changed from the raw policy quantity."""

    NONE = 0
    MOQ = K.F_MOQ
    PACK = K.F_PACK
    SHELF_CAPPED = K.F_SHELF_CAPPED


class AlertKind(enum.IntFlag):
    """Why a position is flagged (a bit mask; several may apply)."""

    NONE = 0
    BELOW_REORDER_POINT = 1
    ZERO_AVAILABLE = 2
    LOW_COVER = 4
    SHELF_BLOCKED = 8  # an order is due but none fits under the shelf maximum


@dataclass(frozen=True, eq=False)
class ReplenishmentPlan:
    """Suggestions and alerts of one replenishment run (read-only arrays).

    Per position (aligned with the ledger's positions): ``sku``, ``location``,
    ``inventory_position`` (before any action), ``forecast_mean``,
    ``forecast_std``, ``safety_stock``, ``reorder_point``, ``order_up_to_level``,
    ``free_stock`` (physical free stock ``on_hand - reserved - backorders``, before
    any action), ``transferable`` (the most units the position could give away)
    and ``days_of_cover`` (available stock over mean demand).

    Per suggestion (transfers first, then purchases): ``action`` (:class:`Action`),
    ``suggestion_sku``, ``origin`` (-1 for a purchase), ``destination``, ``qty``,
    ``reason`` (:class:`Reason`), ``adjustment`` (:class:`Adjustment` bits),
    ``unit_cost`` (purchase or transfer money per unit) and ``cover_after``
    (projected days of cover of the destination after all its suggestions).

    Per alert: ``alert_position`` (row), ``alert_kind`` (:class:`AlertKind` bits).
    """

    network: NetworkData
    policy: Any
    sku: np.ndarray
    location: np.ndarray
    inventory_position: np.ndarray
    forecast_mean: np.ndarray
    forecast_std: np.ndarray
    safety_stock: np.ndarray
    reorder_point: np.ndarray
    order_up_to_level: np.ndarray
    free_stock: np.ndarray
    transferable: np.ndarray
    days_of_cover: np.ndarray
    action: np.ndarray
    suggestion_sku: np.ndarray
    origin: np.ndarray
    destination: np.ndarray
    qty: np.ndarray
    reason: np.ndarray
    adjustment: np.ndarray
    unit_cost: np.ndarray
    cover_after: np.ndarray
    alert_position: np.ndarray
    alert_kind: np.ndarray
    budget: float | None
    spent: float
    unfunded: int

    def __len__(self) -> int:
        return int(self.qty.shape[0])

    @property
    def num_transfers(self) -> int:
        return int((self.action == Action.TRANSFER).sum())

    @property
    def num_buys(self) -> int:
        return int((self.action == Action.BUY).sum())

    def explain(self, i: int) -> str:
        """One sentence saying why suggestion ``i`` exists."""
        net = self.network
        sku = net.sku_names[self.suggestion_sku[i]]
        dest = int(self.destination[i])
        where = net.location_names[self.location[dest]]
        ip = int(self.inventory_position[dest])
        s, big_s = int(self.reorder_point[dest]), int(self.order_up_to_level[dest])
        if self.action[i] == Action.TRANSFER:
            src = int(self.origin[i])
            return (
                f"transfer {int(self.qty[i])} x {sku} from {net.location_names[self.location[src]]}"
                f" (inventory position {int(self.inventory_position[src])} above its "
                f"order-up-to level {int(self.order_up_to_level[src])}; "
                f"{int(self.free_stock[src])} free on the shelf, which keeps more than its "
                f"reorder point {int(self.reorder_point[src])}) to {where} "
                f"(inventory position {ip} <= reorder point {s}); "
                f"{self.unit_cost[i]:.2f} per unit moved is below the stockout cost avoided"
            )
        if self.reason[i] == Reason.BELOW_ORDER_UP_TO:
            why = f"inventory position {ip} below order-up-to level {big_s} at the review"
        else:
            why = f"inventory position {ip} <= reorder point {s}"
        text = f"buy {int(self.qty[i])} x {sku} for {where}: {why}"
        adj = Adjustment(int(self.adjustment[i]))
        notes = []
        if Adjustment.MOQ in adj:
            notes.append("raised to the minimum order quantity")
        if Adjustment.PACK in adj:
            notes.append("rounded up to whole case packs")
        if Adjustment.SHELF_CAPPED in adj:
            notes.append("cut to the shelf maximum")
        if notes:
            text += " (" + ", ".join(notes) + ")"
        return text + f"; {self.cover_after[i]:.1f} days of cover after"

    def summary(self) -> str:
        """A few lines: suggestions, units, spend and alerts."""
        kinds = {
            str(k.name).lower(): int((self.alert_kind & k).astype(bool).sum())
            for k in (
                AlertKind.BELOW_REORDER_POINT,
                AlertKind.ZERO_AVAILABLE,
                AlertKind.LOW_COVER,
                AlertKind.SHELF_BLOCKED,
            )
        }
        buy = self.action == Action.BUY
        lines = [
            f"ReplenishmentPlan ({getattr(self.policy, 'name', 'policy')}): "
            f"{self.sku.shape[0]:,} positions",
            f"  transfers: {self.num_transfers:,} lines, {int(self.qty[~buy].sum()):,} units",
            f"  purchases: {self.num_buys:,} lines, {int(self.qty[buy].sum()):,} units, "
            f"spend {self.spent:,.2f}"
            + (
                f" of budget {self.budget:,.2f} ({self.unfunded:,} lines unfunded)"
                if self.budget is not None
                else ""
            ),
            f"  alerts: {self.alert_position.shape[0]:,} positions "
            + ", ".join(f"{k}={v:,}" for k, v in kinds.items()),
        ]
        return "\n".join(lines)

    def to_frame(self) -> Any:
        """Suggestions as a pandas DataFrame with names and a ``reason`` sentence."""
        import pandas as pd

        net = self.network
        loc_names = np.asarray(net.location_names, dtype=object)
        origin_name = np.where(
            self.origin >= 0, loc_names[self.location[np.maximum(self.origin, 0)]], None
        )
        return pd.DataFrame(
            {
                "action": [str(Action(a).name).lower() for a in self.action],
                "sku": np.asarray(net.sku_names, dtype=object)[self.suggestion_sku],
                "from": origin_name,
                "to": loc_names[self.location[self.destination]],
                "qty": self.qty,
                "reason": [self.explain(i) for i in range(len(self))],
                "days_of_cover_after": self.cover_after,
            }
        )

    def alerts_frame(self) -> Any:
        """Alerts as a pandas DataFrame (one row per flagged position)."""
        import pandas as pd

        net = self.network
        p = self.alert_position
        return pd.DataFrame(
            {
                "sku": np.asarray(net.sku_names, dtype=object)[self.sku[p]],
                "location": np.asarray(net.location_names, dtype=object)[self.location[p]],
                "alert": [
                    "|".join(str(k.name).lower() for k in AlertKind if k and k in AlertKind(int(v)))
                    for v in self.alert_kind
                ],
                "inventory_position": self.inventory_position[p],
                "reorder_point": self.reorder_point[p],
                "days_of_cover": self.days_of_cover[p],
            }
        )

    def to_events(self, first_id: int) -> Events:
        """``transfer_out`` events for every transfer, ids ``first_id, first_id + 1, ...``."""
        t = np.flatnonzero(self.action == Action.TRANSFER)
        return Events.transfer_out(
            self.suggestion_sku[t],
            self.location[self.origin[t]],
            self.location[self.destination[t]],
            self.qty[t],
            id=np.arange(first_id, first_id + t.size, dtype=np.int64),
        )

    def received_events(self, first_id: int) -> Events:
        """``transfer_in`` events for when the transfers arrive at their destinations."""
        t = np.flatnonzero(self.action == Action.TRANSFER)
        return Events.transfer_in(
            self.suggestion_sku[t],
            self.location[self.destination[t]],
            self.qty[t],
            id=np.arange(first_id, first_id + t.size, dtype=np.int64),
        )


def _per_position(
    value: Any,
    field: str,
    sku: np.ndarray,
    num_skus: int,
    *,
    integer: bool,
    lo: float | None = None,
) -> np.ndarray:
    """Scalar, per-position or per-SKU input as one value per position."""
    n = sku.shape[0]
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = np.full(n, arr, dtype=arr.dtype)
    elif arr.ndim == 1 and arr.shape[0] != n and arr.shape[0] == num_skus:
        if integer:
            arr = as_int64(arr, field, lo=None if lo is None else int(lo))
        else:
            arr = as_float64(arr, field, lo=lo)
        return arr[sku]
    if integer:
        return as_int64(arr, field, size=n, lo=None if lo is None else int(lo))
    return as_float64(arr, field, size=n, lo=lo)


def _expected_short(
    level: np.ndarray, mean_t: np.ndarray, sigma_t: np.ndarray, poisson: bool
) -> np.ndarray:
    """Expected units short over the protection interval at inventory position ``level``."""
    if poisson:
        return poisson_loss(np.floor(level), mean_t)
    safe = np.where(sigma_t > 0, sigma_t, 1.0)
    out = sigma_t * normal_loss((level - mean_t) / safe)
    return np.where(sigma_t > 0, out, np.maximum(mean_t - level, 0.0))


def _history_to_forecast(demand: Any, ledger: Ledger, method: str, alpha: float) -> Forecast:
    n = ledger.num_positions
    if isinstance(demand, Forecast):
        fc = demand
    else:
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas is optional
            pd = None
        if pd is not None and isinstance(demand, pd.DataFrame):
            demand = _frame_to_history(demand, ledger)
        fc = forecast(check_history(demand), method, alpha=alpha)  # type: ignore[arg-type]
    if len(fc) != n:
        raise ValidationError(
            f"expected {n} rows (one per ledger position), got {len(fc)}",
            field="demand",
            code="length_mismatch",
        )
    return fc


def _frame_to_history(frame: Any, ledger: Ledger) -> np.ndarray:
    """A long frame (sku, location, period, qty) or a wide one (one row per position)."""
    cols = set(frame.columns)
    if {"sku", "location", "period", "qty"} <= cols:
        net = ledger.network
        rows = ledger.position_index(
            net.sku_index(frame["sku"].to_numpy(), "demand.sku"),
            net.location_index(frame["location"].to_numpy(), "demand.location"),
        )
        rows = np.atleast_1d(rows)
        if np.any(rows < 0):
            r = first_true(rows < 0)
            raise ValidationError(
                "sales for a position the ledger does not hold",
                field="demand",
                row=r,
                code="not_found",
            )
        period = as_int64(frame["period"].to_numpy(), "demand.period", lo=0)
        qty = np.asarray(frame["qty"].to_numpy(), dtype=np.float64)
        hist = np.zeros((ledger.num_positions, int(period.max()) + 1 if period.size else 1))
        np.add.at(hist, (rows, period), qty)
        return hist
    return frame.to_numpy()


def replenish(
    network: NetworkData,
    ledger: Ledger,
    demand: Any,
    *,
    policy: Policy | None = None,
    lead_time: Any = 7,
    review_period: Any = 1,
    transfers: bool = True,
    budget: float | None = None,
    on_order: Any = None,
    backorders: Any = None,
    moq: Any = 0,
    pack: Any = 1,
    shelf_max: Any = -1,
    unit_cost: Any = None,
    stockout_cost: Any = None,
    transfer_cost: Any = 1.0,
    transfer_cost_per_km: float = 0.0,
    transfer_buffer: Any = 0,
    max_sources: int | None = 8,
    transfer_threads: int = 1,
    cover_threshold: float = 3.0,
    forecast_method: str = "auto",
    alpha: float = 0.2,
) -> ReplenishmentPlan:
    """Suggest transfers and purchases for every ledger position, with alerts.

    Parameters
    ----------
    network
        The network of ``ledger``.
    ledger
        Source of on_hand, in_transit and reserved per position.
    demand
        Sales history ``(num_positions, num_periods)`` (array or wide DataFrame
        aligned to the ledger's positions), a long DataFrame with columns ``sku``,
        ``location``, ``period``, ``qty``, or a ready :class:`Forecast`.
    policy
        :class:`OrderUpToPolicy` (default, 95 % cycle service),
        :class:`ReorderPointPolicy`, :class:`MinMaxPolicy` or
        :class:`OptimalPoissonPolicy`.
    lead_time, review_period
        Periods; scalars, per position or per SKU (arrays of length ``num_skus``).
    transfers
        Move surplus between locations before buying.
    budget
        Most money spent on purchases; lines are funded in decreasing order of
        expected stockout cost avoided per unit of money, while they fit.
    on_order, backorders
        Open purchase orders and backordered units per position (default 0).
    moq, pack, shelf_max
        Minimum order quantity, case pack and the most units a position may hold
        (``-1`` = none); scalars, per position or per SKU. A MOQ must be a multiple
        of the pack.
    unit_cost, stockout_cost
        Money per unit bought and per unit short; per SKU or per position; default
        the network's ``sku_unit_cost`` and ``sku_price``.
    transfer_cost, transfer_cost_per_km
        Money per unit moved: a scalar or a location x location matrix, plus a
        per-km part over great-circle distance.
    transfer_buffer
        Units above the order-up-to level a source keeps before giving any away.
    max_sources
        Candidate sources per needy position in the transfer network: its
        cheapest ones (``None``: every source whose cost is below the benefit).
    transfer_threads
        Threads for the per-SKU transfer flows (the result does not depend on it).
    cover_threshold
        Days of cover below which a position is alerted.
    forecast_method, alpha
        Forecasting when ``demand`` is a history (see :func:`forecast`).

    Returns
    -------
    ReplenishmentPlan

    Notes
    -----
    ``inventory_position = on_hand + in_transit + on_order - reserved - backorders``.
    A source gives away at most

    ``transferable = max(0, min(IP - S - buffer, free - max(s + 1, safety)))``

    with ``free = on_hand - reserved - backorders`` its physical free stock and
    ``safety`` the ledger's safety stock: after the transfer the source stays above
    its reorder point in inventory position *and* on the shelf (counting none of
    its pending receipts, which cover nothing until they arrive), and never ships
    units that are reserved, owed or withheld. Sinks (``IP <= s``) take up to
    ``min(S, shelf_max) - IP``; the benefit per unit is
    the stockout cost times the drop in expected units short over ``L + R``,
    averaged over the units needed. Purchases then use the updated positions.
    ``days_of_cover = (on_hand - reserved) / mean``; ``cover_after`` is
    ``(IP + received) / mean`` at the destination.
    """
    if not isinstance(network, NetworkData):
        raise ValidationError("expected a NetworkData", field="network", code="wrong_type")
    if not isinstance(ledger, Ledger) or ledger.network is not network:
        raise ValidationError(
            "expected the Ledger of this network", field="ledger", code="wrong_type"
        )
    policy = OrderUpToPolicy() if policy is None else policy
    n = ledger.num_positions
    sku = np.array(ledger.position_sku, dtype=np.int64)
    loc = np.array(ledger.position_location, dtype=np.int64)
    nsku = network.num_skus

    lt = _per_position(lead_time, "lead_time", sku, nsku, integer=False, lo=0.0)
    rp = _per_position(review_period, "review_period", sku, nsku, integer=False, lo=0.0)
    moq_a = _per_position(moq, "moq", sku, nsku, integer=True, lo=0)
    pack_a = _per_position(pack, "pack", sku, nsku, integer=True, lo=1)
    shelf = _per_position(shelf_max, "shelf_max", sku, nsku, integer=True, lo=-1)
    bad = (moq_a > 0) & (pack_a > 1) & (moq_a % pack_a != 0)
    if bad.any():
        r = first_true(bad)
        raise ValidationError(
            f"MOQ {moq_a[r]} is not a multiple of the pack {pack_a[r]}",
            field="moq",
            row=r,
            code="moq_not_multiple_of_pack",
        )
    oo = np.zeros(n, np.int64) if on_order is None else as_int64(on_order, "on_order", size=n, lo=0)
    bo = (
        np.zeros(n, np.int64)
        if backorders is None
        else as_int64(backorders, "backorders", size=n, lo=0)
    )
    buffer = _per_position(transfer_buffer, "transfer_buffer", sku, nsku, integer=True, lo=0)
    if unit_cost is None:
        ucost = np.asarray(network.sku_unit_cost, dtype=np.float64)[sku]
    else:
        ucost = _per_position(unit_cost, "unit_cost", sku, nsku, integer=False, lo=0.0)
    if stockout_cost is None:
        scost = np.asarray(network.sku_price, dtype=np.float64)[sku]
    else:
        scost = _per_position(stockout_cost, "stockout_cost", sku, nsku, integer=False, lo=0.0)
    if budget is not None and (not np.isfinite(budget) or budget < 0):
        raise ValidationError("expected a budget >= 0", field="budget")

    fc = _history_to_forecast(demand, ledger, forecast_method, alpha)
    mean = np.asarray(fc.mean)
    std = np.asarray(fc.std)
    levels: Levels = policy.levels(mean, std, lt, rp)
    s = np.asarray(levels.reorder_point)
    big_s = np.asarray(levels.order_up_to_level)

    on_hand = np.asarray(ledger.on_hand)
    reserved = np.asarray(ledger.reserved)
    ip0 = on_hand + np.asarray(ledger.in_transit) + oo - reserved - bo
    ip = ip0.copy()
    free = np.maximum(on_hand - reserved, 0)
    free_stock = on_hand - reserved - bo
    keep = np.maximum(s + 1, np.asarray(ledger.safety_stock))
    transferable = np.maximum(np.minimum(ip0 - big_s - buffer, free_stock - keep), 0)
    poisson = getattr(policy, "distribution", "poisson") == "poisson"
    mean_t = mean * (lt + rp)
    sigma_t = std * np.sqrt(lt + rp)

    # ---- transfers first
    received = np.zeros(n, np.int64)
    t_origin = t_dest = t_qty = np.empty(0, np.int64)
    t_cost = np.empty(0)
    if transfers and n:
        target = np.where(shelf >= 0, np.minimum(big_s, shelf), big_s)
        need = np.where(ip <= s, np.maximum(target - ip, 0), 0)
        surplus = transferable
        if need.any() and surplus.any():
            if np.any(~np.isfinite(scost[need > 0])):
                r = first_true((need > 0) & ~np.isfinite(scost))
                raise ValidationError(
                    "a stockout cost is needed to value transfers",
                    field="stockout_cost",
                    row=r,
                    code="missing_value",
                )
            short_now = _expected_short(ip.astype(float), mean_t, sigma_t, poisson)
            short_full = _expected_short((ip + need).astype(float), mean_t, sigma_t, poisson)
            benefit = np.where(
                need > 0, scost * (short_now - short_full) / np.maximum(need, 1), 0.0
            )
            costs = transfer_cost_matrix(
                network.lat, network.lon, transfer_cost, transfer_cost_per_km
            )
            lines = plan_transfers(
                sku,
                loc,
                surplus,
                need,
                benefit,
                costs,
                max_sources=max_sources,
                threads=transfer_threads,
            )
            t_origin, t_dest = np.asarray(lines.origin), np.asarray(lines.destination)
            t_qty, t_cost = np.asarray(lines.qty), np.asarray(lines.unit_cost)
            np.add.at(received, t_dest, t_qty)
            np.subtract.at(ip, t_origin, t_qty)
            ip += received

    # ---- purchases
    qty = np.empty(n, np.int64)
    flags = np.empty(n, np.int64)
    K.order_quantities(ip, s, big_s, np.asarray(levels.batch), moq_a, pack_a, shelf, qty, flags)
    buy = np.flatnonzero(qty > 0)
    spent = float(np.nansum(qty[buy] * ucost[buy])) if budget is None else 0.0
    unfunded = 0
    if budget is not None and buy.size:
        if np.any(~np.isfinite(ucost[buy]) | ~np.isfinite(scost[buy])):
            r = buy[first_true(~np.isfinite(ucost[buy]) | ~np.isfinite(scost[buy]))]
            field = "unit_cost" if not np.isfinite(ucost[r]) else "stockout_cost"
            raise ValidationError(
                "costs are needed to spend a budget", field=field, row=int(r), code="missing_value"
            )
        value = scost[buy] * (
            _expected_short(ip[buy].astype(float), mean_t[buy], sigma_t[buy], poisson)
            - _expected_short(
                (ip[buy] + qty[buy]).astype(float), mean_t[buy], sigma_t[buy], poisson
            )
        )
        money = qty[buy] * ucost[buy]
        ratio = np.where(money > 0, value / np.where(money > 0, money, 1.0), np.inf)
        order = np.lexsort((buy, -ratio)).astype(np.int64)
        take = np.zeros(buy.size, dtype=np.bool_)
        spent = float(K.greedy_budget(order, money, float(budget), take))
        unfunded = int((~take).sum())
        buy = buy[take]
    elif budget is not None:
        spent = 0.0

    # ---- cover and alerts
    with np.errstate(divide="ignore", invalid="ignore"):
        cover = np.where(mean > 0, free / np.where(mean > 0, mean, 1.0), np.inf)
    arrive = received.copy()
    arrive[buy] += qty[buy]
    with np.errstate(divide="ignore", invalid="ignore"):
        cover_after_pos = np.where(mean > 0, (ip0 + arrive) / np.where(mean > 0, mean, 1.0), np.inf)
    avail = ledger.available_all()
    zero_avail = (avail.max(axis=1) <= 0) if avail.shape[1] else np.ones(n, bool)
    kind = np.zeros(n, np.int64)
    kind[ip0 <= s] |= AlertKind.BELOW_REORDER_POINT
    kind[zero_avail & (mean > 0)] |= AlertKind.ZERO_AVAILABLE
    kind[cover < cover_threshold] |= AlertKind.LOW_COVER
    kind[(flags & K.F_SHELF_BLOCKED) != 0] |= AlertKind.SHELF_BLOCKED
    alert_pos = np.flatnonzero(kind)

    n_t, n_b = t_qty.size, buy.size
    is_periodic = isinstance(policy, OrderUpToPolicy)
    action = np.concatenate([np.full(n_t, Action.TRANSFER), np.full(n_b, Action.BUY)])
    dest = np.concatenate([t_dest, buy]).astype(np.int64)
    ro = readonly
    return ReplenishmentPlan(
        network=network,
        policy=policy,
        sku=ro(sku),
        location=ro(loc),
        inventory_position=ro(ip0),
        forecast_mean=ro(mean.copy()),
        forecast_std=ro(std.copy()),
        safety_stock=levels.safety_stock,
        reorder_point=levels.reorder_point,
        order_up_to_level=levels.order_up_to_level,
        free_stock=ro(free_stock),
        transferable=ro(transferable),
        days_of_cover=ro(cover),
        action=ro(action.astype(np.int8)),
        suggestion_sku=ro(sku[dest]),
        origin=ro(np.concatenate([t_origin, np.full(n_b, -1)]).astype(np.int64)),
        destination=ro(dest),
        qty=ro(np.concatenate([t_qty, qty[buy]]).astype(np.int64)),
        reason=ro(
            np.concatenate(
                [
                    np.full(n_t, Reason.SURPLUS_ELSEWHERE),
                    np.full(
                        n_b, Reason.BELOW_ORDER_UP_TO if is_periodic else Reason.BELOW_REORDER_POINT
                    ),
                ]
            ).astype(np.int8)
        ),
        adjustment=ro(np.concatenate([np.zeros(n_t, np.int64), flags[buy] & ~K.F_SHELF_BLOCKED])),
        unit_cost=ro(np.concatenate([t_cost, ucost[buy]]).astype(np.float64)),
        cover_after=ro(cover_after_pos[dest]),
        alert_position=ro(alert_pos),
        alert_kind=ro(kind[alert_pos]),
        budget=None if budget is None else float(budget),
        spent=spent,
        unfunded=unfunded,
    )
