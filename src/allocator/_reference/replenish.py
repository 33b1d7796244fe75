"""Slow, obvious pure-Python twins of the replenishment and forecast kernels."""

from __future__ import annotations

import math

import numpy as np


def moving_average(row: list[float], window: int) -> tuple[float, float]:
    w = row[-window:]
    mean = sum(w) / len(w)
    return mean, math.sqrt(sum((x - mean) ** 2 for x in w) / len(w))


def ses(row: list[float], alpha: float) -> tuple[float, float]:
    level = row[0]
    errs = []
    for x in row[1:]:
        errs.append(x - level)
        level = level + alpha * (x - level)
    return level, math.sqrt(sum(e * e for e in errs) / len(errs)) if errs else 0.0


def croston(row: list[float], alpha: float, beta: float, variant: str) -> tuple[float, float]:
    nz = [i for i, x in enumerate(row) if x > 0]
    if not nz:
        return 0.0, 0.0
    first = nz[0]
    z, p, q, since = row[first], first + 1.0, 1.0 / (first + 1.0), 1
    errs = []

    def fc() -> float:
        if variant == "tsb":
            return q * z
        if variant == "sba":
            return (1 - alpha / 2) * z / p
        return z / p

    for x in row[first + 1 :]:
        errs.append(x - fc())
        if variant == "tsb":
            if x > 0:
                z += alpha * (x - z)
            q += beta * ((1.0 if x > 0 else 0.0) - q)
        elif x > 0:
            z += alpha * (x - z)
            p += alpha * (since - p)
            since = 1
        else:
            since += 1
    mean = fc()
    std = math.sqrt(sum(e * e for e in errs) / len(errs)) if errs else math.sqrt(mean)
    return mean, std


def order_quantity(ip: int, s: int, big_s: int, batch: int, moq: int, pack: int, shelf: int) -> int:
    if ip > s:
        return 0
    if batch > 0:
        qty = batch
        while ip + qty <= s:
            qty += batch
    else:
        qty = big_s - ip
    qty = max(qty, moq)
    while qty % pack:
        qty += 1
    if shelf >= 0 and ip + qty > shelf:
        best = 0
        for cand in range(0, shelf - ip + 1):
            if cand % pack == 0 and cand >= moq and cand > 0:
                best = cand
        qty = best
    return qty


def _pmf(k: int, lam: float) -> float:
    return math.exp(-lam + k * math.log(lam) - math.lgamma(k + 1))


def ss_cost_markov(
    s: int, big_s: int, lam: float, lead: int, k: float, h: float, p: float
) -> float:
    """Average cost of (s, S) by the stationary law of a Markov chain (no renewal theory).

    State: inventory position after ordering, y in s+1..S. Next period's position
    is y - D; if it is <= s an order (cost k) lifts it to S.
    """
    mu = lam * (lead + 1)
    top = int(mu + 12 * math.sqrt(mu) + 40)
    pm = [_pmf(d, mu) for d in range(top)]

    def g(y: int) -> float:
        return sum(pm[d] * (h * max(y - d, 0) + p * max(d - y, 0)) for d in range(top))

    states = list(range(s + 1, big_s + 1))
    n = len(states)
    q1 = [_pmf(d, lam) for d in range(big_s - s + 1)]
    trans = np.zeros((n, n))
    order_prob = np.zeros(n)
    for i, y in enumerate(states):
        for j, z in enumerate(states):
            if z <= y:
                trans[i, j] += q1[y - z]
        order_prob[i] = 1.0 - sum(q1[: y - s])
        trans[i, n - 1] += order_prob[i]
    a = np.vstack([trans.T - np.eye(n), np.ones(n)])
    b = np.zeros(n + 1)
    b[-1] = 1.0
    pi = np.linalg.lstsq(a, b, rcond=None)[0]
    return float(sum(pi[i] * (g(y) + k * order_prob[i]) for i, y in enumerate(states)))


def optimal_ss_brute(
    lam: float, lead: int, k: float, h: float, p: float, lo: int, hi: int
) -> tuple[int, int, float]:
    """Best (s, S) with lo <= s < S <= hi by evaluating every pair."""
    best = (0, 0, math.inf)
    for s in range(lo, hi):
        for big_s in range(s + 1, hi + 1):
            c = ss_cost_markov(s, big_s, lam, lead, k, h, p)
            if c < best[2] - 1e-12:
                best = (s, big_s, c)
    return best


