"""Demand forecasts from daily sales history, vectorised over positions.

Every function takes a ``(num_positions, num_periods)`` history (oldest period
first) and returns a :class:`Forecast`: the expected demand per period and the
standard deviation of the one-period forecast error, per position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from allocator._kernels import forecast as K
from allocator._validate import as_float64, first_true, readonly
from allocator.exceptions import DTypeError, ValidationError

__all__ = [
    "Forecast",
    "croston",
    "exponential_smoothing",
    "forecast",
    "moving_average",
]


@dataclass(frozen=True, eq=False)
class Forecast:
    """Demand per period per position.

    Attributes
    ----------
    mean
        Expected demand per period (float64, >= 0).
    std
        Standard deviation of demand (forecast error) per period (float64, >= 0).
    method
        How it was made (``"given"`` when built directly).
    """

    mean: np.ndarray
    std: np.ndarray
    method: str = "given"

    def __post_init__(self) -> None:
        mean = as_float64(self.mean, "forecast.mean", lo=0.0)
        std = as_float64(self.std, "forecast.std", size=mean.shape[0], lo=0.0)
        object.__setattr__(self, "mean", readonly(mean))
        object.__setattr__(self, "std", readonly(std))

    def __len__(self) -> int:
        return int(self.mean.shape[0])

    def summary(self) -> str:
        """One line: size, method and mean demand."""
        total = float(self.mean.sum())
        return f"Forecast({self.method}): {len(self)} positions, {total:,.1f} units/period in all"


def check_history(history: Any, field: str = "demand", *, compact: bool = False) -> np.ndarray:
    """Validate a sales history: 2-D, numeric, finite, non-negative; return float64.

    With ``compact=True`` the values come back in the smallest dtype that holds
    them exactly (``uint8`` ... ``uint32`` for whole units, else float64), for
    handing a history to other processes; the forecasts convert it back exactly.

    Raises :class:`~allocator.exceptions.ValidationError` naming the first bad row.
    """
    arr = np.asarray(history)
    if arr.dtype == object or arr.dtype.kind not in "iuf" or arr.dtype.kind == "b":
        raise DTypeError(f"expected numbers, got dtype {arr.dtype}", field=field)
    if arr.ndim != 2:
        raise ValidationError(
            f"expected a 2-D (positions x periods) array, got shape {arr.shape}", field=field
        )
    if arr.shape[1] == 0:
        raise ValidationError("the history has no periods", field=field, code="empty")
    out = arr if compact else np.ascontiguousarray(arr, dtype=np.float64)
    # one reduction each for the common, clean case; the row scan only on a problem
    if arr.dtype.kind == "f" and arr.size and not np.isfinite(np.add.reduce(out, axis=None)):
        bad_rows = np.asarray(~np.isfinite(out).all(axis=1))
        if bad_rows.any():
            row = first_true(bad_rows)
            raise ValidationError(
                "the history holds NaN or infinite sales",
                field=field,
                row=row,
                code="not_finite",
            )
    negative = arr.dtype.kind != "u" and arr.size and arr.min() < 0
    neg_rows = np.asarray((arr < 0).any(axis=1)) if negative else None
    if neg_rows is not None and neg_rows.any():
        row = first_true(neg_rows)
        raise ValidationError(
            "the history holds negative sales (book returns separately)",
            field=field,
            row=row,
            code="negative_sales",
        )
    if compact:
        return _compact(arr)
    return out


def _compact(arr: np.ndarray) -> np.ndarray:
    """``arr`` (finite, >= 0) in the smallest dtype that holds every value exactly."""
    if arr.size == 0:
        return np.ascontiguousarray(arr, dtype=np.uint8)
    top = arr.max()
    if arr.dtype.kind == "f" and not np.array_equal(arr, np.floor(arr)):
        return np.ascontiguousarray(arr, dtype=np.float64)
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return np.ascontiguousarray(arr, dtype=dtype)
    return np.ascontiguousarray(arr, dtype=np.float64)


def _alpha(value: float, field: str) -> float:
    a = float(value)
    if not 0.0 < a <= 1.0:
        raise ValidationError(f"expected a value in (0, 1], got {a}", field=field)
    return a


def moving_average(history: Any, window: int = 28) -> Forecast:
    """Mean and spread of the last ``window`` periods.

    Parameters
    ----------
    history
        ``(num_positions, num_periods)`` sales, oldest first.
    window
        Periods averaged (all of them when the history is shorter).

    Returns
    -------
    Forecast

    Notes
    -----
    :math:`\\hat\\mu = \\frac1w \\sum_{t=T-w+1}^{T} d_t`, and :math:`\\hat\\sigma` is the
    population standard deviation of the same window.

    Examples
    --------
    >>> f = moving_average([[1, 2, 3, 4]], window=2)
    >>> float(f.mean[0]), float(f.std[0])
    (3.5, 0.5)
    """
    return _moving_average(check_history(history), window)


def _moving_average(hist: np.ndarray, window: int) -> Forecast:
    if int(window) < 1:
        raise ValidationError("expected window >= 1", field="window")
    mean = np.empty(hist.shape[0])
    std = np.empty(hist.shape[0])
    K.moving_average(hist, int(window), mean, std)
    return Forecast(mean, std, method=f"moving_average({int(window)})")


def exponential_smoothing(history: Any, alpha: float = 0.2) -> Forecast:
    """Simple exponential smoothing (SES).

    Notes
    -----
    :math:`\\ell_1 = d_1,\\; \\ell_t = \\ell_{t-1} + \\alpha (d_t - \\ell_{t-1})`; the
    forecast is :math:`\\ell_T` and :math:`\\hat\\sigma` the root mean squared
    one-step error :math:`d_t - \\ell_{t-1}` over :math:`t = 2..T`.

    Examples
    --------
    >>> f = exponential_smoothing([[10, 20]], alpha=0.5)
    >>> float(f.mean[0]), float(f.std[0])
    (15.0, 10.0)
    """
    return _exponential_smoothing(check_history(history), alpha)


def _exponential_smoothing(hist: np.ndarray, alpha: float) -> Forecast:
    a = _alpha(alpha, "alpha")
    mean = np.empty(hist.shape[0])
    std = np.empty(hist.shape[0])
    K.exponential_smoothing(hist, a, mean, std)
    return Forecast(mean, std, method=f"ses({a:g})")


_VARIANTS = {"croston": 0, "sba": 1, "tsb": 2}


def croston(
    history: Any,
    alpha: float = 0.1,
    *,
    variant: Literal["croston", "sba", "tsb"] = "croston",
    beta: float = 0.1,
) -> Forecast:
    """Croston's method and its SBA and TSB variants, for intermittent demand.

    Parameters
    ----------
    history
        ``(num_positions, num_periods)`` sales, oldest first.
    alpha
        Smoothing constant of the demand size (and, for Croston/SBA, the interval).
    variant
        ``"croston"``, ``"sba"`` (Syntetos-Boylan bias correction) or ``"tsb"``
        (Teunter-Syntetos-Babai, which decays towards 0 while no demand occurs).
    beta
        TSB smoothing constant of the demand probability.

    Notes
    -----
    Croston: on a demand :math:`d_t > 0`, :math:`z \\mathrel{+}= \\alpha(d_t - z)`
    and :math:`p \\mathrel{+}= \\alpha(q - p)` with :math:`q` the periods since the
    last demand; forecast :math:`z / p`, SBA :math:`(1 - \\alpha/2) z / p`. TSB:
    :math:`\\pi \\mathrel{+}= \\beta(\\mathbb 1[d_t > 0] - \\pi)` every period, forecast
    :math:`\\pi z`. Both start at the first nonzero demand.

    Examples
    --------
    >>> float(croston([[0, 4, 0, 4]], alpha=0.5).mean[0])
    2.0
    """
    return _croston(check_history(history), alpha, variant, beta)


def _croston(hist: np.ndarray, alpha: float, variant: str, beta: float = 0.1) -> Forecast:
    a = _alpha(alpha, "alpha")
    b = _alpha(beta, "beta")
    if variant not in _VARIANTS:
        raise ValidationError(
            f"expected one of {sorted(_VARIANTS)}, got {variant!r}",
            field="variant",
            code="invalid_choice",
        )
    mean = np.empty(hist.shape[0])
    std = np.empty(hist.shape[0])
    K.croston(hist, a, b, _VARIANTS[variant], mean, std)
    return Forecast(mean, std, method=f"{variant}({a:g})")


def forecast(
    history: Any,
    method: Literal["auto", "moving_average", "ses", "croston", "sba", "tsb"] = "auto",
    *,
    alpha: float = 0.2,
    window: int = 28,
    intermittent_share: float = 0.5,
) -> Forecast:
    """Forecast with one named method, or ``"auto"``.

    ``"auto"`` uses TSB for intermittent rows (more than ``intermittent_share`` of
    the periods without sales) and SES for the others.
    """
    return _forecast(check_history(history), method, alpha, window, intermittent_share)


def _forecast(
    hist: np.ndarray, method: str, alpha: float, window: int = 28, intermittent_share: float = 0.5
) -> Forecast:
    """:func:`forecast` of a history :func:`check_history` has already passed (float64)."""
    if method == "moving_average":
        return _moving_average(hist, window)
    if method == "ses":
        return _exponential_smoothing(hist, alpha)
    if method in _VARIANTS:
        return _croston(hist, alpha, method)
    if method != "auto":
        raise ValidationError(f"unknown method {method!r}", field="method", code="invalid_choice")
    zero_share = np.count_nonzero(hist == 0, axis=1) / hist.shape[1]
    sparse = zero_share > intermittent_share
    smooth = _exponential_smoothing(hist, alpha)
    if not sparse.any():
        return Forecast(smooth.mean, smooth.std, method="auto")
    tsb = _croston(hist[sparse], alpha, "tsb")
    mean = smooth.mean.copy()
    std = smooth.std.copy()
    mean[sparse] = tsb.mean
    std[sparse] = tsb.std
    return Forecast(mean, std, method="auto")
