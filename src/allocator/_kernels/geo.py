"""Great-circle distance: the one home of the Earth radius and the haversine formula.

``d = 2 R asin(sqrt(sin²(Δφ/2) + cos φ1 cos φ2 sin²(Δλ/2)))`` with the mean Earth
radius ``R`` (:data:`EARTH_RADIUS_KM`), degrees in. Scalar code calls
:func:`haversine_km`; array code calls :func:`haversine_many` or
:func:`pairwise_km`, which loop over it.
"""

from __future__ import annotations

import math

import numpy as np

from allocator._kernels import jit

#: Mean Earth radius in km (IUGG).
EARTH_RADIUS_KM = 6371.0088
#: Radians per degree.
DEG = math.pi / 180.0


@jit
def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in degrees."""
    p1 = lat1 * DEG
    p2 = lat2 * DEG
    sp = math.sin((p2 - p1) * 0.5)
    sl = math.sin((lon2 - lon1) * DEG * 0.5)
    a = sp * sp + math.cos(p1) * math.cos(p2) * sl * sl
    if a > 1.0:
        a = 1.0
    return 2.0 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


@jit
def haversine_many(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray, out: np.ndarray
) -> None:
    """``out[i]`` = :func:`haversine_km` of point ``i`` of each side (1-D, same length)."""
    for i in range(out.shape[0]):
        out[i] = haversine_km(lat1[i], lon1[i], lat2[i], lon2[i])


@jit
def pairwise_km(lat: np.ndarray, lon: np.ndarray, out: np.ndarray) -> None:
    """``out[i, j]`` = :func:`haversine_km` between points ``i`` and ``j``."""
    n = lat.shape[0]
    for i in range(n):
        out[i, i] = 0.0
        for j in range(i + 1, n):
            d = haversine_km(lat[i], lon[i], lat[j], lon[j])
            out[i, j] = d
            out[j, i] = d
