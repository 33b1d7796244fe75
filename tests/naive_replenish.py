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
