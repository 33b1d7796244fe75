"""Slow, obvious twin of ``allocator._kernels.channels.allocate``.

Floors first (channel order, as far as the stock goes), then one unit at a time to
the channel whose next unit is worth most (ties to the lowest channel index), while
that value is positive. The per-unit probability ``P(D > q)`` is the kernel's own
scalar function run as plain Python (``.py_func``), so both sides see the same bits;
``tests/test_channels.py`` checks those functions against scipy separately.
"""

from __future__ import annotations

import math

import numpy as np

from allocator._kernels import channels as K

_sf_normal = K.sf_normal.py_func
_sf_poisson = K.sf_poisson.py_func


def naive_sf(dist: int, q: int, mu: float, var: float) -> float:
    if dist == K.DIST_NORMAL:
        return float(_sf_normal(q, mu, math.sqrt(var)))
    return float(_sf_poisson(q, mu))


def naive_allocate(
    dist: int,
    mean: np.ndarray,
    var: np.ndarray,
    sellable: np.ndarray,
    reserved: np.ndarray,
    floor: np.ndarray,
    cap: np.ndarray,
    margin: np.ndarray,
    unsold: np.ndarray,
    row: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(alloc, sales, short)`` exactly as the kernel defines them."""
    npos, nchan = mean.shape
    alloc = np.zeros((npos, nchan), dtype=np.int64)
    sales = np.zeros((npos, nchan))
    short = np.zeros((npos, nchan), dtype=np.int64)
    for p in range(npos):
        left = int(sellable[p])
        r = int(row[p])
        q = [0] * nchan
        top = [0] * nchan
        for c in range(nchan):
            lo = max(0, int(floor[p, c]) - int(reserved[p, c]))
            top[c] = max(lo, int(cap[p, c]) - int(reserved[p, c]))
            give = min(lo, left)
            q[c] = give
            left -= give
            short[p, c] = lo - give
        while left > 0:
            best, best_value = -1, 0.0
            for c in range(nchan):
                if q[c] >= top[c]:
                    continue
                m, o = float(margin[r, c]), float(unsold[r, c])
                s = naive_sf(dist, q[c], float(mean[p, c]), float(var[p, c]))
                value = (m + o) * s - o
                if value > best_value:
                    best, best_value = c, value
            if best < 0:
                break
            q[best] += 1
            left -= 1
        for c in range(nchan):
            alloc[p, c] = q[c]
            total = 0.0
            for k in range(q[c]):
                total += naive_sf(dist, k, float(mean[p, c]), float(var[p, c]))
            sales[p, c] = total
    return alloc, sales, short
