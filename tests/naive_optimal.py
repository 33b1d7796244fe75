"""Slow, obvious twins of the optimal-sourcing kernels, and a brute-force oracle.

* :func:`brute_force`: the cheapest plan of a tiny batch by enumerating every
  integer allocation of every order (memoised on the remaining stock and capacity).
  It re-derives candidates, availability and prices from the network, the ledger and
  the textbook cost formula, sharing no code with the optimiser.
* :func:`order_dp`: the Lagrangian subproblem of one order by enumerating every
  assignment of lines to candidates (or unfilled).
* :func:`component_labels`: components by repeated merging of sets.
"""

from __future__ import annotations

import itertools
import math
from functools import cache
from typing import Any

import numpy as np

from allocator.sourcing import CostModel, Orders, Service
from allocator.sourcing._reference import haversine

__all__ = ["brute_force", "component_labels", "order_dp"]


def _candidates(network: Any, ledger: Any, orders: Orders, o: int) -> list[tuple[int, float]]:
    """Eligible (location, km) of order ``o`` by the documented rules."""
    net = network
    c = int(orders.channel[o])
    svc = int(orders.service[o])
    skus = orders.sku[orders.indptr[o] : orders.indptr[o + 1]].tolist()
    holders = {
        int(loc)
        for s, loc in zip(
            ledger.position_sku.tolist(), ledger.position_location.tolist(), strict=True
        )
        if s in skus
    }

    def open_(loc: int) -> bool:
        return not net.excluded[loc] and bool(net.serves[loc, c])

    out = []
    if svc == Service.PICKUP:
        p = int(orders.pickup_location[o])
        if not open_(p) or not net.pickup[p]:
            return []
        out.append((p, 0.0))
        dlat, dlon = float(net.lat[p]), float(net.lon[p])
        for loc in sorted(holders):
            if loc != p and open_(loc) and net.ships[loc]:
                out.append((loc, haversine(net.lat[loc], net.lon[loc], dlat, dlon)))
        return out
    dlat, dlon = float(orders.lat[o]), float(orders.lon[o])
    for loc in sorted(holders):
        d = haversine(net.lat[loc], net.lon[loc], dlat, dlon)
        if not open_(loc):
            continue
        if svc == Service.SAME_DAY:
            if net.same_day_radius_km[loc] > 0 and d <= net.same_day_radius_km[loc]:
                out.append((loc, d))
        elif net.ships[loc]:
            out.append((loc, d))
    return out


def _order_options(
    network: Any,
    ledger: Any,
    orders: Orders,
    costs: CostModel,
    o: int,
    max_locs: int,
    opp: dict[tuple[int, int], float],
) -> list[tuple[float, dict[tuple[int, int], int], dict[int, int]]]:
    """Every allocation of order ``o``: (cost, units per (sku, location), units per
    location), limited only by each position's availability and the split limit."""
    net = network
    b, e = int(orders.indptr[o]), int(orders.indptr[o + 1])
    skus = orders.sku[b:e].tolist()
    qty = orders.qty[b:e].tolist()
    c = int(orders.channel[o])
    cands = _candidates(net, ledger, orders, o)
    price = net.sku_price
    pen = [
        float(price[s])
        if costs.unfilled_at_price and not math.isnan(price[s])
        else costs.unfilled_penalty
        for s in skus
    ]
    per_line: list[list[tuple[int, ...]]] = []
    for s, q in zip(skus, qty, strict=True):
        limits = [min(q, int(ledger.available(s, loc, c))) for loc, _ in cands]
        opts = [t for t in itertools.product(*[range(lim + 1) for lim in limits]) if sum(t) <= q]
        per_line.append(opts)
    out = []
    for combo in itertools.product(*per_line):
        used = [any(combo[j][i] for j in range(len(skus))) for i in range(len(cands))]
        npk = sum(used)
        if npk > max_locs:
            continue
        cost = 0.0
        take: dict[tuple[int, int], int] = {}
        at: dict[int, int] = {}
        for i, (loc, km) in enumerate(cands):
            if not used[i]:
                continue
            m = float(net.cost_multiplier[loc])
            units = sum(combo[j][i] for j in range(len(skus)))
            cost += (
                m * (costs.per_package + costs.per_unit * units) + costs.per_unit_km * km * units
            )
            at[loc] = at.get(loc, 0) + units
            for j, s in enumerate(skus):
                if combo[j][i]:
                    take[(s, loc)] = combo[j][i]
                    cost += opp.get((loc, s), 0.0) * combo[j][i]
        cost += costs.split_penalty * max(0, npk - 1)
        for j in range(len(skus)):
            cost += (qty[j] - sum(combo[j])) * pen[j]
        out.append((cost, take, at))
    return out


