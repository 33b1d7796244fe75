"""Pure-Python greedy sourcing: the slow, obvious twin of the numba kernel.

Same rules, same tie-breaks, plain loops over dicts and lists. Tests compare it with
the kernel; ``allocator bench sourcing`` uses it as the same-run baseline.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from allocator.network import NetworkData
from allocator.sourcing.costs import CostModel
from allocator.sourcing.orders import Orders, Service
from allocator.sourcing.plan import SourcingPlan, UnfilledReason, build_plan

if TYPE_CHECKING:
    from allocator.ledger import BaseLedger

__all__ = ["reference_index", "reference_plan", "reference_source"]

R_KM = 6371.0088
DEG = math.pi / 180.0


def haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1 = lat1 * DEG
    p2 = lat2 * DEG
    sp = math.sin((p2 - p1) * 0.5)
    sl = math.sin((lon2 - lon1) * DEG * 0.5)
    a = sp * sp + math.cos(p1) * math.cos(p2) * sl * sl
    if a > 1.0:
        a = 1.0
    return 2.0 * R_KM * math.asin(math.sqrt(a))


def reference_index(
    ledger: BaseLedger,
) -> tuple[dict[tuple[int, int], list[int]], dict[int, list[int]]]:
    """Availability state per (sku, location) and locations per SKU.

    The state of a position is ``[free, unused_fence[0..C), cap_room[0..C)]`` with
    ``free = on_hand - reserved - safety``, ``unused_fence[c] = max(0, fence[c] -
    reserved[c])`` and ``cap_room[c] = cap[c] - reserved[c]`` (see :func:`state_avail`).
    """
    on_hand = ledger.on_hand.tolist()
    safety = ledger.safety_stock.tolist()
    fence = ledger.fence.tolist()
    lcap = ledger.cap.tolist()
    reserved = ledger.reserved_by_channel.tolist()
    stock: dict[tuple[int, int], list[int]] = {}
    at: dict[int, list[int]] = {}
    for row, (s, loc) in enumerate(
        zip(ledger.position_sku.tolist(), ledger.position_location.tolist(), strict=True)
    ):
        res = reserved[row]
        free = on_hand[row] - sum(res) - safety[row]
        unused = [max(0, f - r) for f, r in zip(fence[row], res, strict=True)]
        room = [k - r for k, r in zip(lcap[row], res, strict=True)]
        stock[(s, loc)] = [free, *unused, *room]
        at.setdefault(s, []).append(loc)
    return stock, at


def state_avail(state: list[int], c: int) -> int:
    """available(c) of a position state (:func:`reference_index`):
    ``max(0, min(free - Σ_{c'≠c} unused_fence[c'], cap_room[c]))``."""
    nch = (len(state) - 1) // 2
    unused = state[1 : 1 + nch]
    other = sum(u for cc, u in enumerate(unused) if cc != c)
    return max(0, min(state[0] - other, state[1 + nch + c]))


def state_take(state: list[int], c: int, q: int) -> None:
    """The ledger's sequential rule for reserving ``q`` units for channel ``c``."""
    nch = (len(state) - 1) // 2
    state[0] -= q
    state[1 + c] -= min(q, state[1 + c])
    state[1 + nch + c] -= q


