"""pytest-benchmark figures for the durable ledger (small sizes).

Each round applies the same 20 batches of 5,000 mixed events to a fresh ledger:
in memory (the baseline) and journaled with ``synchronous=FULL``; plus the reopen
of such a journal.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from allocator.bench.journal import make_network, mixed_batches
from allocator.journal import open_ledger
from allocator.ledger import Ledger

NETWORK = make_network(2_000, 20)
BATCHES = list(mixed_batches(NETWORK, 100_000, 5_000))
_counter = itertools.count()


def _memory() -> None:
    ledger = Ledger(NETWORK)
    for events in BATCHES:
        ledger.apply(events)


def test_apply_in_memory(benchmark) -> None:
    _memory()
    benchmark(_memory)


def test_apply_journaled_full(benchmark, tmp_path: Path) -> None:
    def journaled() -> None:
        with open_ledger(tmp_path / f"j{next(_counter)}.db", NETWORK) as ledger:
            for events in BATCHES:
                ledger.apply(events)

    journaled()
    benchmark(journaled)


def test_reopen(benchmark, tmp_path: Path) -> None:
    path = tmp_path / "reopen.db"
    with open_ledger(path, NETWORK, snapshot_every=None) as ledger:
        for events in BATCHES:
            ledger.apply(events)

    def reopen() -> None:
        open_ledger(path).close()

    benchmark(reopen)
