"""pytest-benchmark: one simulated day of a small chain, and scenario generation."""

from __future__ import annotations

from typing import Any

import pytest

from allocator.scenarios import department_store
from allocator.simulation import simulate


@pytest.fixture(scope="module")
def data() -> Any:
    scenario = department_store(num_stores=10, num_dcs=1, num_skus=1_000, online_orders=600.0)
    built = scenario.build(0)
    simulate(built, days=1, keep_log=False)  # compile
    return built


def test_simulate_one_day(benchmark: Any, data: Any) -> None:
    result = benchmark.pedantic(
        simulate, args=(data,), kwargs={"days": 1, "keep_log": False}, rounds=3
    )
    assert result.kpis.oversells == 0


def test_build_scenario(benchmark: Any) -> None:
    scenario = department_store(num_stores=100, num_dcs=3, num_skus=20_000)
    built = benchmark.pedantic(scenario.build, args=(0,), rounds=3)
    assert built.num_positions > 20_000
