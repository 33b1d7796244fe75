"""``allocator bench realtime``: single calls the way a checkout makes them.

Every figure is measured in the same run beside its baseline:

* ``reserve_p50_us`` / ``available_p50_us``: one in-memory ``Ledger.reserve`` /
  ``Ledger.available`` call by names, median; beside ``dict_reserve_p50_us``, the
  pure-Python reference ledger (dicts, the same checks) reserving through the same
  name lookups;
* ``fsync_ms``: median time of one 4 KiB write + ``fdatasync`` in the journal's
  directory: the floor under one durable acknowledgement;
* ``durable_1thread_per_s``: a :class:`~allocator.journal.DurableLedger` with
  ``synchronous="full"``, single reserves from one thread, each acknowledged only
  once durable; ``durable_64threads_per_s`` the same from ``--threads`` threads
  (group commit), with ``durable_p50_ms`` / ``durable_p99_ms`` of those calls;
* ``coroutines_per_s``: ``--coroutines`` asyncio tasks calling ``reserve_async``;
* ``sqlite_baseline_per_s``: the way common e-commerce platforms keep stock, driven
  by the same threads: one conditional ``UPDATE stock SET reserved = reserved + q
  WHERE ... AND on_hand - reserved >= q`` per reserve inside ``BEGIN IMMEDIATE``,
  each its own transaction, on SQLite with ``synchronous=FULL`` (WAL).

Compile (or cache load) time is reported apart as ``compile_s``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from allocator._reference.ledger import NaiveLedger
from allocator.events import NO_EXPIRY, EventKind, Events
from allocator.ledger import Ledger
from allocator.network import NetworkData

DESCRIPTION = "single reserve/available latency, durable group commit from threads and coroutines"

__all__ = ["DESCRIPTION", "add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calls", type=int, default=50_000, help="in-memory calls timed")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per durable run")
    parser.add_argument("--threads", type=int, default=64, help="threads of the durable run")
    parser.add_argument("--coroutines", type=int, default=1000, help="asyncio tasks")
    parser.add_argument("--dir", default=None, help="directory for journals (default: tmp)")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke test")


def _network(num_skus: int = 1000, num_locations: int = 100) -> NetworkData:
    return NetworkData.from_arrays(
        channels=["store", "online", "marketplace"],
        location_name=[f"L{i:03d}" for i in range(num_locations)],
        location_kind="store",
        lat=np.zeros(num_locations),
        lon=np.zeros(num_locations),
        sku_name=[f"SKU-{i:05d}" for i in range(num_skus)],
    )


def _stock(network: NetworkData, units: int) -> Events:
    nl = network.num_locations
    keys = np.arange(network.num_skus * nl, dtype=np.int64)
    return Events.receive(keys // nl, keys % nl, units, id=keys + 1)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values), q))


# --------------------------------------------------------------------------- in memory
def _in_memory(network: NetworkData, calls: int) -> dict[str, float]:
    led = Ledger(network, capacity=network.num_skus * network.num_locations + 16)
    led.apply(_stock(network, 10**9))
    skus, locs = network.sku_names, network.location_names
    rng = np.random.default_rng(1)
    pick = rng.integers(0, len(skus), calls).tolist()
    where = rng.integers(0, len(locs), calls).tolist()
    first = 10**7
    reserve_ns: list[int] = []
    clock = time.perf_counter_ns
    for i in range(calls):
        s, loc = skus[pick[i]], locs[where[i]]
        t = clock()
        led.reserve(s, loc, 1, channel="online", id=first + i)
        reserve_ns.append(clock() - t)
    avail_ns: list[int] = []
    for i in range(calls):
        s, loc = skus[pick[i]], locs[where[i]]
        t = clock()
        led.available(s, loc, "online")
        avail_ns.append(clock() - t)
    # the pure-Python reference ledger, reached through the same name lookups
    naive = NaiveLedger(network.num_locations, network.num_channels)
    setup = _stock(network, 10**9)
    naive.apply(
        [
            (int(i), int(EventKind.RECEIVE), int(s), int(lo), -1, int(q), 0, int(NO_EXPIRY), 0)
            for i, s, lo, q in zip(
                setup.id.tolist(),
                setup.sku.tolist(),
                setup.location.tolist(),
                setup.qty.tolist(),
                strict=True,
            )
        ]
    )
    dict_ns: list[int] = []
    chan = int(network.channel_index("online"))
    for i in range(calls):
        s, loc = skus[pick[i]], locs[where[i]]
        t = clock()
        row = (
            first + i,
            int(EventKind.RESERVE),
            int(network.sku_index(s)),
            int(network.location_index(loc)),
            int(chan),
            1,
            0,
            int(NO_EXPIRY),
            0,
        )
        naive.apply([row])
        dict_ns.append(clock() - t)
    warm = calls // 10
    return {
        "reserve_p50_us": float(np.median(reserve_ns[warm:])) / 1e3,
        "reserve_p99_us": _percentile([x / 1e3 for x in reserve_ns[warm:]], 99),
        "available_p50_us": float(np.median(avail_ns[warm:])) / 1e3,
        "dict_reserve_p50_us": float(np.median(dict_ns[warm:])) / 1e3,
    }


# --------------------------------------------------------------------------- durable
def _fsync_ms(directory: Path, repeat: int = 50) -> float:
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        block = b"\0" * 4096
        times = []
        for i in range(repeat):
            t = time.perf_counter()
            os.pwrite(fd, block, 4096 * (i % 8))
            os.fdatasync(fd)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return float(np.median(times)) * 1e3


def _drive_threads(call: Any, threads: int, seconds: float) -> tuple[float, list[float]]:
    """Run ``call(thread, i)`` in a loop on ``threads`` threads; (calls/s, latencies s)."""
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    start_gate = threading.Barrier(threads + 1)

    def worker(k: int) -> None:
        lat = latencies[k]
        i = 0
        start_gate.wait()
        try:
            while not stop.is_set():
                t = time.perf_counter()
                call(k, i)
                lat.append(time.perf_counter() - t)
                i += 1
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for t in pool:
        t.start()
    start_gate.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    flat = [x for lat in latencies for x in lat]
    return len(flat) / elapsed, flat


def _durable(network: NetworkData, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    from allocator.journal import open_ledger

    out: dict[str, Any] = {}
    skus, locs = network.sku_names, network.location_names
    nsku, nloc = len(skus), len(locs)

    def run_threads(threads: int, tag: str) -> None:
        path = workdir / f"{tag}.db"
        with open_ledger(path, network, snapshot_every=None) as led:
            led.apply(_stock(network, 10**9))
            groups0 = led.groups_committed

            def call(k: int, i: int) -> None:
                j = k * 7919 + i
                res = led.reserve(
                    skus[j % nsku], locs[(j // nsku) % nloc], 1, channel="online",
                    id=10**8 + k * 10**6 + i,
                )  # fmt: skip
                if not res.ok:
                    raise AssertionError(f"reserve refused: {res}")

            rate, lat = _drive_threads(call, threads, args.seconds)
            out[f"{tag}_per_s"] = rate
            out[f"{tag}_p50_ms"] = _percentile(lat, 50) * 1e3
            out[f"{tag}_p99_ms"] = _percentile(lat, 99) * 1e3
            out[f"{tag}_calls_per_group"] = len(lat) / max(1, led.groups_committed - groups0)

    run_threads(1, "durable_1thread")
    run_threads(args.threads, "durable_threads")
    out["durable_64threads_per_s"] = out.pop("durable_threads_per_s")
    out["durable_p50_ms"] = out.pop("durable_threads_p50_ms")
    out["durable_p99_ms"] = out.pop("durable_threads_p99_ms")
    out["durable_calls_per_group"] = out.pop("durable_threads_calls_per_group")

    # coroutines: one event loop, many tasks
    path = workdir / "async.db"
    with open_ledger(path, network, snapshot_every=None) as led:
        led.apply(_stock(network, 10**9))

        async def main() -> tuple[int, float, list[float]]:
            stop = time.perf_counter() + args.seconds
            lat: list[float] = []

            async def task(k: int) -> int:
                i = 0
                while time.perf_counter() < stop:
                    j = k * 7919 + i
                    t = time.perf_counter()
                    res = await led.reserve_async(
                        skus[j % nsku], locs[(j // nsku) % nloc], 1, channel="online",
                        id=10**9 + k * 10**6 + i,
                    )  # fmt: skip
                    lat.append(time.perf_counter() - t)
                    if not res.ok:
                        raise AssertionError(f"reserve refused: {res}")
                    i += 1
                return i

            t0 = time.perf_counter()
            counts = await asyncio.gather(*(task(k) for k in range(args.coroutines)))
            return sum(counts), time.perf_counter() - t0, lat

        done, elapsed, lat = asyncio.run(main())
        out["coroutines_per_s"] = done / elapsed
        out["coroutines_p99_ms"] = _percentile(lat, 99) * 1e3
    return out


def _sqlite_baseline(network: NetworkData, workdir: Path, args: argparse.Namespace) -> float:
    """The platforms' way: one conditional UPDATE per reserve, its own transaction."""
    path = workdir / "platform.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE stock(sku TEXT, location TEXT, on_hand INTEGER NOT NULL, "
        "reserved INTEGER NOT NULL, CHECK (reserved <= on_hand), PRIMARY KEY (sku, location))"
    )
    rows = [(s, loc, 10**9, 0) for s in network.sku_names for loc in network.location_names]
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO stock VALUES (?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    conn.close()
    skus, locs = network.sku_names, network.location_names
    nsku, nloc = len(skus), len(locs)
    local = threading.local()

    def call(k: int, i: int) -> None:
        c = getattr(local, "conn", None)
        if c is None:
            c = sqlite3.connect(path, isolation_level=None, timeout=60, check_same_thread=False)
            c.execute("PRAGMA synchronous = FULL")
            local.conn = c
        j = k * 7919 + i
        c.execute("BEGIN IMMEDIATE")
        cur = c.execute(
            "UPDATE stock SET reserved = reserved + ? WHERE sku = ? AND location = ? "
            "AND on_hand - reserved >= ?",
            (1, skus[j % nsku], locs[(j // nsku) % nloc], 1),
        )
        c.execute("COMMIT")
        if cur.rowcount != 1:
            raise AssertionError("baseline reserve refused")

    rate, _ = _drive_threads(call, args.threads, args.seconds)
    return rate


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.calls = min(args.calls, 5_000)
        args.seconds = min(args.seconds, 1.0)
        args.threads = min(args.threads, 16)
        args.coroutines = min(args.coroutines, 100)
    network = _network(200, 50) if args.quick else _network()
    t0 = time.perf_counter()
    warm = Ledger(network)
    warm.apply(_stock(network, 5).take(slice(0, 4)))
    warm.reserve(0, 0, 1, channel=0)
    warm.available(network.sku_names[0], network.location_names[0], "online")
    compile_s = time.perf_counter() - t0
    figures: dict[str, Any] = {"compile_s": compile_s}
    figures.update(_in_memory(network, args.calls))
    workdir = Path(tempfile.mkdtemp(prefix="allocator-rt-", dir=args.dir))
    try:
        figures["fsync_ms"] = _fsync_ms(workdir)
        figures.update(_durable(network, workdir, args))
        figures["sqlite_baseline_per_s"] = _sqlite_baseline(network, workdir, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    figures["threads"] = args.threads
    figures["coroutines"] = args.coroutines
    figures["reserve_vs_dict"] = figures["dict_reserve_p50_us"] / figures["reserve_p50_us"]
    figures["threads_vs_1thread"] = (
        figures["durable_64threads_per_s"] / figures["durable_1thread_per_s"]
    )
    figures["threads_vs_sqlite_baseline"] = (
        figures["durable_64threads_per_s"] / figures["sqlite_baseline_per_s"]
    )
    figures["durable_p99_in_fsyncs"] = figures["durable_p99_ms"] / figures["fsync_ms"]
    return figures
