"""Channel-split kernel: the exact marginal allocation of each position's sellable stock.

Demand of a channel over the horizon is integer-valued: Poisson, or a normal forecast
rounded to whole units (``D' = round(D)``, so ``P(D' > q) = 1 - Φ((q + 0.5 - μ)/σ)``).
The ``(q+1)``-th unit fenced for channel ``c`` sells with probability
``sf_c(q) = P(D_c > q)`` and so is worth

    v_c(q) = margin_c * sf_c(q) - unsold_c * (1 - sf_c(q))
           = (margin_c + unsold_c) * sf_c(q) - unsold_c,

which does not increase with ``q`` (expected sales ``E[min(D, q)] = Σ_{k<q} sf(k)``
are concave). Handing out units one at a time to the channel of largest ``v`` (ties to
the lowest channel index) while ``v > 0`` is therefore optimal; it is what
``allocator._reference.channels`` does. The kernel gets the same answer without walking unit
by unit when a position holds much stock: every unit worth more than a threshold ``T``
is certainly handed out before any unit worth ``<= T`` (the greedy is a merge of
non-increasing sequences), and the count of such units per channel comes from a closed
form inverse of ``sf`` (checked and corrected with exact evaluations). A bisection on
``T`` takes all but a few of the units this way; the last few are merged one by one,
which also settles ties exactly as the greedy does. With little stock the merge runs
unit by unit, on values evaluated ahead, independently of each other, from a closed
form estimate of how far each channel goes (:func:`_merge_ahead`), skipping units that
are certainly worth nothing.

Each value ``sf(q)`` is one evaluation of a closed form (``erfc`` for normal demand,
the regularised incomplete gamma function for Poisson demand), so it is exactly
monotone in ``q`` for the normal case and reproducible bit for bit between the
compiled kernel and the pure-Python twin (``sf_normal.py_func`` etc.).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
from numba import prange, types

from allocator._kernels import jit

DIST_NORMAL = 0
DIST_POISSON = 1

#: Up to this many remaining units a position is merged unit by unit.
SMALL = 32
#: Positions per parallel chunk (scratch arrays are allocated once per chunk).
CHUNK = 4096

_INV_SQRT2 = 0.7071067811865476
_HALF_LOG_2PI = 0.9189385332046728
#: ``log(n!)`` for ``n < 32``, exact to double precision.
_LOG_FACT = np.array([math.log(math.factorial(n)) for n in range(32)], dtype=np.float64)
_TINY = 1e-300


@jit
def log_factorial(n: int) -> float:
    """``log(n!)``: a table below 32, Stirling's series (error < 1e-16) above."""
    if n < 32:
        return _LOG_FACT[n]
    x = n + 1.0
    r = 1.0 / x
    r2 = r * r
    series = r * (1.0 / 12.0 - r2 * (1.0 / 360.0 - r2 * (1.0 / 1260.0 - r2 / 1680.0)))
    return (x - 0.5) * math.log(x) - x + _HALF_LOG_2PI + series


@jit
def sf_normal(q: int, mu: float, sd: float) -> float:
    """``P(round(D) > q)`` for ``D ~ N(mu, sd²)``: ``1 - Φ((q + 0.5 - mu) / sd)``."""
    if sd > 0.0:
        return 0.5 * math.erfc((q + 0.5 - mu) / sd * _INV_SQRT2)
    return 1.0 if q + 0.5 < mu else 0.0


