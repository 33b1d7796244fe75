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
    group_lo: int,
    group_hi: int,
    src_loc: np.ndarray,
    src_ptr: np.ndarray,
    sink_loc: np.ndarray,
    sink_ptr: np.ndarray,
    cost_to: np.ndarray,
    benefit: np.ndarray,
    max_sources: int,
    out_src: np.ndarray,
    out_sink: np.ndarray,
) -> int:
    """Up to ``max_sources`` cheapest sources per sink, same SKU, cost < benefit.

    Only SKU groups ``group_lo:group_hi`` are scanned. Sources of SKU group ``g``
    are ``src_ptr[g]:src_ptr[g + 1]``, at locations ``src_loc``; sinks likewise;
    ``benefit[b]`` belongs to sink ``b``.
    ``cost_to[d, o]`` is the money per unit moved from location ``o`` to ``d``
    (the transposed cost matrix, so one sink reads one contiguous row).
    ``max_sources <= 0`` keeps every source whose cost is below the benefit.
    ``out_src`` / ``out_sink`` receive source / sink indices,
    group by group, sink by sink, cheapest source first (ties: lower source
    index first); returns the number of arcs written.
    """
    n_arcs = 0
    width = 0
    for g in range(group_lo, group_hi):
        width = max(width, src_ptr[g + 1] - src_ptr[g])
    keep = width if max_sources <= 0 else min(width, max_sources)
    best_c = np.empty(keep + 1)
    best_a = np.empty(keep + 1, dtype=np.int64)
    for g in range(group_lo, group_hi):
        a0, a1 = src_ptr[g], src_ptr[g + 1]
        b0, b1 = sink_ptr[g], sink_ptr[g + 1]
        if a0 == a1 or b0 == b1:
            continue
        k = a1 - a0 if max_sources <= 0 else min(a1 - a0, max_sources)
        for b in range(b0, b1):
            row = sink_loc[b]
            limit = benefit[b]
            m = 0
            # Insertion into a sorted list of at most k: a new cost goes after equal
            # ones, so ties keep the lower source index.
            for a in range(a0, a1):
                c = cost_to[row, src_loc[a]]
                if c >= limit or (m == k and c >= best_c[m - 1]):
                    continue
                j = m if m < k else k - 1
                while j > 0 and best_c[j - 1] > c:
                    best_c[j] = best_c[j - 1]
                    best_a[j] = best_a[j - 1]
                    j -= 1
                best_c[j] = c
                best_a[j] = a
                if m < k:
                    m += 1
            for r in range(m):
                out_src[n_arcs] = best_a[r]
                out_sink[n_arcs] = b
                n_arcs += 1
    return n_arcs


@jit
def _heap_push(hd: np.ndarray, hv: np.ndarray, size: int, d: int, v: int) -> int:
    i = size
    hd[i] = d
    hv[i] = v
    while i > 0:
        p = (i - 1) >> 1
        if hd[p] <= hd[i]:
            break
        hd[p], hd[i] = hd[i], hd[p]
        hv[p], hv[i] = hv[i], hv[p]
        i = p
    return size + 1


@jit
def _heap_pop(hd: np.ndarray, hv: np.ndarray, size: int) -> int:
    size -= 1
    hd[0] = hd[size]
    hv[0] = hv[size]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and hd[c + 1] < hd[c]:
            c += 1
        if hd[i] <= hd[c]:
            break
        hd[c], hd[i] = hd[i], hd[c]
        hv[c], hv[i] = hv[i], hv[c]
        i = c
    return size


