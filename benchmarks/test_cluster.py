"""pytest-benchmark figures for the shared ledger on PostgreSQL (run with ``make bench``).

One round is 256 single-unit reserves in flight at once: through a
:class:`~allocator.journal.shared.SharedLedger` client (asyncio, each acknowledged
once the leader's batch is committed), and the baseline, 256 conditional
``UPDATE ... WHERE on_hand - reserved >= 1`` statements, each its own transaction,
from 32 connections. ``allocator bench cluster`` measures the multi-process figures.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from allocator.bench._pgserver import PgServer
from allocator.bench.cluster import _network
from allocator.events import Events
from allocator.journal import open_ledger
from allocator.journal._pgstore import connect, parse_url

_ids = itertools.count(1_000_000)


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    srv = PgServer(fsync=True)
    yield srv
    srv.destroy()


@pytest.mark.benchmark(group="cluster")
def test_shared_reserves_256_in_flight(benchmark: Any, server: PgServer) -> None:
    url = server.url("bench_shared")
    network = _network(100, 10)
    with open_ledger(url, network, role="leader", poll=0.1) as ledger:
        assert ledger.leader is not None and ledger.leader.leading.wait(30)
        ledger.apply(
            Events.receive(
                [s for s in range(100) for _ in range(10)],
                list(range(10)) * 100,
                10**9,
                id=list(range(1, 1001)),
            )
        )

        async def round_() -> None:
            await asyncio.gather(
                *(
                    ledger.reserve_async(i % 100, i % 10, 1, channel=1, id=next(_ids))
                    for i in range(256)
                )
            )

        benchmark.pedantic(lambda: asyncio.run(round_()), rounds=10, warmup_rounds=1)


@pytest.mark.benchmark(group="cluster")
def test_baseline_conditional_updates_256_in_flight(benchmark: Any, server: PgServer) -> None:
    conninfo, _, _ = parse_url(server.url("unused"))
    conns = [connect(conninfo) for _ in range(32)]
    conns[0].execute("DROP TABLE IF EXISTS bench_stock")
    conns[0].execute(
        "CREATE TABLE bench_stock (position bigint PRIMARY KEY, on_hand bigint, reserved bigint)"
    )
    conns[0].execute(
        "INSERT INTO bench_stock SELECT p, 1000000000, 0 FROM generate_series(0, 999) p"
    )

    def caller(k: int) -> None:
        for i in range(8):
            conns[k].execute(
                "UPDATE bench_stock SET reserved = reserved + 1 WHERE position = %s"
                " AND on_hand - reserved >= 1",
                ((k * 8 + i) % 1000,),
            )

    def round_() -> None:
        threads = [threading.Thread(target=caller, args=(k,)) for k in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    benchmark.pedantic(round_, rounds=10, warmup_rounds=1)
    for conn in conns:
        conn.close()
