"""The day/wave loop: :func:`simulate` drives the real ledger and models over a scenario.

One simulated day:

1. *Start of day.* Purchases due today are received, transfers due arrive
   (``transfer_in``), customer returns come back to stores; every
   ``fence_every_days`` days :func:`~allocator.channels.allocate_channels` sets
   channel fences and caps, applied as events.
2. *Each wave* (``waves_per_day`` of them), at wave time ``t``: reservations due for
   picking are committed (ship and same-day orders one wave after they were
   reserved, pick-ups when the customer collects), ``expire(t)`` releases pick-ups
   never collected, walk-in customers buy what the shop floor can sell
   (``available`` for the store channel, so fences and online reservations are
   respected), and the wave's online orders are sourced with
   :func:`~allocator.sourcing.source` against the remaining pick capacity and
   reserved with ``reserve_plan`` (orders whose stock moved are sourced once
   more).
3. *Night.* Every ``review_period_days`` days :func:`~allocator.replenishment.replenish`
   runs on the sales history: its transfers leave now (``transfer_out``) and arrive
   after ``transfer_days``; its purchases arrive after the supplier lead time.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from allocator._validate import readonly
from allocator.channels import ChannelForecast, allocate_channels
from allocator.events import NO_CAP, STOCK_MAX, EventKind, Events, ResultCode
from allocator.exceptions import ValidationError
from allocator.ledger import BaseLedger, Ledger
from allocator.replenishment import OrderUpToPolicy, replenish
from allocator.replenishment.plan import Action
from allocator.scenarios import CHANNELS, MARKETPLACE, ONLINE, STORE, Scenario, ScenarioData
from allocator.simulation.kpis import LOST_CAUSES, DailySeries, KPIs, OrderOutcomes
from allocator.simulation.log import DemandLog, EventLog, Recorder
from allocator.sourcing import (
    CostModel,
    DemandForecast,
    ForwardModel,
    Service,
    Sourcer,
    SourcingPlan,
    UnfilledReason,
)
from allocator.sourcing.future import DEFAULT_SCALE
from allocator.sourcing.reserve import reserve_plan

__all__ = ["POLICIES", "SimulationResult", "simulate"]

#: Sourcing policies: the two sourcing methods, and ``"future"``, the optimal method
#: charging the prices of a forward model of the next days (:class:`ForwardModel`).
POLICIES = ("greedy", "optimal", "future")
#: Regions of the forward model: stores grouped by bearing from the centre.
_FUTURE_REGIONS = 8

logger = logging.getLogger("allocator")

#: Components the run's wall time is split into.
COMPONENTS = ("ledger", "sourcing", "replenishment", "channels", "demand", "other")
_TOP_SKUS = 5


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """One run: KPIs, daily series, the logs and where the time went.

    Attributes
    ----------
    data
        The generated scenario (network, positions, rates).
    sourcing
        The sourcing method used.
    days, volume, capacity
        Days simulated and the order-volume and pick-capacity multipliers.
    kpis, daily
        :class:`~allocator.simulation.KPIs` and :class:`~allocator.simulation.DailySeries`.
    log, demand
        :class:`~allocator.simulation.EventLog` and
        :class:`~allocator.simulation.DemandLog` (None when ``keep_log=False``).
    outcomes
        :class:`~allocator.simulation.OrderOutcomes`: every online order's units,
        filled units and fulfilment cost (to compare policies on the same orders).
    ledger
        The ledger at the end of the run (read it; do not change it).
    timings
        Seconds per component (:data:`COMPONENTS`) and ``total``.
    """

    data: ScenarioData
    sourcing: str
    days: int
    volume: float
    capacity: float
    kpis: KPIs
    daily: DailySeries
    log: EventLog | None
    demand: DemandLog | None
    ledger: BaseLedger
    timings: dict[str, float]
    outcomes: OrderOutcomes

    @property
    def scenario(self) -> Scenario:
        return self.data.scenario

    def summary(self) -> str:
        t = self.timings
        split = ", ".join(f"{k} {t[k]:.1f} s" for k in COMPONENTS if t.get(k, 0) >= 0.05)
        return (
            f"{self.scenario.name}, {self.sourcing}, {self.days} days "
            f"(volume x{self.volume:g}, capacity x{self.capacity:g}): "
            f"{self.kpis.summary()}\n  {t['total']:.1f} s ({split}); "
            f"{self.kpis.events:,} events, {self.kpis.ledger_events_per_s:,.0f} events/s"
        )

    def to_frame(self) -> Any:
        """One row per day: demand, fill rate per channel, orders, cost, utilisation."""
        import pandas as pd

        d = self.daily
        data: dict[str, Any] = {"day": np.arange(d.days), "promotion": list(d.promotion)}
        fill = d.fill_rate
        for c, name in enumerate(self.kpis.channel_names):
            data[f"demand_{name}"] = d.demand_units[c]
            data[f"fill_rate_{name}"] = fill[c]
        util = d.utilisation
        data.update(
            orders=d.orders,
            served=d.served,
            cost_per_order=d.cost_per_order,
            pickup_on_time=np.where(
                d.pickup_orders > 0, d.pickup_on_time / np.maximum(d.pickup_orders, 1), np.nan
            ),
            utilisation_mean=(np.nanmean(util, axis=0) if np.isfinite(util).any() else np.nan),
            on_hand=d.on_hand,
            stockouts=d.stockouts,
        )
        return pd.DataFrame(data)


def _check_args(
    scenario: Any,
    sourcing: Any,
    days: Any,
    seed: Any,
    volume: Any,
    capacity: Any,
    costs: Any,
    sourcing_options: Any,
) -> None:
    if not isinstance(scenario, Scenario | ScenarioData):
        raise ValidationError(
            f"expected a Scenario or ScenarioData, got {type(scenario).__name__}",
            field="scenario",
            code="wrong_dtype",
        )
    if not isinstance(sourcing, str) or sourcing not in POLICIES:
        raise ValidationError(
            f"unknown sourcing policy {sourcing!r}; expected one of {POLICIES}",
            field="sourcing",
            code="unknown_method",
        )
    if isinstance(days, bool) or not isinstance(days, int | np.integer) or days < 1:
        raise ValidationError(f"expected an int >= 1, got {days!r}", field="days")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0
    ):
        raise ValidationError(f"expected an int >= 0, got {seed!r}", field="seed")
    for name, value, positive in (("volume", volume, True), ("capacity", capacity, False)):
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise ValidationError(f"expected a number, got {value!r}", field=name)
        v = float(value)
        if not math.isfinite(v) or v < 0 or (positive and v == 0):
            raise ValidationError(
                f"expected a finite {'positive' if positive else 'non-negative'} number, got {v}",
                field=name,
                code="out_of_range",
            )
    if costs is not None and not isinstance(costs, CostModel):
        raise ValidationError("expected a CostModel", field="costs", code="wrong_dtype")
    if sourcing_options is not None and not isinstance(sourcing_options, Mapping):
        raise ValidationError(
            "expected a mapping of keyword options", field="sourcing_options", code="wrong_dtype"
        )


def simulate(
    scenario: Scenario | ScenarioData,
    *,
    sourcing: str = "greedy",
    days: int = 28,
    seed: int | None = None,
    volume: float = 1.0,
    capacity: float = 1.0,
    costs: CostModel | None = None,
    sourcing_options: Mapping[str, Any] | None = None,
    replenishment: bool = True,
    keep_log: bool = True,
    progress: Callable[[int, int], None] | None = None,
    future_scale: float = DEFAULT_SCALE,
    future_horizon_days: int = 1,
) -> SimulationResult:
    """Simulate ``days`` days of omnichannel demand on the real ledger and models.

    Parameters
    ----------
    scenario
        A :class:`~allocator.scenarios.Scenario` (built with ``seed``) or an already
        built :class:`~allocator.scenarios.ScenarioData` (``seed`` must then be None
        or equal to its seed).
    sourcing
        A policy of :data:`POLICIES`: ``"greedy"`` or ``"optimal"`` (the sourcing
        method of that name), or ``"future"``: the optimal method charging the
        prices of a :class:`~allocator.sourcing.ForwardModel` of the next
        ``future_horizon_days`` days (expected walk-in and online demand, stock and
        arrivals due), refreshed every day and priced for each wave's SKUs.
    days
        Days to simulate.
    seed
        Seed of the scenario and its demand (default 0). Same seed, same KPIs.
    volume
        Multiplier on all demand (walk-in and online).
    capacity
        Multiplier on every location's pick capacity.
    costs
        The sourcing :class:`~allocator.sourcing.CostModel` (default figures when None).
    sourcing_options
        Keyword options for the optimal method (e.g. a time limit; ignored by greedy).
    replenishment
        Run the nightly replenishment (off: stock only runs down).
    keep_log
        Keep the event and demand logs (memory grows with the events).
    progress
        Called as ``progress(days_done, days)`` after each day.
    future_scale, future_horizon_days
        The ``"future"`` policy's price scale and horizon.

    Returns
    -------
    SimulationResult

    Raises
    ------
    ValidationError
        Bad arguments (unknown method, non-positive days or volume, ...), found before
        anything runs. Bad scenario parameters fail when the
        :class:`~allocator.scenarios.Scenario` is made.
    """
    _check_args(scenario, sourcing, days, seed, volume, capacity, costs, sourcing_options)
    if isinstance(scenario, ScenarioData):
        if seed is not None and int(seed) != scenario.seed:
            raise ValidationError(
                f"the scenario was built with seed {scenario.seed}, not {seed}", field="seed"
            )
        data = scenario
    else:
        data = scenario.build(0 if seed is None else int(seed))
    run = _Run(
        data,
        sourcing=sourcing,
        days=int(days),
        volume=float(volume),
        capacity=float(capacity),
        costs=costs if costs is not None else CostModel(),
        options=dict(sourcing_options or {}),
        replenishment=replenishment,
        keep_log=keep_log,
        future_scale=float(future_scale),
        future_horizon_days=int(future_horizon_days),
    )
    return run.run(progress)


def _group_links(order: np.ndarray) -> np.ndarray:
    """Link flags of one linked group per order (as ``reserve_plan`` makes them)."""
    link = np.ones(order.shape[0], dtype=np.bool_)
    if order.shape[0]:
        link[np.flatnonzero(np.diff(order))] = False
        link[-1] = False
    return link


class _Run:
    """State of one simulation run (see the module docstring for the loop)."""

    def __init__(
        self,
        data: ScenarioData,
        *,
        sourcing: str,
        days: int,
        volume: float,
        capacity: float,
        costs: CostModel,
        options: dict[str, Any],
        replenishment: bool,
        keep_log: bool,
        future_scale: float = DEFAULT_SCALE,
        future_horizon_days: int = 1,
    ) -> None:
        sc = data.scenario
        net = data.network
        self.data, self.sc, self.net = data, sc, net
        self.method, self.days, self.volume, self.capacity = sourcing, days, volume, capacity
        self.costs, self.options, self.do_replenish = costs, options, replenishment
        self.W = sc.waves_per_day
        npos, nl, nc = data.num_positions, net.num_locations, net.num_channels
        self.ledger = Ledger(
            net, capacity=npos + 16, reservation_capacity=int(sc.online_orders * 8 + 1024)
        )
        self.rec = Recorder(keep_log)
        self.next_id = 1
        self.next_order = 1
        self.time = dict.fromkeys(COMPONENTS, 0.0)
        self.events = 0
        self.apply_seconds = 0.0
        self.oversells = 0
        self.expired = 0
        self.returned = 0
        self.demand_value = 0.0
        self.filled_value = 0.0
        self.pick_cap = np.where(
            net.pick_capacity >= 0, np.round(net.pick_capacity * capacity), -1
        ).astype(np.int64)
        self.used = np.zeros(nl, dtype=np.int64)
        # schedules: wave -> commit chunks; day -> arrival chunks; wave -> expiring count
        self.commits: dict[int, list[tuple[np.ndarray, ...]]] = defaultdict(list)
        self.arrivals: dict[int, list[tuple[np.ndarray, ...]]] = defaultdict(list)
        self.expiring: dict[int, int] = defaultdict(int)
        self.on_order = np.zeros(npos, dtype=np.int64)
        self.today_out = np.zeros(npos, dtype=np.float64)
        is_store = np.isin(data.position_location, data.stores)
        self.lead = data.lead_time[data.position_sku] + np.where(
            is_store, sc.store_extra_lead_days, 0
        )
        # A source keeps a lead time of demand above its order-up-to level before it
        # gives units away: its inventory position counts purchases still on order,
        # which do not help the shelf until they arrive.
        self.transfer_buffer = np.ceil(data.channel_rate.sum(axis=1) * volume * self.lead).astype(
            np.int64
        )
        hist_rng = np.random.default_rng([data.seed, 0x4157])
        self.history = hist_rng.poisson(
            data.channel_rate.sum(axis=1)[:, None] * volume, (npos, sc.history_days)
        ).astype(np.float64)
        margin = np.empty((net.num_skus, nc))
        price, cost = net.sku_price, net.sku_unit_cost
        margin[:, :] = (price - cost)[:, None]
        margin[:, MARKETPLACE] = price * (1.0 - sc.marketplace_fee) - cost
        self.margin = np.maximum(margin, 0.0)
        self.unsold = np.repeat((sc.fence_cost * price)[:, None], nc, axis=1)
        D = days
        z = np.zeros
        self.d_demand = z((nc, D), np.int64)
        self.d_filled = z((nc, D), np.int64)
        self.d_orders = z(D, np.int64)
        self.d_served = z(D, np.int64)
        self.d_cost = z(D)
        self.d_packages = z(D, np.int64)
        self.d_km = z(D)
        self.d_split = z(D, np.int64)
        self.d_pick_orders = z(D, np.int64)
        self.d_pick_on_time = z(D, np.int64)
        self.d_picked = z((nl, D), np.int64)
        self.d_on_hand = z(D, np.int64)
        self.d_out = z(D, np.int64)
        self.d_stockouts = z(D, np.int64)
        self.top = np.arange(min(_TOP_SKUS, net.num_skus), dtype=np.int64)
        self.d_top = z((self.top.shape[0], D), np.int64)
        self.sourcer = Sourcer(net, self.costs)
        # the future policy decides with every unit that stock can fill filled: its
        # prices choose where a unit comes from, never whether it is sold
        self.must_serve = Sourcer(net, dataclasses.replace(self.costs, unfilled="must_serve"))
        self.f_days = np.zeros(nc)
        self.f_count = np.zeros(nc, dtype=np.int64)
        self.penalty = self.costs.sku_penalty(net)
        self.lost = dict.fromkeys(LOST_CAUSES, 0)
        self.walk_lost_penalty = 0.0
        self.online_lost_penalty = 0.0
        self.errors = 0
        self.error_orders: set[int] = set()
        self.o_parts: list[tuple[np.ndarray, ...]] = []
        self.future: ForwardModel | None = None
        self.future_horizon = max(1, future_horizon_days)
        if sourcing == "future":
            forecast = self._forecast(0)
            self.future = ForwardModel(
                net,
                forecast,
                costs=self.costs,
                scale=future_scale,
                refresh_every=self.W,
                inbound=self.inbound,
            )

    # ------------------------------------------------------------------ plumbing
    def _forecast(self, d: int) -> DemandForecast:
        """Expected demand of days ``d .. d + horizon − 1`` for the forward model:
        online units per region (stores grouped by bearing, weighted by size) and
        channel, walk-in units per store position."""
        data, sc, net = self.data, self.sc, self.net
        days = range(d, d + self.future_horizon)
        mult = np.array([sc.multipliers(day) for day in days]).sum(axis=0) * self.volume
        ns = data.stores.shape[0]
        nk = net.num_skus
        if ns:
            ang = np.arctan2(net.lat[:ns] - sc.center_lat, net.lon[:ns] - sc.center_lon)
            k = min(_FUTURE_REGIONS, ns)
            group = np.minimum(((ang + np.pi) / (2 * np.pi) * k).astype(np.int64), k - 1)
            size = data.store_size
            w = np.bincount(group, weights=size, minlength=k)
            has = w > 0
            lat = np.bincount(group, weights=size * net.lat[:ns], minlength=k)[has] / w[has]
            lon = np.bincount(group, weights=size * net.lon[:ns], minlength=k)[has] / w[has]
            share = w[has] / w.sum()
        else:
            lat, lon, share = np.array([sc.center_lat]), np.array([sc.center_lon]), np.ones(1)
        upo = sc.mean_lines * (1.0 + sc.extra_units)
        units = np.zeros((share.shape[0], net.num_channels, nk))
        for c, per_day in ((ONLINE, sc.online_orders), (MARKETPLACE, sc.marketplace_orders)):
            units[:, c, :] = share[:, None] * (per_day * upo * mult[1]) * data.popularity
        walk = np.zeros((net.num_locations, nk))
        walk[data.position_location, data.position_sku] = data.walk_in_rate * mult[0]
        inbound = np.zeros((net.num_locations, nk))
        for day in days:
            for kind, sku, loc, qty, _pos in self.arrivals.get(day, []):
                arr = (kind == EventKind.RECEIVE) | (kind == EventKind.TRANSFER_IN)
                np.add.at(inbound, (loc[arr], sku[arr]), qty[arr])
        self.inbound = inbound
        return DemandForecast.from_arrays(
            net, region_lat=lat, region_lon=lon, units=units, walk_in=walk, units_per_package=upo
        )

    def _ids(self, n: int) -> np.ndarray:
        out = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        self.next_id += n
        return out

    def _apply(self, events: Events, wave: int, order: Any = 0) -> np.ndarray:
        t0 = time.perf_counter()
        result = self.ledger.apply(events)
        spent = time.perf_counter() - t0
        self.time["ledger"] += spent
        self.apply_seconds += spent
        self.events += len(events)
        self.oversells += len(result.shortfalls)
        self.rec.events(events, result.codes, wave, order)
        return result.codes

    # ------------------------------------------------------------------ the loop
    def run(self, progress: Callable[[int, int], None] | None) -> SimulationResult:
        t_start = time.perf_counter()
        data = self.data
        n = data.num_positions
        self._apply(
            Events.receive(
                data.position_sku, data.position_location, data.initial_stock, id=self._ids(n)
            ),
            0,
        )
        if self.ledger.num_positions != n:  # pragma: no cover - a broken invariant
            raise RuntimeError("ledger positions differ from the scenario's positions")
        for d in range(self.days):
            self.used[:] = 0
            self.today_out[:] = 0.0
            self._start_of_day(d)
            for w in range(self.W):
                self._wave(d, d * self.W + w, w)
            self._end_of_day(d)
            if self.ledger.num_positions != n:  # pragma: no cover - a broken invariant
                raise RuntimeError("the run created positions the scenario does not carry")
            if progress is not None:
                progress(d + 1, self.days)
        total = time.perf_counter() - t_start
        timings = dict(self.time)
        timings["other"] = max(0.0, total - sum(v for k, v in timings.items() if k != "other"))
        timings["total"] = total
        return self._result(timings)

    def _start_of_day(self, d: int) -> None:
        wave = d * self.W
        chunks = self.arrivals.pop(d, [])
        if chunks:
            kind, sku, loc, qty, pos = (np.concatenate(c) for c in zip(*chunks, strict=True))
            events = Events.from_arrays(
                kind=kind, id=self._ids(kind.shape[0]), sku=sku, location=loc, qty=qty
            )
            codes = self._apply(events, wave)
            ok = codes == ResultCode.OK
            buy = ok & (kind == EventKind.RECEIVE)
            np.subtract.at(self.on_order, pos[buy], qty[buy])
            back = ok & ((kind == EventKind.RETURN) | (kind == EventKind.RETURN_NONSELLABLE))
            self.returned += int(qty[back].sum())
        if self.sc.channel_fences and d % self.sc.fence_every_days == 0:
            self._fences(d, wave)
        if self.future is not None and d > 0:
            t0 = time.perf_counter()
            self.future.set_forecast(self._forecast(d), self.inbound)
            self.time["sourcing"] += time.perf_counter() - t0

    def _fences(self, d: int, wave: int) -> None:
        sc = self.sc
        t0 = time.perf_counter()
        mult = np.array([sc.multipliers(day) for day in range(d, d + sc.fence_every_days)])
        walk, online = mult.sum(axis=0)
        mean = self.data.channel_rate * (np.array([walk, online, online]) * self.volume)
        alloc = allocate_channels(
            self.net,
            self.ledger,
            ChannelForecast.poisson(mean),
            margin=self.margin,
            unsold_cost=self.unsold,
            caps={CHANNELS[MARKETPLACE]: float(sc.marketplace_cap)},
        )
        # The allocation as set_cap / set_fence events (what ``alloc.to_events`` gives),
        # for the cells that change only: most positions keep theirs from day to day.
        ledger = self.ledger
        rows_l, chans_l, kinds_l, qtys_l = [], [], [], []
        for ch in np.flatnonzero(alloc.cap_set).tolist():
            new_cap = np.where(alloc.cap[:, ch] >= STOCK_MAX, NO_CAP, alloc.cap[:, ch])
            old_cap = np.where(ledger.cap[:, ch] >= STOCK_MAX, NO_CAP, ledger.cap[:, ch])
            r = np.flatnonzero(new_cap != old_cap)
            rows_l.append(r)
            chans_l.append(np.full(r.shape[0], ch, dtype=np.int64))
            kinds_l.append(np.full(r.shape[0], int(EventKind.SET_CAP), dtype=np.int64))
            qtys_l.append(new_cap[r])
        fr, fc = np.nonzero(np.asarray(alloc.fence) != ledger.fence)
        rows_l.append(fr)
        chans_l.append(fc.astype(np.int64))
        kinds_l.append(np.full(fr.shape[0], int(EventKind.SET_FENCE), dtype=np.int64))
        qtys_l.append(np.asarray(alloc.fence)[fr, fc])
        rows = np.concatenate(rows_l)
        events = Events.from_arrays(
            kind=np.concatenate(kinds_l),
            id=self._ids(rows.shape[0]),
            sku=alloc.position_sku[rows],
            location=alloc.position_location[rows],
            channel=np.concatenate(chans_l),
            qty=np.concatenate(qtys_l),
        )
        self.time["channels"] += time.perf_counter() - t0
        self._apply(events, wave)

    def _wave(self, d: int, t: int, w: int) -> None:
        # 1. picks due now
        chunks = self.commits.pop(t, [])
        if chunks:
            rid, qty, order = (np.concatenate(c) for c in zip(*chunks, strict=True))
            events = Events.commit(rid, qty, id=self._ids(rid.shape[0]))
            codes = self._apply(events, t, order)
            ok = codes == ResultCode.OK
            self.oversells += int((~ok).sum())
            self.error_orders.update(np.unique(order[~ok]).tolist())
            self.d_out[d] += int(qty[ok].sum())
        # 2. pick-ups never collected
        self._apply(Events.expire(t, id=self._ids(1)), t)
        self.expired += self.expiring.pop(t, 0)
        # 3. walk-in customers
        self._walk_in(d, t, w)
        # 4. online orders
        self._online(d, t, w)

    def _walk_in(self, d: int, t: int, w: int) -> None:
        data = self.data
        t0 = time.perf_counter()
        rows, units = data.walk_in(d, w, self.volume)
        self.time["demand"] += time.perf_counter() - t0
        if rows.shape[0] == 0:
            return
        sku, loc = data.position_sku[rows], data.position_location[rows]
        t0 = time.perf_counter()
        ledger = self.ledger
        avail = np.asarray(ledger.available(sku, loc, STORE))
        free = (
            np.asarray(ledger.on_hand)[rows]
            - np.asarray(ledger.reserved)[rows]
            - np.asarray(ledger.safety_stock)[rows]
        )
        self.time["ledger"] += time.perf_counter() - t0
        sold = np.minimum(units, avail)
        short = units - sold
        held = np.minimum(short, np.maximum(free - sold, 0))
        self.lost["fenced"] += int(held.sum())
        self.lost["no_stock"] += int((short - held).sum())
        self.walk_lost_penalty += float((short * self.penalty[sku]).sum())
        price = self.net.sku_price[sku]
        self.rec.demand(t, STORE, sku, loc, units)
        self.d_demand[STORE, d] += int(units.sum())
        self.demand_value += float((units * price).sum())
        keep = sold > 0
        if keep.any():
            events = Events.sale(
                sku[keep],
                loc[keep],
                sold[keep],
                channel=STORE,
                id=self._ids(int(keep.sum())),
            )
            codes = self._apply(events, t)
            ok = codes == ResultCode.OK
            got = np.where(ok, sold[keep], 0)
            self.d_filled[STORE, d] += int(got.sum())
            self.d_out[d] += int(got.sum())
            self.filled_value += float((got * price[keep]).sum())
            np.add.at(self.today_out, rows[keep], got)

    def _online(self, d: int, t: int, w: int) -> None:
        data, net = self.data, self.net
        t0 = time.perf_counter()
        batch = data.online_orders(d, w, self.next_order, self.volume)
        self.time["demand"] += time.perf_counter() - t0
        first = self.next_order
        self.next_order += len(batch)
        orders = batch.orders
        if orders.num_orders == 0:
            return
        lo = orders.line_order
        self.rec.demand(
            t,
            orders.channel[lo],
            orders.sku,
            -1,
            orders.qty,
            order=orders.id[lo],
            service=orders.service[lo],
            pickup_location=orders.pickup_location[lo],
            lat=orders.lat[lo],
            lon=orders.lon[lo],
        )
        np.add.at(self.d_demand[:, d], orders.channel[lo], orders.qty)
        self.demand_value += float((orders.qty * net.sku_price[orders.sku]).sum())
        self.d_orders[d] += orders.num_orders
        self.d_pick_orders[d] += int((orders.service == Service.PICKUP).sum())
        n = orders.num_orders
        self.w_filled = np.zeros(n, dtype=np.int64)
        self.w_cost = np.zeros(n)
        pending = orders
        for attempt in range(2):
            plan = self._source(pending)
            rejected = self._reserve(plan, batch, first, d, t)
            if rejected is None or rejected.num_orders == 0:
                break
            # promised by the plan, rejected by the ledger (stock moved): re-sourced
            self.error_orders.update(rejected.id.tolist())
            if attempt == 1:
                per_line = rejected.qty
                self.lost["stock_moved"] += int(per_line.sum())
            pending = rejected
        units = np.bincount(lo, weights=orders.qty, minlength=n).astype(np.int64)
        # lost online units at the cost model's penalty: per order, the mean penalty
        # of its lines weighted by units, times the units not reserved
        pen = np.bincount(
            lo, weights=orders.qty * self.costs.line_penalty(net, orders), minlength=n
        )
        per_unit = np.where(units > 0, pen / np.maximum(units, 1), 0.0)
        self.online_lost_penalty += float((per_unit * (units - self.w_filled)).sum())
        self.o_parts.append(
            (orders.id.copy(), orders.channel.copy(), units, self.w_filled, self.w_cost)
        )

    def _source(self, orders: Any) -> SourcingPlan:
        remaining = np.where(self.pick_cap >= 0, np.maximum(self.pick_cap - self.used, 0), -1)
        t0 = time.perf_counter()
        method = self.method
        # the greedy method takes no options: a policy comparison passes one set
        options = dict(self.options) if method != "greedy" else {}
        sourcer = self.sourcer
        if self.future is not None:
            method = "optimal"
            options["future"] = self.future
            sourcer = self.must_serve
        plan = sourcer.source(
            self.ledger,
            orders,
            method=method,
            max_splits=self.sc.max_splits,
            pick_capacity=remaining,
            **options,
        )
        self.time["sourcing"] += time.perf_counter() - t0
        return plan

    def _causes(self, plan: SourcingPlan, rejected: np.ndarray) -> None:
        """Lost online units of ``plan`` by cause (lines of orders the ledger
        rejected are counted when they are re-sourced)."""
        short = (plan.line_unfilled > 0) & ~rejected[plan.orders.line_order]
        if not short.any():
            return
        reason = plan.line_reason[short]
        qty = plan.line_unfilled[short]
        sku = plan.orders.sku[short]
        ledger = self.ledger
        free = (
            np.asarray(ledger.on_hand)
            - np.asarray(ledger.reserved)
            - np.asarray(ledger.safety_stock)
        )
        most = np.zeros(self.net.num_skus, dtype=np.int64)
        np.maximum.at(most, np.asarray(ledger.position_sku), free)
        none = reason == UnfilledReason.NO_STOCK
        fenced = none & (most[sku] > 0)
        parts = (
            ("no_stock", none & ~fenced),
            ("fenced", fenced),
            ("capacity", reason == UnfilledReason.CAPACITY),
            ("same_day_radius", reason == UnfilledReason.RADIUS),
            ("left_unfilled", reason == UnfilledReason.UNECONOMIC),
            ("split_limit", reason == UnfilledReason.SPLIT_LIMIT),
            ("pickup_store_closed", reason == UnfilledReason.LOCATION_UNAVAILABLE),
        )
        for name, mask in parts:
            self.lost[name] += int(qty[mask].sum())

    def _reserve(self, plan: SourcingPlan, batch: Any, first: int, d: int, t: int) -> Any:
        sc, data = self.sc, self.data
        n = len(plan)
        if n == 0:
            self._causes(plan, np.zeros(plan.orders.num_orders, dtype=np.bool_))
            return None
        expires = t + sc.pickup_hold_waves
        first_id = self.next_id
        self.next_id += n
        t0 = time.perf_counter()
        res = reserve_plan(self.ledger, plan, expires_at=expires, first_id=first_id)
        spent = time.perf_counter() - t0
        self.time["ledger"] += spent
        self.apply_seconds += spent
        self.events += n
        self.oversells += len(res.apply.shortfalls)
        orders = plan.orders
        if self.rec.enabled:
            self.rec.events(
                Events.from_arrays(
                    kind=np.full(n, int(EventKind.RESERVE), dtype=np.int64),
                    id=res.apply.ids,
                    sku=plan.sku,
                    location=plan.location,
                    channel=orders.channel[plan.order],
                    qty=plan.qty,
                    expires_at=expires,
                    link=_group_links(plan.order),
                ),
                res.apply.codes,
                t,
                orders.id[plan.order],
            )
        rejected_o = np.zeros(orders.num_orders, dtype=np.bool_)
        rejected_o[res.rejected] = True
        self._causes(plan, rejected_o)
        ok = res.reservation != 0
        o = plan.order[ok]
        b = orders.id[o] - first  # index into the wave's batch
        loc, sku, qty = plan.location[ok], plan.sku[ok], plan.qty[ok]
        rid, transfer = res.reservation[ok], plan.transfer[ok]
        chan = orders.channel[o]
        np.add.at(self.d_filled[:, d], chan, qty)
        self.filled_value += float((qty * self.net.sku_price[sku]).sum())
        np.add.at(self.d_picked[:, d], loc, qty)
        np.add.at(self.used, loc, qty)
        np.add.at(self.today_out, data.position_of(sku, loc), qty)
        # served orders
        acc = res.accepted
        bd = plan.breakdown
        fulfil = bd.cost - bd.unfilled_cost
        if bd.opportunity_cost is not None:
            fulfil = fulfil - bd.opportunity_cost
        widx = orders.id[acc] - first
        self.w_filled[widx] = (
            np.bincount(plan.orders.line_order, weights=orders.qty, minlength=orders.num_orders)[
                acc
            ]
            - bd.unfilled_units[acc]
        ).astype(np.int64)
        self.w_cost[widx] = fulfil[acc]
        self.d_served[d] += acc.shape[0]
        self.d_cost[d] += float(fulfil[acc].sum())
        self.d_packages[d] += int(bd.packages[acc].sum())
        self.d_km[d] += float(bd.km[acc].sum())
        self.d_split[d] += int((bd.packages[acc] > 1).sum())
        moved_all = np.bincount(plan.order, weights=plan.transfer, minlength=orders.num_orders)
        waves = np.where(moved_all[acc] > 0, max(1, sc.transfer_days * self.W), 1)
        np.add.at(self.f_days, orders.channel[acc], waves / self.W)
        np.add.at(self.f_count, orders.channel[acc], 1)
        pick_acc = acc[orders.service[acc] == Service.PICKUP]
        if pick_acc.size:
            moved = np.bincount(plan.order, weights=plan.transfer, minlength=orders.num_orders)[
                pick_acc
            ]
            ready = np.where(moved > 0, max(1, sc.transfer_days * self.W), 1)
            full = bd.unfilled_units[pick_acc] == 0
            self.d_pick_on_time[d] += int((full & (ready <= sc.pickup_promise_waves)).sum())
        # picking schedule: ship / same-day / transfer rows next wave; pick-ups at collection
        at_store = (orders.service[o] == Service.PICKUP) & ~transfer
        now = ~at_store
        if now.any():
            self.commits[t + 1].append((rid[now], qty[now], orders.id[o][now]))
        abandon = at_store & batch.abandon[b]
        if abandon.any():
            self.expiring[expires] += int(abandon.sum())
        collect = at_store & ~abandon
        if collect.any():
            due = t + batch.collect_waves[b[collect]]
            for when in np.unique(due).tolist():
                m = due == when
                idx = np.flatnonzero(collect)[m]
                self.commits[int(when)].append((rid[idx], qty[idx], orders.id[o][idx]))
        # returns of shipped orders, to the customer's home store when it carries the SKU
        ret = ~(orders.service[o] == Service.PICKUP) & batch.returned[b]
        if ret.any():
            home = batch.home[b[ret]]
            where = np.where(home >= 0, data.position_of(sku[ret], np.maximum(home, 0)), -1)
            to = np.where(where >= 0, home, loc[ret])
            pos = data.position_of(sku[ret], to)
            kind = np.where(
                batch.sellable[b[ret]], int(EventKind.RETURN), int(EventKind.RETURN_NONSELLABLE)
            ).astype(np.int64)
            due_day = d + 1 + batch.return_days[b[ret]]
            for day in np.unique(due_day).tolist():
                m = due_day == day
                self.arrivals[int(day)].append((kind[m], sku[ret][m], to[m], qty[ret][m], pos[m]))
        return res.resource

    def _end_of_day(self, d: int) -> None:
        ledger = self.ledger
        t0 = time.perf_counter()
        on_hand = np.asarray(ledger.on_hand)
        reserved = np.asarray(ledger.reserved)
        self.d_on_hand[d] = int(on_hand.sum())
        self.d_stockouts[d] = int((on_hand - reserved <= 0).sum())
        self.oversells += int((on_hand < reserved).sum())
        totals = np.bincount(
            ledger.position_sku, weights=on_hand, minlength=self.net.num_skus
        ).astype(np.int64)
        self.d_top[:, d] = totals[self.top]
        self.time["ledger"] += time.perf_counter() - t0
        self.history[:, :-1] = self.history[:, 1:]
        self.history[:, -1] = self.today_out
        if self.do_replenish and d % self.sc.review_period_days == 0:
            self._replenish(d)

    def _replenish(self, d: int) -> None:
        sc, data = self.sc, self.data
        wave = d * self.W + self.W - 1
        t0 = time.perf_counter()
        plan = replenish(
            self.net,
            self.ledger,
            self.history,
            policy=OrderUpToPolicy(service_level=sc.service_level),
            lead_time=self.lead,
            review_period=sc.review_period_days,
            on_order=self.on_order,
            transfers=sc.transfers and d % sc.transfer_every_days == 0,
            transfer_cost=0.5,
            transfer_cost_per_km=0.02,
            transfer_buffer=self.transfer_buffer,
        )
        self.time["replenishment"] += time.perf_counter() - t0
        action = np.asarray(plan.action)
        dest = np.asarray(plan.destination)
        qty = np.asarray(plan.qty)
        moves = np.flatnonzero(action == Action.TRANSFER)
        if moves.size:
            events = plan.to_events(first_id=self.next_id)
            self.next_id += len(events)
            codes = self._apply(events, wave)
            ok = codes == ResultCode.OK
            arrive = d + max(1, sc.transfer_days)
            pos = dest[moves][ok]
            self.arrivals[arrive].append(
                (
                    np.full(pos.shape[0], int(EventKind.TRANSFER_IN), dtype=np.int64),
                    data.position_sku[pos],
                    data.position_location[pos],
                    qty[moves][ok],
                    pos,
                )
            )
        buys = np.flatnonzero(action == Action.BUY)
        if buys.size:
            pos = dest[buys]
            self.on_order[pos] += qty[buys]
            due = d + self.lead[pos]
            for day in np.unique(due).tolist():
                m = due == day
                p = pos[m]
                self.arrivals[int(day)].append(
                    (
                        np.full(p.shape[0], int(EventKind.RECEIVE), dtype=np.int64),
                        data.position_sku[p],
                        data.position_location[p],
                        qty[buys][m],
                        p,
                    )
                )
        logger.info("day %d: %d transfers, %d purchases", d, int(moves.size), int(buys.size))

    # ------------------------------------------------------------------ result
    def _result(self, timings: dict[str, float]) -> SimulationResult:
        net, data = self.net, self.data
        ro = readonly
        daily = DailySeries(
            demand_units=ro(self.d_demand),
            filled_units=ro(self.d_filled),
            orders=ro(self.d_orders),
            served=ro(self.d_served),
            cost=ro(self.d_cost),
            packages=ro(self.d_packages),
            km=ro(self.d_km),
            split=ro(self.d_split),
            pickup_orders=ro(self.d_pick_orders),
            pickup_on_time=ro(self.d_pick_on_time),
            picked_units=ro(self.d_picked),
            capacity=ro(self.pick_cap.copy()),
            on_hand=ro(self.d_on_hand),
            out_units=ro(self.d_out),
            stockouts=ro(self.d_stockouts),
            num_positions=data.num_positions,
            top_skus=ro(self.top),
            top_stock=ro(self.d_top),
            promotion=tuple(self.sc.promotion_on(d) for d in range(self.days)),
        )
        if self.o_parts:
            oid, ochan, ounits, ofilled, ocost = (
                np.concatenate(c) for c in zip(*self.o_parts, strict=True)
            )
        else:
            oid = ochan = ounits = ofilled = np.zeros(0, dtype=np.int64)
            ocost = np.zeros(0)
        by_id = np.argsort(oid, kind="stable")
        outcomes = OrderOutcomes(
            id=ro(oid[by_id]),
            channel=ro(ochan[by_id]),
            units=ro(ounits[by_id]),
            filled=ro(ofilled[by_id]),
            cost=ro(ocost[by_id]),
        )
        online_lost = float(self.online_lost_penalty)
        objective = float(self.d_cost.sum()) + online_lost + self.walk_lost_penalty
        fdays = np.where(self.f_count > 0, self.f_days / np.maximum(self.f_count, 1), np.nan)
        kpis = KPIs.from_daily(
            daily,
            net.channel_names,
            lost_value=self.demand_value - self.filled_value,
            oversells=self.oversells,
            expired=self.expired,
            returned_units=self.returned,
            events=self.events,
            ledger_seconds=self.apply_seconds,
            season_objective=objective,
            lost_by_cause=self.lost,
            fulfilment_days=ro(fdays),
            order_errors=len(self.error_orders),
        )
        log, demand = self.rec.freeze()
        return SimulationResult(
            data=data,
            sourcing=self.method,
            days=self.days,
            volume=self.volume,
            capacity=self.capacity,
            kpis=kpis,
            daily=daily,
            log=log,
            demand=demand,
            ledger=self.ledger,
            timings=timings,
            outcomes=outcomes,
        )
