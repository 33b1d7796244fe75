"""Forecast kernels against their pure-Python twins and hand-worked values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from allocator._reference import replenish as naive
from allocator.exceptions import ValidationError
from allocator.replenishment import (
    Forecast,
    croston,
    exponential_smoothing,
    forecast,
    moving_average,
)

histories = arrays(
    np.int64, st.tuples(st.integers(1, 5), st.integers(1, 30)), elements=st.integers(0, 20)
)


def test_moving_average_known() -> None:
    f = moving_average([[1, 2, 3, 4], [5, 5, 5, 5]], window=2)
    np.testing.assert_allclose(f.mean, [3.5, 5.0])
    np.testing.assert_allclose(f.std, [0.5, 0.0])
    assert not f.mean.flags.writeable


def test_ses_known() -> None:
    # level 10 -> 10 + 0.5 * (20 - 10) = 15; one error of 10.
    f = exponential_smoothing([[10, 20]], alpha=0.5)
    assert f.mean[0] == pytest.approx(15.0)
    assert f.std[0] == pytest.approx(10.0)


def test_croston_known() -> None:
    # Demand 4 every second period: size 4, interval 2 -> 2 per period.
    f = croston([[0, 4, 0, 4, 0, 4]], alpha=0.5)
    assert f.mean[0] == pytest.approx(2.0)
    sba = croston([[0, 4, 0, 4, 0, 4]], alpha=0.5, variant="sba")
    assert sba.mean[0] == pytest.approx(2.0 * 0.75)


def test_tsb_decays_without_demand() -> None:
    a = croston([[5, 5, 5, 0, 0, 0]], variant="tsb", alpha=0.2, beta=0.3).mean[0]
    b = croston([[5, 5, 5, 0, 0, 0, 0, 0, 0]], variant="tsb", alpha=0.2, beta=0.3).mean[0]
    assert 0 < b < a


@settings(max_examples=40, deadline=None)
@given(histories, st.integers(1, 40), st.floats(0.05, 1.0))
def test_kernels_match_naive(hist: np.ndarray, window: int, alpha: float) -> None:
    ma = moving_average(hist, window)
    ses = exponential_smoothing(hist, alpha)
    for i, row in enumerate(hist.astype(float).tolist()):
        m, s = naive.moving_average(row, window)
        assert ma.mean[i] == pytest.approx(m, abs=1e-9)
        assert ma.std[i] == pytest.approx(s, abs=1e-9)
        m, s = naive.ses(row, alpha)
        assert ses.mean[i] == pytest.approx(m, abs=1e-9)
        assert ses.std[i] == pytest.approx(s, abs=1e-9)
    for variant in ("croston", "sba", "tsb"):
        c = croston(hist, alpha, variant=variant, beta=0.3)
        for i, row in enumerate(hist.astype(float).tolist()):
            m, s = naive.croston(row, alpha, 0.3, variant)
            assert c.mean[i] == pytest.approx(m, abs=1e-9)
            assert c.std[i] == pytest.approx(s, abs=1e-9)


def test_auto_uses_tsb_for_intermittent_rows() -> None:
    hist = np.array([[3, 4, 5, 3, 4, 5], [0, 0, 6, 0, 0, 6]])
    f = forecast(hist)
    assert f.mean[0] == pytest.approx(exponential_smoothing(hist[:1]).mean[0])
    assert f.mean[1] == pytest.approx(croston(hist[1:], 0.2, variant="tsb").mean[0])


@pytest.mark.parametrize(
    ("history", "row", "code"),
    [
        ([[1.0, 2.0], [np.nan, 1.0]], 1, "not_finite"),
        ([[1, 2], [3, 4], [1, -1]], 2, "negative_sales"),
    ],
)
def test_bad_history(history: list, row: int, code: str) -> None:
    with pytest.raises(ValidationError) as info:
        moving_average(history)
    assert info.value.field == "demand"
    assert info.value.row == row
    assert info.value.code == code


def test_bad_shapes_and_parameters() -> None:
    with pytest.raises(ValidationError):
        moving_average([1, 2, 3])
    with pytest.raises(ValidationError) as info:
        exponential_smoothing([[1, 2]], alpha=0.0)
    assert info.value.field == "alpha"
    with pytest.raises(ValidationError):
        Forecast(np.array([1.0, -1.0]), np.array([1.0, 1.0]))
