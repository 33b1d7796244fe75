"""Seeded omnichannel scenarios: a department-store chain and its demand.

:class:`Scenario` holds every parameter (validated when it is made, so a scenario
that makes no sense fails before anything runs); :meth:`Scenario.build` turns it
with a seed into :class:`ScenarioData`: the frozen network (stores and DCs on a
city map, a Zipf catalogue with prices and costs), which locations carry which
SKUs, opening stock, demand rates and supplier lead times. :class:`ScenarioData`
also draws the demand of one wave (walk-in units per store position, online and
marketplace orders with their lines, service, destination, abandonment and
returns). Demand depends only on ``(seed, day, wave)``, never on what a policy
did, so several policies run on the same seeded scenario see the same customers.

:func:`department_store` is the named default. See ``docs/simulation.md``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from allocator._validate import readonly
from allocator.exceptions import ValidationError
from allocator.network import NetworkData
from allocator.sourcing import Orders, Service

__all__ = [
    "CHANNELS",
    "OrderBatch",
    "Promotion",
    "Scenario",
    "ScenarioData",
    "department_store",
    "load_scenario",
    "promotion_on_day",
]

#: Channels of every generated network, in index order.
CHANNELS = ("store", "online", "marketplace")
STORE, ONLINE, MARKETPLACE = 0, 1, 2

_KM_PER_DEG = 111.32
_DAYS_PER_YEAR = 365


@dataclass(frozen=True)
class Promotion:
    """A promotion peak: online volume times ``online_multiplier`` for ``days`` days.

    Parameters
    ----------
    day_of_year
        First day of the peak, 0-based (0 = 1 January; 314 = 11 November).
    days
        Length of the peak in days.
    online_multiplier, walk_in_multiplier
        Volume multipliers of online/marketplace orders and of walk-in units.
    name
        Label used in reports.
    """

    day_of_year: int
    days: int = 1
    online_multiplier: float = 4.0
    walk_in_multiplier: float = 1.5
    name: str = ""


def _num(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValidationError(f"expected a number, got {value!r}", field=name, code="wrong_dtype")
    v = float(value)
    if not math.isfinite(v):
        raise ValidationError(f"expected a finite number, got {v}", field=name, code="not_finite")
    return v


def _int(value: Any, name: str, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValidationError(f"expected an integer, got {value!r}", field=name, code="wrong_dtype")
    if value < lo or (hi is not None and value > hi):
        bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValidationError(f"{value} not {bound}", field=name, code="out_of_range")


def _share(value: Any, name: str) -> None:
    v = _num(value, name)
    if not 0.0 <= v <= 1.0:
        raise ValidationError(f"share {v} outside [0, 1]", field=name, code="out_of_range")


def _nonneg(value: Any, name: str, *, positive: bool = False) -> None:
    v = _num(value, name)
    if v < 0 or (positive and v == 0):
        what = "positive" if positive else "non-negative"
        raise ValidationError(f"expected a {what} number, got {v}", field=name, code="out_of_range")


@dataclass(frozen=True)
class Scenario:
    """Every parameter of a generated omnichannel chain (all validated at creation).

    Counts and sizes
        ``num_stores``, ``num_dcs``, ``num_skus``; ``waves_per_day`` sourcing waves.
    Map
        Locations lie in a disc of ``radius_km`` around ``(center_lat, center_lon)``:
        stores uniformly, DCs on the outskirts. Customers live around a home store
        (normal, ``customer_spread_km``).
    Catalogue
        Zipf popularity ``p_k ∝ (k + 1)^-zipf_exponent`` (SKU 0 is the best seller);
        log-normal prices (``price_median``, ``price_sigma``); unit cost a uniform
        share ``cost_share`` of the price. Every store carries the top ``core_share``
        of the catalogue and a random part of the rest, ``store_assortment`` of the
        catalogue in all; each DC carries ``dc_assortment`` of it (SKUs no DC
        carries are carried by the first DC).
    Demand
        ``walk_in_units`` per store and day (store sizes vary, log-normal 0.3),
        ``online_orders`` (own app/mall) and ``marketplace_orders`` per day, times
        the ``weekly`` profile (Monday first) and the ``promotions``. Orders have
        1–5 lines with probabilities ``lines_per_order``, 1 + Poisson(``extra_units``)
        units per line. Own online orders are picked up in store with
        ``pickup_share``, delivered same day with ``same_day_share``, else shipped;
        marketplace orders always ship. ``abandon_share`` of pick-up orders are never
        collected; ``return_share`` of shipped orders come back to the customer's
        home store after ``return_days`` (uniform range), sellable with
        ``return_sellable_share``.
    Fulfilment
        ``store_pick_capacity`` and ``dc_pick_capacity`` units per location and day;
        stores pick at ``store_cost_multiplier`` times the DC handling cost and
        deliver same day within ``same_day_radius_km``; ``max_splits`` extra
        locations per order (None: no limit). Pick-up reservations are held
        ``pickup_hold_waves`` waves; a pick-up order is on time when it is ready
        within ``pickup_promise_waves`` waves.
    Stock
        Opening stock covers ``initial_cover_days`` of expected demand. A nightly
        replenishment every ``review_period_days`` (order-up-to at
        ``service_level``, transfers first when ``transfers``, on every
        ``transfer_every_days``-th of those nights) buys with supplier
        lead times uniform in ``lead_time_days`` (+ ``store_extra_lead_days`` for
        stores); transfers take ``transfer_days``. Every ``fence_every_days`` days,
        when ``channel_fences``, channel fences are set from the demand rates
        (marketplace capped at ``marketplace_cap`` of on_hand; its margin is cut
        by ``marketplace_fee``; a fenced unit left unsold costs ``fence_cost`` of
        its price).
    """

    name: str = "custom"
    num_stores: int = 20
    num_dcs: int = 2
    num_skus: int = 2_000
    center_lat: float = 31.23
    center_lon: float = 121.47
    radius_km: float = 30.0
    customer_spread_km: float = 4.0
    zipf_exponent: float = 1.0
    core_share: float = 0.05
    store_assortment: float = 0.35
    dc_assortment: float = 1.0
    price_median: float = 39.0
    price_sigma: float = 0.8
    cost_share: tuple[float, float] = (0.4, 0.65)
    walk_in_units: float = 300.0
    online_orders: float = 1_200.0
    marketplace_orders: float = 400.0
    weekly: tuple[float, ...] = (0.9, 0.85, 0.85, 0.9, 1.05, 1.25, 1.2)
    start_day_of_year: int = 300
    promotions: tuple[Promotion, ...] = (
        Promotion(168, 3, 4.0, 1.4, "6.18"),
        Promotion(314, 1, 6.0, 1.6, "11.11"),
    )
    lines_per_order: tuple[float, ...] = (0.45, 0.25, 0.15, 0.10, 0.05)
    extra_units: float = 0.2
    pickup_share: float = 0.15
    same_day_share: float = 0.10
    abandon_share: float = 0.05
    return_share: float = 0.08
    return_sellable_share: float = 0.85
    return_days: tuple[int, int] = (3, 10)
    store_pick_capacity: int = 120
    dc_pick_capacity: int = 4_000
    store_cost_multiplier: float = 1.5
    same_day_radius_km: float = 12.0
    max_splits: int | None = 2
    waves_per_day: int = 4
    pickup_hold_waves: int = 8
    pickup_promise_waves: int = 2
    initial_cover_days: float = 14.0
    service_level: float = 0.95
    review_period_days: int = 1
    history_days: int = 28
    lead_time_days: tuple[int, int] = (3, 10)
    store_extra_lead_days: int = 1
    transfer_days: int = 1
    transfers: bool = True
    transfer_every_days: int = 1
    channel_fences: bool = True
    fence_every_days: int = 1
    marketplace_cap: float = 0.3
    marketplace_fee: float = 0.12
    fence_cost: float = 0.3

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValidationError("expected a non-empty name", field="name")
        for name in ("num_stores", "num_dcs", "num_skus"):
            _int(getattr(self, name), name, 0)
        if self.num_stores + self.num_dcs == 0:
            raise ValidationError(
                "a scenario needs at least one store or DC", field="num_stores", code="empty"
            )
        _int(self.num_skus, "num_skus", 1)
        for name in ("waves_per_day", "pickup_hold_waves", "pickup_promise_waves"):
            _int(getattr(self, name), name, 1)
        for name in (
            "review_period_days",
            "history_days",
            "fence_every_days",
            "transfer_every_days",
        ):
            _int(getattr(self, name), name, 1)
        for name in ("store_extra_lead_days", "transfer_days", "start_day_of_year"):
            _int(getattr(self, name), name, 0)
        _int(self.start_day_of_year, "start_day_of_year", 0, _DAYS_PER_YEAR - 1)
        _int(self.store_pick_capacity, "store_pick_capacity", 0)
        _int(self.dc_pick_capacity, "dc_pick_capacity", 0)
        if self.max_splits is not None:
            _int(self.max_splits, "max_splits", 0)
        for name in ("center_lat",):
            v = _num(getattr(self, name), name)
            if not -80.0 <= v <= 80.0:
                raise ValidationError(f"{v} outside [-80, 80]", field=name, code="bad_coordinate")
        v = _num(self.center_lon, "center_lon")
        if not -180.0 <= v <= 180.0:
            raise ValidationError(
                f"{v} outside [-180, 180]", field="center_lon", code="bad_coordinate"
            )
        _nonneg(self.radius_km, "radius_km", positive=True)
        if self.radius_km > 2_000:
            raise ValidationError(
                "a region wider than 2,000 km is not a city or region",
                field="radius_km",
                code="out_of_range",
            )
        for name in (
            "customer_spread_km",
            "zipf_exponent",
            "walk_in_units",
            "online_orders",
            "marketplace_orders",
            "extra_units",
            "same_day_radius_km",
            "initial_cover_days",
        ):
            _nonneg(getattr(self, name), name)
        _nonneg(self.price_median, "price_median", positive=True)
        _nonneg(self.price_sigma, "price_sigma")
        _nonneg(self.store_cost_multiplier, "store_cost_multiplier", positive=True)
        for name in (
            "core_share",
            "pickup_share",
            "same_day_share",
            "abandon_share",
            "return_share",
            "return_sellable_share",
            "marketplace_cap",
            "marketplace_fee",
        ):
            _share(getattr(self, name), name)
        for name in ("store_assortment", "dc_assortment"):
            _share(getattr(self, name), name)
            if getattr(self, name) == 0:
                raise ValidationError("a location kind must carry something", field=name)
        _nonneg(self.fence_cost, "fence_cost")
        sl = _num(self.service_level, "service_level")
        if not 0.0 < sl < 1.0:
            raise ValidationError(
                f"service level {sl} outside (0, 1)", field="service_level", code="out_of_range"
            )
        if self.pickup_share + self.same_day_share > 1.0 + 1e-12:
            raise ValidationError(
                "pickup_share + same_day_share exceeds 1",
                field="same_day_share",
                code="out_of_range",
            )
        self._check_pair("cost_share", self.cost_share, share=True)
        self._check_pair("return_days", self.return_days, integer=True)
        self._check_pair("lead_time_days", self.lead_time_days, integer=True)
        if self.lead_time_days[0] < 1:
            raise ValidationError(
                "supplier lead times are at least one day", field="lead_time_days"
            )
        weekly = tuple(self.weekly)
        if len(weekly) != 7:
            raise ValidationError(
                f"expected 7 values (Monday first), got {len(weekly)}",
                field="weekly",
                code="length_mismatch",
            )
        for i, w in enumerate(weekly):
            if _num(w, "weekly") < 0:
                raise ValidationError(f"negative factor {w}", field="weekly", row=i)
        object.__setattr__(self, "weekly", tuple(float(w) for w in weekly))
        lines = tuple(self.lines_per_order)
        if not 1 <= len(lines) <= 5:
            raise ValidationError(
                "expected 1 to 5 probabilities (1..5 lines)", field="lines_per_order"
            )
        for prob in lines:
            _share(prob, "lines_per_order")
        if abs(sum(lines) - 1.0) > 1e-6:
            raise ValidationError(
                f"probabilities sum to {sum(lines)}, not 1",
                field="lines_per_order",
                code="out_of_range",
            )
        object.__setattr__(self, "lines_per_order", tuple(float(p) for p in lines))
        promos = tuple(self.promotions)
        for i, promo in enumerate(promos):
            if not isinstance(promo, Promotion):
                raise ValidationError(
                    f"expected a Promotion, got {type(promo).__name__}",
                    field="promotions",
                    row=i,
                    code="wrong_dtype",
                )
            _int(promo.day_of_year, "promotions.day_of_year", 0, _DAYS_PER_YEAR - 1)
            _int(promo.days, "promotions.days", 1)
            _nonneg(promo.online_multiplier, "promotions.online_multiplier")
            _nonneg(promo.walk_in_multiplier, "promotions.walk_in_multiplier")
        object.__setattr__(self, "promotions", promos)
        # locations of the kind each channel needs
        if self.num_stores == 0:
            for name in ("walk_in_units", "pickup_share", "same_day_share"):
                if getattr(self, name) > 0:
                    raise ValidationError(
                        f"{name} > 0 needs stores, but num_stores is 0",
                        field=name,
                        code="no_location_for_channel",
                    )
        if self.same_day_share > 0 and self.same_day_radius_km <= 0:
            raise ValidationError(
                "same-day orders need stores with a same-day radius",
                field="same_day_radius_km",
                code="no_location_for_channel",
            )

    @staticmethod
    def _check_pair(name: str, pair: Any, *, share: bool = False, integer: bool = False) -> None:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ValidationError(f"expected a (low, high) pair, got {pair!r}", field=name)
        for v in pair:
            if integer:
                _int(v, name, 0)
            elif share:
                _share(v, name)
        if pair[0] > pair[1]:
            raise ValidationError(f"low {pair[0]} above high {pair[1]}", field=name)

    def replace(self, **changes: Any) -> Scenario:
        """A copy with some parameters changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ calendar
    def day_of_year(self, day: int) -> int:
        """Day of the year (0-based) of simulation day ``day``."""
        return (self.start_day_of_year + day) % _DAYS_PER_YEAR

    def weekday(self, day: int) -> int:
        """0 = Monday. Day 0 of the year is taken to be a Monday."""
        return self.day_of_year(day) % 7

    def multipliers(self, day: int) -> tuple[float, float]:
        """``(walk_in, online)`` volume multipliers of ``day`` (weekly x promotion)."""
        w = self.weekly[self.weekday(day)]
        doy = self.day_of_year(day)
        walk, online = w, w
        for p in self.promotions:
            if 0 <= (doy - p.day_of_year) % _DAYS_PER_YEAR < p.days:
                walk *= p.walk_in_multiplier
                online *= p.online_multiplier
        return walk, online

    def promotion_on(self, day: int) -> str:
        """Name of the promotion running on ``day`` ("" for none)."""
        doy = self.day_of_year(day)
        for p in self.promotions:
            if 0 <= (doy - p.day_of_year) % _DAYS_PER_YEAR < p.days:
                return p.name or "promotion"
        return ""

    @property
    def mean_lines(self) -> float:
        return float(sum((i + 1) * p for i, p in enumerate(self.lines_per_order)))

    def build(self, seed: int = 0) -> ScenarioData:
        """Generate the network, assortments, stock and demand rates for ``seed``."""
        _int(seed, "seed", 0)
        return ScenarioData._generate(self, int(seed))

    def summary(self) -> str:
        return (
            f"Scenario {self.name!r}: {self.num_stores} stores + {self.num_dcs} DCs, "
            f"{self.num_skus:,} SKUs; per day {self.walk_in_units:g} walk-in units/store, "
            f"{self.online_orders:g} online + {self.marketplace_orders:g} marketplace orders; "
            f"{len(self.promotions)} promotions"
        )


