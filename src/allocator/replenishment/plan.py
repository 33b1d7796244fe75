"""The nightly replenishment run: :func:`replenish` and its :class:`ReplenishmentPlan`.

The run is split in three so that it can be partitioned by SKU (``client=``):

1. ``inputs._prepare`` validates every argument on the driver and lays the
   inputs out as columns (``_Part``), one value per position, with scalars and
   per-SKU tables kept whole;
2. :func:`_plan_rows` plans any set of positions that holds every position of its
   SKUs: forecast, levels, transfers, purchase quantities, alerts (nothing in it
   couples two SKUs);
3. :func:`_finish` merges nothing but what is global: the purchase budget, spent
   in one order over every line, and the plan's arrays.

One process runs step 2 once over all positions; ``client=`` runs it once per SKU
partition on Dask workers and puts the columns back in ledger order, so both give
the same plan, bit for bit.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from allocator._kernels import replenish as K
from allocator._validate import first_true, readonly
from allocator.events import Events
from allocator.exceptions import DTypeError, ValidationError
from allocator.ledger import BaseLedger
from allocator.network import NetworkData
from allocator.replenishment.forecast import _forecast
from allocator.replenishment.inputs import _expand, _Part, _prepare, _Settings
from allocator.replenishment.policies import Levels, OrderUpToPolicy, Policy
from allocator.replenishment.transfers import plan_transfers
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


_ALERTS = (
    AlertKind.BELOW_REORDER_POINT,
    AlertKind.ZERO_AVAILABLE,
    AlertKind.LOW_COVER,
    AlertKind.SHELF_BLOCKED,
)


@dataclass(frozen=True, eq=False)
class ReplenishmentPlan:
    """Suggestions and alerts of one replenishment run (read-only arrays).

    Per position (aligned with the ledger's positions): ``sku``, ``location``,
    ``on_hand``, ``reserved``, ``in_transit``, ``on_order``, ``backorders``,
    ``lead_time``, ``review_period``, ``inventory_position`` (before any action),
    ``forecast_mean``, ``forecast_std`` (per period), ``safety_stock``,
    ``reorder_point``, ``order_up_to_level``, ``free_stock`` (physical free stock
    ``on_hand - reserved - backorders``, before any action), ``transferable`` (the
    most units the position could give away) and ``days_of_cover`` (available
    stock over mean demand).

    Per suggestion (transfers first, then purchases): ``action`` (:class:`Action`),
    ``suggestion_sku``, ``origin`` (-1 for a purchase), ``destination``, ``qty``,
    ``reason`` (:class:`Reason`), ``adjustment`` (:class:`Adjustment` bits),
    ``unit_cost`` (purchase or transfer money per unit) and ``cover_after``
    (projected days of cover of the destination after all its suggestions).

    Per purchase left out by the budget: ``unfunded_position`` (row), ``unfunded_qty``
    and ``unfunded_unit_cost``; :meth:`lines_frame` lists them with
    ``include_unfunded=True``.

    Per alert: ``alert_position`` (row), ``alert_kind`` (:class:`AlertKind` bits).

    ``timings`` holds the seconds spent per step (and, for a run on a cluster, the
    hand-off and merge overheads).
    """

    network: NetworkData
    policy: Any
    sku: np.ndarray
    location: np.ndarray
    on_hand: np.ndarray
    reserved: np.ndarray
    in_transit: np.ndarray
    on_order: np.ndarray
    backorders: np.ndarray
    lead_time: np.ndarray
    review_period: np.ndarray
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
    unfunded_position: np.ndarray
    unfunded_qty: np.ndarray
    unfunded_unit_cost: np.ndarray
    alert_position: np.ndarray
    alert_kind: np.ndarray
    budget: float | None
    spent: float
    unfunded: int
    timings: Mapping[str, float] = dataclasses.field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.qty.shape[0])

    def __repr__(self) -> str:
        return (
            f"ReplenishmentPlan({self.sku.shape[0]:,} positions, {self.num_transfers:,} "
            f"transfers, {self.num_buys:,} purchases, {self.alert_position.shape[0]:,} alerts)"
        )

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
            str(k.name).lower(): int((self.alert_kind & k).astype(bool).sum()) for k in _ALERTS
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
        """The replenishment report: one row per position (pandas DataFrame).

        Columns, in the manner of an ERP replenishment report: ``sku``,
        ``location``, ``on_hand``, ``reserved``, ``in_transit``, ``on_order``,
        ``backorders``, ``inventory_position``, ``forecast`` (mean demand per
        period) and ``forecast_std``, ``lead_time``, ``review_period``,
        ``safety_stock``, ``reorder_point`` (s), ``order_up_to_level`` (S),
        ``transfer_in`` and ``transfer_from`` (source locations, comma-separated),
        ``transfer_out``, ``buy_qty`` (the policy's purchase, funded or not),
        ``suggested_qty`` (``transfer_in + buy_qty``), ``source`` (``"supplier"``,
        the transfer sources, both, or empty), ``unit_cost`` (of a purchase),
        ``cost`` (purchase plus transfer money), ``funded`` (False where a purchase
        did not fit the budget), ``days_of_cover``, ``days_of_cover_after``, and one
        boolean column per alert (``below_reorder_point``, ``zero_available``,
        ``low_cover``, ``shelf_blocked``).

        :meth:`lines_frame` lists the suggestions themselves, one row per line.
        """
        import pandas as pd

        net = self.network
        n = self.sku.shape[0]
        loc_names = np.asarray(net.location_names, dtype=object)
        moves = self.action == Action.TRANSFER
        buys = ~moves
        t_in = np.zeros(n, np.int64)
        t_out = np.zeros(n, np.int64)
        np.add.at(t_in, self.destination[moves], self.qty[moves])
        np.add.at(t_out, self.origin[moves], self.qty[moves])
        money = np.zeros(n)
        np.add.at(money, self.destination, self.qty * self.unit_cost)
        buy_qty = np.zeros(n, np.int64)
        buy_qty[self.destination[buys]] = self.qty[buys]
        buy_cost = np.full(n, np.nan)
        buy_cost[self.destination[buys]] = self.unit_cost[buys]
        funded = np.ones(n, dtype=np.bool_)
        if self.unfunded_position.size:
            buy_qty[self.unfunded_position] = self.unfunded_qty
            buy_cost[self.unfunded_position] = self.unfunded_unit_cost
            funded[self.unfunded_position] = False
        sources: list[str | None] = [None] * n
        for d, o in zip(self.destination[moves].tolist(), self.origin[moves].tolist(), strict=True):
            name = str(loc_names[self.location[o]])
            sources[d] = name if sources[d] is None else f"{sources[d]}, {name}"
        source = [
            ", ".join(([src] if src is not None else []) + (["supplier"] if buy_qty[i] > 0 else []))
            for i, src in enumerate(sources)
        ]
        arrive = t_in + np.where(funded, buy_qty, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            cover_after = np.where(
                self.forecast_mean > 0,
                (self.inventory_position + arrive - t_out)
                / np.where(self.forecast_mean > 0, self.forecast_mean, 1.0),
                np.inf,
            )
        kind = np.zeros(n, np.int64)
        kind[self.alert_position] = self.alert_kind
        columns: dict[str, Any] = {
            "sku": np.asarray(net.sku_names, dtype=object)[self.sku],
            "location": loc_names[self.location],
            "on_hand": self.on_hand,
            "reserved": self.reserved,
            "in_transit": self.in_transit,
            "on_order": self.on_order,
            "backorders": self.backorders,
            "inventory_position": self.inventory_position,
            "forecast": self.forecast_mean,
            "forecast_std": self.forecast_std,
            "lead_time": self.lead_time,
            "review_period": self.review_period,
            "safety_stock": self.safety_stock,
            "reorder_point": self.reorder_point,
            "order_up_to_level": self.order_up_to_level,
            "transfer_in": t_in,
            "transfer_from": sources,
            "transfer_out": t_out,
            "buy_qty": buy_qty,
            "suggested_qty": t_in + buy_qty,
            "source": source,
            "unit_cost": buy_cost,
            "cost": money
            + np.where(funded, 0.0, buy_qty * np.where(np.isnan(buy_cost), 0.0, buy_cost)),
            "funded": funded,
            "days_of_cover": self.days_of_cover,
            "days_of_cover_after": cover_after,
        }
        for k in _ALERTS:
            columns[str(k.name).lower()] = (kind & k) != 0
        return pd.DataFrame(columns)

    def lines_frame(self, *, include_unfunded: bool = False) -> Any:
        """Suggestions as a pandas DataFrame with names, a ``reason`` sentence and
        ``funded``; ``include_unfunded=True`` appends the purchases the budget left
        out (``funded`` False)."""
        import pandas as pd

        net = self.network
        loc_names = np.asarray(net.location_names, dtype=object)
        origin_name = np.where(
            self.origin >= 0, loc_names[self.location[np.maximum(self.origin, 0)]], None
        )
        frame = pd.DataFrame(
            {
                "action": [str(Action(a).name).lower() for a in self.action],
                "sku": np.asarray(net.sku_names, dtype=object)[self.suggestion_sku],
                "from": origin_name,
                "to": loc_names[self.location[self.destination]],
                "qty": self.qty,
                "unit_cost": self.unit_cost,
                "reason": [self.explain(i) for i in range(len(self))],
                "days_of_cover_after": self.cover_after,
                "funded": np.ones(len(self), dtype=np.bool_),
            }
        )
        if not include_unfunded or self.unfunded_position.size == 0:
            return frame
        p = self.unfunded_position
        left = pd.DataFrame(
            {
                "action": "buy",
                "sku": np.asarray(net.sku_names, dtype=object)[self.sku[p]],
                "from": None,
                "to": loc_names[self.location[p]],
                "qty": self.unfunded_qty,
                "unit_cost": self.unfunded_unit_cost,
                "reason": [
                    f"buy {int(q)} x {net.sku_names[self.sku[r]]} for "
                    f"{net.location_names[self.location[r]]}: inventory position "
                    f"{int(self.inventory_position[r])} <= reorder point "
                    f"{int(self.reorder_point[r])}; not funded: the budget ran out"
                    for r, q in zip(p.tolist(), self.unfunded_qty.tolist(), strict=True)
                ],
                "days_of_cover_after": self.days_of_cover[p],
                "funded": np.zeros(p.size, dtype=np.bool_),
            }
        )
        return pd.concat([frame, left], ignore_index=True)

    def unfunded_frame(self) -> Any:
        """The purchases the budget left out, one row each (``lines_frame`` rows)."""
        frame = self.lines_frame(include_unfunded=True)
        return frame[~frame["funded"]].reset_index(drop=True)

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


#: The columns :func:`_plan_rows` returns per position, and their dtypes.
_OUT = {
    "mean": np.float64,
    "std": np.float64,
    "safety_stock": np.float64,
    "reorder_point": np.int64,
    "order_up_to_level": np.int64,
    "transferable": np.int64,
    "cover": np.float64,
    "qty": np.int64,
    "flags": np.int64,
    "received": np.int64,
    "kind": np.int64,
    "ratio": np.float64,
    "money": np.float64,
}
_LINES = ("t_origin", "t_dest", "t_qty", "t_cost")


def _expected_short(
    level: np.ndarray, mean_t: np.ndarray, sigma_t: np.ndarray, poisson: bool
) -> np.ndarray:
    """Expected units short over the protection interval at inventory position ``level``."""
    if poisson:
        return poisson_loss(np.floor(level), mean_t)
    safe = np.where(sigma_t > 0, sigma_t, 1.0)
    out = sigma_t * normal_loss((level - mean_t) / safe)
    return np.where(sigma_t > 0, out, np.maximum(mean_t - level, 0.0))


def _failure(stage: int, row: int, field: str, message: str) -> dict[str, Any]:
    return {"failure": (stage, row, field, message)}


def _plan_rows(part: _Part, st: _Settings) -> dict[str, Any]:
    """Plan the positions of ``part`` (which holds every position of its SKUs).

    Returns the :data:`_OUT` columns and the transfer lines (rows local to the
    part), or ``{"failure": (stage, row, field, message)}`` for a position whose
    data cannot be planned (the caller raises the first one over all parts).
    """
    c = part.columns
    sku, loc = c["sku"], c["location"]
    n = sku.shape[0]
    p = {k: _expand(v, sku) for k, v in part.params.items()}
    lt, rp = p["lead_time"], p["review_period"]
    if part.mean is not None and part.std is not None:
        mean, std = part.mean, part.std
    else:
        # checked on the driver; a compact dtype converts back to float64 exactly
        hist = np.ascontiguousarray(part.history, dtype=np.float64)
        fc = _forecast(hist, st.forecast_method, st.alpha)
        mean, std = np.asarray(fc.mean), np.asarray(fc.std)
    levels: Levels = part.policy.levels(mean, std, lt, rp)
    s = np.asarray(levels.reorder_point)
    big_s = np.asarray(levels.order_up_to_level)
    scost, ucost = p["stockout_cost"], p["unit_cost"]

    ip0 = c["ip0"]
    ip = ip0.copy()
    free_stock = c["free_stock"]
    keep = np.maximum(s + 1, c["ledger_safety"])
    transferable = np.maximum(np.minimum(ip0 - big_s - p["transfer_buffer"], free_stock - keep), 0)
    poisson = getattr(part.policy, "distribution", "poisson") == "poisson"
    mean_t = mean * (lt + rp)
    sigma_t = std * np.sqrt(lt + rp)
    shelf = p["shelf_max"]

    # ---- transfers first
    received = np.zeros(n, np.int64)
    t_origin = t_dest = t_qty = np.empty(0, np.int64)
    t_cost = np.empty(0)
    if st.transfers and n:
        target = np.where(shelf >= 0, np.minimum(big_s, shelf), big_s)
        need = np.where(ip <= s, np.maximum(target - ip, 0), 0)
        surplus = transferable
        if need.any() and surplus.any():
            bad = (need > 0) & ~np.isfinite(scost)
            if bad.any():
                return _failure(
                    0,
                    first_true(bad),
                    "stockout_cost",
                    "a stockout cost is needed to value transfers (the network has no price "
                    "for this SKU; pass stockout_cost=)",
                )
            short_now = _expected_short(ip.astype(float), mean_t, sigma_t, poisson)
            short_full = _expected_short((ip + need).astype(float), mean_t, sigma_t, poisson)
            benefit = np.where(
                need > 0, scost * (short_now - short_full) / np.maximum(need, 1), 0.0
            )
            lines = plan_transfers(
                sku,
                loc,
                surplus,
                need,
                benefit,
                st.costs,
                max_sources=st.max_sources,
                threads=st.transfer_threads,
            )
            t_origin, t_dest = np.asarray(lines.origin), np.asarray(lines.destination)
            t_qty, t_cost = np.asarray(lines.qty), np.asarray(lines.unit_cost)
            np.add.at(received, t_dest, t_qty)
            np.subtract.at(ip, t_origin, t_qty)
            ip += received

    # ---- purchase quantities (the budget is spent over every position, later)
    qty = np.empty(n, np.int64)
    flags = np.empty(n, np.int64)
    K.order_quantities(
        ip, s, big_s, np.asarray(levels.batch), p["moq"], p["pack"], shelf, qty, flags
    )
    ratio = money = np.empty(0)
    if st.budget:
        buy = np.flatnonzero(qty > 0)
        bad = ~np.isfinite(ucost[buy]) | ~np.isfinite(scost[buy])
        if bad.any():
            r = int(buy[first_true(bad)])
            field = "unit_cost" if not np.isfinite(ucost[r]) else "stockout_cost"
            return _failure(1, r, field, "costs are needed to spend a budget")
        value = scost[buy] * (
            _expected_short(ip[buy].astype(float), mean_t[buy], sigma_t[buy], poisson)
            - _expected_short(
                (ip[buy] + qty[buy]).astype(float), mean_t[buy], sigma_t[buy], poisson
            )
        )
        m = qty[buy] * ucost[buy]
        ratio = np.zeros(n)
        money = np.zeros(n)
        ratio[buy] = np.where(m > 0, value / np.where(m > 0, m, 1.0), np.inf)
        money[buy] = m

    # ---- cover and alerts
    with np.errstate(divide="ignore", invalid="ignore"):
        cover = np.where(mean > 0, c["free"] / np.where(mean > 0, mean, 1.0), np.inf)
    kind = np.zeros(n, np.int64)
    kind[ip0 <= s] |= AlertKind.BELOW_REORDER_POINT
    kind[c["zero_available"] & (mean > 0)] |= AlertKind.ZERO_AVAILABLE
    kind[cover < st.cover_threshold] |= AlertKind.LOW_COVER
    kind[(flags & K.F_SHELF_BLOCKED) != 0] |= AlertKind.SHELF_BLOCKED
    return {
        "mean": mean,
        "std": std,
        "safety_stock": np.asarray(levels.safety_stock),
        "reorder_point": s,
        "order_up_to_level": big_s,
        "transferable": transferable,
        "cover": cover,
        "qty": qty,
        "flags": flags,
        "received": received,
        "kind": kind,
        "ratio": ratio,
        "money": money,
        "t_origin": t_origin,
        "t_dest": t_dest,
        "t_qty": t_qty,
        "t_cost": t_cost,
    }


def _plan_partition(part: _Part, st: _Settings) -> dict[str, Any]:
    """:func:`_plan_rows` on a worker: integer results travel back in the narrowest
    dtype that holds them (the merge widens them again, exactly)."""
    out = _plan_rows(part, st)
    for key, value in out.items():
        if isinstance(value, np.ndarray) and value.dtype == np.int64 and value.size:
            lo, hi = int(value.min()), int(value.max())
            for dtype in (np.int8, np.int16, np.int32):
                info = np.iinfo(dtype)
                if info.min <= lo and hi <= info.max:
                    out[key] = value.astype(dtype)
                    break
    return out


class _Partitions(Sequence[_Part]):
    """The SKU partitions of ``part``, cut when each is sent (and again for a retry),
    so the driver cuts the next one while the workers compute."""

    def __init__(self, part: _Part, rows: list[np.ndarray]) -> None:
        self.part = part
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> _Part:  # type: ignore[override]
        return self.part.take(self.rows[i])


class _Merger:
    """Partition results put back in ledger order as they arrive: columns scattered
    to their rows, transfer lines renumbered (they stay in one run's order:
    partitions are consecutive SKU ranges)."""

    def __init__(self, rows: list[np.ndarray], n: int, budget: bool) -> None:
        self.rows = rows
        self.columns = {
            k: np.empty(n if budget or k not in ("ratio", "money") else 0, dtype=dtype)
            for k, dtype in _OUT.items()
        }
        self.lines: list[tuple[np.ndarray, ...] | None] = [None] * len(rows)
        self.failures: list[tuple[Any, ...]] = []
        self.seconds = 0.0

    def add(self, i: int, out: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        r = self.rows[i]
        if "failure" in out:
            stage, row, *rest = out["failure"]
            self.failures.append((stage, int(r[row]), *rest))
            return
        for key, col in self.columns.items():
            if col.shape[0]:
                col[r] = out[key]
        self.lines[i] = (r[out["t_origin"]], r[out["t_dest"]], out["t_qty"], out["t_cost"])
        self.seconds += time.perf_counter() - t0

    def result(self) -> dict[str, Any]:
        if self.failures:
            return {"failure": min(self.failures)}
        merged: dict[str, Any] = dict(self.columns)
        parts = [x for x in self.lines if x is not None]
        for j, (key, dtype) in enumerate(
            zip(_LINES, (np.int64, np.int64, np.int64, np.float64), strict=True)
        ):
            merged[key] = np.concatenate([p[j] for p in parts]).astype(dtype, copy=False)
        return merged


def _progress(progress: Any) -> Callable[[str, int, int], None] | None:
    """``progress=True``: a tqdm bar on stderr, hidden when stderr is not a terminal."""
    if progress is None or progress is False:
        return None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(desc="replenish", unit="step", disable=None, leave=False)

        def update(stage: str, done: int, total: int) -> None:
            bar.total = total
            bar.set_postfix_str(stage, refresh=False)
            bar.n = done
            bar.refresh()
            if done >= total:
                bar.close()

        return update
    if not callable(progress):
        raise DTypeError(
            "expected a callable progress(stage, done, total), True or None", field="progress"
        )
    return progress  # type: ignore[no-any-return]


def replenish(
    network: NetworkData,
    ledger: BaseLedger,
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
    freq: str = "D",
    progress: Any = None,
    client: Any = None,
    scheduler: Any = None,
    partitions: int | None = None,
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
        aligned to the ledger's positions), a long DataFrame of sales with columns
        ``sku``, ``location``, ``qty`` and ``date`` (``datetime64`` or ISO strings,
        binned into periods of ``freq``) or ``period`` (integer period numbers),
        or a ready :class:`Forecast`. See :func:`~allocator.replenishment.sales_history`.
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
    freq
        Period of a long sales frame with dates: a pandas frequency (``"D"`` days,
        ``"W"`` weeks, ...). Lead times and review periods count these periods.
    progress
        ``progress(stage, done, total)`` called as the run advances (per step, or
        per partition on a cluster), or ``True`` for a progress bar on stderr that
        stays hidden when stderr is not a terminal.
    client, scheduler
        Run on a Dask cluster: a ``distributed.Client``, or the scheduler's address
        (``"tcp://host:8786"``) or scheduler file. Positions are partitioned by SKU,
        each worker gets only its partition's columns, and the plan is identical
        to the single-process one. Needs ``pip install 'allocator[distributed]'``.
    partitions
        Number of SKU partitions on a cluster (default: one per worker thread).

    Returns
    -------
    ReplenishmentPlan

    Raises
    ------
    ValidationError
        Any argument out of its domain (named by ``field``, with the first bad
        ``row``), before anything is planned.
    MissingDependencyError
        ``client=`` or ``scheduler=`` without Dask distributed installed.

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

    A budget is one global rule: every partition computes its purchase lines with
    their value per unit of money, and the driver funds all lines in one order
    (value per money descending, then ledger row), exactly as one process does.
    """
    t0 = time.perf_counter()
    report = _progress(progress)
    part, settings, plan_args = _prepare(
        network,
        ledger,
        demand,
        policy=policy,
        lead_time=lead_time,
        review_period=review_period,
        transfers=transfers,
        budget=budget,
        on_order=on_order,
        backorders=backorders,
        moq=moq,
        pack=pack,
        shelf_max=shelf_max,
        unit_cost=unit_cost,
        stockout_cost=stockout_cost,
        transfer_cost=transfer_cost,
        transfer_cost_per_km=transfer_cost_per_km,
        transfer_buffer=transfer_buffer,
        max_sources=max_sources,
        transfer_threads=transfer_threads,
        cover_threshold=cover_threshold,
        forecast_method=forecast_method,
        alpha=alpha,
        freq=freq,
        distributed=client is not None or scheduler is not None,
    )
    from allocator.distributed import check_partitions

    num_parts = check_partitions(partitions)
    timings = {"prepare_s": time.perf_counter() - t0}
    n = part.num_positions
    if client is None and scheduler is None:
        t1 = time.perf_counter()
        out = _plan_rows(part, settings)
        timings["plan_s"] = time.perf_counter() - t1
        if report is not None:
            report("plan", 1, 2)
    else:
        from allocator import distributed as D

        with D.connect(client, scheduler) as c:
            t1 = time.perf_counter()
            count = num_parts if num_parts is not None else D.default_partitions(c)
            rows = D.sku_partitions(part.columns["sku"], network.num_skus, count)
            timings["partition_s"] = time.perf_counter() - t1
            cb = None if report is None else (lambda d, t: report("partitions", d, t + 1))
            merger = _Merger(rows, n, settings.budget)
            _, stats = D.run_tasks(
                c,
                _plan_partition,
                _Partitions(part, rows),
                settings,
                name="replenish",
                progress=cb,
                on_result=merger.add,
            )
            t2 = time.perf_counter()
            out = merger.result() if rows else _plan_rows(part, settings)
            timings.update(
                scatter_s=stats.scatter_s,
                cluster_s=stats.wall_s,
                partition_max_s=max(stats.task_s, default=0.0),
                partition_sum_s=sum(stats.task_s),
                partition_cpu_max_s=max(stats.task_cpu_s, default=0.0),
                partition_cpu_sum_s=sum(stats.task_cpu_s),
                merge_s=merger.seconds + time.perf_counter() - t2,
                retries=float(stats.retries),
                partitions=float(len(rows)),
            )
    if "failure" in out:
        _stage, row, field, message = out["failure"]
        raise ValidationError(message, field=field, row=row, code="missing_value")
    t3 = time.perf_counter()
    plan = _finish(part, out, plan_args, network, budget)
    timings["finish_s"] = time.perf_counter() - t3
    timings["total_s"] = time.perf_counter() - t0
    if report is not None:
        report("done", 2, 2)
    return dataclasses.replace(plan, timings=timings)


def _finish(
    part: _Part,
    out: dict[str, Any],
    args: dict[str, Any],
    network: NetworkData,
    budget: float | None,
) -> ReplenishmentPlan:
    """The global step: fund purchases under the budget, assemble the plan."""
    c = part.columns
    sku = c["sku"]
    ip0 = c["ip0"]
    mean = out["mean"]
    qty, flags, received = out["qty"], out["flags"], out["received"]
    ucost = _expand(part.params["unit_cost"], sku)
    buy = np.flatnonzero(qty > 0)
    spent = float(np.nansum(qty[buy] * ucost[buy])) if budget is None else 0.0
    unfunded_pos = np.empty(0, np.int64)
    if budget is not None and buy.size:
        ratio, money = out["ratio"][buy], out["money"][buy]
        order = np.lexsort((buy, -ratio)).astype(np.int64)
        take = np.zeros(buy.size, dtype=np.bool_)
        spent = float(K.greedy_budget(order, money, float(budget), take))
        unfunded_pos = buy[~take]
        buy = buy[take]

    arrive = received.copy()
    arrive[buy] += qty[buy]
    with np.errstate(divide="ignore", invalid="ignore"):
        cover_after_pos = np.where(mean > 0, (ip0 + arrive) / np.where(mean > 0, mean, 1.0), np.inf)
    kind = out["kind"]
    alert_pos = np.flatnonzero(kind)

    # Lines come sorted by (sku, origin, destination): plan_transfers sorts each
    # partition's, and SKU partitions are consecutive SKU ranges in order.
    t_origin, t_dest, t_qty, t_cost = (out[k] for k in _LINES)
    n_t, n_b = t_qty.size, buy.size
    policy = args["policy"]
    is_periodic = isinstance(policy, OrderUpToPolicy)
    action = np.concatenate([np.full(n_t, Action.TRANSFER), np.full(n_b, Action.BUY)])
    dest = np.concatenate([t_dest, buy]).astype(np.int64)
    ro = readonly
    return ReplenishmentPlan(
        network=network,
        policy=policy,
        sku=ro(sku),
        location=ro(c["location"]),
        on_hand=ro(args["on_hand"]),
        reserved=ro(args["reserved"]),
        in_transit=ro(args["in_transit"]),
        on_order=ro(args["on_order"]),
        backorders=ro(args["backorders"]),
        lead_time=ro(_expand(part.params["lead_time"], sku)),
        review_period=ro(_expand(part.params["review_period"], sku)),
        inventory_position=ro(ip0),
        forecast_mean=ro(np.array(mean)),
        forecast_std=ro(np.array(out["std"])),
        safety_stock=ro(out["safety_stock"]),
        reorder_point=ro(out["reorder_point"]),
        order_up_to_level=ro(out["order_up_to_level"]),
        free_stock=ro(c["free_stock"]),
        transferable=ro(out["transferable"]),
        days_of_cover=ro(out["cover"]),
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
        unfunded_position=ro(unfunded_pos.astype(np.int64)),
        unfunded_qty=ro(qty[unfunded_pos].astype(np.int64)),
        unfunded_unit_cost=ro(ucost[unfunded_pos].astype(np.float64)),
        alert_position=ro(alert_pos),
        alert_kind=ro(kind[alert_pos]),
        budget=None if budget is None else float(budget),
        spent=spent,
        unfunded=int(unfunded_pos.size),
    )
