"""Slow, obvious twins of the optimal-sourcing kernels, and a brute-force oracle.

* :func:`brute_force`: the cheapest plan of a tiny batch by enumerating every
  integer allocation of every order (memoised on the stock taken and the capacity
  left), after the pick-up rule (:func:`pickup_first`), keeping only plans the ledger
  accepts as a whole (:class:`Stock`, shared stock across channels). It re-derives
  candidates, availability and prices from the network, the ledger's fields and the
  textbook cost formula, sharing no code with the optimiser.
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

from allocator._reference.sourcing import haversine
from allocator.sourcing import CostModel, Orders, Service

__all__ = ["Stock", "brute_force", "component_labels", "order_dp", "pickup_first"]


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


class Stock:
    """Takes per (sku, location, channel) checked against the ledger, from the
    ledger's own fields: each channel within its availability, and, per position,
    ``Σ_c max(0, take_c − unused_fence_c) ≤ max(0, on_hand − reserved − safety −
    Σ_c unused_fence_c)`` (the channels' excess over their unused fences comes out
    of the free shared pool)."""

    def __init__(self, network: Any, ledger: Any) -> None:
        self.net = network
        self.ledger = ledger
        self._limit: dict[tuple[int, int, int], tuple[int, int]] = {}
        self._free: dict[tuple[int, int], int] = {}

    def limits(self, s: int, loc: int, c: int) -> tuple[int, int]:
        """(available(c), unused fence of c) at the position."""
        key = (s, loc, c)
        if key not in self._limit:
            ledger = self.ledger
            row = int(ledger.position_index(s, loc))
            unused = max(0, int(ledger.fence[row, c]) - int(ledger.reserved_by_channel[row, c]))
            self._limit[key] = (int(ledger.available(s, loc, c)), unused)
        return self._limit[key]

    def free(self, s: int, loc: int) -> int:
        """The free shared pool of the position."""
        if (s, loc) not in self._free:
            ledger = self.ledger
            row = int(ledger.position_index(s, loc))
            res = ledger.reserved_by_channel[row]
            unused = sum(
                max(0, int(f) - int(r)) for f, r in zip(ledger.fence[row], res, strict=True)
            )
            pool = int(ledger.on_hand[row]) - int(res.sum()) - int(ledger.safety_stock[row])
            self._free[(s, loc)] = max(0, pool - unused)
        return self._free[(s, loc)]

    def ok(self, takes: dict[tuple[int, int, int], int]) -> bool:
        excess: dict[tuple[int, int], int] = {}
        for (s, loc, c), u in takes.items():
            if u == 0:
                continue
            avail, unused = self.limits(s, loc, c)
            if u < 0 or u > avail:
                return False
            excess[(s, loc)] = excess.get((s, loc), 0) + max(0, u - unused)
        return all(ex <= self.free(s, loc) for (s, loc), ex in excess.items())


def pickup_first(
    network: Any, ledger: Any, orders: Orders, cap: list[int], stock: Stock
) -> tuple[dict[tuple[int, int, int], int], dict[int, dict[int, int]]]:
    """The pick-up rule: pick-up orders, by priority then arrival, each take from their
    pick-up store all it has of each line (lines in order) within its pick capacity.
    Returns the takes and, per order, units per line; ``cap`` is consumed."""
    net = network
    takes: dict[tuple[int, int, int], int] = {}
    fixed: dict[int, dict[int, int]] = {}
    seq = sorted(range(orders.num_orders), key=lambda o: (-int(orders.priority[o]), o))
    for o in seq:
        if int(orders.service[o]) != Service.PICKUP:
            continue
        p = int(orders.pickup_location[o])
        c = int(orders.channel[o])
        if net.excluded[p] or not net.serves[p, c] or not net.pickup[p]:
            continue
        b, e = int(orders.indptr[o]), int(orders.indptr[o + 1])
        for j in range(e - b):
            s, q = int(orders.sku[b + j]), int(orders.qty[b + j])
            if int(ledger.position_index(s, p)) < 0:
                continue
            got = 0
            while got < q and cap[p] != 0:
                key = (s, p, c)
                takes[key] = takes.get(key, 0) + 1
                if not stock.ok(takes):
                    takes[key] -= 1
                    break
                got += 1
                if cap[p] > 0:
                    cap[p] -= 1
            if got:
                fixed.setdefault(o, {})[j] = got
    return takes, fixed


def _order_options(
    network: Any,
    ledger: Any,
    orders: Orders,
    costs: CostModel,
    o: int,
    max_locs: int,
    opp: dict[tuple[int, int], float],
    fixed: dict[int, int],
) -> list[tuple[float, dict[tuple[int, int], int], dict[int, int]]]:
    """Every allocation of order ``o``: (cost, units per (sku, location), units per
    location), limited only by each position's availability and the split limit.
    ``fixed`` are the units per line the pick-up rule took at the pick-up store (their
    cost and package are included; the store offers nothing more)."""
    net = network
    b, e = int(orders.indptr[o]), int(orders.indptr[o + 1])
    skus = orders.sku[b:e].tolist()
    qty = [q - fixed.get(j, 0) for j, q in enumerate(orders.qty[b:e].tolist())]
    c = int(orders.channel[o])
    cands = _candidates(net, ledger, orders, o)
    base = 0.0
    opened = 0
    if int(orders.service[o]) == Service.PICKUP and cands:
        store = cands[0][0]
        cands = cands[1:]
        if fixed:
            opened = 1
            m = float(net.cost_multiplier[store])
            units = sum(fixed.values())
            base = m * (costs.per_package + costs.per_unit * units)
            base += sum(opp.get((store, skus[j]), 0.0) * u for j, u in fixed.items())
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
        npk = sum(used) + opened
        if npk > max_locs:
            continue
        cost = base
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
    """The least total cost of any plan (distance costs only, no zone model) that
    follows the pick-up rule (:func:`pickup_first`) and that the ledger accepts as a
    whole (:class:`Stock`).

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
    stock = Stock(net, ledger)
    start_takes, fixed = pickup_first(net, ledger, orders, cap, stock)
    options = [
        _order_options(net, ledger, orders, costs, o, max_locs, opp, fixed.get(o, {}))
        for o in range(orders.num_orders)
    ]
    keys = sorted(
        {
            (k[0], k[1], int(orders.channel[o]))
            for o in range(orders.num_orders)
            for _, take, _ in options[o]
            for k in take
        }
        | set(start_takes)
    )
    index = {k: i for i, k in enumerate(keys)}
    start = tuple(start_takes.get(k, 0) for k in keys) + tuple(cap)

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
                st[index[(s, loc, c)]] += u
            for loc, u in at.items():
                i = len(keys) + loc
                if st[i] >= 0:
                    st[i] -= u
                    if st[i] < 0:
                        ok = False
            if ok and take:
                ok = stock.ok({k: st[i] for k, i in index.items()})
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
    open_: int = 0,
) -> float:
    """Least cost of one order when each line goes whole to one candidate or stays
    unfilled: ``price[k][j]`` per unit (``inf`` where candidate ``k`` cannot supply
    line ``j``), ``pkg[k]`` per package, at most ``max_locs`` packages of which
    ``open_`` are already fixed (not charged here, but counted for the split
    penalty)."""
    nl = len(qty)
    best = math.inf
    for assign in itertools.product(range(-1, len(pkg)), repeat=nl):
        used = {k for k in assign if k >= 0}
        if len(used) + open_ > max_locs:
            continue
        cost = sum(pkg[k] for k in used) + split * max(0, len(used) + open_ - 1)
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
