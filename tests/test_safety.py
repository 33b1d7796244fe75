"""Safety stock against textbook values, brute-force sums and invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator.exceptions import ValidationError
from allocator.safety import (
    normal_loss,
    normal_loss_inverse,
    poisson_loss,
    poisson_quantile,
    safety_stock,
)


def _pmf(k: int, lam: float) -> float:
    return math.exp(-lam + k * math.log(lam) - math.lgamma(k + 1)) if lam > 0 else float(k == 0)


def _brute_poisson_loss(s: int, lam: float) -> float:
    return sum(max(k - s, 0) * _pmf(k, lam) for k in range(0, int(lam + 40 * (lam + 1) ** 0.5)))


# --- the normal loss function -------------------------------------------------------


@pytest.mark.parametrize(
    ("z", "g"),
    # Standard normal loss table (Silver, Pyke & Peterson, Appendix B).
    [
        (0.0, 0.3989),
        (0.5, 0.1978),
        (1.0, 0.08332),
        (1.5, 0.02931),
        (2.0, 0.008491),
        (3.0, 0.0003822),
    ],
)
def test_normal_loss_table(z: float, g: float) -> None:
    assert normal_loss(z) == pytest.approx(g, rel=2e-4)


def test_normal_loss_symmetry() -> None:
    z = np.linspace(-4, 4, 33)
    np.testing.assert_allclose(normal_loss(-z), normal_loss(z) + z, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.floats(-8.0, 8.0))
def test_normal_loss_inverse_roundtrip(z: float) -> None:
    assert normal_loss_inverse(normal_loss(z)) == pytest.approx(z, abs=1e-7)


def test_normal_loss_inverse_zero_is_inf() -> None:
    assert np.isinf(normal_loss_inverse(0.0))
    with pytest.raises(ValidationError):
        normal_loss_inverse(-1.0)


# --- Poisson helpers ------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.3, 1.0, 4.0, 12.5, 60.0])
def test_poisson_loss_matches_sum(lam: float) -> None:
    for s in range(0, int(lam * 2) + 5):
        assert poisson_loss(s, lam) == pytest.approx(_brute_poisson_loss(s, lam), abs=1e-9)


def test_poisson_quantile_known() -> None:
    # Poisson(4): F(7) = 0.9489, F(8) = 0.9786.
    assert int(poisson_quantile(0.95, 4.0)) == 8
    assert int(poisson_quantile(0.94, 4.0)) == 7
    assert int(poisson_quantile(0.5, 0.0)) == 0


# --- safety stock, normal demand ------------------------------------------------------


def test_cycle_service_level_normal() -> None:
    # z(0.95) = 1.6448536; sigma_L = 20 * sqrt(4) = 40.
    ss = safety_stock(100.0, 20.0, lead_time=4.0, service_level=0.95)
    assert ss.shape == (1,)
    assert ss[0] == pytest.approx(1.6448536269514722 * 40.0, abs=1e-6)


def test_review_period_extends_protection_interval() -> None:
    ss = safety_stock(10.0, 3.0, lead_time=2.0, review_period=7.0, service_level=0.9)
    assert ss[0] == pytest.approx(1.2815515655446004 * 3.0 * 3.0, abs=1e-6)


def test_lead_time_variability_chopra() -> None:
    # Chopra & Meindl, Example 12-5: D = 2,500/day, sigma_D = 500, L = 7, s_L = 7,
    # CSL = 0.90: sigma_L = 17,550 and safety inventory 22,491.
    ss = safety_stock(2500.0, 500.0, lead_time=7.0, lead_time_std=7.0, service_level=0.9)
    sigma = math.sqrt(7 * 500**2 + 2500**2 * 7**2)
    assert sigma == pytest.approx(17550, abs=1)
    assert ss[0] == pytest.approx(1.2815515655446004 * sigma, abs=1e-6)
    assert round(ss[0]) == 22491


def test_fill_rate_normal_chopra() -> None:
    # Chopra & Meindl, Example 12-3: weekly demand 2,500, sigma 500, L = 2 weeks,
    # Q = 10,000, fill rate 0.975: ESC = 250 and safety inventory 67.
    ss = safety_stock(2500.0, 500.0, lead_time=2.0, fill_rate=0.975, order_quantity=10000.0)
    sigma = 500.0 * math.sqrt(2.0)
    assert sigma * normal_loss(ss[0] / sigma) == pytest.approx(250.0, abs=1e-6)
    assert round(ss[0]) == 67


def test_fill_rate_default_cycle_demand_is_review_period() -> None:
    a = safety_stock(20.0, 6.0, lead_time=3.0, review_period=7.0, fill_rate=0.99)
    b = safety_stock(
        20.0, 6.0, lead_time=3.0, review_period=7.0, fill_rate=0.99, order_quantity=140.0
    )
    np.testing.assert_allclose(a, b)


def test_vectorised_and_broadcast() -> None:
    mean = np.array([10.0, 0.0, 5.0, 7.0])
    std = np.array([3.0, 2.0, 0.0, 1.0])
    ss = safety_stock(mean, std, lead_time=np.array([2.0, 1.0, 1.0, 0.0]), service_level=0.9)
    assert ss.shape == (4,)
    assert ss[0] == pytest.approx(1.2815515655446004 * 3 * math.sqrt(2))
    assert ss[2] == 0.0  # no variability
    assert ss[3] == 0.0  # no protection interval
    for i in range(4):
        one = safety_stock(mean[i], std[i], lead_time=[2.0, 1.0, 1.0, 0.0][i], service_level=0.9)
        assert one[0] == pytest.approx(ss[i])


# --- safety stock, Poisson demand -----------------------------------------------------


def test_cycle_service_level_poisson() -> None:
    # lambda_T = 2 * 2 = 4, smallest S with F(S) >= 0.95 is 8.
    ss = safety_stock(2.0, lead_time=2.0, service_level=0.95, distribution="poisson")
    assert ss[0] == 4.0


@settings(max_examples=60, deadline=None)
@given(st.floats(0.05, 30.0), st.floats(0.5, 6.0), st.floats(0.5, 0.999), st.floats(0.5, 20.0))
def test_fill_rate_poisson_is_smallest_level(
    mean: float, lead: float, beta: float, q: float
) -> None:
    lam = mean * lead
    ss = safety_stock(
        mean, lead_time=lead, fill_rate=beta, order_quantity=q, distribution="poisson"
    )[0]
    s = round(ss + lam)
    assert abs(ss + lam - s) < 1e-9
    allowed = (1 - beta) * q
    assert _brute_poisson_loss(s, lam) <= allowed + 1e-9
    if s > 0:
        assert _brute_poisson_loss(s - 1, lam) > allowed - 1e-9


@settings(max_examples=60, deadline=None)
@given(st.floats(0.01, 50.0), st.floats(0.01, 0.99), st.floats(0.01, 0.99))
def test_monotone_in_service_level(mean: float, a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    for kw in ({"std": mean**0.5, "distribution": "normal"}, {"distribution": "poisson"}):
        s_lo = safety_stock(mean, service_level=lo, lead_time=3.0, **kw)[0]
        s_hi = safety_stock(mean, service_level=hi, lead_time=3.0, **kw)[0]
        assert s_lo <= s_hi + 1e-12


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field", "row"),
    [
        ({"mean": [1.0, -1.0], "std": 1.0, "service_level": 0.9}, "mean", 1),
        ({"mean": [1.0, np.nan], "std": 1.0, "service_level": 0.9}, "mean", 1),
        ({"mean": 1.0, "std": -1.0, "service_level": 0.9}, "std", 0),
        ({"mean": 1.0, "std": 1.0, "lead_time": [1.0, -2.0], "service_level": 0.9}, "lead_time", 1),
        ({"mean": 1.0, "std": 1.0, "service_level": [0.9, 1.0]}, "service_level", 1),
        ({"mean": 1.0, "std": 1.0, "fill_rate": 0.0}, "fill_rate", None),
        ({"mean": 1.0, "std": 1.0}, "service_level", None),
        ({"mean": 1.0, "std": 1.0, "service_level": 0.9, "fill_rate": 0.9}, "service_level", None),
        ({"mean": 1.0, "service_level": 0.9}, "std", None),
        ({"mean": [1.0, 2.0], "std": [1.0, 2.0, 3.0], "service_level": 0.9}, "std", None),
        (
            {"mean": 1.0, "std": 1.0, "service_level": 0.9, "distribution": "gamma"},
            "distribution",
            None,
        ),
    ],
)
def test_bad_input(kwargs: dict, field: str, row: int | None) -> None:
    with pytest.raises(ValidationError) as info:
        safety_stock(**kwargs)
    assert info.value.field == field
    assert info.value.row == row
