"""``allocator bench cluster``: one ledger shared by many processes through PostgreSQL.

Every figure is measured in the same run, on the same PostgreSQL server
(``synchronous_commit=on``, ``fsync=on``; a throwaway server is started unless
``--url`` names one):

* ``reserves_per_s`` / ``p50_ms`` / ``p99_ms``: ``--clients`` client processes
  (:class:`~allocator.journal.shared.SharedLedger`, ``role="client"``), each with
  ``--in-flight`` asyncio tasks calling ``reserve_async`` for one unit of a random
  position, each call acknowledged only once the leader's batch that applied it is
  committed. A leader and a standby run in processes of their own;
* ``baseline_per_s`` / ``baseline_p99_ms``: the same number of callers the way the
  common platforms keep stock: one ``UPDATE stock SET reserved = reserved + q WHERE
  position = .. AND on_hand - reserved >= q`` per reserve, in its own
  transaction, one connection per caller (threads);
* ``oversold`` / ``baseline_oversold``: units granted beyond the stock, summed over
  the positions, counted from the acknowledged answers and checked in the final
  state. Every 10th position is scarce (``--stock`` units, sold out early), the
  others ample, so a wrong answer would show while both paths are measured on
  reserves that succeed;
* ``staleness_p99_ms``: a follower process (``role="follower"``) under that load: the
  99th percentile over the batches it followed of the time from the leader stamping
  a batch until the follower had applied it;
* ``failover_s``: after the measured window the leader is killed (``SIGKILL``) while
  the clients keep submitting; the time until the standby has committed a batch.

The leader and client processes run with ``sys.setswitchinterval(--switch-interval)``
(default 0.5 ms instead of Python's 5 ms: a thread that a network reply woke gets
the interpreter sooner, which shortens every hop of a call), as a latency-sensitive
deployment would, and call ``gc.freeze()`` once started (the objects of the start-up,
numba's included, then stay out of the collector's full passes, which otherwise stop
a process for tens of milliseconds). The clients' compile (or cache load) time is reported apart as
``startup_s``, and the CPU time each group of processes used in the measured window
per acknowledged reserve as ``cpu_clients_us``, ``cpu_leader_us``,
``cpu_standby_us``, ``cpu_follower_us`` and ``cpu_server_us`` (Linux; where the
time goes).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np

from allocator.events import Events
from allocator.network import NetworkData

DESCRIPTION = (
    "shared ledger on PostgreSQL: 8 client processes x 32 in flight vs conditional UPDATEs; "
    "follower staleness; failover"
)

__all__ = ["DESCRIPTION", "add_arguments", "run"]

_CHANNEL = 1  # "online"
AMPLE = 1_000_000  # units of a position that does not sell out in a run
_SWITCH = "ALLOCATOR_BENCH_SWITCH_INTERVAL"  # how the parent passes --switch-interval


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=8, help="client processes")
    parser.add_argument("--in-flight", type=int, default=32, help="reserves in flight per client")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds measured per run")
    parser.add_argument("--skus", type=int, default=500, help="SKUs (x --locations positions)")
    parser.add_argument("--locations", type=int, default=10, help="locations")
    parser.add_argument(
        "--stock", type=int, default=2, help="units of each scarce position (every 10th)"
    )
    parser.add_argument("--lease", type=float, default=2.0, help="the leader's lease (s)")
    parser.add_argument(
        "--url", default=None, help="postgresql:// URL of a server to use (default: start one)"
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=0.0005,
        help="sys.setswitchinterval of the leader and client processes, in seconds "
        "(0: Python's default, 0.005)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke test")


def _network(num_skus: int, num_locations: int) -> NetworkData:
    return NetworkData.from_arrays(
        channels=["store", "online", "marketplace"],
        location_name=[f"L{i:03d}" for i in range(num_locations)],
        location_kind="store",
        lat=np.zeros(num_locations),
        lon=np.zeros(num_locations),
        sku_name=[f"SKU-{i:05d}" for i in range(num_skus)],
    )


# --------------------------------------------------------------------------- child processes
def _spawn(*args: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "allocator.bench.cluster", *map(str, args)],
        env=dict(os.environ, **_child_env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


_child_env: dict[str, str] = {}


def _expect(proc: subprocess.Popen[str], word: str) -> str:
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    if not line.startswith(word):
        proc.kill()
        proc.wait()
        tail = proc.stderr.read()[-3000:]
        raise RuntimeError(f"bench cluster: a child said {line!r} instead of {word!r}: {tail}")
    return line[len(word) :].strip()


def _tell(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def _end(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def _stop_on_line(stop: threading.Event) -> None:
    """Set ``stop`` when the parent writes the next line (``stop``)."""

    def wait() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=wait, daemon=True).start()


def _child_leader(url: str, lease: float) -> None:
    from allocator.journal import open_ledger

    led = open_ledger(url, role="leader", lease=lease, poll=0.2)
    gc.freeze()
    print("ready", flush=True)
    sys.stdin.readline()  # runs until told to stop (or killed)
    led.close()


def _child_follower(url: str) -> None:
    from allocator.journal import open_ledger

    led = open_ledger(url, role="follower", poll=0.05)
    gc.freeze()
    print("ready", flush=True)
    sys.stdin.readline()  # go
    first = len(led.lags())
    sys.stdin.readline()  # report
    lags = led.lags()[first:]
    print("lags " + json.dumps([float(x) for x in lags]), flush=True)
    led.close()


def _child_client(url: str, k: int, in_flight: int, positions: int, seed: int) -> None:
    from allocator.exceptions import LedgerBusyError, StorageError
    from allocator.journal import open_ledger

    t0 = time.perf_counter()
    led = open_ledger(url, role="client", poll=0.2, timeout=60)
    warm_position = positions  # the last SKU's first location: never measured
    warm_id = (k << 40) | (0xFFFF << 24) | 1  # no task's id
    led.reserve(warm_position // led.network.num_locations, 0, 1, channel=_CHANNEL, id=warm_id)
    startup = time.perf_counter() - t0
    gc.freeze()
    print(f"ready {startup}", flush=True)
    stop = threading.Event()
    sys.stdin.readline()  # go
    _stop_on_line(stop)
    nl = led.network.num_locations
    done: list[tuple[float, float, int, int]] = []  # (end, latency, position, code)
    errors = [0]

    async def task(t: int) -> None:
        rng = np.random.default_rng(seed * 1000 + t)
        i = 0
        while not stop.is_set():
            pos = int(rng.integers(0, positions))
            ident = (k << 40) | (t << 24) | (i + 1)
            i += 1
            start = time.perf_counter()
            while True:
                try:
                    res = await led.reserve_async(
                        pos // nl, pos % nl, 1, channel=_CHANNEL, id=ident
                    )
                    break
                except (LedgerBusyError, StorageError):
                    errors[0] += 1  # retried with the same id
            end = time.perf_counter()
            done.append((time.time(), end - start, pos, int(res.code)))

    async def main() -> None:
        await asyncio.gather(*(task(t) for t in range(in_flight)))

    asyncio.run(main())
    print("result " + json.dumps({"done": done, "errors": errors[0]}), flush=True)
    led.close()


def _child_baseline(conninfo: str, table: str, in_flight: int, positions: int, seed: int) -> None:
    from allocator.journal._pgstore import connect

    conns = [connect(conninfo, application="allocator bench baseline") for _ in range(in_flight)]
    print("ready 0", flush=True)
    stop = threading.Event()
    sys.stdin.readline()  # go
    _stop_on_line(stop)
    done: list[list[tuple[float, float, int, int]]] = [[] for _ in range(in_flight)]
    sql = (
        f"UPDATE {table} SET reserved = reserved + 1 WHERE position = %s"
        " AND on_hand - reserved >= 1"
    )

    def worker(t: int) -> None:
        rng = np.random.default_rng(seed * 1000 + t)
        conn, out = conns[t], done[t]
        while not stop.is_set():
            pos = int(rng.integers(0, positions))
            start = time.perf_counter()
            ok = conn.execute(sql, (pos,)).rowcount == 1  # autocommit: its own transaction
            end = time.perf_counter()
            out.append((time.time(), end - start, pos, 0 if ok else 1))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(in_flight)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    flat = [x for part in done for x in part]
    print("result " + json.dumps({"done": flat, "errors": 0}), flush=True)
    for conn in conns:
        conn.close()


# --------------------------------------------------------------------------- the parent
def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by the processes ``pids`` (Linux
    ``/proc``; 0 for a process that is gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def _server_pids() -> list[int]:
    """The PostgreSQL server's processes (the postmaster and its backends)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if cmd.startswith(b"postgres:") or b"/bin/postgres\0" in cmd:
            pids.append(int(entry))
    return pids