def brute_force(
    network: Any,
    ledger: Any,
    orders: Orders,
    *,
    costs: CostModel | None = None,
    max_splits: int | None = None,
    pick_capacity: Any = None,
    opportunity: dict[tuple[int, int], float] | None = None,
) -> float:
    """The least total cost of any plan (distance costs only, no zone model).

    ``opportunity[(location, sku)]`` is a per-unit opportunity cost.
    """
    costs = costs or CostModel()
    net = network
    nloc = net.num_locations
    max_locs = nloc if max_splits is None else max(1, min(max_splits + 1, nloc))
    cap = list(
        net.pick_capacity.tolist() if pick_capacity is None else np.asarray(pick_capacity).tolist()
    )
    opp = opportunity or {}
    options = [
        _order_options(net, ledger, orders, costs, o, max_locs, opp)
        for o in range(orders.num_orders)
    ]
    keys = sorted(
        {
            (k[0], k[1], int(orders.channel[o]))
            for o in range(orders.num_orders)
            for _, take, _ in options[o]
            for k in take
        }
    )
    index = {k: i for i, k in enumerate(keys)}
    start = tuple(int(ledger.available(s, loc, c)) for s, loc, c in keys) + tuple(cap)

    @cache
    def best(o: int, state: tuple[int, ...]) -> float:
        if o == orders.num_orders:
            return 0.0
        c = int(orders.channel[o])
        found = math.inf
        for cost, take, at in options[o]:
            st = list(state)
            ok = True
            for (s, loc), u in take.items():
                i = index[(s, loc, c)]
                st[i] -= u
                if st[i] < 0:
                    ok = False
            for loc, u in at.items():
                i = len(keys) + loc
                if st[i] >= 0:
                    st[i] -= u
                    if st[i] < 0:
                        ok = False
            if ok:
                found = min(found, cost + best(o + 1, tuple(st)))
        return found

    return best(0, start)


def order_dp(
    qty: list[int],
    pen: list[float],
    pkg: list[float],
    price: list[list[float]],
    max_locs: int,
    split: float,
) -> float:
    """Least cost of one order when each line goes whole to one candidate or stays
    unfilled: ``price[k][j]`` per unit (``inf`` where candidate ``k`` cannot supply
    line ``j``), ``pkg[k]`` per package, at most ``max_locs`` packages."""
    nl = len(qty)
    best = math.inf
    for assign in itertools.product(range(-1, len(pkg)), repeat=nl):
        used = {k for k in assign if k >= 0}
        if len(used) > max_locs:
            continue
        cost = sum(pkg[k] for k in used) + split * max(0, len(used) - 1)
        for j, k in enumerate(assign):
            cost += qty[j] * (pen[j] if k < 0 else price[k][j])
        best = min(best, cost)
    return best


def component_labels(groups: list[set[int]], n: int) -> list[int]:
    """Components of ``n`` orders where each set in ``groups`` joins its members;
    labels numbered by first appearance."""
    comps: list[set[int]] = [{o} for o in range(n)]
    for g in groups:
        merged = set(g)
        rest = []
        for c in comps:
            if c & merged:
                merged |= c
            else:
                rest.append(c)
        comps = [*rest, merged]
    label = [0] * n
    seen: dict[int, int] = {}
    for o in range(n):
        cid = next(i for i, c in enumerate(comps) if o in c)
        if cid not in seen:
            seen[cid] = len(seen)
        label[o] = seen[cid]
    return label
