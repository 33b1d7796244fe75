"""Safety stock for a service target, vectorised over positions.

:func:`safety_stock` is the one place in the library where a service target (a
cycle service level or a fill rate) becomes a number of units. Channel allocation
and replenishment both call it. The helpers it needs are public too:
:func:`normal_loss` and :func:`normal_loss_inverse` (the standard normal loss
function :math:`G`), and :func:`poisson_loss` and :func:`poisson_quantile`.

Demand is given per *period* (a day in most uses). The protection interval is the
lead time, plus the review period for periodic review.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from allocator._validate import as_float64, first_true
from allocator.exceptions import ValidationError

__all__ = [
    "normal_loss",
    "normal_loss_inverse",
    "poisson_loss",
    "poisson_quantile",
    "safety_stock",
]

_SQRT2 = np.sqrt(2.0)


def _phi(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)


def _upper_tail(z: np.ndarray) -> np.ndarray:
    # 1 - Phi(z) without cancellation for large z.
    from scipy import special

    return 0.5 * special.erfc(z / _SQRT2)


def normal_loss(z: Any) -> np.ndarray:
    """Standard normal loss function :math:`G(z) = E[(Z - z)^+]`.

    Parameters
    ----------
    z
        Scalar or array of standardised levels.

    Returns
    -------
    numpy.ndarray
        ``G(z)`` with the shape of ``z`` (float64).

    Notes
    -----
    .. math:: G(z) = \\varphi(z) - z\\,(1 - \\Phi(z))

    It is positive, decreasing and convex, with :math:`G(z) \\to -z` as
    :math:`z \\to -\\infty`.

    Examples
    --------
    >>> float(normal_loss(0.0).round(6))
    0.398942
    """
    z = np.asarray(z, dtype=np.float64)
    return _phi(z) - z * _upper_tail(z)


def normal_loss_inverse(x: Any) -> np.ndarray:
    """The ``z`` with :math:`G(z) = x`, for ``x > 0`` (inverse of :func:`normal_loss`).

    Parameters
    ----------
    x
        Scalar or array of positive target losses.

    Returns
    -------
    numpy.ndarray
        ``z`` with the shape of ``x``; ``+inf`` where ``x == 0``.

    Notes
    -----
    Newton's method on the decreasing convex :math:`G`, with
    :math:`G'(z) = -(1 - \\Phi(z))`. It starts left of the root, at 0 when
    :math:`x \\le G(0)` and at :math:`-x` otherwise (:math:`G(z) > -z`), so the
    iterates increase monotonically to the root without overshooting.
    The result is accurate to about 1e-12 in ``z``.

    Examples
    --------
    >>> float(normal_loss_inverse(normal_loss(1.5)).round(9))
    1.5
    """
    x = np.asarray(x, dtype=np.float64)
    if np.any(~np.isfinite(x)) or np.any(x < 0):
        raise ValidationError("expected finite values >= 0", field="x", code="out_of_range")
    flat = x.ravel()
    z = np.full(flat.shape, np.inf)
    pos = flat > 0
    target = flat[pos]
    # Start left of the root: G is convex and decreasing, so Newton from the left
    # never overshoots.  G(-x) >= x always; for small x start at 0 if G(0) >= x.
    cur = np.where(target <= normal_loss(0.0), 0.0, -target)
    active = np.ones(cur.shape, dtype=bool)
    for _ in range(100):
        if not active.any():
            break
        c = cur[active]
        g = normal_loss(c) - target[active]
        slope = _upper_tail(c)
        step = g / np.maximum(slope, 1e-300)
        cur[active] = c + step
        active[active] = np.abs(step) > 1e-13 * np.maximum(1.0, np.abs(c))
    z[pos] = cur
    return z.reshape(x.shape)


def poisson_loss(s: Any, lam: Any) -> np.ndarray:
    """Poisson loss function :math:`E[(D - s)^+]` for :math:`D \\sim \\text{Poisson}(\\lambda)`.

    Parameters
    ----------
    s
        Integer level(s).
    lam
        Poisson mean(s), broadcast against ``s``.

    Returns
    -------
    numpy.ndarray
        Expected units short, float64.

    Notes
    -----
    .. math:: E[(D - s)^+] = \\lambda\\,(1 - F(s-1)) - s\\,(1 - F(s)), \\quad s \\ge 0

    and :math:`\\lambda - s` for :math:`s < 0`.

    Examples
    --------
    >>> float(poisson_loss(0, 3.0))
    3.0
    """
    s = np.asarray(s, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    s, lam = np.broadcast_arrays(s, lam)
    from scipy import stats  # imported on use: about 1 s, most of allocator's import

    sf_prev = stats.poisson.sf(s - 1, lam)
    sf = stats.poisson.sf(s, lam)
    out = lam * sf_prev - s * sf
    out = np.where(s < 0, lam - s, out)
    return np.maximum(out, 0.0)


def poisson_quantile(p: Any, lam: Any) -> np.ndarray:
    """Smallest integer ``s`` with :math:`P(D \\le s) \\ge p` for Poisson demand ``D``.

    Parameters
    ----------
    p
        Probabilities in (0, 1).
    lam
        Poisson mean(s) >= 0, broadcast against ``p``.

    Returns
    -------
    numpy.ndarray
        int64 quantiles.

    Examples
    --------
    >>> int(poisson_quantile(0.95, 4.0))
    8
    """
    p = np.asarray(p, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    from scipy import stats

    q = stats.poisson.ppf(p, lam)
    q = np.where(lam == 0, 0.0, q)
    return np.asarray(q, dtype=np.int64)


def _poisson_loss_level(target: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Smallest integer ``s >= 0`` with ``poisson_loss(s, lam) <= target`` (vectorised)."""
    lo = np.full(lam.shape, -1.0)  # loss(lo) > target (s = -1 has loss lam + 1 > target)
    hi = np.ceil(lam + 10.0 * np.sqrt(lam) + 10.0)
    for _ in range(64):
        bad = poisson_loss(hi, lam) > target
        if not bad.any():
            break
        lo = np.where(bad, hi, lo)
        hi = np.where(bad, 2.0 * hi + 1.0, hi)
    while True:
        gap = hi - lo > 1
        if not gap.any():
            break
        mid = np.floor((lo + hi) / 2.0)
        ok = poisson_loss(mid, lam) <= target
        hi = np.where(gap & ok, mid, hi)
        lo = np.where(gap & ~ok, mid, lo)
    return np.maximum(hi, 0.0)