@jit
def sf_poisson(q: int, lam: float) -> float:
    """``P(D > q)`` for ``D ~ Poisson(lam)``: the regularised lower gamma ``P(q + 1, lam)``.

    Series for ``lam < q + 2``, Lentz's continued fraction for the complement
    otherwise (Numerical Recipes, §6.2).
    """
    if lam <= 0.0:
        return 0.0
    a = q + 1.0
    log_front = -lam + a * math.log(lam) - log_factorial(q)
    if lam < a + 1.0:
        ap = a
        term = 1.0 / a
        total = term
        for _ in range(100000):
            ap += 1.0
            term *= lam / ap
            total += term
            if abs(term) < abs(total) * 1e-17:
                break
        return min(1.0, total * math.exp(log_front))
    fpmin = 1e-300
    b = lam + 1.0 - a
    c = 1.0 / fpmin
    d = 1.0 / b
    h = d
    for i in range(1, 100000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < fpmin:
            d = fpmin
        c = b + an / c
        if abs(c) < fpmin:
            c = fpmin
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return max(0.0, 1.0 - math.exp(log_front) * h)


@jit
def sf(dist: int, q: int, mu: float, sd: float) -> float:
    """``P(D > q)`` for the forecast distribution ``dist``."""
    if dist == DIST_NORMAL:
        return sf_normal(q, mu, sd)
    return sf_poisson(q, mu)


@jit
def upper_quantile(t: float) -> float:
    """``z`` with ``1 - Φ(z) = t`` (Acklam's approximation, relative error < 1.2e-9)."""
    if t >= 1.0:
        return -40.0
    if t < _TINY:
        return 38.5
    p = t  # lower-tail probability of -z
    if p < 0.02425:
        r = math.sqrt(-2.0 * math.log(p))
        x = (
            (
                (
                    ((-7.784894002430293e-03 * r - 3.223964580411365e-01) * r - 2.400758277161838)
                    * r
                    - 2.549732539343734
                )
                * r
                + 4.374664141464968
            )
            * r
            + 2.938163982698783
        ) / (
            (
                ((7.784695709041462e-03 * r + 3.224671290700398e-01) * r + 2.445134137142996) * r
                + 3.754408661907416
            )
            * r
            + 1.0
        )
    elif p <= 1.0 - 0.02425:
        s = p - 0.5
        r = s * s
        x = (
            (
                (
                    (
                        (
                            (-3.969683028665376e01 * r + 2.209460984245205e02) * r
                            - 2.759285104469687e02
                        )
                        * r
                        + 1.383577518672690e02
                    )
                    * r
                    - 3.066479806614716e01
                )
                * r
                + 2.506628277459239
            )
            * s
            / (
                (
                    (
                        (
                            (-5.447609879822406e01 * r + 1.615858368580409e02) * r
                            - 1.556989798598866e02
                        )
                        * r
                        + 6.680131188771972e01
                    )
                    * r
                    - 1.328068155288572e01
                )
                * r
                + 1.0
            )
        )
    else:
        r = math.sqrt(-2.0 * math.log(1.0 - p))
        x = -(
            (
                (
                    ((-7.784894002430293e-03 * r - 3.223964580411365e-01) * r - 2.400758277161838)
                    * r
                    - 2.549732539343734
                )
                * r
                + 4.374664141464968
            )
            * r
            + 2.938163982698783
        ) / (
            (
                ((7.784695709041462e-03 * r + 3.224671290700398e-01) * r + 2.445134137142996) * r
                + 3.754408661907416
            )
            * r
            + 1.0
        )
    return -x  # x = Φ^{-1}(t), so z = -x


@jit
def _value(dist: int, q: int, mu: float, sd: float, mo: float, o: float) -> float:
    return mo * sf(dist, q, mu, sd) - o


@jit
def _guess(threshold: float, lo: int, hi: int, mu: float, gsd: float, mo: float, o: float) -> int:
    """Approximate number of units (from ``lo``, capped at ``hi``) worth more than ``threshold``.

    Uses the normal closed form (Poisson demand through its normal approximation).
    """
    if mo <= 0.0:
        return lo
    t = (threshold + o) / mo
    if t >= 1.0:
        return lo
    x = mu - 0.5 + gsd * upper_quantile(t)
    if x <= lo:
        return lo
    if x >= hi:
        return hi
    return math.ceil(x)


@jit
def first_drop(
    dist: int,
    threshold: float,
    lo: int,
    hi: int,
    guess: int,
    mu: float,
    sd: float,
    mo: float,
    o: float,
) -> int:
    """Smallest ``q`` in ``[lo, hi)`` with ``v(q) <= threshold``, or ``hi`` if none.

    ``v`` does not increase, so a galloping search from ``guess`` finds it with
    ``O(log |guess - answer|)`` exact evaluations.
    """
    if lo >= hi:
        return lo
    g = min(max(guess, lo), hi)
    if g == hi or _value(dist, g, mu, sd, mo, o) <= threshold:
        # answer in [lo, g] (``hi`` itself stands for "none")
        top = g
        step = 1
        while True:
            b = top - step
            if b < lo:
                bottom = lo - 1
                break
            if _value(dist, b, mu, sd, mo, o) > threshold:
                bottom = b
                break
            top = b
            step *= 2
    else:
        bottom = g
        step = 1
        while True:
            a = bottom + step
            if a >= hi:
                top = hi
                break
            if _value(dist, a, mu, sd, mo, o) <= threshold:
                top = a
                break
            bottom = a
            step *= 2
    # v(bottom) > threshold (or bottom == lo - 1); v(top) <= threshold (or top == hi)
    while top - bottom > 1:
        mid = bottom + (top - bottom) // 2
        if _value(dist, mid, mu, sd, mo, o) <= threshold:
            top = mid
        else:
            bottom = mid
    return top


@jit
def range_sales(dist: int, a: int, b: int, mu: float, sd: float, acc: float) -> float:
    """``acc + Σ_{a <= k < b} sf(k)``, summed in order, skipping the leading exact ones
    and the trailing exact zeros (so the cost is the width of the uncertain window)."""
    if a >= b:
        return acc
    s = sf(dist, a, mu, sd)
    if s < 1.0:
        if s == 0.0:
            return acc
        acc += s
        a += 1
    else:
        # first k in [a, b) with sf(k) < 1; every earlier term is exactly 1.0
        bottom = a
        step = 1
        while True:
            top = bottom + step
            if top >= b:
                top = b
                break
            if sf(dist, top, mu, sd) < 1.0:
                break
            bottom = top
            step *= 2
        while top - bottom > 1:
            mid = bottom + (top - bottom) // 2
            if sf(dist, mid, mu, sd) < 1.0:
                top = mid
            else:
                bottom = mid
        acc += float(top - a)
        a = top
    for k in range(a, b):
        s = sf(dist, k, mu, sd)
        if s == 0.0:
            break
        acc += s
    return acc


@jit(inline="always")
def _merge(
    dist: int,
    units: int,
    nchan: int,
    q: np.ndarray,
    hi: np.ndarray,
    mu: np.ndarray,
    sd: np.ndarray,
    mo: np.ndarray,
    o: np.ndarray,
    sales: np.ndarray,
    head_sf: np.ndarray,
    head_v: np.ndarray,
) -> None:
    """Hand out up to ``units`` units one at a time to the best head (ties: lowest c)."""
    for c in range(nchan):
        if q[c] < hi[c]:
            s = sf(dist, q[c], mu[c], sd[c])
            head_sf[c] = s
            head_v[c] = mo[c] * s - o[c]
        else:
            head_v[c] = -np.inf
    while units > 0:
        best = -1
        best_v = 0.0
        for c in range(nchan):
            if head_v[c] > best_v:
                best_v = head_v[c]
                best = c
        if best < 0:
            return
        sales[best] += head_sf[best]
        q[best] += 1
        units -= 1
        if units == 0:
            return
        if q[best] < hi[best]:
            s = sf(dist, q[best], mu[best], sd[best])
            head_sf[best] = s
            head_v[best] = mo[best] * s - o[best]
        else:
            head_v[best] = -np.inf


@jit(inline="always")
def _merge_ahead(
    dist: int,
    units: int,
    nchan: int,
    q: np.ndarray,
    hi: np.ndarray,
    mu: np.ndarray,
    sd: np.ndarray,
    gsd: np.ndarray,
    z: np.ndarray,
    mo: np.ndarray,
    o: np.ndarray,
    sales: np.ndarray,
    start: np.ndarray,
    count: np.ndarray,
    positive: np.ndarray,
    end: np.ndarray,
    run_sales: np.ndarray,
    ahead: np.ndarray,
    head_sf: np.ndarray,
    head_v: np.ndarray,
) -> None:
    """:func:`_merge` for ``1 <= units <= SMALL``, same result bit for bit, with the
    values it needs evaluated up front and none it can do without.

    In :func:`_merge` each step waits for the ``erfc`` of the previous winner's next
    unit. Here each channel's values ``sf(k)``, from its floor up to its newsvendor
    quantity (estimated from the closed form ``x = mu - 0.5 + sd * z`` with
    ``z = Φ⁻¹(1 - h/(m + h))`` from :func:`upper_quantile`), capped by the stock and the
    cap, are evaluated first, independent of each other, so the CPU overlaps them; the
    merge then reads them and evaluates only what the estimate missed.

    Normal demand also tells which units are certainly worth ``<= 0`` without
    evaluating them: every ``k >= x + δ`` (with ``δ`` well above the error of ``z``
    and of the arithmetic), when ``-4 <= z <= 8`` so that the margin in ``sf`` is far
    above its rounding error. The greedy never hands out such a unit, so it is never
    evaluated (``end``). When every channel's run of positive values is known and the
    runs fit in ``units``, the greedy takes all of them: their values, summed per
    channel in order, are the expected sales, and no merge is needed.
    """
    stride = SMALL
    total = 0
    closed = True
    for c in range(nchan):
        q_c = q[c]
        start[c] = q_c
        lim = min(hi[c], q_c + units)
        end_c = hi[c]
        if mo[c] <= o[c]:
            end_c = q_c  # m <= 0: no unit is worth more than 0
        x = mu[c] - 0.5 + gsd[c] * z[c]
        if dist == DIST_NORMAL and sd[c] > 0.0 and -4.0 <= z[c] <= 8.0:
            delta = 1e-7 * (1.0 + abs(mu[c]) + sd[c] * (1.0 + abs(z[c])))
            end_c = min(end_c, max(q_c, math.ceil(x + delta)))
            stop = min(lim, end_c)
        elif x >= lim - 1:
            stop = min(lim, end_c)
        elif x <= q_c:
            stop = min(q_c + 1, lim, end_c)
        else:
            stop = min(lim, end_c, math.ceil(x) + 1)
        stop = max(stop, q_c)
        end[c] = end_c
        count[c] = stop - q_c
        # The values, how many lead with v > 0 (v never increases, so those come
        # first) and the sum of those, in order; no branch depends on a value.
        mu_c = mu[c]
        sd_c = sd[c]
        mo_c = mo[c]
        o_c = o[c]
        base = c * stride - q_c
        n_pos = 0
        acc = sales[c]
        for k in range(q_c, stop):
            s = sf(dist, k, mu_c, sd_c)
            ahead[base + k] = s
            keep = mo_c * s - o_c > 0.0
            n_pos += keep
            acc += s if keep else 0.0
        positive[c] = n_pos
        run_sales[c] = acc
        total += n_pos
        # The run is known if a value <= 0 ends it, or the limit, or ``end`` does.
        if n_pos == stop - q_c and stop < min(lim, end_c):
            closed = False
    if closed and total <= units:
        for c in range(nchan):
            sales[c] = run_sales[c]
            q[c] += positive[c]
        return
    for c in range(nchan):
        if q[c] >= end[c]:
            head_v[c] = -np.inf
        else:
            if count[c] > 0:
                s = ahead[c * stride]
            else:
                s = sf(dist, q[c], mu[c], sd[c])
            head_sf[c] = s
            head_v[c] = mo[c] * s - o[c]
    while units > 0:
        best = -1
        best_v = 0.0
        for c in range(nchan):
            if head_v[c] > best_v:
                best_v = head_v[c]
                best = c
        if best < 0:
            return
        sales[best] += head_sf[best]
        q[best] += 1
        units -= 1
        if units == 0:
            return
        if q[best] < end[best]:
            j = q[best] - start[best]
            if j < count[best]:
                s = ahead[best * stride + j]
            else:
                s = sf(dist, q[best], mu[best], sd[best])
            head_sf[best] = s
            head_v[best] = mo[best] * s - o[best]
        else:
            head_v[best] = -np.inf


@jit(inline="always")
def _position(
    dist: int,
    units: int,
    nchan: int,
    q: np.ndarray,
    hi: np.ndarray,
    mu: np.ndarray,
    sd: np.ndarray,
    gsd: np.ndarray,
    z: np.ndarray,
    mo: np.ndarray,
    o: np.ndarray,
    sales: np.ndarray,
    n: np.ndarray,
    best: np.ndarray,
    positive: np.ndarray,
    end: np.ndarray,
    run_sales: np.ndarray,
    ahead: np.ndarray,
    head_sf: np.ndarray,
    head_v: np.ndarray,
) -> None:
    """Allocate ``units`` sellable units above the floors already in ``q`` (in place)."""
    if units <= 0:
        return
    if units <= SMALL:
        # n and best double as the start and count of the values evaluated ahead
        _merge_ahead(
            dist,
            units,
            nchan,
            q,
            hi,
            mu,
            sd,
            gsd,
            z,
            mo,
            o,
            sales,
            n,
            best,
            positive,
            end,
            run_sales,
            ahead,
            head_sf,
            head_v,
        )
        return
    # Every unit of positive value, if there is stock for all of them.
    total = 0
    for c in range(nchan):
        g = _guess(0.0, q[c], hi[c], mu[c], gsd[c], mo[c], o[c])
        n[c] = first_drop(dist, 0.0, q[c], hi[c], g, mu[c], sd[c], mo[c], o[c])
        total += n[c] - q[c]
    if total <= units:
        for c in range(nchan):
            sales[c] = range_sales(dist, q[c], n[c], mu[c], sd[c], sales[c])
            q[c] = n[c]
        return
    if True:
        # Bisection on the threshold T (log scale): all units worth > T go first.
        t_max = 0.0
        for c in range(nchan):
            if mo[c] - o[c] > t_max:
                t_max = mo[c] - o[c]
        lo_u = math.log(_TINY)
        hi_u = math.log(t_max)
        cand = t_max
        for _ in range(80):
            mid = 0.5 * (lo_u + hi_u)
            t = math.exp(mid)
            approx = 0
            for c in range(nchan):
                approx += _guess(t, q[c], hi[c], mu[c], gsd[c], mo[c], o[c]) - q[c]
            if approx <= units:
                hi_u = mid
                cand = t
                if units - approx <= SMALL // 2:
                    break
            else:
                lo_u = mid
        # Exact counts at the candidate; bisect on exact counts until they fit.
        # best[] holds the last counts known to fit (at first: none above the floors,
        # which fits since no unit is worth more than t_max).
        for c in range(nchan):
            best[c] = q[c]
        best_total = 0
        feas_u = math.log(t_max)
        infeas_u = math.log(_TINY)
        t = cand
        for _ in range(80):
            total = 0
            for c in range(nchan):
                g = _guess(t, q[c], hi[c], mu[c], gsd[c], mo[c], o[c])
                n[c] = first_drop(dist, t, q[c], hi[c], g, mu[c], sd[c], mo[c], o[c])
                total += n[c] - q[c]
            if total <= units:
                for c in range(nchan):
                    best[c] = n[c]
                best_total = total
                if units - total <= SMALL:
                    break
                feas_u = math.log(t)
            else:
                infeas_u = math.log(t)
            if feas_u - infeas_u < 1e-12:
                break
            t = math.exp(0.5 * (infeas_u + feas_u))
        for c in range(nchan):
            sales[c] = range_sales(dist, q[c], best[c], mu[c], sd[c], sales[c])
            q[c] = best[c]
        units -= best_total
    _merge(dist, units, nchan, q, hi, mu, sd, mo, o, sales, head_sf, head_v)


def num_chunks(npos: int) -> int:
    """Rows of the ``totals_out`` and ``counts_out`` arrays :func:`allocate` needs."""
    return max(1, (npos + CHUNK - 1) // CHUNK)


#: Rows of ``totals_out[chunk]`` (each a per-channel sum over the chunk's positions).
T_ALLOCATED = 0
T_SALES = 1
T_DEMAND = 2
T_MARGIN = 3
T_UNSOLD = 4
T_SHORT = 5
NUM_TOTALS = 6
#: Columns of ``counts_out[chunk]``.
N_SELLABLE = 0
N_SHORT_POSITIONS = 1
N_RESERVED_POSITIONS = 2
N_SAFETY_VARIES = 3
N_CAP_VARIES = 4
N_FLOOR_ABOVE_CAP = 5
NUM_COUNTS = 6


@jit
def share_caps(
    units: np.ndarray,
    share: np.ndarray,
    on_hand: np.ndarray,
    current: np.ndarray,
    stock_max: int,
    out: np.ndarray,
) -> None:
    """Absolute caps into ``out`` (P, C).

    ``floor(share * on_hand)`` where a share is given (not NaN), else ``units`` (at
    most ``stock_max``), else (``units < 0``) the ledger's ``current`` cap. ``units``
    and ``share`` have one row (for every position) or P rows.
    """
    npos, nchan = out.shape
    unit_rows = units.shape[0] > 1
    share_rows = share.shape[0] > 1
    for p in range(npos):
        pu = p if unit_rows else 0
        ps = p if share_rows else 0
        for c in range(nchan):
            f = share[ps, c]
            if f == f:
                out[p, c] = np.int64(math.floor(f * np.float64(on_hand[p])))
            elif units[pu, c] < 0:
                out[p, c] = current[p, c]
            else:
                out[p, c] = min(units[pu, c], stock_max)


def allocate(
    dist: int,
    mean: np.ndarray,
    var: np.ndarray,
    on_hand: np.ndarray,
    safety: np.ndarray,
    reserved: np.ndarray,
    floor: np.ndarray,
    cap: np.ndarray,
    margin: np.ndarray,
    unsold: np.ndarray,
    row: np.ndarray,
    fence_out: np.ndarray,
    sellable_out: np.ndarray,
    alloc_out: np.ndarray,
    sales_out: np.ndarray,
    short_out: np.ndarray,
    totals_out: np.ndarray,
    counts_out: np.ndarray,
) -> None:
    """Allocate every position's sellable stock over the channels.

    Parameters
    ----------
    dist
        ``DIST_NORMAL`` or ``DIST_POISSON``.
    mean, var
        ``(P, C)`` demand mean and variance over the horizon (``var`` unused for Poisson).
    on_hand, safety
        ``(P,)`` on-hand units and safety stock.
    reserved, floor, cap
        ``(P, C)`` reserved units, fence floors and caps (caps >= floors). A channel's
        new units ``q`` satisfy ``floor - reserved <= q <= cap - reserved`` (and >= 0).
    margin, unsold
        ``(R, C)`` tables; position ``p`` uses row ``row[p]``.
    fence_out
        ``(P, C)`` output: the fence ``reserved + q`` per channel.
    sellable_out, alloc_out, sales_out, short_out
        Per-position detail, written only when ``alloc_out`` has ``P`` rows (pass
        arrays with 0 rows to skip all four): ``(P,)`` sellable units
        ``max(0, on_hand - Σ reserved - safety)``; ``(P, C)`` new units ``q``,
        expected sales ``Σ_{k<q} sf(k)`` and floor units the stock could not cover.
    totals_out
        ``(num_chunks(P), NUM_TOTALS, C)`` output: per chunk of ``CHUNK`` positions
        and per channel, the sums of new units, expected sales, mean demand, expected
        sales times margin, expected unsold units times unsold cost and floor
        shortfall (rows ``T_*``).
    counts_out
        ``(num_chunks(P), NUM_COUNTS)`` int64 output: per chunk, the sellable units,
        the positions short of a floor, holding reserved units, whose safety stock
        differs from position 0's, and whose caps differ from position 0's, and the
        flat index ``p * C + c`` of the chunk's first floor above its cap, or -1
        (columns ``N_*``; the caller checks that last one before using anything).
        The caller sums the chunks in order, so no total depends on the thread count.

    Notes
    -----
    The work is done by ``_allocate`` (parallel over chunks of positions). It is
    compiled for one signature only, every array of layout ``A`` and the inputs
    read-only (:data:`SIGNATURE`), and then closed to new ones: the inputs come in
    many layouts (the ledger's columns are read-only strided views, other arrays
    contiguous, broadcast, writable or not), and numba converts them all to that one
    compiled version instead of compiling one each. Arrays of other dtypes raise
    ``TypeError``. It is called from Python only: a jitted caller loaded from
    numba's cache would not start the thread pool it needs.
    """
    _compiled()(
        dist,
        mean,
        var,
        on_hand,
        safety,
        reserved,
        floor,
        cap,
        margin,
        unsold,
        row,
        fence_out,
        sellable_out,
        alloc_out,
        sales_out,
        short_out,
        totals_out,
        counts_out,
    )


def _array(dtype: Any, ndim: int, readonly: bool = False) -> Any:
    return types.Array(dtype, ndim, "A", readonly=readonly)


#: The one signature ``_allocate`` is compiled for.
SIGNATURE = (
    types.int64,  # dist
    *(_array(types.float64, 2, True) for _ in range(2)),  # mean, var
    *(_array(types.int64, 1, True) for _ in range(2)),  # on_hand, safety
    *(_array(types.int64, 2, True) for _ in range(3)),  # reserved, floor, cap
    *(_array(types.float64, 2, True) for _ in range(2)),  # margin, unsold
    _array(types.int64, 1, True),  # row
    _array(types.int64, 2),  # fence_out
    _array(types.int64, 1),  # sellable_out
    _array(types.int64, 2),  # alloc_out
    _array(types.float64, 2),  # sales_out
    _array(types.int64, 2),  # short_out
    _array(types.float64, 3),  # totals_out
    _array(types.int64, 2),  # counts_out
)

_READY = threading.Event()


def _compiled() -> Any:
    """``_allocate``, compiled (or loaded from the cache) for :data:`SIGNATURE` only."""
    if not _READY.is_set():
        _allocate.compile(SIGNATURE)
        _allocate.disable_compile()
        _READY.set()
    return _allocate


@jit(parallel=True)
def _allocate(
    dist: int,
    mean: np.ndarray,
    var: np.ndarray,
    on_hand: np.ndarray,
    safety: np.ndarray,
    reserved: np.ndarray,
    floor: np.ndarray,
    cap: np.ndarray,
    margin: np.ndarray,
    unsold: np.ndarray,
    row: np.ndarray,
    fence_out: np.ndarray,
    sellable_out: np.ndarray,
    alloc_out: np.ndarray,
    sales_out: np.ndarray,
    short_out: np.ndarray,
    totals_out: np.ndarray,
    counts_out: np.ndarray,
) -> None:
    """The body of :func:`allocate`, on arrays of layout ``A``."""
    npos = on_hand.shape[0]
    nchan = mean.shape[1]
    nchunks = (npos + CHUNK - 1) // CHUNK
    detail = alloc_out.shape[0] > 0
    zero = np.int64(0)  # not a literal 0, which numba would compile range_sales for apart
    # z of the newsvendor fractile per (row, channel), for the estimates of _merge_ahead
    nrow = margin.shape[0]
    z_tab = np.zeros((nrow, nchan))
    for r in range(nrow):
        for c in range(nchan):
            mo_rc = margin[r, c] + unsold[r, c]
            if mo_rc > unsold[r, c]:
                z_tab[r, c] = upper_quantile(unsold[r, c] / mo_rc)
    for chunk in prange(nchunks):
        q = np.empty(nchan, dtype=np.int64)
        hi = np.empty(nchan, dtype=np.int64)
        n = np.empty(nchan, dtype=np.int64)
        best = np.empty(nchan, dtype=np.int64)
        positive = np.empty(nchan, dtype=np.int64)
        end = np.empty(nchan, dtype=np.int64)
        run_sales = np.empty(nchan)
        mu = np.empty(nchan)
        sd = np.empty(nchan)
        gsd = np.empty(nchan)
        z = np.empty(nchan)
        mo = np.empty(nchan)
        o = np.empty(nchan)
        sales = np.empty(nchan)
        head_sf = np.empty(nchan)
        head_v = np.empty(nchan)
        ahead = np.empty(nchan * SMALL)
        tot = np.zeros((NUM_TOTALS, nchan))
        n_sellable = 0
        n_short = 0
        n_reserved = 0
        n_safety = 0
        n_cap = 0
        first_bad = -1
        start = chunk * CHUNK
        stop = min(npos, start + CHUNK)
        for p in range(start, stop):
            units = on_hand[p] - safety[p]
            any_reserved = False
            for c in range(nchan):
                units -= reserved[p, c]
                if reserved[p, c] != 0:
                    any_reserved = True
            units = max(units, 0)
            if any_reserved:
                n_reserved += 1
            if safety[p] != safety[0]:
                n_safety += 1
            n_sellable += units
            if detail:
                sellable_out[p] = units
            r = row[p]
            short = False
            cap_varies = False
            for c in range(nchan):
                m_c = mean[p, c]
                mu[c] = m_c
                if dist == DIST_NORMAL:
                    sd[c] = math.sqrt(var[p, c])
                    gsd[c] = sd[c]
                else:
                    sd[c] = 0.0
                    gsd[c] = math.sqrt(m_c)
                z[c] = z_tab[r, c]
                o[c] = unsold[r, c]
                mo[c] = margin[r, c] + o[c]
                res = reserved[p, c]
                if cap[p, c] != cap[0, c]:
                    cap_varies = True
                if floor[p, c] > cap[p, c] and first_bad < 0:
                    first_bad = p * nchan + c
                lo = max(0, floor[p, c] - res)
                hi[c] = max(lo, cap[p, c] - res)
                give = min(lo, units)
                units -= give
                q[c] = give
                if lo > give:
                    short = True
                    tot[T_SHORT, c] += lo - give
                if detail:
                    short_out[p, c] = lo - give
                sales[c] = range_sales(dist, zero, give, mu[c], sd[c], 0.0)
            if short:
                n_short += 1
            if cap_varies:
                n_cap += 1
            _position(
                dist,
                units,
                nchan,
                q,
                hi,
                mu,
                sd,
                gsd,
                z,
                mo,
                o,
                sales,
                n,
                best,
                positive,
                end,
                run_sales,
                ahead,
                head_sf,
                head_v,
            )
            for c in range(nchan):
                fence_out[p, c] = reserved[p, c] + q[c]
                tot[T_ALLOCATED, c] += q[c]
                tot[T_SALES, c] += sales[c]
                tot[T_DEMAND, c] += mu[c]
                tot[T_MARGIN, c] += sales[c] * margin[r, c]
                tot[T_UNSOLD, c] += (q[c] - sales[c]) * o[c]
                if detail:
                    alloc_out[p, c] = q[c]
                    sales_out[p, c] = sales[c]
        for k in range(NUM_TOTALS):
            for c in range(nchan):
                totals_out[chunk, k, c] = tot[k, c]
        counts_out[chunk, N_SELLABLE] = n_sellable
        counts_out[chunk, N_SHORT_POSITIONS] = n_short
        counts_out[chunk, N_RESERVED_POSITIONS] = n_reserved
        counts_out[chunk, N_SAFETY_VARIES] = n_safety
        counts_out[chunk, N_CAP_VARIES] = n_cap
        counts_out[chunk, N_FLOOR_ABOVE_CAP] = first_bad
