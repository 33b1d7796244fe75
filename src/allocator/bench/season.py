"""``allocator bench season``: sourcing policies over a season against the hindsight optimum.

A season in the spirit of Acimovic & Graves (2015) and Jasin & Sinha (2015): a few
fulfilment centres and demand regions, a small catalogue with finite stock and no
replenishment, thousands of online orders of one or two single-unit lines, landed
cost per package, per unit and per unit-distance (:data:`SEASON_COSTS`), lost units
at the SKU's price. Each policy sources the same orders in the same sequence and
the units it promises leave the stock; its season cost is the sum of its plans'
true costs (opportunity costs excluded). The reference is the hindsight optimum:
every order of the season known up front, solved exactly by ``scipy.optimize.milp``
(HiGHS) over order types (region and SKU set, whose orders are interchangeable)
and their fulfilment patterns.

Policies, for ``--seeds`` seeds: greedy; myopic optimal (the optimal method, one
order at a time); batch optimal (waves of ``--wave`` orders); future-aware one
order at a time (prices of a :class:`~allocator.sourcing.ForwardModel` refreshed
every ``--wave`` orders) and future-aware in waves (refreshed every wave). Each
gets the share of the greedy→hindsight gap it closes. The price scale of the
future-aware policies is calibrated first on a training season (seed 1000, never
an evaluation seed) over ``--scales``.

Beside the season, the default department-store simulation is run for greedy and
the future-aware policy over ``--sim-seeds`` seeds (mean and 95 % interval of the
season objective, lost value and cost per order on the orders both fill in full),
200 x 20 waves with binding DC capacity are solved under a 10 s limit (gap against
the best bound), and identical calls are checked to give identical plans.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from allocator.events import Events
from allocator.ledger import Ledger
from allocator.network import NetworkData
from allocator.simulation.compare import interval
from allocator.sourcing import CostModel, DemandForecast, ForwardModel, Orders, Sourcer
from allocator.sourcing.costs import haversine_km, plan_costs

DESCRIPTION = "season of orders: greedy, optimal and future-aware sourcing vs hindsight"

__all__ = [
    "DESCRIPTION",
    "POLICIES",
    "SEASON_COSTS",
    "Season",
    "add_arguments",
    "hindsight",
    "make_season",
    "run",
    "run_policy",
]

#: Landed costs of the season: distance matters as much as packages. Lost units cost
#: their price; this model prices every policy's season.
SEASON_COSTS = CostModel(per_package=6.0, per_unit=0.5, per_unit_km=0.003)
#: What the optimising policies decide with: the same costs, but every unit that
#: stock can fill is filled (as in the literature's setting), so the forward prices
#: steer where a unit comes from, never whether it is sold.
DECISION_COSTS = CostModel(per_package=6.0, per_unit=0.5, per_unit_km=0.003, unfilled="must_serve")
#: The policies, in report order.
POLICIES = ("greedy", "myopic_optimal", "batch_optimal", "future_one", "future_waves")
#: Shares of one- and two-line orders.
LINES = (0.7, 0.3)


@dataclass(frozen=True, eq=False)
class Season:
    """A generated season: the network, opening stock, the orders in arrival order and
    the demand model the forecast is made from."""

    network: NetworkData
    stock: np.ndarray  # (locations, skus)
    orders: Orders
    region_lat: np.ndarray
    region_lon: np.ndarray
    region_weight: np.ndarray  # (R,)
    item_prob: np.ndarray  # (R, S), rows sum to 1
    order_region: np.ndarray

    @property
    def num_orders(self) -> int:
        return self.orders.num_orders

    def forecast(self, placed: int) -> DemandForecast:
        """Expected demand of the orders still to come after ``placed`` orders."""
        remaining = self.num_orders - placed
        mean_lines = sum((k + 1) * p for k, p in enumerate(LINES))
        units = remaining * mean_lines * self.region_weight[:, None] * self.item_prob
        return DemandForecast.from_arrays(
            self.network,
            region_lat=self.region_lat,
            region_lon=self.region_lon,
            units=units[:, None, :],
            units_per_package=mean_lines,
        )


def make_season(
    seed: int,
    *,
    num_fcs: int = 5,
    num_regions: int = 10,
    num_skus: int = 20,
    num_orders: int = 5_000,
    stock_ratio: float = 0.95,
) -> Season:
    """A seeded season (see the module docstring)."""
    rng = np.random.default_rng([seed, 0x5EA5])
    r_lat = rng.uniform(28.0, 46.0, num_regions)
    r_lon = rng.uniform(-122.0, -72.0, num_regions)
    at = rng.choice(num_regions, num_fcs, replace=False)
    f_lat = r_lat[at] + rng.normal(0, 0.5, num_fcs)
    f_lon = r_lon[at] + rng.normal(0, 0.5, num_fcs)
    weight = rng.gamma(2.0, 1.0, num_regions)
    weight /= weight.sum()
    base = 1.0 / np.arange(1, num_skus + 1) ** 0.6
    prob = base[None, :] * rng.lognormal(0.0, 0.7, (num_regions, num_skus))
    prob /= prob.sum(axis=1, keepdims=True)
    price = np.round(rng.uniform(20.0, 60.0, num_skus), 2)
    network = NetworkData.from_arrays(
        channels=["online"],
        location_name=[f"FC-{i}" for i in range(num_fcs)],
        location_kind="warehouse",
        lat=f_lat,
        lon=f_lon,
        sku_name=[f"ITEM-{k:02d}" for k in range(num_skus)],
        sku_price=price,
        pick_capacity=-1,
    )
    region = rng.choice(num_regions, num_orders, p=weight)
    nlines = rng.choice(len(LINES), num_orders, p=LINES) + 1
    sku_rows = [
        rng.choice(num_skus, k, replace=False, p=prob[r])
        for r, k in zip(region, nlines, strict=True)
    ]
    mean_lines = sum((k + 1) * p for k, p in enumerate(LINES))
    expected = num_orders * mean_lines * (weight @ prob)
    total = np.round(stock_ratio * expected).astype(np.int64)
    share = rng.dirichlet(np.ones(num_fcs), num_skus)  # (S, F), unrelated to demand
    stock = np.floor(share * total[:, None]).astype(np.int64)
    stock[np.arange(num_skus), np.argmax(share, axis=1)] += total - stock.sum(axis=1)
    order_id = np.repeat(np.arange(1, num_orders + 1), nlines)
    rep = order_id - 1
    orders = Orders.from_lines(
        order=order_id,
        sku=np.concatenate(sku_rows),
        qty=1,
        channel=0,
        lat=r_lat[region][rep],
        lon=r_lon[region][rep],
    )
    return Season(network, stock.T.copy(), orders, r_lat, r_lon, weight, prob, region)


def _ledger(season: Season) -> Ledger:
    net = season.network
    loc, sku = np.nonzero(season.stock)
    ledger = Ledger(net, capacity=loc.shape[0] + 16)
    ledger.apply(Events.receive(sku, loc, season.stock[loc, sku]))
    return ledger


def run_policy(
    season: Season,
    policy: str,
    *,
    wave: int = 100,
    scale: float = 1.5,
    seed: int = 0,
    limit: int | None = None,
) -> dict[str, Any]:
    """Source the season with ``policy``; its cost and the plans' rows (for checks).

    ``limit`` sources only the first that many orders (a shorter season)."""
    net = season.network
    ledger = _ledger(season)
    sourcer = Sourcer(net, DECISION_COSTS)
    n = season.num_orders if limit is None else min(limit, season.num_orders)
    step = 1 if policy in ("greedy", "myopic_optimal", "future_one") else wave
    method = "greedy" if policy == "greedy" else "optimal"
    model = None
    if policy.startswith("future"):
        model = ForwardModel(
            net, season.forecast(0), costs=SEASON_COSTS, scale=scale, refresh_every=1 << 30
        )
    cost = 0.0
    lost = 0
    rows: list[np.ndarray] = []
    t0 = time.perf_counter()
    if policy == "greedy":
        # greedy sources one order at a time in sequence: one call is the same
        batch = season.orders.take(np.arange(n))
        plan = Sourcer(net, SEASON_COSTS).source(ledger, batch)
        cost = float(plan.objective)
        lost = int(plan.line_unfilled.sum())
        rows.append(np.concatenate([plan.order, plan.location, plan.qty]))
        return {"cost": cost, "lost_units": lost, "seconds": time.perf_counter() - t0, "rows": rows}
    for start in range(0, n, step):
        batch = season.orders.take(np.arange(start, min(start + step, n)))
        options: dict[str, Any] = {}
        if method == "optimal":
            options = {"time_limit": 30.0, "gap": 1e-4, "seed": seed}
        if model is not None:
            if start % wave == 0:
                model.set_forecast(season.forecast(start))
                model.prices(ledger)  # every SKU at once, kept until the next refresh
            options["future"] = model
        plan = sourcer.source(ledger, batch, method=method, **options)
        true = plan_costs(
            net,
            batch,
            SEASON_COSTS,
            order=plan.order,
            location=plan.location,
            qty=plan.qty,
            line_unfilled=plan.line_unfilled,
        )
        cost += true.objective
        lost += int(plan.line_unfilled.sum())
        rows.append(np.concatenate([plan.order + start, plan.location, plan.qty]))
        if len(plan):
            ledger.apply(Events.sale(plan.sku, plan.location, plan.qty, channel=0))
    return {"cost": cost, "lost_units": lost, "seconds": time.perf_counter() - t0, "rows": rows}


def hindsight(season: Season, time_limit: float = 120.0) -> dict[str, Any]:
    """The season's optimum with every order known: an integer program over order
    types and their fulfilment patterns, solved by ``scipy.optimize.milp``."""
    from scipy import sparse
    from scipy.optimize import Bounds, LinearConstraint, milp

    t0 = time.perf_counter()
    net, orders, costs = season.network, season.orders, SEASON_COSTS
    nf, ns = net.num_locations, net.num_skus
    price = costs.sku_penalty(net)
    # order types: (region, sorted SKUs)
    kinds: dict[tuple[int, tuple[int, ...]], int] = {}
    for o in range(orders.num_orders):
        skus = tuple(sorted(orders.sku[orders.indptr[o] : orders.indptr[o + 1]].tolist()))
        key = (int(season.order_region[o]), skus)
        kinds[key] = kinds.get(key, 0) + 1
    km = haversine_km(
        net.lat[:, None], net.lon[:, None], season.region_lat[None, :], season.region_lon[None, :]
    )
    unit = net.cost_multiplier[:, None] * costs.per_unit + costs.per_unit_km * km  # (F, R)
    cols_cost: list[float] = []
    eq_r: list[int] = []
    ub_r: list[int] = []
    ub_c: list[int] = []
    counts: list[int] = []
    var = 0
    for t, ((r, skus), count) in enumerate(kinds.items()):
        counts.append(count)
        for pattern in itertools.product(range(-1, nf), repeat=len(skus)):
            used = {f for f in pattern if f >= 0}
            c = sum(net.cost_multiplier[f] * costs.per_package for f in used)
            for s, f in zip(skus, pattern, strict=True):
                if f < 0:
                    c += price[s]
                else:
                    c += unit[f, r]
                    ub_r.append(f * ns + s)
                    ub_c.append(var)
            cols_cost.append(c)
            eq_r.append(t)
            var += 1
    nt = len(kinds)
    a_eq = sparse.csr_matrix((np.ones(var), (eq_r, np.arange(var))), shape=(nt, var))
    a_ub = sparse.csr_matrix((np.ones(len(ub_r)), (ub_r, ub_c)), shape=(nf * ns, var))
    cnt = np.asarray(counts, dtype=np.float64)
    res = milp(
        np.asarray(cols_cost),
        constraints=[
            LinearConstraint(a_eq, cnt, cnt),
            LinearConstraint(a_ub, -np.inf, season.stock.reshape(-1).astype(np.float64)),
        ],
        bounds=Bounds(0, np.inf),
        integrality=np.ones(var),
        options={"time_limit": float(time_limit), "disp": False},
    )
    return {
        "cost": float(res.fun) if res.x is not None else math.nan,
        "optimal": bool(res.status == 0),
        "bound": float(getattr(res, "mip_dual_bound", math.nan)),
        "types": nt,
        "variables": var,
        "seconds": time.perf_counter() - t0,
    }


def _binding_waves(seeds: list[int], time_limit: float) -> list[dict[str, Any]]:
    from allocator.bench._optimal import make_wave

    out = []
    for seed in seeds:
        net, ledger, orders = make_wave(200, 20, seed=seed, dc_capacity=150)
        plan = Sourcer(net).source(
            ledger, orders, method="optimal", time_limit=time_limit, gap=0.001
        )
        out.append(
            {
                "seed": seed,
                "gap": plan.gap,
                "status": plan.status.slug,
                "seconds": plan.runtime_s,
                "objective": plan.objective,
                "bound": plan.bound,
            }
        )
    return out


def _deterministic(season: Season, scale: float, orders: int) -> bool:
    a = run_policy(season, "future_waves", scale=scale, limit=orders)
    b = run_policy(season, "future_waves", scale=scale, limit=orders)
    same = all(np.array_equal(x, y) for x, y in zip(a["rows"], b["rows"], strict=True))
    return bool(same and a["cost"] == b["cost"])


def _simulations(seeds: list[int], days: int, scale: float) -> dict[str, Any]:
    from allocator.scenarios import department_store
    from allocator.simulation import compare

    comp = compare(
        department_store(),
        ("greedy", "future"),
        days=days,
        seeds=seeds,
        keep_log=False,
        future_scale=scale,
        future_horizon_days=1,
        sourcing_options={"time_limit": 3.0, "gap": 0.01},
    )
    out: dict[str, Any] = {"seeds": seeds, "days": days}
    for key in ("season_objective", "lost_value", "common_cost_per_order"):
        out[key] = comp.interval(key)
        out[f"{key}_by_seed"] = comp.per_seed(key)
        # the paired difference future - greedy, seed by seed
        v = comp.per_seed(key)
        out[f"{key}_difference"] = interval(
            [f - g for f, g in zip(v["future"], v["greedy"], strict=True)]
        )
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=3, help="evaluation seeds (default 3)")
    parser.add_argument("--orders", type=int, default=5_000, help="orders per season")
    parser.add_argument("--wave", type=int, default=100, help="orders per wave (default 100)")
    parser.add_argument(
        "--scales",
        default="0.5,1,1.5,2,3",
        help="price scales tried on the training season (default 0.5,1,1.5,2,3)",
    )
    parser.add_argument("--sim-seeds", type=int, default=5, help="simulation seeds (default 5)")
    parser.add_argument("--sim-days", type=int, default=16, help="simulated days (default 16)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for smoke tests")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The figures (see the module docstring); ``--json`` keys as the issue names."""
    t_start = time.perf_counter()
    quick = bool(args.quick)
    n_orders = 600 if quick else int(args.orders)
    wave = 50 if quick else int(args.wave)
    seeds = list(range(2 if quick else int(args.seeds)))
    scales = [float(x) for x in str(args.scales).split(",") if x.strip()]
    if quick:
        scales = scales[:2] if len(scales) > 2 else scales
    # compile first, apart
    t0 = time.perf_counter()
    tiny = make_season(999, num_orders=60)
    run_policy(tiny, "future_waves", wave=20)
    run_policy(tiny, "greedy")
    compile_s = time.perf_counter() - t0
    # calibration on the training season
    train = make_season(1000, num_orders=n_orders)
    train_cost = {s: run_policy(train, "future_waves", wave=wave, scale=s)["cost"] for s in scales}
    scale = min(scales, key=lambda s: (train_cost[s], s))
    gap_closed: dict[str, list[float]] = {p: [] for p in POLICIES}
    season_cost: dict[str, list[float]] = {p: [] for p in POLICIES}
    seconds: dict[str, list[float]] = {p: [] for p in POLICIES}
    hind: list[float] = []
    hind_info: list[dict[str, Any]] = []
    for seed in seeds:
        season = make_season(seed, num_orders=n_orders)
        h = hindsight(season)
        hind.append(h["cost"])
        hind_info.append({k: v for k, v in h.items() if k != "cost"})
        for p in POLICIES:
            got = run_policy(season, p, wave=wave, scale=scale)
            season_cost[p].append(got["cost"])
            seconds[p].append(got["seconds"])
        g = season_cost["greedy"][-1]
        for p in POLICIES:
            den = g - h["cost"]
            gap_closed[p].append((g - season_cost[p][-1]) / den if den > 1e-9 else math.nan)
    sim_seeds = list(range(2 if quick else int(args.sim_seeds)))
    sim_days = 3 if quick else int(args.sim_days)
    sims = _simulations(sim_seeds, sim_days, scale)
    binding = _binding_waves([0] if quick else [0, 1, 2, 3, 4], 2.0 if quick else 10.0)
    det = _deterministic(make_season(seeds[0], num_orders=n_orders), scale, min(n_orders, 1_000))
    return {
        "orders": n_orders,
        "wave": wave,
        "seeds": seeds,
        "compile_s": compile_s,
        "scale": scale,
        "calibration_cost": {str(s): c for s, c in train_cost.items()},
        "gap_closed": gap_closed,
        "season_cost": season_cost,
        "policy_seconds": seconds,
        "hindsight_cost": hind,
        "hindsight": hind_info,
        "sim_objective": {p: v[0] for p, v in sims["season_objective"].items()},
        "sim_objective_ci95": {p: v[1] for p, v in sims["season_objective"].items()},
        "sim_lost_value": {p: v[0] for p, v in sims["lost_value"].items()},
        "sim_lost_value_ci95": {p: v[1] for p, v in sims["lost_value"].items()},
        "sim_common_cost_per_order": {p: v[0] for p, v in sims["common_cost_per_order"].items()},
        "sim_seeds": sims["seeds"],
        "sim_days": sims["days"],
        "binding_waves": binding,
        "binding_wave_gap": [b["gap"] for b in binding],
        "deterministic": det,
        "seconds": time.perf_counter() - t_start,
    }