def candidate_arcs(
    sku: list[int],
    location: list[int],
    surplus: list[int],
    need: list[int],
    benefit: list[float],
    unit_cost: np.ndarray,
    max_sources: int | None,
) -> list[tuple[int, int]]:
    """(source row, sink row) pairs: per sink, its cheapest sources with cost < benefit.

    Sinks in order of (sku, row); per sink, sources by (cost, row); at most
    ``max_sources`` of them (all when ``None`` or 0).
    """
    arcs: list[tuple[int, int]] = []
    sinks = sorted((sku[j], j) for j in range(len(sku)) if need[j] > 0)
    for s, j in sinks:
        cands = sorted(
            (float(unit_cost[location[i], location[j]]), i)
            for i in range(len(sku))
            if sku[i] == s and surplus[i] > 0
        )
        cands = [(c, i) for c, i in cands if c < benefit[j]]
        if max_sources:
            cands = cands[:max_sources]
        arcs.extend((i, j) for _, i in cands)
    return arcs


def single_flow_transfers(
    sku: list[int],
    location: list[int],
    surplus: list[int],
    need: list[int],
    benefit: list[float],
    unit_cost: np.ndarray,
    max_sources: int | None,
    scale: int,
) -> tuple[int, dict[tuple[int, int], int]]:
    """Every SKU in ONE min-cost flow with one shared terminal, built arc by arc.

    Returns the optimal cost in integer cost units (money times ``scale``) and
    the flow per (source row, sink row).
    """
    from ortools.graph.python import min_cost_flow

    arcs = candidate_arcs(sku, location, surplus, need, benefit, unit_cost, max_sources)
    flow = min_cost_flow.SimpleMinCostFlow()
    n = len(sku)
    terminal = n  # node i is position row i; one terminal for everything
    handles = []
    for i, j in arcs:
        c = round(float(unit_cost[location[i], location[j]]) * scale)
        handles.append(flow.add_arc_with_capacity_and_unit_cost(i, j, min(surplus[i], need[j]), c))
    for j in {j for _, j in arcs}:
        flow.add_arc_with_capacity_and_unit_cost(j, terminal, need[j], -round(benefit[j] * scale))
    total = 0
    for i in {i for i, _ in arcs}:
        flow.add_arc_with_capacity_and_unit_cost(i, terminal, surplus[i], 0)
        flow.set_node_supply(i, surplus[i])
        total += surplus[i]
    if not arcs:
        return 0, {}
    flow.set_node_supply(terminal, -total)
    assert flow.solve() == flow.OPTIMAL
    return int(flow.optimal_cost()), {
        arc: int(flow.flow(h)) for arc, h in zip(arcs, handles, strict=True) if flow.flow(h)
    }


def lp_transfer_objective(
    sku: list[int],
    location: list[int],
    surplus: list[int],
    need: list[int],
    benefit: list[float],
    unit_cost: np.ndarray,
) -> float:
    """The transfer problem over every same-SKU pair as a plain LP (scipy HiGHS).

    ``min sum (c_ij - b_j) x_ij`` s.t. ``sum_j x_ij <= e_i``, ``sum_i x_ij <= n_j``,
    ``x >= 0`` (the LP of a transportation problem has an integral optimum).
    """
    from scipy.optimize import linprog

    pairs = [
        (i, j)
        for i in range(len(sku))
        for j in range(len(sku))
        if sku[i] == sku[j] and surplus[i] > 0 and need[j] > 0
    ]
    if not pairs:
        return 0.0
    c = [float(unit_cost[location[i], location[j]]) - benefit[j] for i, j in pairs]
    rows = sorted({i for i, _ in pairs}) + sorted({j for _, j in pairs})
    index = {("s", i): r for r, i in enumerate(sorted({i for i, _ in pairs}))}
    off = len(index)
    for r, j in enumerate(sorted({j for _, j in pairs})):
        index[("k", j)] = off + r
    a = np.zeros((len(rows), len(pairs)))
    bound = np.zeros(len(rows))
    for col, (i, j) in enumerate(pairs):
        a[index[("s", i)], col] = 1.0
        a[index[("k", j)], col] = 1.0
        bound[index[("s", i)]] = surplus[i]
        bound[index[("k", j)]] = need[j]
    res = linprog(c, A_ub=a, b_ub=bound, bounds=(0, None), method="highs")
    assert res.status == 0
    return float(res.fun)