def reference_source(
    network: NetworkData,
    ledger: BaseLedger,
    orders: Orders,
    *,
    costs: CostModel | None = None,
    max_splits: int | None = None,
    pick_capacity: Any = None,
    index: tuple[dict[tuple[int, int], list[int]], dict[int, list[int]]] | None = None,
) -> dict[str, Any]:
    """Greedy sourcing in pure Python. Returns rows and per-line/per-order outputs.

    ``index`` is :func:`reference_index` of the ledger, to reuse across calls.
    """
    costs = costs or CostModel()
    net = network
    nloc = net.num_locations
    base, at = index if index is not None else reference_index(ledger)
    stock: dict[tuple[int, int], list[int]] = {}  # copies of the entries this call changes
    cap = list(
        net.pick_capacity.tolist() if pick_capacity is None else np.asarray(pick_capacity).tolist()
    )
    max_locs = nloc if max_splits is None else max(1, min(max_splits + 1, nloc))
    zones = None if costs.location_zone is None else costs.location_zone.tolist()
    zmat = None if costs.zone_cost is None else costs.zone_cost.tolist()
    lat, lon = net.lat.tolist(), net.lon.tolist()
    mult = net.cost_multiplier.tolist()
    excluded, ships, pickup = net.excluded.tolist(), net.ships.tolist(), net.pickup.tolist()
    sd = net.same_day_radius_km.tolist()
    serves = net.serves.tolist()

    def avail(s: int, loc: int, c: int) -> int:
        v = stock.get((s, loc)) or base.get((s, loc))
        return 0 if v is None else state_avail(v, c)

    def take(s: int, loc: int, c: int, q: int) -> None:
        # one state per position shared by every channel: what an order of one
        # channel takes is seen by later orders of any channel
        if (s, loc) not in stock:
            stock[(s, loc)] = list(base[(s, loc)])
        state_take(stock[(s, loc)], c, q)

    order_sequence = sorted(range(orders.num_orders), key=lambda i: (-int(orders.priority[i]), i))
    rows: list[tuple[int, int, int, int, bool]] = []
    unfilled = [0] * orders.num_lines
    reason = [0] * orders.num_lines
    alt_loc = [-1] * orders.num_orders
    alt_cost = [math.nan] * orders.num_orders
    for o in order_sequence:
        b, e = int(orders.indptr[o]), int(orders.indptr[o + 1])
        skus = orders.sku[b:e].tolist()
        rem = orders.qty[b:e].tolist()
        c = int(orders.channel[o])
        svc = int(orders.service[o])
        p = int(orders.pickup_location[o])
        if svc == Service.PICKUP:
            dlat, dlon = lat[p], lon[p]
            dzone = -1 if zones is None else zones[p]
        else:
            dlat, dlon = float(orders.lat[o]), float(orders.lon[o])
            dzone = int(orders.zone[o])

        def ship_per_unit(loc: int, km: float, dzone: int = dzone) -> float:
            if zmat is not None and zones is not None and dzone >= 0 and zones[loc] >= 0:
                return zmat[zones[loc]][dzone]
            return costs.per_unit_km * km

        # candidate locations, each with its km
        cands: list[int] = []
        unavailable = False
        used = 0
        transfer = False
        if svc == Service.PICKUP:
            if excluded[p] or not serves[p][c] or not pickup[p]:
                unavailable = True
            else:
                budget = cap[p]
                took = 0
                for j, s in enumerate(skus):
                    t = min(avail(s, p, c), rem[j])
                    if budget >= 0:
                        t = min(t, budget - took)
                    if t > 0:
                        take(s, p, c, t)
                        rem[j] -= t
                        took += t
                        rows.append((o, b + j, p, t, False))
                if budget >= 0:
                    cap[p] = budget - took
                if took:
                    used = 1
                transfer = True
                holders = {loc for s in skus for loc in at.get(s, [])}
                cands = [
                    loc
                    for loc in sorted(holders)
                    if loc != p and not excluded[loc] and serves[loc][c] and ships[loc]
                ]
        elif svc == Service.SAME_DAY:
            cands = [
                loc
                for loc in range(nloc)
                if not excluded[loc]
                and serves[loc][c]
                and sd[loc] > 0
                and haversine(lat[loc], lon[loc], dlat, dlon) <= sd[loc]
            ]
        else:
            holders = {loc for s in skus for loc in at.get(s, [])}
            cands = [
                loc
                for loc in sorted(holders)
                if not excluded[loc] and serves[loc][c] and ships[loc]
            ]
        km = {loc: haversine(lat[loc], lon[loc], dlat, dlon) for loc in cands}
        total = sum(rem)
        first = True
        while not unavailable and total > 0 and used < max_locs:
            options = []
            for loc in cands:
                s_units = sum(
                    min(avail(s, loc, c), rem[j]) for j, s in enumerate(skus) if rem[j] > 0
                )
                if cap[loc] >= 0:
                    s_units = min(s_units, cap[loc])
                if s_units <= 0:
                    continue
                cost = (
                    mult[loc] * (costs.per_package + costs.per_unit * s_units)
                    + ship_per_unit(loc, km[loc]) * s_units
                )
                options.append((s_units, cost, loc))
            full = sorted((cost, loc) for s_units, cost, loc in options if s_units == total)
            if first and svc != Service.PICKUP:
                if len(full) > 1:
                    alt_cost[o], alt_loc[o] = full[1]
                first = False
            if full:
                best = full[0][1]
            elif options:
                best = sorted(options, key=lambda t: (-t[0], t[1], t[2]))[0][2]
            else:
                break
            budget = cap[best]
            took = 0
            for j, s in enumerate(skus):
                if rem[j] <= 0:
                    continue
                t = min(avail(s, best, c), rem[j])
                if budget >= 0:
                    t = min(t, budget - took)
                if t > 0:
                    take(s, best, c, t)
                    rem[j] -= t
                    took += t
                    rows.append((o, b + j, best, t, transfer))
            if budget >= 0:
                cap[best] = budget - took
            total -= took
            used += 1
        limited = total > 0 and used >= max_locs
        for j, s in enumerate(skus):
            unfilled[b + j] = rem[j]
            if rem[j] <= 0:
                continue
            if unavailable:
                reason[b + j] = UnfilledReason.LOCATION_UNAVAILABLE
                continue
            pool = [*cands, p] if svc == Service.PICKUP else cands
            has_open = any(avail(s, loc, c) > 0 and cap[loc] != 0 for loc in pool)
            has_blocked = any(avail(s, loc, c) > 0 and cap[loc] == 0 for loc in pool)
            if has_open and limited:
                reason[b + j] = UnfilledReason.SPLIT_LIMIT
            elif has_blocked:
                reason[b + j] = UnfilledReason.CAPACITY
            elif svc == Service.SAME_DAY and any(
                avail(s, loc, c) > 0 and not excluded[loc] and serves[loc][c] for loc in range(nloc)
            ):
                reason[b + j] = UnfilledReason.RADIUS
            else:
                reason[b + j] = UnfilledReason.NO_STOCK
    return {
        "rows": rows,
        "line_unfilled": unfilled,
        "line_reason": reason,
        "alt_location": alt_loc,
        "alt_cost": alt_cost,
    }


def reference_plan(
    network: NetworkData,
    ledger: BaseLedger,
    orders: Orders,
    *,
    costs: CostModel | None = None,
    max_splits: int | None = None,
    pick_capacity: Any = None,
) -> SourcingPlan:
    """:func:`reference_source` assembled into a :class:`SourcingPlan`."""
    costs = costs or CostModel()
    out = reference_source(
        network, ledger, orders, costs=costs, max_splits=max_splits, pick_capacity=pick_capacity
    )
    rows = out["rows"]
    cols = [np.array([r[i] for r in rows], dtype=np.int64) for i in range(4)]
    transfer = np.array([r[4] for r in rows], dtype=np.bool_)
    return build_plan(
        network,
        orders,
        costs,
        method="reference",
        order=cols[0],
        line=cols[1],
        location=cols[2],
        qty=cols[3],
        transfer=transfer,
        line_unfilled=np.array(out["line_unfilled"], dtype=np.int64),
        line_reason=np.array(out["line_reason"], dtype=np.int8),
        alt_location=np.array(out["alt_location"], dtype=np.int64),
        alt_cost=np.array(out["alt_cost"], dtype=np.float64),
    )
