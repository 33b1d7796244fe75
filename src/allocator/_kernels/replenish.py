"""Replenishment kernels: exact (s, S) for Poisson demand, order quantities,
budget allocation and candidate transfer arcs.
"""

from __future__ import annotations

import math

import numpy as np

from allocator._kernels import jit

# Flags on an order quantity (bit mask), mirrored by allocator.replenishment.plan.
F_MOQ = 1  # raised to the minimum order quantity
F_PACK = 2  # rounded up to a whole case pack
F_SHELF_CAPPED = 4  # cut to fit the shelf maximum
F_SHELF_BLOCKED = 8  # no order fits under the shelf maximum


# --------------------------------------------------------------------------- (s, S)
@jit
def _poisson_sf_table(mu: float, ymax: int, sf: np.ndarray) -> None:
    """``sf[y] = P(D > y)`` for ``y = 0..ymax``, ``D ~ Poisson(mu)``, by a reverse sum."""
    # Summing the pmf from the far tail down avoids the cancellation of 1 - F(y).
    top = ymax + 1 + int(10.0 * math.sqrt(mu + 1.0)) + 20
    acc = 0.0
    logmu = math.log(mu)
    for k in range(top, ymax, -1):
        acc += math.exp(k * logmu - mu - math.lgamma(k + 1.0))
    for y in range(ymax, -1, -1):
        sf[y] = acc
        acc += math.exp(y * logmu - mu - math.lgamma(y + 1.0))


@jit
def _g(y: int, mu: float, h: float, p: float, loss: np.ndarray, ymax: int) -> float:
    """Expected holding + backorder cost of one period with inventory position ``y``."""
    if y < 0:
        return p * (mu - y)
    if y > ymax:
        return h * (y - mu)
    return h * (y - mu) + (h + p) * loss[y]


@jit
def _cost(
    s: int,
    big_s: int,
    k: float,
    mu: float,
    h: float,
    p: float,
    loss: np.ndarray,
    ymax: int,
    m: np.ndarray,
    cum_m: np.ndarray,
) -> float:
    """Long-run average cost ``c(s, S)`` of an (s, S) policy (renewal formula)."""
    j = big_s - s
    total = k
    for d in range(j):
        total += m[d] * _g(big_s - d, mu, h, p, loss, ymax)
    return total / cum_m[j]


@jit
def _renewal(lam: float, n: int, m: np.ndarray, cum_m: np.ndarray) -> None:
    """Renewal function of one-period Poisson(lam) demand: ``m[j]``, ``cum_m[j] = sum m[:j]``."""
    q = np.empty(n)
    logl = math.log(lam)
    for j in range(n):
        q[j] = math.exp(j * logl - lam - math.lgamma(j + 1.0))
    denom = 1.0 - q[0]
    m[0] = 1.0 / denom
    cum_m[0] = 0.0
    for j in range(1, n):
        acc = 0.0
        for v in range(1, j + 1):
            acc += q[v] * m[j - v]
        m[j] = acc / denom
    for j in range(1, n + 1):
        cum_m[j] = cum_m[j - 1] + m[j - 1]


@jit
def optimal_ss_one(lam: float, lead_time: int, k: float, h: float, p: float) -> tuple:
    """Exact optimal (s, S) and its average cost for one position (Zheng-Federgruen).

    Periodic review, one-period demand Poisson(``lam``), lead time ``lead_time``
    periods (so the cost of a period is charged on demand over ``lead_time + 1``
    periods), fixed order cost ``k``, holding ``h`` and backorder ``p`` per unit and
    period. Order up to ``S`` when the inventory position is at or below ``s``.
    """
    mu = lam * (lead_time + 1)
    ymax = int(mu + 12.0 * math.sqrt(mu) + 40.0)
    sf = np.empty(ymax + 1)
    _poisson_sf_table(mu, ymax, sf)
    loss = np.empty(ymax + 1)
    loss[0] = mu
    for y in range(ymax):
        loss[y + 1] = loss[y] - sf[y]
    for y in range(ymax + 1):
        if loss[y] < 0.0:
            loss[y] = 0.0
    # y* minimises the convex G; start at the newsvendor-like guess and walk.
    ystar = int(mu)
    while _g(ystar + 1, mu, h, p, loss, ymax) < _g(ystar, mu, h, p, loss, ymax):
        ystar += 1
    while _g(ystar - 1, mu, h, p, loss, ymax) < _g(ystar, mu, h, p, loss, ymax):
        ystar -= 1
    # Renewal tables sized generously; grown below if the search needs more.
    cap = max(64, 2 * (ymax + 1))
    m = np.empty(cap)
    cum_m = np.empty(cap + 1)
    _renewal(lam, cap, m, cum_m)

    big_s0 = ystar
    s = ystar - 1
    while True:
        if big_s0 - s >= cap:
            cap *= 2
            m = np.empty(cap)
            cum_m = np.empty(cap + 1)
            _renewal(lam, cap, m, cum_m)
        if _cost(s, big_s0, k, mu, h, p, loss, ymax, m, cum_m) <= _g(s, mu, h, p, loss, ymax):
            break
        s -= 1
    c0 = _cost(s, big_s0, k, mu, h, p, loss, ymax, m, cum_m)
    big_s = big_s0 + 1
    while _g(big_s, mu, h, p, loss, ymax) <= c0:
        if big_s - s >= cap:
            cap *= 2
            m = np.empty(cap)
            cum_m = np.empty(cap + 1)
            _renewal(lam, cap, m, cum_m)
        c = _cost(s, big_s, k, mu, h, p, loss, ymax, m, cum_m)
        if c < c0:
            big_s0 = big_s
            while _cost(s, big_s0, k, mu, h, p, loss, ymax, m, cum_m) <= _g(
                s + 1, mu, h, p, loss, ymax
            ):
                s += 1
            c0 = _cost(s, big_s0, k, mu, h, p, loss, ymax, m, cum_m)
        big_s += 1
    return s, big_s0, c0


