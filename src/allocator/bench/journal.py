"""``allocator bench journal``: the durable ledger against the in-memory one.

Applies the same stream of mixed events (receive, reserve with and without expiry,
commit, release, sale, transfer, return, count, expire) in batches, first to an
in-memory :class:`~allocator.Ledger` (the baseline), then to a
:class:`~allocator.journal.DurableLedger` with ``synchronous=FULL``, then reopens the
journal (latest snapshot + replay of the tail), reopens a copy whose latest snapshot
was removed (the worst case: a crash just before that snapshot, so the longest
tail), and replays the whole journal from batch 1. Only the ``apply`` calls are
timed; generating the events is not. JIT compilation is done, and timed, before the
measurements.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from allocator.events import NO_EXPIRY, EventKind, Events
from allocator.ledger import BaseLedger, Ledger
from allocator.network import NetworkData

DESCRIPTION = "journaled (SQLite, synchronous=FULL) vs in-memory apply; recovery time"

__all__ = ["DESCRIPTION", "add_arguments", "make_network", "mixed_batches", "run"]

_KINDS = np.array(
    [
        EventKind.RECEIVE,
        EventKind.RESERVE,
        EventKind.COMMIT,
        EventKind.RELEASE,
        EventKind.SALE,
        EventKind.TRANSFER_OUT,
        EventKind.TRANSFER_IN,
        EventKind.RETURN,
        EventKind.ADJUST,
    ],
    dtype=np.int64,
)
_MIX = np.array([0.25, 0.30, 0.15, 0.08, 0.12, 0.03, 0.03, 0.02, 0.02])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=10_000_000, help="events to apply")
    parser.add_argument("--batch", type=int, default=10_000, help="events per batch")
    parser.add_argument("--skus", type=int, default=20_000, help="SKUs in the network")
    parser.add_argument("--locations", type=int, default=50, help="locations")
    parser.add_argument(
        "--snapshot-every",
        type=int,
        default=None,
        help="events between snapshots (default: the library default)",
    )
    parser.add_argument("--dir", default=None, help="directory for the journal (default: tmp)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for smoke tests")
    parser.add_argument("--seed", type=int, default=0)


def make_network(num_skus: int, num_locations: int) -> NetworkData:
    """A network of ``num_locations`` stores and ``num_skus`` SKUs, three channels."""
    return NetworkData.from_arrays(
        channels=["store", "online", "marketplace"],
        location_name=[f"L{i}" for i in range(num_locations)],
        location_kind="store",
        lat=np.zeros(num_locations),
        lon=np.zeros(num_locations),
        sku_name=[f"S{i}" for i in range(num_skus)],
    )


def mixed_batches(
    network: NetworkData, num_events: int, batch: int, seed: int = 0
) -> Iterator[Events]:
    """A deterministic stream of mixed event batches.

    Commits and releases name reservations made in the previous batch; a third of
    the reservations expire a few batches later, and each batch ends with an expire
    event at "time" = the batch number. Ids are sequential from 1.
    """
    rng = np.random.default_rng(seed)
    nsku, nloc = network.num_skus, network.num_locations
    prev_reserves = np.array([1], dtype=np.int64)
    done = 0
    b = 0
    while done < num_events:
        n = min(batch, num_events - done)
        m = n - 1 if n > 1 else n
        kind = _KINDS[rng.choice(_KINDS.shape[0], size=m, p=_MIX)]
        sku = rng.integers(0, nsku, m)
        loc = rng.integers(0, nloc, m)
        chan = np.where(kind == EventKind.RESERVE, rng.integers(0, 3, m), -1)
        qty = rng.integers(1, 4, m)
        qty[kind == EventKind.RECEIVE] *= 5
        qty[kind == EventKind.ADJUST] = rng.integers(0, 20, int((kind == EventKind.ADJUST).sum()))
        ref = np.zeros(m, dtype=np.int64)
        resolve = (kind == EventKind.COMMIT) | (kind == EventKind.RELEASE)
        ref[resolve] = prev_reserves[rng.integers(0, prev_reserves.shape[0], int(resolve.sum()))]
        qty[kind == EventKind.COMMIT] = -1
        qty[kind == EventKind.RELEASE] = 0
        sku[resolve] = -1
        loc[resolve] = -1
        transfer = kind == EventKind.TRANSFER_OUT
        ref[transfer] = (loc[transfer] + 1 + rng.integers(0, nloc - 1, int(transfer.sum()))) % nloc
        exp = np.full(m, NO_EXPIRY, dtype=np.int64)
        timed = (kind == EventKind.RESERVE) & (rng.random(m) < 0.3)
        exp[timed] = b + rng.integers(2, 6, int(timed.sum()))
        ids = np.arange(done + 1, done + m + 1, dtype=np.int64)
        if n > m:  # close the batch with an expire at time b
            kind = np.append(kind, EventKind.EXPIRE)
            sku, loc, chan = np.append(sku, -1), np.append(loc, -1), np.append(chan, -1)
            qty, ref, exp = np.append(qty, 0), np.append(ref, 0), np.append(exp, b)
            ids = np.append(ids, done + n)
        prev = ids[kind == EventKind.RESERVE]
        if prev.shape[0]:
            prev_reserves = prev
        yield Events.from_arrays(
            id=ids, kind=kind, sku=sku, location=loc, channel=chan, qty=qty, ref=ref, expires_at=exp
        )
        done += n
        b += 1


def _timed_apply(ledger: BaseLedger, batches: Iterator[Events]) -> tuple[float, int, list[float]]:
    total = 0.0
    count = 0
    per_batch = []
    for events in batches:
        t0 = time.perf_counter()
        ledger.apply(events)
        dt = time.perf_counter() - t0
        total += dt
        per_batch.append(dt)
        count += len(events)
    return total, count, per_batch


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def run(args: argparse.Namespace) -> dict[str, Any]:
    from allocator.journal import DEFAULT_SNAPSHOT_EVERY, open_ledger

    if args.quick:
        args.events, args.batch, args.skus, args.locations = 200_000, 10_000, 2_000, 20
        args.snapshot_every = args.snapshot_every or 80_000
    snapshot_every = args.snapshot_every or DEFAULT_SNAPSHOT_EVERY
    network = make_network(args.skus, args.locations)
    workdir = Path(tempfile.mkdtemp(prefix="allocator-bench-", dir=args.dir))
    try:
        # JIT warm-up (compile time reported apart), on a throwaway journal
        t0 = time.perf_counter()
        warm = open_ledger(workdir / "warm.db", network)
        for events in mixed_batches(network, 3 * 1000, 1000, seed=args.seed + 1):
            warm.apply(events)
        warm.snapshot()
        warm.close()
        open_ledger(workdir / "warm.db").close()
        jit_s = time.perf_counter() - t0

        memory = Ledger(network)
        mem_s, count, _ = _timed_apply(
            memory, mixed_batches(network, args.events, args.batch, args.seed)
        )
        digest = memory.state_digest()
        del memory
        gc.collect()

        path = workdir / "journal.db"
        durable = open_ledger(path, network, snapshot_every=snapshot_every)
        jour_s, _, per_batch = _timed_apply(
            durable, mixed_batches(network, args.events, args.batch, args.seed)
        )
        same = durable.state_digest() == digest
        info = durable.info()
        durable.close()
        del durable
        gc.collect()
        size = _dir_bytes(path)

        conn = sqlite3.connect(path)
        payload = conn.execute(
            "SELECT sum(length(events) + coalesce(length(codes), 0)) FROM batches"
        ).fetchone()[0]
        snap_bytes = conn.execute(
            "SELECT coalesce(sum(length(data)), 0) FROM snapshots"
        ).fetchone()[0]
        conn.close()

        t0 = time.perf_counter()
        reopened = open_ledger(path)
        recover_s = time.perf_counter() - t0
        same = same and reopened.state_digest() == digest
        reopened.close()
        del reopened
        gc.collect()

        # worst case: the crash came just before the latest snapshot was written
        worst = workdir / "worst.db"
        for side in ("", "-hwm"):
            shutil.copyfile(str(path) + side, str(worst) + side)
        conn = sqlite3.connect(worst)
        last_snap = conn.execute("SELECT max(seq) FROM snapshots").fetchone()[0]
        conn.execute("DELETE FROM snapshots WHERE seq = ?", (last_snap,))
        conn.commit()
        tail_events = (
            count
            - (conn.execute("SELECT coalesce(max(num_events), 0) FROM snapshots").fetchone()[0])
        )
        conn.close()
        t0 = time.perf_counter()
        reopened = open_ledger(worst)
        recover_worst_s = time.perf_counter() - t0
        same = same and reopened.state_digest() == digest
        reopened.close()
        del reopened
        gc.collect()

        from allocator.journal import replay_journal

        t0 = time.perf_counter()
        replayed = replay_journal(path)
        replay_s = time.perf_counter() - t0
        same = same and replayed.state_digest() == digest
        del replayed
        gc.collect()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    per_batch.sort()
    return {
        "events": count,
        "batch": args.batch,
        "snapshot_every": snapshot_every,
        "snapshots": info.num_snapshots,
        "jit_compile_s": jit_s,
        "memory_s": mem_s,
        "journaled_s": jour_s,
        "memory_events_per_s": count / mem_s,
        "journaled_events_per_s": count / jour_s,
        "journaled_vs_memory": mem_s / jour_s,
        "batch_p50_ms": 1e3 * per_batch[len(per_batch) // 2],
        "batch_p99_ms": 1e3 * per_batch[min(len(per_batch) - 1, int(0.99 * len(per_batch)))],
        "recover_s": recover_s,
        "recover_worst_s": recover_worst_s,
        "recover_worst_tail_events": tail_events,
        "replay_all_s": replay_s,
        "bytes_on_disk": size,
        "bytes_per_event": size / max(1, count),
        "batch_bytes_per_event": payload / max(1, count),
        "snapshot_bytes": snap_bytes,
        "states_equal": same,
    }