def promotion_on_day(scenario: Scenario, day: int, factor: float, days: int = 1) -> Promotion:
    """A promotion on simulation day ``day`` (0 = the scenario's first day) lasting
    ``days`` days that multiplies online and marketplace orders by ``factor``
    (walk-in unchanged); what ``allocator simulate --promotion DAY:FACTOR`` adds."""
    _int(day, "promotion.day", 0)
    _int(days, "promotion.days", 1)
    _nonneg(factor, "promotion.factor")
    return Promotion(
        day_of_year=scenario.day_of_year(day),
        days=days,
        online_multiplier=float(factor),
        walk_in_multiplier=1.0,
        name=f"x{float(factor):g} day {day}",
    )


_TUPLES = {"cost_share", "weekly", "lines_per_order", "return_days", "lead_time_days"}


def load_scenario(path: str | Any, base: Scenario | None = None) -> Scenario:
    """A :class:`Scenario` from a TOML or JSON file of its parameters.

    Keys are :class:`Scenario` field names; ``promotions`` is a list of tables with
    :class:`Promotion`'s fields (``day_of_year``, ``days``, ``online_multiplier``,
    ``walk_in_multiplier``, ``name``) and replaces the default ones. Missing keys keep
    ``base``'s values (default :func:`department_store`). An unknown key, or a value
    of the wrong type, raises :class:`~allocator.ValidationError` naming the key.

    Example (TOML)::

        name = "peak-week"
        online_orders = 1500
        start_day_of_year = 310
        [[promotions]]
        day_of_year = 314
        online_multiplier = 6.0
    """
    import json
    import tomllib
    from pathlib import Path

    file = Path(path).expanduser()
    text = file.read_text(encoding="utf-8")
    try:
        if file.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            raw = tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValidationError(f"{file}: {exc}", field="scenario", code="invalid_file") from None
    if not isinstance(raw, dict):
        raise ValidationError(f"{file}: expected a table of parameters", field="scenario")
    base = department_store() if base is None else base
    fields = {f.name for f in dataclasses.fields(Scenario)}
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            close = [f for f in sorted(fields) if f.startswith(key[:4])]
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValidationError(
                f"{file}: unknown scenario parameter {key!r}{hint}",
                field=key,
                code="field_not_allowed",
            )
        if key == "promotions":
            if not isinstance(value, list):
                raise ValidationError(f"{file}: expected a list", field="promotions")
            promos = []
            pfields = {f.name for f in dataclasses.fields(Promotion)}
            for i, item in enumerate(value):
                if not isinstance(item, dict) or not set(item) <= pfields:
                    raise ValidationError(
                        f"{file}: promotion {i} needs the keys of Promotion {sorted(pfields)}",
                        field="promotions",
                        row=i,
                    )
                promos.append(Promotion(**item))
            value = tuple(promos)
        elif key in _TUPLES and isinstance(value, list):
            value = tuple(value)
        changes[key] = value
    return base.replace(**changes)


