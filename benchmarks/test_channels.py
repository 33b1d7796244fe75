"""pytest-benchmark figures for the channel split (small sizes)."""

from __future__ import annotations

import numpy as np

from allocator.bench.channels import FLOORS, MARGIN, UNSOLD, _build, _scipy_reference
from allocator.channels import ChannelForecast, allocate_channels


def test_allocate_channels_100k(benchmark) -> None:
    data, ledger, forecast = _build(100_000, 10.0, 0)
    allocate_channels(data, ledger, forecast, margin=MARGIN, unsold_cost=UNSOLD, floors=FLOORS)
    benchmark(
        allocate_channels, data, ledger, forecast, margin=MARGIN, unsold_cost=UNSOLD, floors=FLOORS
    )


def test_allocate_channels_large_stock(benchmark) -> None:
    # Warehouse-like positions: thousands of units each, settled by threshold bisection.
    data, ledger, forecast = _build(2_000, 3_000.0, 1)
    mean = np.asarray(forecast.mean) * 400.0
    big = ChannelForecast.normal(mean, 2.0 * mean)
    benchmark(allocate_channels, data, ledger, big, margin=MARGIN, unsold_cost=UNSOLD)


def test_scipy_reference_10k(benchmark) -> None:
    _, ledger, forecast = _build(10_000, 10.0, 0)
    sellable = np.asarray(ledger.on_hand)
    benchmark(_scipy_reference, forecast.mean, forecast.var, sellable, FLOORS)
