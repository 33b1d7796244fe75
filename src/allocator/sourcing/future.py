"""Future-aware sourcing: prices of stock from a forward model of the remaining horizon.

A myopic sourcer takes the cheapest stock in front of each order, even when that unit
is the only one near customers who will come later. The forward model prices that:
over the remaining horizon it routes the *forecast* demand (online orders per region
and channel, walk-in units per store) from the stock each location has (and what is
due to arrive) at the cost model's landed costs, as one transportation LP per SKU,
solved by HiGHS. The dual price ``π[l, s] ≥ 0`` of the supply row of location ``l``
and SKU ``s`` is what one more unit there would save over the horizon: the
opportunity cost of spending it now. :func:`future_prices` returns
``scale · π`` as a ``(num_locations, num_skus)`` ``opportunity_cost``;
:class:`ForwardModel` keeps the forecast and refreshes the prices on a schedule,
and ``source(..., method="optimal", future=model)`` charges them.

The LP, for every SKU ``s`` (the SKUs decompose, so any subset is solved exactly)::

    min  Σ_{l,r,c} y_lrc (m_l (per_unit + per_package / units_per_package) + per_unit_km d_lr)
         + Σ_{r,c} u_rc pen_s + Σ_l w_l' pen_s
    s.t. Σ_l y_lrc + u_rc = D_rcs                     every region r, channel c
         v_l + w_l' = W_ls                             every store l with walk-in demand
         Σ_{r,c} y_lrc + v_l ≤ supply_ls               every location l        (dual π_ls)
         y, u, v, w ≥ 0

where ``y`` ships to region ``r`` from locations that serve and ship for channel ``c``,
``v`` sells to walk-in customers at the store (no fulfilment cost), ``u`` and ``w`` are
lost units priced by the cost model's unfilled rule (``pen_s``), and
``supply = max(0, on_hand − reserved − safety_stock) + inbound``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from allocator._kernels.geo import haversine_many
from allocator._validate import readonly
from allocator.exceptions import ValidationError
from allocator.network import NetworkData
from allocator.sourcing.costs import CostModel

if TYPE_CHECKING:
    from allocator.ledger import BaseLedger

__all__ = ["DEFAULT_SCALE", "DemandForecast", "ForwardModel", "FuturePrices", "future_prices"]

#: Multiplier on the LP's dual prices, calibrated on a training season of
#: ``allocator bench season`` (seed 1000, never an evaluation seed: the lowest
#: training cost among 0.5, 1, 1.5, 2 and 3); see ``docs/optimal.md``.
DEFAULT_SCALE = 1.0


def _array(value: Any, field: str, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "iuf" or arr.dtype.kind == "b":
        raise ValidationError(f"expected numbers, got dtype {arr.dtype}", field=field)
    arr = arr.astype(np.float64)
    if arr.shape != shape:
        raise ValidationError(
            f"expected shape {shape}, got {arr.shape}", field=field, code="length_mismatch"
        )
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValidationError("expected finite values >= 0", field=field, code="out_of_range")
    return arr


@dataclass(frozen=True, eq=False)
class DemandForecast:
    """Expected demand over the remaining horizon (read-only arrays).

    Attributes
    ----------
    region_lat, region_lon
        ``(R,)`` where each demand region's customers are (degrees).
    units
        ``(R, C, S)`` expected online units per region, channel and SKU.
    walk_in
        ``(L, S)`` expected walk-in units per location and SKU (served only there).
    units_per_package
        Mean units per package, to spread the package cost over units.
    """

    region_lat: np.ndarray
    region_lon: np.ndarray
    units: np.ndarray
    walk_in: np.ndarray
    units_per_package: float = 1.0

    @classmethod
    def from_arrays(
        cls,
        network: NetworkData,
        *,
        region_lat: Any,
        region_lon: Any,
        units: Any,
        walk_in: Any = None,
        units_per_package: float = 1.0,
    ) -> DemandForecast:
        """Validate and freeze a forecast for ``network`` (``walk_in`` default none)."""
        lat = np.atleast_1d(np.asarray(region_lat, dtype=np.float64))
        lon = np.atleast_1d(np.asarray(region_lon, dtype=np.float64))
        if lat.ndim != 1 or lon.shape != lat.shape:
            raise ValidationError(
                "region_lat and region_lon differ in shape",
                field="region_lon",
                code="length_mismatch",
            )
        if (np.abs(lat) > 90).any() or (np.abs(lon) > 180).any() or not np.isfinite(lat).all():
            raise ValidationError(
                "region outside the globe", field="region_lat", code="bad_coordinate"
            )
        nr, nc, ns, nl = lat.shape[0], network.num_channels, network.num_skus, network.num_locations
        u = _array(units, "units", (nr, nc, ns))
        w = np.zeros((nl, ns)) if walk_in is None else _array(walk_in, "walk_in", (nl, ns))
        upp = float(units_per_package)
        if not np.isfinite(upp) or upp < 1.0:
            raise ValidationError(
                f"expected a number >= 1, got {units_per_package!r}",
                field="units_per_package",
                code="out_of_range",
            )
        return cls(readonly(lat), readonly(lon), readonly(u), readonly(w), upp)

    @property
    def num_regions(self) -> int:
        return int(self.region_lat.shape[0])

    def scaled(self, factor: float) -> DemandForecast:
        """The same forecast with every quantity times ``factor`` (a shorter horizon)."""
        return DemandForecast(
            self.region_lat,
            self.region_lon,
            readonly(self.units * float(factor)),
            readonly(self.walk_in * float(factor)),
            self.units_per_package,
        )


@dataclass(frozen=True, eq=False)
class FuturePrices:
    """Dual prices of the forward model (see the module docstring).

    Attributes
    ----------
    opportunity_cost
        ``(num_locations, num_skus)`` ``scale · dual``: pass it to
        ``source(..., method="optimal", opportunity_cost=...)`` or use ``future=``.
    dual
        ``(num_locations, num_skus)`` the LP's dual prices of the supply rows.
    scale
        The multiplier applied.
    skus
        The SKUs priced (others are 0).
    objective
        The LP's cost of the remaining horizon for those SKUs.
    runtime_s
        Seconds to build and solve.
    """

    opportunity_cost: np.ndarray
    dual: np.ndarray
    scale: float
    skus: np.ndarray
    objective: float
    runtime_s: float

    def summary(self) -> str:
        priced = int((self.dual > 0).sum())
        top = float(self.opportunity_cost.max()) if self.opportunity_cost.size else 0.0
        return (
            f"FuturePrices: {self.skus.shape[0]} SKUs, {priced} (location, SKU) pairs priced "
            f"above 0 (highest {top:.2f}), scale {self.scale:g}, horizon cost "
            f"{self.objective:,.2f}, {self.runtime_s * 1e3:.1f} ms"
        )


def _supply(ledger: BaseLedger, inbound: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """Positions as ``(location, sku, supply)`` with supply > 0."""
    free = (
        np.asarray(ledger.on_hand)
        - np.asarray(ledger.reserved_by_channel).sum(axis=1)
        - np.asarray(ledger.safety_stock)
    )
    loc = np.asarray(ledger.position_location, dtype=np.int64)
    sku = np.asarray(ledger.position_sku, dtype=np.int64)
    supply = np.maximum(free, 0).astype(np.float64)
    if inbound is not None:
        supply = supply + inbound[loc, sku]
    return loc, sku, supply


def future_prices(
    network: NetworkData,
    ledger: BaseLedger,
    forecast: DemandForecast,
    *,
    costs: CostModel | None = None,
    scale: float = DEFAULT_SCALE,
    skus: Any = None,
    inbound: Any = None,
) -> FuturePrices:
    """Solve the forward model and return its prices (see the module docstring).

    Parameters
    ----------
    network, ledger
        The network and the ledger whose stock is routed (read only).
    forecast
        Demand over the remaining horizon.
    costs
        The cost model (landed costs and the unfilled rule); default figures when None.
    scale
        Multiplier on the dual prices (:data:`DEFAULT_SCALE`, calibrated).
    skus
        Only these SKUs (indices); default every SKU with forecast demand.
    inbound
        ``(num_locations, num_skus)`` units due to arrive within the horizon.
    """
    from scipy import sparse
    from scipy.optimize import linprog

    t0 = time.perf_counter()
    costs = CostModel() if costs is None else costs
    nl, ns = network.num_locations, network.num_skus
    s_val = float(scale)
    if not np.isfinite(s_val) or s_val < 0:
        raise ValidationError(f"expected a number >= 0, got {scale!r}", field="scale")
    inb = None if inbound is None else _array(inbound, "inbound", (nl, ns))
    if skus is None:
        want = (forecast.units.sum(axis=(0, 1)) > 0) | (forecast.walk_in.sum(axis=0) > 0)
        sel_skus = np.flatnonzero(want)
    else:
        sel_skus = np.unique(np.asarray(skus, dtype=np.int64))
    chosen = np.zeros(ns, dtype=np.bool_)
    chosen[sel_skus] = True
    loc, sku, supply = _supply(ledger, inb)
    keep = chosen[sku] & (supply > 0)
    p_loc, p_sku, p_sup = loc[keep], sku[keep], supply[keep]
    order = np.argsort(p_sku, kind="stable")
    p_loc, p_sku, p_sup = p_loc[order], p_sku[order], p_sup[order]
    npos = p_loc.shape[0]
    pos_start = np.searchsorted(p_sku, np.arange(ns))
    pos_count = np.bincount(p_sku, minlength=ns)
    pen = costs.sku_penalty(network)
    # online demand rows (region, channel, sku) and their arcs from every position
    r_i, c_i, s_i = np.nonzero(forecast.units * chosen[None, None, :])
    d_val = forecast.units[r_i, c_i, s_i]
    n_arc = pos_count[s_i]
    arc_row = np.repeat(np.arange(r_i.shape[0]), n_arc)
    offset = np.arange(int(n_arc.sum())) - np.repeat(np.cumsum(n_arc) - n_arc, n_arc)
    arc_pos = np.repeat(pos_start[s_i], n_arc) + offset
    ok = network.serves & ~network.excluded[:, None] & network.ships[:, None]
    fine = ok[p_loc[arc_pos], c_i[arc_row]]
    arc_row, arc_pos = arc_row[fine], arc_pos[fine]
    a_loc = p_loc[arc_pos]
    km = np.empty(a_loc.shape[0])
    haversine_many(
        np.ascontiguousarray(network.lat[a_loc]),
        np.ascontiguousarray(network.lon[a_loc]),
        np.ascontiguousarray(forecast.region_lat[r_i[arc_row]]),
        np.ascontiguousarray(forecast.region_lon[r_i[arc_row]]),
        km,
    )
    mult = network.cost_multiplier[a_loc]
    arc_cost = (
        mult * (costs.per_unit + costs.per_package / forecast.units_per_package)
        + costs.per_unit_km * km
    )
    # walk-in demand rows (location, sku) and their one arc each
    w_l, w_s = np.nonzero(forecast.walk_in * chosen[None, :])
    w_val = forecast.walk_in[w_l, w_s]
    # the position of (w_l, w_s), if it has supply
    key = p_sku * nl + p_loc
    wk = w_s * nl + w_l
    at = np.minimum(np.searchsorted(key, wk), max(npos - 1, 0))
    has = (npos > 0) & (key[at] == wk) if npos else np.zeros(wk.shape[0], dtype=np.bool_)
    w_pos = at[has]
    w_row = np.flatnonzero(has)
    n_on, n_w, n_d = arc_row.shape[0], w_row.shape[0], r_i.shape[0]
    n_wd = w_l.shape[0]
    # variables: online arcs, walk-in arcs, online unmet, walk-in unmet
    obj = np.concatenate([arc_cost, np.zeros(n_w), pen[s_i], pen[w_s]])
    nvar = obj.shape[0]
    eq_rows = np.concatenate([arc_row, n_d + w_row, np.arange(n_d), n_d + np.arange(n_wd)])
    eq_cols = np.arange(nvar)
    a_eq = sparse.csr_matrix((np.ones(nvar), (eq_rows, eq_cols)), shape=(n_d + n_wd, nvar))
    b_eq = np.concatenate([d_val, w_val])
    ub_rows = np.concatenate([arc_pos, w_pos])
    a_ub = sparse.csr_matrix(
        (np.ones(n_on + n_w), (ub_rows, np.arange(n_on + n_w))), shape=(npos, nvar)
    )
    dual = np.zeros((nl, ns))
    objective = 0.0
    if nvar and npos:
        res = linprog(
            obj, A_ub=a_ub, b_ub=p_sup, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs"
        )
        if res.status != 0:  # pragma: no cover - the LP is always feasible (unmet units)
            raise RuntimeError(f"forward model LP failed: {res.message}")
        dual[p_loc, p_sku] = np.maximum(-np.asarray(res.ineqlin.marginals), 0.0)
        objective = float(res.fun)
    elif nvar:
        objective = float(b_eq @ np.concatenate([pen[s_i], pen[w_s]]))
    return FuturePrices(
        opportunity_cost=readonly(dual * s_val),
        dual=readonly(dual),
        scale=s_val,
        skus=readonly(sel_skus),
        objective=objective,
        runtime_s=time.perf_counter() - t0,
    )


class ForwardModel:
    """A forecast and its prices, refreshed on a schedule; pass it as
    ``source(..., method="optimal", future=model)``.

    Each :meth:`prices` call (one per sourcing call, that is per wave) returns the
    prices of the SKUs asked for; a SKU's price is computed on its first request after
    each refresh and kept until the next. A refresh happens every ``refresh_every``
    calls, and whenever :meth:`set_forecast` gives a new forecast (the caller moves
    the horizon on).

    Parameters
    ----------
    network
        The network.
    forecast
        Demand over the remaining horizon.
    costs
        The cost model of the sourcing calls (default figures when None).
    scale
        Multiplier on the dual prices (:data:`DEFAULT_SCALE`).
    refresh_every
        Sourcing calls between refreshes (1: every wave).
    inbound
        ``(num_locations, num_skus)`` units due within the horizon.
    """

    def __init__(
        self,
        network: NetworkData,
        forecast: DemandForecast,
        *,
        costs: CostModel | None = None,
        scale: float = DEFAULT_SCALE,
        refresh_every: int = 1,
        inbound: Any = None,
    ) -> None:
        if not isinstance(network, NetworkData):
            raise TypeError("ForwardModel needs a NetworkData")
        if (
            isinstance(refresh_every, bool)
            or not isinstance(refresh_every, int)
            or refresh_every < 1
        ):
            raise ValidationError(
                f"expected an int >= 1, got {refresh_every!r}", field="refresh_every"
            )
        self.network = network
        self.costs = CostModel() if costs is None else costs
        self.scale = float(scale)
        self.refresh_every = refresh_every
        self.calls = 0
        self.solves = 0
        self.seconds = 0.0
        self.set_forecast(forecast, inbound)

    def set_forecast(self, forecast: DemandForecast, inbound: Any = None) -> None:
        """Replace the forecast (and inbound); every price is recomputed on next use."""
        if not isinstance(forecast, DemandForecast):
            raise ValidationError("expected a DemandForecast", field="forecast", code="wrong_dtype")
        self.forecast = forecast
        self.inbound = inbound
        self._refresh()

    def _refresh(self) -> None:
        nl, ns = self.network.num_locations, self.network.num_skus
        self._dual = np.zeros((nl, ns))
        self._fresh = np.zeros(ns, dtype=np.bool_)

    def prices(self, ledger: BaseLedger, *, skus: Any = None) -> FuturePrices:
        """Prices for ``skus`` (default all) at the ledger's current stock."""
        if self.calls and self.calls % self.refresh_every == 0:
            self._refresh()
        self.calls += 1
        ns = self.network.num_skus
        want = np.arange(ns) if skus is None else np.unique(np.asarray(skus, dtype=np.int64))
        todo = want[~self._fresh[want]]
        t0 = time.perf_counter()
        objective = 0.0
        if todo.shape[0]:
            got = future_prices(
                self.network,
                ledger,
                self.forecast,
                costs=self.costs,
                scale=1.0,
                skus=todo,
                inbound=self.inbound,
            )
            self._dual[:, todo] = got.dual[:, todo]
            self._fresh[todo] = True
            self.solves += 1
            objective = got.objective
        spent = time.perf_counter() - t0
        self.seconds += spent
        dual = self._dual.copy()
        return FuturePrices(
            opportunity_cost=readonly(dual * self.scale),
            dual=readonly(dual),
            scale=self.scale,
            skus=readonly(want),
            objective=objective,
            runtime_s=spent,
        )
