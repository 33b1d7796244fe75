"""Forecast kernels over a ``(num_positions, num_periods)`` history.

Each kernel writes the per-period forecast mean and standard deviation of every
row into caller-allocated ``out_mean`` / ``out_std``. The standard deviation is the
root mean squared one-step-ahead error over the history (after the first period),
the usual stand-in for forecast error in replenishment systems.
"""

from __future__ import annotations

import numpy as np

from allocator._kernels import jit


@jit
def moving_average(
    history: np.ndarray, window: int, out_mean: np.ndarray, out_std: np.ndarray
) -> None:
    """Mean and standard deviation (ddof=0) of the last ``window`` periods of each row."""
    n, t = history.shape
    w = min(window, t)
    for i in range(n):
        total = 0.0
        for j in range(t - w, t):
            total += history[i, j]
        mean = total / w
        ss = 0.0
        for j in range(t - w, t):
            d = history[i, j] - mean
            ss += d * d
        out_mean[i] = mean
        out_std[i] = np.sqrt(ss / w)


@jit
def exponential_smoothing(
    history: np.ndarray, alpha: float, out_mean: np.ndarray, out_std: np.ndarray
) -> None:
    """Simple exponential smoothing, level started at the first observation."""
    n, t = history.shape
    for i in range(n):
        level = history[i, 0]
        sse = 0.0
        for j in range(1, t):
            err = history[i, j] - level
            sse += err * err
            level += alpha * err
        out_mean[i] = level
        out_std[i] = np.sqrt(sse / (t - 1)) if t > 1 else 0.0


@jit
def croston(
    history: np.ndarray,
    alpha: float,
    beta: float,
    variant: int,
    out_mean: np.ndarray,
    out_std: np.ndarray,
) -> None:
    """Croston's method (variant 0), SBA (1) or TSB (2) for intermittent demand.

    Croston and SBA smooth the nonzero demand size ``z`` and the interval ``p``
    between nonzero demands, both only when a demand occurs; the forecast is
    ``z / p`` (times ``1 - alpha / 2`` for SBA). TSB smooths ``z`` on demand and the
    demand probability ``q`` every period (with ``beta``); the forecast is ``q z``.
    Rows without any demand forecast 0.
    """
    n, t = history.shape
    for i in range(n):
        # Initialise from the first nonzero demand.
        first = -1
        for j in range(t):
            if history[i, j] > 0:
                first = j
                break
        if first < 0:
            out_mean[i] = 0.0
            out_std[i] = 0.0
            continue
        z = history[i, first]
        p = float(first + 1)
        q = 1.0 / p
        since = 1
        sse = 0.0
        count = 0
        for j in range(first + 1, t):
            if variant == 2:
                fc = q * z
            elif variant == 1:
                fc = (1.0 - 0.5 * alpha) * z / p
            else:
                fc = z / p
            err = history[i, j] - fc
            sse += err * err
            count += 1
            d = history[i, j]
            if variant == 2:
                if d > 0:
                    z += alpha * (d - z)
                    q += beta * (1.0 - q)
                else:
                    q -= beta * q
            else:
                if d > 0:
                    z += alpha * (d - z)
                    p += alpha * (since - p)
                    since = 1
                else:
                    since += 1
        if variant == 2:
            out_mean[i] = q * z
        elif variant == 1:
            out_mean[i] = (1.0 - 0.5 * alpha) * z / p
        else:
            out_mean[i] = z / p
        if count > 0:
            out_std[i] = np.sqrt(sse / count)
        else:
            # One observation only: fall back to the Poisson-like spread of the rate.
            out_std[i] = np.sqrt(out_mean[i])
