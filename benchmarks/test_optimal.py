"""pytest-benchmark: optimal batch sourcing against greedy on one seeded wave."""

from __future__ import annotations

from typing import Any

import pytest

from allocator.bench._optimal import make_wave
from allocator.sourcing import Sourcer


@pytest.fixture(scope="module")
def wave() -> Any:
    network, ledger, orders = make_wave(500, 50, seed=2)
    sourcer = Sourcer(network)
    sourcer.source(ledger, orders, method="optimal", time_limit=30.0)  # compile
    return ledger, orders, sourcer


def test_greedy_wave(benchmark: Any, wave: Any) -> None:
    ledger, orders, sourcer = wave
    plan = benchmark(sourcer.source, ledger, orders)
    assert plan.orders.num_orders == orders.num_orders


def test_optimal_wave(benchmark: Any, wave: Any) -> None:
    ledger, orders, sourcer = wave
    greedy = sourcer.source(ledger, orders)
    plan = benchmark.pedantic(
        sourcer.source,
        args=(ledger, orders),
        kwargs={"method": "optimal", "time_limit": 5.0, "gap": 0.01},
        rounds=3,
    )
    assert plan.objective <= greedy.objective + 1e-6
    assert plan.lower_bound <= plan.objective + 1e-6