@jit
def transfer_flows(
    group_lo: int,
    group_hi: int,
    src_ptr: np.ndarray,
    sink_ptr: np.ndarray,
    arc_ptr: np.ndarray,
    arc_src: np.ndarray,
    arc_sink: np.ndarray,
    arc_cost: np.ndarray,
    supply: np.ndarray,
    need: np.ndarray,
    benefit: np.ndarray,
    out_flow: np.ndarray,
) -> int:
    """Exact min-cost transfers of SKU groups ``group_lo:group_hi``, one group at a time.

    Group ``g`` has sources ``src_ptr[g]:src_ptr[g + 1]`` (``supply``), sinks
    ``sink_ptr[g]:sink_ptr[g + 1]`` (``need``, ``benefit``) and arcs
    ``arc_ptr[g]:arc_ptr[g + 1]`` from ``arc_src`` to ``arc_sink`` (global source
    and sink indices, arcs sorted by sink) costing ``arc_cost`` per unit, with
    ``0 <= arc_cost < benefit``. All money is integer (scaled). Writes the units
    on every arc of those groups into ``out_flow`` and returns
    ``sum(arc_cost * flow) - sum(benefit * received)``.

    The problem is solved as a transportation problem with exact demands: sink
    ``j`` receives ``need[j]`` units, from sources at ``arc_cost`` or from a
    dummy source ``D`` at ``benefit[j]`` (a unit left short). Sinks are added one
    at a time and each is filled by successive shortest paths (Jonker-Volgenant
    / Hungarian style): a Dijkstra search *backwards* from the sink over the
    residual graph with reduced costs, stopping at the super source ``S`` that
    feeds every source with supply left and ``D``. Potentials are updated only on
    the nodes the search settled (``pi[v] += d(S) - d(v)``), so a search usually
    touches a handful of nodes. Every cost is >= 0 at the start, so zero
    potentials are feasible.
    """
    big = 2**61
    max_s = 1
    max_k = 1
    max_a = 1
    for g in range(group_lo, group_hi):
        max_s = max(max_s, src_ptr[g + 1] - src_ptr[g])
        max_k = max(max_k, sink_ptr[g + 1] - sink_ptr[g])
        max_a = max(max_a, arc_ptr[g + 1] - arc_ptr[g])
    max_n = max_s + max_k + 2
    pot = np.zeros(max_n, dtype=np.int64)
    dist = np.full(max_n, big, dtype=np.int64)
    settled = np.zeros(max_n, dtype=np.bool_)
    nxt = np.empty(max_n, dtype=np.int64)  # next node on the way to the sink
    via = np.empty(max_n, dtype=np.int64)  # arc used for that step (-1: none)
    touched = np.empty(max_n, dtype=np.int64)
    rem = np.empty(max_s, dtype=np.int64)  # supply left per source
    sink_arc = np.empty(max_k + 1, dtype=np.int64)  # arcs of a sink (sorted by sink)
    src_arc_ptr = np.empty(max_s + 1, dtype=np.int64)  # arcs of a source (CSR)
    src_arcs = np.empty(max_a, dtype=np.int64)
    hd = np.empty(max_n + 2 * max_a + 4 * max_k + 4, dtype=np.int64)
    hv = np.empty(hd.shape[0], dtype=np.int64)
    zero = np.int64(0)  # not a literal 0, which numba would compile _heap_push for apart
    total = 0
    for g in range(group_lo, group_hi):
        s0, s1 = src_ptr[g], src_ptr[g + 1]
        k0, k1 = sink_ptr[g], sink_ptr[g + 1]
        a0, a1 = arc_ptr[g], arc_ptr[g + 1]
        if a0 == a1:
            continue
        ns, nk = s1 - s0, k1 - k0
        node_d, node_s = ns + nk, ns + nk + 1  # the dummy source, the super source
        n = ns + nk + 2
        for v in range(n):
            pot[v] = 0
        for r in range(ns):
            rem[r] = supply[s0 + r]
            src_arc_ptr[r] = 0
        src_arc_ptr[ns] = 0
        for a in range(a0, a1):
            out_flow[a] = 0
            src_arc_ptr[arc_src[a] - s0 + 1] += 1
        for r in range(ns):
            src_arc_ptr[r + 1] += src_arc_ptr[r]
        for r in range(ns):
            touched[r] = src_arc_ptr[r]  # fill cursor
        for a in range(a0, a1):
            r = arc_src[a] - s0
            src_arcs[touched[r]] = a
            touched[r] += 1
        r = 0
        sink_arc[0] = a0
        for a in range(a0, a1):
            while arc_sink[a] - k0 > r:
                r += 1
                sink_arc[r] = a
        while r < nk:
            r += 1
            sink_arc[r] = a1
        for r in range(nk):
            j = ns + r
            left = need[k0 + r]
            if sink_arc[r] == sink_arc[r + 1]:
                continue  # no source is worth it: the sink stays short
            while left > 0:
                # backward Dijkstra from sink j to the super source
                m = 0
                dist[j] = 0
                touched[m] = j
                m += 1
                size = _heap_push(hd, hv, zero, zero, j)
                while size > 0:
                    d, v = hd[0], hv[0]
                    size = _heap_pop(hd, hv, size)
                    if settled[v] or d > dist[v]:
                        continue
                    settled[v] = True
                    if v == node_s:
                        break
                    if v >= ns and v < node_d:  # a sink: from its sources, or short
                        q = v - ns
                        for a in range(sink_arc[q], sink_arc[q + 1]):
                            u = arc_src[a] - s0
                            nd = d + arc_cost[a] + pot[u] - pot[v]
                            if nd < dist[u]:
                                if dist[u] == big:
                                    touched[m] = u
                                    m += 1
                                dist[u], nxt[u], via[u] = nd, v, a
                                size = _heap_push(hd, hv, size, nd, u)
                        u = node_d
                        nd = d + benefit[k0 + q] + pot[u] - pot[v]
                        if nd < dist[u]:
                            if dist[u] == big:
                                touched[m] = u
                                m += 1
                            dist[u], nxt[u], via[u] = nd, v, -1
                            size = _heap_push(hd, hv, size, nd, u)
                    elif v < ns:  # a source: from the sinks it ships to, or from S
                        for p in range(src_arc_ptr[v], src_arc_ptr[v + 1]):
                            a = src_arcs[p]
                            if out_flow[a] <= 0:
                                continue
                            u = ns + arc_sink[a] - k0
                            nd = d - arc_cost[a] + pot[u] - pot[v]
                            if nd < dist[u]:
                                if dist[u] == big:
                                    touched[m] = u
                                    m += 1
                                dist[u], nxt[u], via[u] = nd, v, a
                                size = _heap_push(hd, hv, size, nd, u)
                        if rem[v] > 0:
                            u = node_s
                            nd = d + pot[u] - pot[v]
                            if nd < dist[u]:
                                if dist[u] == big:
                                    touched[m] = u
                                    m += 1
                                dist[u], nxt[u], via[u] = nd, v, -1
                                size = _heap_push(hd, hv, size, nd, u)
                    else:  # the dummy: from S only. A path S ~> D through other
                        # nodes never beats S -> D in an optimal flow (no negative cycle).
                        u = node_s
                        nd = d + pot[u] - pot[v]
                        if nd < dist[u]:
                            if dist[u] == big:
                                touched[m] = u
                                m += 1
                            dist[u], nxt[u], via[u] = nd, v, -1
                            size = _heap_push(hd, hv, size, nd, u)
                # bottleneck along S -> start -> ... -> j
                start = nxt[node_s]
                push = left
                if start < ns and rem[start] < push:
                    push = rem[start]
                v = start
                while v != j:
                    w = nxt[v]
                    if v >= ns and v < node_d and out_flow[via[v]] < push:
                        push = out_flow[via[v]]  # a sink giving back units it had
                    v = w
                if start < ns:
                    rem[start] -= push
                v = start
                while v != j:
                    if v < ns:
                        out_flow[via[v]] += push
                    elif v < node_d:
                        out_flow[via[v]] -= push
                    v = nxt[v]
                left -= push
                dmax = dist[node_s]
                for t in range(m):
                    v = touched[t]
                    if settled[v]:
                        pot[v] += dmax - dist[v]
                    dist[v] = big
                    settled[v] = False
        for a in range(a0, a1):
            total += out_flow[a] * (arc_cost[a] - benefit[arc_sink[a]])
    return total
