"""Key performance indicators of a simulation run: :class:`KPIs` and :class:`DailySeries`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LOST_CAUSES", "TARGETS", "DailySeries", "KPIs", "OrderOutcomes"]

#: Why units were lost, in report order: no stock anywhere the channel may use;
#: stock on hand but held for other channels (fences, caps) or already promised;
#: pick capacity used up; no stock within same-day reach; left unfilled by the
#: optimiser because filling cost more than the penalty; the split limit; the
#: pick-up store unavailable; stock that moved between planning and reservation
#: twice in a row.
LOST_CAUSES = (
    "no_stock",
    "fenced",
    "capacity",
    "same_day_radius",
    "left_unfilled",
    "split_limit",
    "pickup_store_closed",
    "stock_moved",
)
#: The retailer's plan: ``(kpi, comparison, value)``.
TARGETS = (
    ("order_error_rate", "<", 0.03),
    ("stockout_rate", "<", 0.05),
    ("turnover_days", "<=", 45.0),
)


@dataclass(frozen=True, eq=False)
class OrderOutcomes:
    """Every online order of a run, by id (read-only arrays, sorted by ``id``).

    ``units`` ordered, ``filled`` units reserved, ``cost`` the fulfilment cost of its
    plan (packages, handling, transport, split penalty; 0 when nothing was reserved)
    and ``channel``. Ids depend only on the scenario and seed, so runs of several
    policies on one scenario describe the same orders.
    """

    id: np.ndarray
    channel: np.ndarray
    units: np.ndarray
    filled: np.ndarray
    cost: np.ndarray

    def __len__(self) -> int:
        return int(self.id.shape[0])

    @property
    def full(self) -> np.ndarray:
        """Orders filled in full."""
        return self.filled >= self.units


def _ratio(num: Any, den: Any) -> Any:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True, eq=False)
class DailySeries:
    """Per-day figures of a run (read-only arrays; ``D`` days, ``C`` channels, ``L``
    locations).

    Attributes
    ----------
    demand_units, filled_units
        ``(C, D)`` units asked for and units sold (walk-in) or reserved (online).
    orders, served
        Online orders placed, and those with at least one unit reserved.
    cost, packages, km, split
        Sums over served orders: fulfilment cost (packages, handling, transport and
        split penalty; lost units are not a fulfilment cost), packages, package
        km and split orders.
    pickup_orders, pickup_on_time
        Pick-up orders placed, and those ready within the promise.
    picked_units
        ``(L, D)`` units each location picked for online orders.
    capacity
        ``(L,)`` pick capacity per day (-1: unlimited).
    on_hand
        Units on hand in the whole network at the end of the day.
    out_units
        Units that left the network (walk-in sales and committed online units).
    stockouts
        Carried positions with nothing sellable (``on_hand - reserved <= 0``) at the
        end of the day.
    top_skus, top_stock
        The best sellers and their network on_hand at the end of each day ``(k, D)``.
    promotion
        The promotion running each day ("" for none).
    """

    demand_units: np.ndarray
    filled_units: np.ndarray
    orders: np.ndarray
    served: np.ndarray
    cost: np.ndarray
    packages: np.ndarray
    km: np.ndarray
    split: np.ndarray
    pickup_orders: np.ndarray
    pickup_on_time: np.ndarray
    picked_units: np.ndarray
    capacity: np.ndarray
    on_hand: np.ndarray
    out_units: np.ndarray
    stockouts: np.ndarray
    num_positions: int
    top_skus: np.ndarray
    top_stock: np.ndarray
    promotion: tuple[str, ...]

    @property
    def days(self) -> int:
        return int(self.orders.shape[0])

    @property
    def fill_rate(self) -> np.ndarray:
        """``(C, D)`` filled over demanded units (NaN on days without demand)."""
        return _ratio(self.filled_units, self.demand_units)

    @property
    def cost_per_order(self) -> np.ndarray:
        return _ratio(self.cost, self.served)

    @property
    def utilisation(self) -> np.ndarray:
        """``(L, D)`` picked units over pick capacity (NaN where unlimited)."""
        cap = np.where(self.capacity >= 0, self.capacity, 0)[:, None]
        return _ratio(self.picked_units, np.broadcast_to(cap, self.picked_units.shape))


@dataclass(frozen=True, eq=False)
class KPIs:
    """The figures planners compare policies on, for one run.

    Attributes
    ----------
    channel_names
        Channel of each entry of the per-channel arrays.
    demand_units, filled_units
        Per channel: units asked for; units sold to walk-in customers or reserved
        for online orders.
    lost_value
        Revenue of the units not filled (at the SKU price).
    orders, served
        Online orders placed, and those with at least one unit reserved.
    split_rate, packages_per_order, cost_per_order, avg_km
        Over served orders: share served from more than one location, packages,
        fulfilment cost and the km of its packages (a pick at the pick-up store is
        0 km).
    pickup_orders, pickup_on_time
        Pick-up orders placed and the share ready within the promise.
    utilisation, utilisation_peak
        Per location: mean and highest daily share of pick capacity used (NaN for
        unlimited capacity).
    stockout_rate
        Share of position-days ending with nothing sellable.
    turnover_days
        Mean on_hand over mean daily units leaving the network.
    oversells
        Commits the ledger rejected plus positions ever left with
        ``on_hand < reserved`` (must be 0).
    expired
        Reservations released by expiry (pick-ups never collected).
    returned_units
        Units returned by customers.
    events, ledger_seconds
        Events applied and the seconds spent applying them (engine speed, not a
        business figure).
    season_objective
        The objective over every order and walk-in customer of the run, priced as
        the sourcing cost model prices a plan: fulfilment cost of the online orders
        plus every lost unit (online and walk-in) at the model's unfilled penalty.
    lost_by_cause
        Lost units by cause (:data:`LOST_CAUSES`), online and walk-in together.
    fulfilment_days
        Per channel: mean days from promise (reservation) to shipped or ready for
        pick-up, over served online orders (NaN for the walk-in channel).
    order_error_rate
        Share of online orders promised by a plan, then re-sourced or cancelled
        because the stock was not there (a reservation the ledger rejected, or a
        commit that failed).
    """

    channel_names: tuple[str, ...]
    demand_units: np.ndarray
    filled_units: np.ndarray
    lost_value: float
    orders: int
    served: int
    split_rate: float
    packages_per_order: float
    cost_per_order: float
    avg_km: float
    pickup_orders: int
    pickup_on_time: float
    utilisation: np.ndarray
    utilisation_peak: np.ndarray
    stockout_rate: float
    turnover_days: float
    oversells: int
    expired: int
    returned_units: int
    events: int
    ledger_seconds: float
    season_objective: float = float("nan")
    lost_by_cause: dict[str, int] | None = None
    fulfilment_days: np.ndarray | None = None
    order_error_rate: float = float("nan")

    @classmethod
    def from_daily(
        cls,
        daily: DailySeries,
        channel_names: tuple[str, ...],
        *,
        lost_value: float,
        oversells: int,
        expired: int,
        returned_units: int,
        events: int,
        ledger_seconds: float,
        season_objective: float = float("nan"),
        lost_by_cause: dict[str, int] | None = None,
        fulfilment_days: np.ndarray | None = None,
        order_errors: int = 0,
    ) -> KPIs:
        """Aggregate a :class:`DailySeries` (see the attribute list for each formula)."""
        util = daily.utilisation
        has = ~np.isnan(util).all(axis=1) if util.size else np.zeros(util.shape[0], bool)
        mean_util = np.full(util.shape[0], np.nan)
        peak_util = np.full(util.shape[0], np.nan)
        if has.any():
            mean_util[has] = np.nanmean(util[has], axis=1)
            peak_util[has] = np.nanmax(util[has], axis=1)
        served = int(daily.served.sum())
        positions_days = daily.num_positions * daily.days
        return cls(
            channel_names=channel_names,
            demand_units=daily.demand_units.sum(axis=1),
            filled_units=daily.filled_units.sum(axis=1),
            lost_value=float(lost_value),
            orders=int(daily.orders.sum()),
            served=served,
            split_rate=_ratio(daily.split.sum(), served),
            packages_per_order=_ratio(daily.packages.sum(), served),
            cost_per_order=_ratio(daily.cost.sum(), served),
            avg_km=_ratio(daily.km.sum(), served),
            pickup_orders=int(daily.pickup_orders.sum()),
            pickup_on_time=_ratio(daily.pickup_on_time.sum(), daily.pickup_orders.sum()),
            utilisation=mean_util,
            utilisation_peak=peak_util,
            stockout_rate=_ratio(daily.stockouts.sum(), positions_days),
            turnover_days=_ratio(daily.on_hand.mean(), daily.out_units.mean()),
            oversells=int(oversells),
            expired=int(expired),
            returned_units=int(returned_units),
            events=int(events),
            ledger_seconds=float(ledger_seconds),
            season_objective=float(season_objective),
            lost_by_cause=dict(lost_by_cause or {}),
            fulfilment_days=fulfilment_days,
            order_error_rate=_ratio(order_errors, daily.orders.sum()),
        )

    @property
    def lost_units(self) -> np.ndarray:
        return self.demand_units - self.filled_units

    @property
    def fill_rate(self) -> dict[str, float]:
        """Filled over demanded units, per channel."""
        rate = _ratio(self.filled_units, self.demand_units)
        return {name: float(rate[c]) for c, name in enumerate(self.channel_names)}

    @property
    def ledger_events_per_s(self) -> float:
        return self.events / self.ledger_seconds if self.ledger_seconds > 0 else float("nan")

    def as_dict(self) -> dict[str, float]:
        """A flat ``{name: number}`` view, in the order of :meth:`summary`."""
        out: dict[str, float] = {}
        for name, rate in self.fill_rate.items():
            out[f"fill_rate_{name}"] = rate
        for c, name in enumerate(self.channel_names):
            out[f"lost_units_{name}"] = float(self.lost_units[c])
        util = self.utilisation
        peak = self.utilisation_peak
        out.update(
            season_objective=self.season_objective,
            lost_value=self.lost_value,
            orders=float(self.orders),
            split_rate=self.split_rate,
            packages_per_order=self.packages_per_order,
            cost_per_order=self.cost_per_order,
            avg_km=self.avg_km,
            pickup_on_time=self.pickup_on_time,
            utilisation_mean=float(np.nanmean(util)) if np.isfinite(util).any() else np.nan,
            utilisation_peak=float(np.nanmax(peak)) if np.isfinite(peak).any() else np.nan,
            stockout_rate=self.stockout_rate,
            turnover_days=self.turnover_days,
            order_error_rate=self.order_error_rate,
            oversells=float(self.oversells),
            expired=float(self.expired),
            returned_units=float(self.returned_units),
            events=float(self.events),
            ledger_events_per_s=self.ledger_events_per_s,
        )
        if self.fulfilment_days is not None:
            for c, name in enumerate(self.channel_names):
                out[f"fulfilment_days_{name}"] = float(self.fulfilment_days[c])
        for cause in LOST_CAUSES:
            out[f"lost_{cause}"] = float((self.lost_by_cause or {}).get(cause, 0))
        return out

    def summary(self) -> str:
        fill = ", ".join(f"{k} {v:.1%}" for k, v in self.fill_rate.items())
        d = self.as_dict()
        return (
            f"fill rate {fill}; {self.orders:,} orders, split {self.split_rate:.1%}, "
            f"{self.packages_per_order:.2f} packages/order, {self.cost_per_order:.2f}/order, "
            f"{self.avg_km:.1f} km/order; pick-up on time {self.pickup_on_time:.1%}; "
            f"utilisation mean {d['utilisation_mean']:.1%} peak {d['utilisation_peak']:.1%}; "
            f"stockout rate {self.stockout_rate:.1%}; turnover {self.turnover_days:.1f} days; "
            f"oversells {self.oversells}"
        )

    def to_frame(self) -> Any:
        """One row per KPI."""
        import pandas as pd

        d = self.as_dict()
        return pd.DataFrame({"kpi": list(d), "value": list(d.values())})