@jit
def optimal_ss(
    lam: np.ndarray,
    lead_time: np.ndarray,
    order_cost: np.ndarray,
    holding_cost: np.ndarray,
    backorder_cost: np.ndarray,
    out_s: np.ndarray,
    out_big_s: np.ndarray,
    out_cost: np.ndarray,
) -> None:
    """:func:`optimal_ss_one` over positions; zero demand gives ``s = -1, S = 0``."""
    for i in range(lam.shape[0]):
        if lam[i] <= 0.0:
            out_s[i] = -1
            out_big_s[i] = 0
            out_cost[i] = 0.0
            continue
        s, big_s, c = optimal_ss_one(
            lam[i], lead_time[i], order_cost[i], holding_cost[i], backorder_cost[i]
        )
        out_s[i] = s
        out_big_s[i] = big_s
        out_cost[i] = c


# ------------------------------------------------------------------- order quantities
@jit
def order_quantities(
    position: np.ndarray,
    reorder_point: np.ndarray,
    order_up_to: np.ndarray,
    batch: np.ndarray,
    moq: np.ndarray,
    pack: np.ndarray,
    shelf_max: np.ndarray,
    out_qty: np.ndarray,
    out_flags: np.ndarray,
) -> None:
    """Purchase quantity per position.

    Nothing is ordered while ``position > reorder_point``. Otherwise the raw
    quantity is ``order_up_to - position`` when ``batch[i] == 0``, or the smallest
    multiple of ``batch[i]`` that lifts the position above ``reorder_point``
    ((s, Q) policies). It is then raised to ``moq``, rounded up to a multiple of
    ``pack`` and, when ``shelf_max[i] >= 0`` and ``position + qty`` exceeds it, cut
    to the largest multiple of ``pack`` that fits (or to 0 when that is below
    ``moq``).
    """
    for i in range(position.shape[0]):
        ip = position[i]
        flags = 0
        if ip > reorder_point[i]:
            out_qty[i] = 0
            out_flags[i] = 0
            continue
        if batch[i] > 0:
            qty = ((reorder_point[i] - ip) // batch[i] + 1) * batch[i]
        else:
            qty = order_up_to[i] - ip
        if qty < moq[i]:
            qty = moq[i]
            flags |= F_MOQ
        pk = pack[i]
        if pk > 1 and qty % pk != 0:
            qty = (qty // pk + 1) * pk
            flags |= F_PACK
        if shelf_max[i] >= 0 and ip + qty > shelf_max[i]:
            room = shelf_max[i] - ip
            fit = (room // pk) * pk if room > 0 else 0
            if fit <= 0 or fit < moq[i]:
                qty = 0
                flags |= F_SHELF_BLOCKED
            else:
                qty = fit
                flags |= F_SHELF_CAPPED
        out_qty[i] = qty
        out_flags[i] = flags


@jit
def greedy_budget(
    order: np.ndarray, cost: np.ndarray, budget: float, out_take: np.ndarray
) -> float:
    """Take lines in ``order`` while they fit the remaining budget; return the spend."""
    left = budget
    for r in range(order.shape[0]):
        i = order[r]
        if cost[i] <= left:
            out_take[i] = True
            left -= cost[i]
        else:
            out_take[i] = False
    return budget - left


# --------------------------------------------------------------------------- transfers
@jit
def candidate_arcs(
    sku_start: np.ndarray,
    src_pos: np.ndarray,
    src_ptr: np.ndarray,
    sink_pos: np.ndarray,
    sink_ptr: np.ndarray,
    location: np.ndarray,
    unit_cost: np.ndarray,
    benefit: np.ndarray,
    max_sources: int,
    out_src: np.ndarray,
    out_sink: np.ndarray,
) -> int:
    """Up to ``max_sources`` cheapest sources per sink, same SKU, cost < benefit.

    Sources of SKU group ``g`` are ``src_pos[src_ptr[g]:src_ptr[g + 1]]`` (indices
    into the positions), sinks likewise. ``out_src`` / ``out_sink`` receive indices
    into ``src_pos`` / ``sink_pos``; returns the number of arcs written.
    """
    n_arcs = 0
    for g in range(sku_start.shape[0]):
        a0, a1 = src_ptr[g], src_ptr[g + 1]
        b0, b1 = sink_ptr[g], sink_ptr[g + 1]
        if a0 == a1 or b0 == b1:
            continue
        costs = np.empty(a1 - a0)
        for b in range(b0, b1):
            dest = location[sink_pos[b]]
            for a in range(a0, a1):
                costs[a - a0] = unit_cost[location[src_pos[a]], dest]
            order = np.argsort(costs, kind="mergesort")
            taken = 0
            for r in range(order.shape[0]):
                if taken >= max_sources:
                    break
                a = order[r]
                if costs[a] >= benefit[b]:
                    break
                out_src[n_arcs] = a0 + a
                out_sink[n_arcs] = b
                n_arcs += 1
                taken += 1
    return n_arcs