class _Cpu:
    """CPU seconds per group of processes over a window (``start``, ``stop``)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> None:
        self.groups["server"] = _server_pids()
        self.before = {k: _cpu_seconds(v) for k, v in self.groups.items()}

    def stop(self) -> None:
        self.groups["server"] = sorted(set(self.groups["server"]) | set(_server_pids()))
        self.used = {k: _cpu_seconds(v) - self.before[k] for k, v in self.groups.items()}


def _start(
    procs: list[subprocess.Popen[str]], window: float, cpu: _Cpu | None = None
) -> tuple[float, float]:
    """Start the ready ``procs`` together and let them run ``window`` seconds; returns
    the window ``(go, end)`` in wall-clock time (the procs go on until told to stop)."""
    if cpu is not None:
        cpu.start()
    go = time.time()
    for proc in procs:
        _tell(proc, "go")
    time.sleep(window)
    end = time.time()
    if cpu is not None:
        cpu.stop()
    return go, end


def _stock(args: argparse.Namespace, positions: int) -> np.ndarray:
    """Units per position: every 10th position is scarce (``--stock`` units, sold out
    early in the run, where an oversell would show), the others ample."""
    return np.where(np.arange(positions) % 10 == 0, args.stock, AMPLE).astype(np.int64)


def _collect(
    procs: list[subprocess.Popen[str]], go: float, end: float, stock: np.ndarray
) -> dict[str, float]:
    for proc in procs:
        _tell(proc, "stop")
    latencies: list[float] = []
    granted = np.zeros(len(stock), dtype=np.int64)
    errors = 0
    for proc in procs:
        doc = json.loads(_expect(proc, "result "))
        errors += int(doc["errors"])
        for stamp, latency, pos, code in doc["done"]:
            if code == 0:
                granted[pos] += 1
            if go <= stamp <= end:
                latencies.append(latency)
    seconds = end - go
    return {
        "per_s": len(latencies) / seconds,
        "p50_ms": float(np.percentile(latencies, 50)) * 1e3 if latencies else float("nan"),
        "p99_ms": float(np.percentile(latencies, 99)) * 1e3 if latencies else float("nan"),
        "oversold": int(np.maximum(granted - stock, 0).sum()),
        "granted": int(granted.sum()),
        "errors": errors,
    }


def _baseline(conninfo: str, args: argparse.Namespace, positions: int) -> dict[str, float]:
    from allocator.journal._pgstore import connect

    table = "allocator_bench_stock"
    with connect(conninfo) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(
            f"CREATE TABLE {table} (position bigint PRIMARY KEY, on_hand bigint NOT NULL,"
            " reserved bigint NOT NULL)"
        )
        conn.execute(
            f"INSERT INTO {table} SELECT p, CASE WHEN p %% 10 = 0 THEN %s ELSE %s END, 0"
            " FROM generate_series(0, %s) p",
            (args.stock, AMPLE, positions - 1),
        )
    procs = [
        _spawn("baseline", conninfo, table, args.in_flight, positions, 100 + k)
        for k in range(args.clients)
    ]
    try:
        for proc in procs:
            _expect(proc, "ready")
        go, end = _start(procs, args.seconds)
        figures = _collect(procs, go, end, _stock(args, positions))
    finally:
        for proc in procs:
            _end(proc)
    with connect(conninfo) as conn:
        over = conn.execute(
            f"SELECT coalesce(sum(greatest(reserved - on_hand, 0)), 0) FROM {table}"
        ).fetchone()[0]
        conn.execute(f"DROP TABLE {table}")
    figures["oversold"] = max(int(figures["oversold"]), int(over))
    return figures


def _epoch_of_last_batch(conninfo: str, schema: str) -> int:
    from allocator.journal._pgstore import connect

    with connect(conninfo) as conn:
        row = conn.execute(f"SELECT coalesce(max(epoch), 0) FROM {schema}.batches").fetchone()
    return int(row[0])


def _leader_pid(conninfo: str, schema: str) -> int:
    from allocator.journal._pgstore import connect

    with connect(conninfo) as conn:
        holder = conn.execute(f"SELECT holder FROM {schema}.lease").fetchone()[0]
    return int(holder.rsplit(":", 1)[1]) if holder else 0


def _shared(url: str, args: argparse.Namespace, positions: int) -> dict[str, Any]:
    from allocator.journal import open_ledger, verify_journal
    from allocator.journal._pgstore import parse_url

    conninfo, schema, _ = parse_url(url)
    network = _network(args.skus + 1, args.locations)  # the last SKU: warm-up reserves
    nl = args.locations
    with open_ledger(url, network, snapshot_every=None) as writer:  # creates and stocks
        keys = np.arange(positions + nl, dtype=np.int64)
        qty = np.concatenate((_stock(args, positions), np.full(nl, AMPLE, dtype=np.int64)))
        writer.apply(Events.receive(keys // nl, keys % nl, qty, id=keys + 1))
    leaders = [_spawn("leader", url, args.lease) for _ in range(2)]
    follower = _spawn("follower", url)
    clients: list[subprocess.Popen[str]] = []
    try:
        for proc in [*leaders, follower]:
            _expect(proc, "ready")
        clients = [
            _spawn("client", url, k + 1, args.in_flight, positions, k) for k in range(args.clients)
        ]
        startup = max(float(_expect(proc, "ready")) for proc in clients)
        lead_pid = _leader_pid(conninfo, schema)  # the clients' warm-up had a leader
        cpu = _Cpu(
            {
                "clients": [p.pid for p in clients],
                "leader": [lead_pid],
                "standby": [p.pid for p in leaders if p.pid != lead_pid],
                "follower": [follower.pid],
            }
        )
        go, end = _start([*clients, follower], args.seconds, cpu)
        _tell(follower, "report")
        lags = json.loads(_expect(follower, "lags "))
        # failover under load: kill the leader, time until the standby commits a batch
        epoch = _epoch_of_last_batch(conninfo, schema)
        pid = _leader_pid(conninfo, schema)
        victim = next(p for p in leaders if p.pid == pid)
        t0 = time.perf_counter()
        os.kill(victim.pid, signal.SIGKILL)
        failover = float("nan")
        while time.perf_counter() - t0 < 60:
            if _epoch_of_last_batch(conninfo, schema) > epoch:
                failover = time.perf_counter() - t0
                break
            time.sleep(0.005)
        time.sleep(0.3)  # the clients go on against the new leader a little
        figures = _collect(clients, go, end, _stock(args, positions))
    finally:
        for proc in [*clients, follower, *leaders]:
            _end(proc)
    report = verify_journal(url)
    with open_ledger(url, role="reader") as reader:
        stock = reader.stock_snapshot()
        state_over = int(np.maximum(stock.reserved - stock.on_hand, 0).sum())
        batches = reader.seq
        events = reader.num_events
    acknowledged = figures["per_s"] * (end - go)
    for group, used in cpu.used.items():
        figures[f"cpu_{group}_us"] = used / acknowledged * 1e6 if acknowledged else float("nan")
    figures.update(
        {
            "staleness_p99_ms": float(np.percentile(lags, 99)) * 1e3 if lags else float("nan"),
            "failover_s": failover,
            "startup_s": startup,
            "journal_ok": bool(report.ok),
            "batches": batches,
            "events": events,
        }
    )
    figures["oversold"] = max(int(figures["oversold"]), state_over)
    return figures


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.clients, args.in_flight, args.seconds = 2, 4, 1.0
        args.skus, args.locations, args.stock = 20, 5, 5
    for name in ("clients", "in_flight", "skus", "locations", "stock"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1")
    if not args.seconds > 0 or not args.lease > 0:
        raise SystemExit("--seconds and --lease must be > 0")
    if not args.switch_interval >= 0:
        raise SystemExit("--switch-interval must be >= 0")
    _child_env[_SWITCH] = str(args.switch_interval)
    from allocator.bench._pgserver import PgServer
    from allocator.journal._pgstore import connect, parse_url

    server = None
    base = args.url
    if base is None:
        server = PgServer(fsync=True)
        base = server.url("allocator_bench")
    conninfo, schema, _ = parse_url(base)
    positions = args.skus * args.locations
    try:
        with connect(conninfo) as conn:  # a fresh journal schema
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        baseline = _baseline(conninfo, args, positions)
        ours = _shared(base, args, positions)
        with connect(conninfo) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        if server is not None:
            server.destroy()
    return {
        "reserves_per_s": ours["per_s"],
        "p50_ms": ours["p50_ms"],
        "p99_ms": ours["p99_ms"],
        "baseline_per_s": baseline["per_s"],
        "baseline_p99_ms": baseline["p99_ms"],
        "ratio": ours["per_s"] / baseline["per_s"] if baseline["per_s"] else float("nan"),
        "oversold": ours["oversold"],
        "baseline_oversold": baseline["oversold"],
        "staleness_p99_ms": ours["staleness_p99_ms"],
        "failover_s": ours["failover_s"],
        "clients": args.clients,
        "in_flight": args.in_flight,
        "seconds": args.seconds,
        "switch_interval_s": args.switch_interval,
        "granted": ours["granted"],
        "baseline_granted": baseline["granted"],
        "retried": ours["errors"],
        "batches": ours["batches"],
        "events": ours["events"],
        "journal_ok": ours["journal_ok"],
        "startup_s": ours["startup_s"],
        **{k: v for k, v in ours.items() if k.startswith("cpu_")},
    }


def _child(argv: list[str]) -> None:
    role = argv[0]
    interval = float(os.environ.get(_SWITCH, "0"))
    if interval > 0 and role != "baseline":  # the baseline keeps its best setting
        sys.setswitchinterval(interval)
    if role == "leader":
        _child_leader(argv[1], float(argv[2]))
    elif role == "follower":
        _child_follower(argv[1])
    elif role == "client":
        _child_client(argv[1], int(argv[2]), int(argv[3]), int(argv[4]), int(argv[5]))
    elif role == "baseline":
        _child_baseline(argv[1], argv[2], int(argv[3]), int(argv[4]), int(argv[5]))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    _child(sys.argv[1:])