def department_store(**changes: Any) -> Scenario:
    """The named default: a department-store chain in one city.

    20 stores and 2 DCs within 30 km, 2,000 SKUs, 1,200 own online and 400
    marketplace orders a day (15 % pick-up, 10 % same day), starting on day 300 of
    the year so a 28-day run crosses the 11.11 peak (6x online volume). Any
    parameter can be overridden by keyword.
    """
    return Scenario(**{"name": "department_store", **changes})


@dataclass(frozen=True, eq=False)
class OrderBatch:
    """The online orders of one wave and what their customers will do.

    ``orders`` is the :class:`~allocator.sourcing.Orders` batch; the other arrays
    have one entry per order: ``home`` (home store, -1 when there are no stores),
    ``abandon`` (pick-up never collected), ``collect_waves`` (waves after the
    reservation until collection), ``returned`` (the order comes back),
    ``return_days`` and ``sellable`` (the returned units can be sold again).
    """

    orders: Orders
    home: np.ndarray
    abandon: np.ndarray
    collect_waves: np.ndarray
    returned: np.ndarray
    return_days: np.ndarray
    sellable: np.ndarray

    def __len__(self) -> int:
        return self.orders.num_orders


@dataclass(frozen=True, eq=False)
class ScenarioData:
    """A generated scenario (read-only arrays).

    Attributes
    ----------
    scenario, seed
        What it was generated from.
    network
        The frozen network: channels :data:`CHANNELS`, stores then DCs.
    stores, dcs
        Location indices of the stores and the DCs.
    store_size
        Relative size of each store (mean 1).
    popularity
        Zipf share of each SKU in online demand (sums to 1).
    lead_time
        Supplier lead time per SKU in days.
    position_sku
        SKU of each carried position, sorted by (sku, location); the ledger gets them
        in this order, so ledger position ``p`` is row ``p``.
    position_location
        Location of each carried position.
    walk_in_rate
        Expected walk-in units per position and day at multiplier 1.
    online_rate
        Expected online units per position, channel and day that the position
        serves at multiplier 1 (an allocation of the catalogue-level rate: DCs 70 %,
        stores 30 % by size), shape ``(num_positions, 3)``; the store column is the
        walk-in rate.
    initial_stock
        Opening on_hand per position.
    """

    scenario: Scenario
    seed: int
    network: NetworkData
    stores: np.ndarray
    dcs: np.ndarray
    store_size: np.ndarray
    popularity: np.ndarray
    lead_time: np.ndarray
    position_sku: np.ndarray
    position_location: np.ndarray
    walk_in_rate: np.ndarray
    channel_rate: np.ndarray
    initial_stock: np.ndarray
    _keys: np.ndarray = field(repr=False)
    _store_rows: np.ndarray = field(repr=False)
    _cum_pop: np.ndarray = field(repr=False)

    @property
    def num_positions(self) -> int:
        return int(self.position_sku.shape[0])

    def position_of(self, sku: np.ndarray, location: np.ndarray) -> np.ndarray:
        """Row of each (sku, location) among the carried positions, -1 if not carried."""
        key = np.asarray(sku, dtype=np.int64) * self.network.num_locations + location
        i = np.searchsorted(self._keys, key)
        i = np.minimum(i, self._keys.shape[0] - 1)
        return np.where(self._keys[i] == key, i, -1)

    # ------------------------------------------------------------------ generation
    @classmethod
    def _generate(cls, sc: Scenario, seed: int) -> ScenarioData:
        rng = np.random.default_rng([seed, 0x5CE7])
        ns, nd, nk = sc.num_stores, sc.num_dcs, sc.num_skus
        nl = ns + nd
        # map
        coslat = math.cos(math.radians(sc.center_lat))
        r = sc.radius_km * np.sqrt(rng.random(ns))
        a = rng.uniform(0, 2 * np.pi, ns)
        r_dc = sc.radius_km * rng.uniform(0.6, 0.9, nd)
        a_dc = 2 * np.pi * (np.arange(nd) + rng.random(nd)) / max(nd, 1)
        dist = np.concatenate([r, r_dc])
        ang = np.concatenate([a, a_dc])
        lat = np.clip(sc.center_lat + dist * np.sin(ang) / _KM_PER_DEG, -89.9, 89.9)
        lon = sc.center_lon + dist * np.cos(ang) / (_KM_PER_DEG * coslat)
        lon = (lon + 180.0) % 360.0 - 180.0
        store_size = rng.lognormal(0.0, 0.3, ns)
        store_size = store_size / store_size.mean() if ns else store_size
        # catalogue
        popularity = 1.0 / np.arange(1, nk + 1, dtype=np.float64) ** sc.zipf_exponent
        popularity /= popularity.sum()
        price = np.round(rng.lognormal(math.log(sc.price_median), sc.price_sigma, nk), 2) + 0.99
        unit_cost = np.round(price * rng.uniform(*sc.cost_share, nk), 2)
        lead_time = rng.integers(sc.lead_time_days[0], sc.lead_time_days[1] + 1, nk)
        # assortments
        carry = np.zeros((nk, nl), dtype=np.bool_)
        core = min(nk, round(sc.core_share * nk))
        target = sc.store_assortment * nk
        if core >= target:
            core = max(1, round(target))
            q = 0.0
        else:
            q = (target - core) / max(nk - core, 1)
        if ns:
            carry[:, :ns] = rng.random((nk, ns)) < q
            carry[:core, :ns] = True
        if nd:
            carry[:, ns:] = rng.random((nk, nd)) < sc.dc_assortment
        # every SKU somewhere: a SKU no location carries goes to the first DC (or store)
        lost = ~carry.any(axis=1)
        carry[lost, ns if nd else int(np.argmax(store_size))] = True
        sku_idx, loc_idx = np.nonzero(carry)  # sorted by (sku, location)
        npos = sku_idx.shape[0]
        is_store = loc_idx < ns
        # walk-in rates: a store's units over the SKUs it carries, by popularity
        pop_at = popularity[sku_idx]
        store_pop = np.bincount(loc_idx, weights=np.where(is_store, pop_at, 0.0), minlength=nl)
        size = np.concatenate([store_size, np.zeros(nd)])
        walk = np.zeros(npos)
        if ns:
            walk = np.where(
                is_store,
                sc.walk_in_units * size[loc_idx] * pop_at / np.maximum(store_pop[loc_idx], 1e-300),
                0.0,
            )
        # online rates allocated to the carrying locations (DCs 70 %, stores 30 % by size)
        units_per_order = sc.mean_lines * (1.0 + sc.extra_units)
        chan_rate = np.zeros((npos, 3))
        chan_rate[:, STORE] = walk
        weight = np.where(is_store, 0.3 * size[loc_idx], 0.0)
        if nd:
            weight = np.where(is_store, weight, 0.7)
        wsum = np.bincount(sku_idx, weights=weight, minlength=nk)
        share = np.where(wsum[sku_idx] > 0, weight / np.maximum(wsum[sku_idx], 1e-300), 0.0)
        for c, orders_per_day in ((ONLINE, sc.online_orders), (MARKETPLACE, sc.marketplace_orders)):
            chan_rate[:, c] = orders_per_day * units_per_order * pop_at * share
        initial = np.ceil(chan_rate.sum(axis=1) * sc.initial_cover_days).astype(np.int64) + 1
        # network
        names = [f"Store-{i:03d}" for i in range(ns)] + [f"DC-{i:02d}" for i in range(nd)]
        serves = np.ones((nl, 3), dtype=np.bool_)
        serves[ns:, STORE] = False
        network = NetworkData.from_arrays(
            channels=list(CHANNELS),
            location_name=names,
            location_kind=["store"] * ns + ["warehouse"] * nd,
            lat=lat,
            lon=lon,
            sku_name=[f"SKU-{k:05d}" for k in range(nk)],
            sku_price=price,
            sku_unit_cost=unit_cost,
            serves=serves,
            ships=True,
            pickup=np.arange(nl) < ns,
            same_day_radius_km=np.where(np.arange(nl) < ns, sc.same_day_radius_km, 0.0),
            pick_capacity=np.where(np.arange(nl) < ns, sc.store_pick_capacity, sc.dc_pick_capacity),
            cost_multiplier=np.where(np.arange(nl) < ns, sc.store_cost_multiplier, 1.0),
        )
        keys = sku_idx.astype(np.int64) * nl + loc_idx
        ro = readonly
        return cls(
            scenario=sc,
            seed=seed,
            network=network,
            stores=ro(np.arange(ns, dtype=np.int64)),
            dcs=ro(np.arange(ns, nl, dtype=np.int64)),
            store_size=ro(store_size),
            popularity=ro(popularity),
            lead_time=ro(lead_time.astype(np.int64)),
            position_sku=ro(sku_idx.astype(np.int64)),
            position_location=ro(loc_idx.astype(np.int64)),
            walk_in_rate=ro(walk),
            channel_rate=ro(chan_rate),
            initial_stock=ro(initial),
            _keys=ro(keys),
            _store_rows=ro(np.flatnonzero(is_store & (walk > 0))),
            _cum_pop=ro(np.cumsum(popularity)),
        )

    # ------------------------------------------------------------------ demand
    def _rng(self, day: int, wave: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, day, wave, stream])

    def walk_in(self, day: int, wave: int, volume: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Walk-in demand of one wave: ``(position rows, units)`` with units > 0."""
        sc = self.scenario
        rows = self._store_rows
        walk_mult, _ = sc.multipliers(day)
        lam = self.walk_in_rate[rows] * (walk_mult * volume / sc.waves_per_day)
        units = self._rng(day, wave, 1).poisson(lam)
        keep = units > 0
        return rows[keep], units[keep].astype(np.int64)

    def online_orders(self, day: int, wave: int, first_id: int, volume: float = 1.0) -> OrderBatch:
        """Online and marketplace orders arriving in one wave, ids from ``first_id``."""
        sc = self.scenario
        net = self.network
        rng = self._rng(day, wave, 2)
        _, mult = sc.multipliers(day)
        scale = mult * volume / sc.waves_per_day
        n_on = int(rng.poisson(sc.online_orders * scale))
        n_mp = int(rng.poisson(sc.marketplace_orders * scale))
        n = n_on + n_mp
        channel = np.concatenate(
            [np.full(n_on, ONLINE, np.int64), np.full(n_mp, MARKETPLACE, np.int64)]
        )
        # customers around a home store (or anywhere in the region without stores)
        ns = self.stores.shape[0]
        if ns:
            home = rng.choice(ns, size=n, p=self.store_size / self.store_size.sum())
            base_lat, base_lon = net.lat[home], net.lon[home]
        else:
            home = np.full(n, -1, dtype=np.int64)
            rr = sc.radius_km * np.sqrt(rng.random(n))
            aa = rng.uniform(0, 2 * np.pi, n)
            base_lat = sc.center_lat + rr * np.sin(aa) / _KM_PER_DEG
            base_lon = sc.center_lon + rr * np.cos(aa) / (
                _KM_PER_DEG * math.cos(math.radians(sc.center_lat))
            )
        coslat = np.cos(np.radians(base_lat))
        lat = np.clip(base_lat + rng.normal(0, sc.customer_spread_km, n) / _KM_PER_DEG, -89.9, 89.9)
        lon = base_lon + rng.normal(0, sc.customer_spread_km, n) / (_KM_PER_DEG * coslat)
        lon = (lon + 180.0) % 360.0 - 180.0
        u = rng.random(n)
        service = np.full(n, int(Service.SHIP), dtype=np.int64)
        own = channel == ONLINE
        service[own & (u < sc.pickup_share)] = Service.PICKUP
        service[own & (u >= sc.pickup_share) & (u < sc.pickup_share + sc.same_day_share)] = (
            Service.SAME_DAY
        )
        pick = service == Service.PICKUP
        # lines: count, SKUs by popularity (duplicates within an order merged away)
        nlines = rng.choice(len(sc.lines_per_order), size=n, p=sc.lines_per_order) + 1
        total = int(nlines.sum())
        line_order = np.repeat(np.arange(n, dtype=np.int64), nlines)
        sku = np.searchsorted(self._cum_pop, rng.random(total) * self._cum_pop[-1], side="right")
        sku = np.minimum(sku, net.num_skus - 1).astype(np.int64)
        if ns:
            # pick-up customers order what their store shows in stock: lines the store
            # does not carry are drawn again (up to three times)
            for _ in range(3):
                redo = pick[line_order] & (self.position_of(sku, home[line_order]) < 0)
                if not redo.any():
                    break
                u_redo = rng.random(int(redo.sum())) * self._cum_pop[-1]
                sku[redo] = np.minimum(
                    np.searchsorted(self._cum_pop, u_redo, side="right"), net.num_skus - 1
                )
        qty = 1 + rng.poisson(sc.extra_units, total).astype(np.int64)
        key = line_order * net.num_skus + sku
        _, first = np.unique(key, return_index=True)
        first.sort()
        line_order, sku, qty = line_order[first], sku[first], qty[first]
        # customer behaviour, drawn with the demand so every policy sees the same
        abandon = pick & (rng.random(n) < sc.abandon_share)
        collect = rng.integers(1, max(2, sc.pickup_hold_waves), n)
        returned = ~pick & (rng.random(n) < sc.return_share)
        rdays = rng.integers(sc.return_days[0], sc.return_days[1] + 1, n)
        sellable = rng.random(n) < sc.return_sellable_share
        ids = first_id + np.arange(n, dtype=np.int64)
        orders = Orders.from_lines(
            order=ids[line_order],
            sku=sku,
            qty=qty,
            channel=channel[line_order],
            lat=np.where(pick, np.nan, lat)[line_order],
            lon=np.where(pick, np.nan, lon)[line_order],
            service=service[line_order],
            pickup_location=np.where(pick, home, -1)[line_order],
        )
        ro = readonly
        return OrderBatch(
            orders=orders,
            home=ro(np.asarray(home, dtype=np.int64)),
            abandon=ro(abandon),
            collect_waves=ro(collect.astype(np.int64)),
            returned=ro(returned),
            return_days=ro(rdays.astype(np.int64)),
            sellable=ro(sellable),
        )

    def summary(self) -> str:
        ns, nd = self.stores.shape[0], self.dcs.shape[0]
        return (
            f"{self.scenario.name} (seed {self.seed}): {ns} stores + {nd} DCs, "
            f"{self.network.num_skus:,} SKUs, {self.num_positions:,} positions, "
            f"{int(self.initial_stock.sum()):,} units of opening stock"
        )
