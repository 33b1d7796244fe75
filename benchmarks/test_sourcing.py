"""pytest-benchmark: greedy sourcing, batch and single order, and ``nearby``."""

from __future__ import annotations

from typing import Any

import pytest

from allocator._reference.sourcing import reference_index, reference_source
from allocator.bench.sourcing import make_instance
from allocator.sourcing import Sourcer, nearby


@pytest.fixture(scope="module")
def instance() -> Any:
    network, ledger, orders = make_instance(300, 20_000, 2_000, seed=1)
    sourcer = Sourcer(network)
    sourcer.source(ledger, orders)  # compile and index
    return network, ledger, orders, sourcer


def test_greedy_batch(benchmark: Any, instance: Any) -> None:
    _, ledger, orders, sourcer = instance
    plan = benchmark(sourcer.source, ledger, orders)
    assert plan.orders.num_orders == orders.num_orders


def test_greedy_single_order(benchmark: Any, instance: Any) -> None:
    _, ledger, orders, sourcer = instance
    one = orders.take([0])
    plan = benchmark(sourcer.source, ledger, one)
    assert plan.orders.num_orders == 1


def test_reference_batch(benchmark: Any, instance: Any) -> None:
    network, ledger, orders, _ = instance
    subset = orders.take(list(range(100)))
    index = reference_index(ledger)
    out = benchmark.pedantic(
        reference_source, args=(network, ledger, subset), kwargs={"index": index}, rounds=3
    )
    assert len(out["line_unfilled"]) == subset.num_lines


def test_nearby(benchmark: Any, instance: Any) -> None:
    network, ledger, _, _ = instance
    res = benchmark(
        nearby, network, ledger, 5, float(network.lat[7]), float(network.lon[7]), channel=1, k=3
    )
    assert len(res) == 1
