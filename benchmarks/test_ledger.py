"""pytest-benchmark timings of the ledger (run with ``make bench``)."""

from __future__ import annotations

import numpy as np
import pytest

from allocator import Ledger
from allocator._kernels import ledger as K
from allocator.bench.ledger import make_network, mixed_stream

NETWORK = make_network(1_000, 400)
SETUP, STREAM = mixed_stream(NETWORK, 100_000, 1_000_000, seed=0)


def fresh_ledger() -> Ledger:
    led = Ledger(NETWORK, capacity=100_000, reservation_capacity=400_000, event_capacity=1_200_000)
    led.apply(SETUP)
    return led


@pytest.mark.benchmark(group="ledger")
def test_apply_mixed_stream(benchmark):
    result = benchmark.pedantic(
        lambda led: led.apply(STREAM), setup=lambda: ((fresh_ledger(),), {}), rounds=3
    )
    assert len(result) == len(STREAM)


@pytest.mark.benchmark(group="ledger")
def test_scatter_add_ceiling(benchmark):
    led = fresh_ledger()
    pos = led.position_index(STREAM.sku.clip(0), STREAM.location.clip(0))
    on_hand = np.zeros(led.num_positions, dtype=np.int64)
    benchmark(K.scatter_add, on_hand, pos, STREAM.qty)
