"""Benchmark harness behind ``allocator bench NAME``.

:data:`TARGETS` lists the targets; each is the module ``allocator.bench.<name>``,
which defines

* ``DESCRIPTION``: one line for ``--help`` (the same text as in :data:`TARGETS`);
* ``add_arguments(parser)``: its options (``--json`` is added for every target);
* ``run(args) -> dict``: runs the benchmark and returns the figures, each beside
  its baseline measured in the same run, with JIT compile time reported apart.

``allocator bench NAME`` prints a table, or one JSON object with ``--json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["TARGETS", "median_time"]

#: Benchmark targets by name, with their help lines.
TARGETS: dict[str, str] = {
    "channels": "channel split (fences per channel) of N positions x 3 channels vs scipy",
    "cluster": (
        "shared ledger on PostgreSQL: 8 client processes x 32 in flight vs conditional UPDATEs; "
        "follower staleness; failover"
    ),
    "distributed": (
        "replenishment (2M positions x 28 days) and an 8-seed sweep on Dask, beside one process"
    ),
    "journal": "journaled (SQLite, synchronous=FULL) vs in-memory apply; recovery time",
    "ledger": "ledger events/s vs a raw scatter-add ceiling and the pure-Python reference",
    "realtime": (
        "single reserve/available latency, durable group commit from threads and coroutines"
    ),
    "replenish": "forecast + order-up-to (1M), exact Poisson (s, S) (100k), transfers (1k x 10k)",
    "season": "season of orders: greedy, optimal and future-aware sourcing vs hindsight",
    "simulate": "capacity-planning simulation: 100 stores + 3 DCs, 20k SKUs, 90 days",
    "sourcing": "greedy sourcing (batch, single order, nearby) vs pure Python and brute force",
    "startup": "import, --help and first calls in fresh processes; cold compile of every kernel",
}


def median_time(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]