def _target(value: Any, field: str) -> np.ndarray:
    arr = as_float64(value, field)
    bad = (arr <= 0) | (arr >= 1)
    if bad.any():
        row = first_true(bad)
        raise ValidationError(
            f"value {arr[row]} must lie strictly between 0 and 1",
            field=field,
            row=row if np.ndim(value) else None,
            code="out_of_range",
        )
    return arr


def safety_stock(
    mean: Any,
    std: Any = None,
    *,
    lead_time: Any = 1.0,
    review_period: Any = 0.0,
    lead_time_std: Any = 0.0,
    service_level: Any = None,
    fill_rate: Any = None,
    order_quantity: Any = None,
    distribution: Literal["normal", "poisson"] = "normal",
) -> np.ndarray:
    """Safety stock (units) that meets a service target over the protection interval.

    Parameters
    ----------
    mean
        Expected demand per period, per position (>= 0).
    std
        Standard deviation of demand per period (>= 0). Required for
        ``distribution="normal"``; must be ``None`` for ``"poisson"``.
    lead_time
        Lead time ``L`` in periods (>= 0). Default one period.
    review_period
        Review period ``R`` in periods (>= 0), added to the protection interval
        ``T = L + R``. Use 0 for continuous review.
    lead_time_std
        Standard deviation of the lead time in periods (normal demand only).
    service_level
        Cycle service level alpha in (0, 1): the probability of no stockout in a
        replenishment cycle. Give exactly one of ``service_level`` and ``fill_rate``.
    fill_rate
        Fill-rate target beta in (0, 1): the fraction of demand met from stock.
    order_quantity
        Expected demand per replenishment cycle ``Q`` (units), used by the fill-rate
        target. Default ``mean * review_period`` where ``review_period > 0``, else
        ``mean`` (one period's demand). Where it is 0 there is no demand to fill
        and the safety stock is 0.
    distribution
        ``"normal"`` (mean, std per period) or ``"poisson"`` (mean per period).

    Every array argument is broadcast against the others; scalars apply to all.

    Returns
    -------
    numpy.ndarray
        1-D float64 safety stock per position (length 1 when every input is a
        scalar). It may be negative for service targets below about 50 %. For
        Poisson demand it is ``S - mu_T`` with ``S`` the integer order-up-to level.

    Raises
    ------
    ValidationError
        A negative or non-finite mean, std, lead time or review period; a target
        outside (0, 1); both or neither target; mismatched lengths.

    Notes
    -----
    With :math:`T = L + R`, demand over the protection interval has

    .. math::
        \\mu_T = \\mu T, \\qquad
        \\sigma_T = \\sqrt{T \\sigma^2 + \\mu^2 \\sigma_L^2}

    (normal demand). For a cycle service level :math:`\\alpha`:
    :math:`SS = z_\\alpha \\sigma_T` with :math:`z_\\alpha = \\Phi^{-1}(\\alpha)`.
    For a fill rate :math:`\\beta`: :math:`SS = k \\sigma_T` with :math:`k` solving
    :math:`G(k) = (1-\\beta) Q / \\sigma_T` (Silver, Pyke & Peterson, eq. 7.17),
    :math:`G` being :func:`normal_loss`.

    For Poisson demand :math:`D_T \\sim \\text{Poisson}(\\mu T)`: :math:`S` is the
    smallest integer with :math:`P(D_T \\le S) \\ge \\alpha`, or with
    :math:`E[(D_T - S)^+] \\le (1 - \\beta) Q`, and :math:`SS = S - \\mu T`.

    Examples
    --------
    >>> safety_stock(100.0, 20.0, lead_time=4.0, service_level=0.95).round(4)
    array([65.7941])
    >>> safety_stock(2.0, lead_time=2.0, service_level=0.95, distribution="poisson")
    array([4.])
    """
    if distribution not in ("normal", "poisson"):
        raise ValidationError(
            f"expected 'normal' or 'poisson', got {distribution!r}",
            field="distribution",
            code="invalid_choice",
        )
    if (service_level is None) == (fill_rate is None):
        raise ValidationError(
            "give exactly one of service_level and fill_rate",
            field="service_level",
            code="invalid_choice",
        )
    if distribution == "normal" and std is None:
        raise ValidationError(
            "std is required for normal demand", field="std", code="missing_value"
        )
    if distribution == "poisson" and std is not None:
        raise ValidationError(
            "std must be None for Poisson demand (its variance equals its mean)",
            field="std",
            code="invalid_choice",
        )

    fields: dict[str, np.ndarray] = {
        "mean": as_float64(mean, "mean", lo=0.0),
        "lead_time": as_float64(lead_time, "lead_time", lo=0.0),
        "review_period": as_float64(review_period, "review_period", lo=0.0),
        "lead_time_std": as_float64(lead_time_std, "lead_time_std", lo=0.0),
    }
    if std is not None:
        fields["std"] = as_float64(std, "std", lo=0.0)
    if service_level is not None:
        fields["target"] = _target(service_level, "service_level")
    else:
        fields["target"] = _target(fill_rate, "fill_rate")
    if order_quantity is not None:
        fields["order_quantity"] = as_float64(order_quantity, "order_quantity", lo=0.0)
    if distribution == "poisson" and np.any(fields["lead_time_std"] > 0):
        raise ValidationError(
            "lead_time_std is only supported for normal demand",
            field="lead_time_std",
            code="invalid_choice",
        )

    n = 1
    for name, arr in fields.items():
        if arr.shape[0] != 1:
            if n not in (1, arr.shape[0]):
                raise ValidationError(
                    f"expected {n} rows, got {arr.shape[0]}", field=name, code="length_mismatch"
                )
            n = arr.shape[0]
    f = {name: np.broadcast_to(arr, (n,)) for name, arr in fields.items()}

    mu, lt, rp, target = f["mean"], f["lead_time"], f["review_period"], f["target"]
    horizon = lt + rp
    mu_t = mu * horizon
    if fill_rate is not None:
        if "order_quantity" in f:
            q = f["order_quantity"]
        else:
            q = np.where(rp > 0, mu * rp, mu)
        allowed = (1.0 - target) * q

    if distribution == "normal":
        sd, sd_l = f["std"], f["lead_time_std"]
        sigma_t = np.sqrt(horizon * sd * sd + mu * mu * sd_l * sd_l)
        if service_level is not None:
            from scipy import special

            k = special.ndtri(target)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(sigma_t > 0, allowed / np.where(sigma_t > 0, sigma_t, 1.0), 1.0)
            # No uncertainty or no demand to fill: no safety stock is needed.
            none_needed = (sigma_t == 0) | (allowed == 0)
            k = np.where(none_needed, 0.0, normal_loss_inverse(np.where(none_needed, 1.0, ratio)))
        out = k * sigma_t
        return np.where(sigma_t > 0, out, 0.0).astype(np.float64)

    if service_level is not None:
        level = poisson_quantile(target, mu_t).astype(np.float64)
    else:
        level = np.where(allowed > 0, _poisson_loss_level(allowed, mu_t), mu_t)
    return np.where(mu_t > 0, level - mu_t, 0.0).astype(np.float64)
