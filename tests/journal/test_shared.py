"""The shared ledger on a real PostgreSQL server, with real processes.

Races between processes, the leader killed at random points, killed submitters,
dropped connections and a server restart. Each test checks: no oversell, every
acknowledged event exactly once in the journal, retries with the same ids
converge, the journal verifies and its replay equals the replicas.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from allocator import Events, Ledger, ResultCode
from allocator.exceptions import JournalLockedError, LedgerBusyError, StorageError
from allocator.journal import _pgstore, open_ledger, replay_journal, verify_journal
from allocator.journal.shared import SharedLedger
from tests.conftest import make_small_network
from tests.journal.backends import PostgresBackend

OK = ResultCode.OK
ROOT = Path(__file__).resolve().parents[2]


def _child(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.journal.shared_child", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def _reap(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    """Kill a child (SIGKILL by default), wait for it and close its pipes."""
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def _ready(proc: subprocess.Popen[str], word: str = "ready") -> None:
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    if not line.startswith(word):
        proc.kill()
        proc.wait()
        raise AssertionError(f"child said {line!r}: {proc.stderr.read()[-3000:]}")


def _journal_counts(url: str) -> dict[int, int]:
    """Per event id: how many times the journal applied it as new (not duplicate)."""
    got = replay_journal(url)
    del got
    with open_ledger(url, role="reader") as reader:
        part = reader.read()
    ids = np.asarray(part.events.id)[~np.asarray(part.duplicate)]
    uniq, counts = np.unique(ids, return_counts=True)
    return dict(zip(uniq.tolist(), counts.tolist(), strict=True))


def _check_journal(url: str, digest: str | None = None) -> None:
    report = verify_journal(url)
    assert report.ok, report.summary()
    if digest is not None:
        assert report.digest == digest


# --------------------------------------------------------------------------- basics
def test_client_results_equal_a_ledger_applying_each_submission_alone(pg_url: str) -> None:
    net = make_small_network()
    memory = Ledger(net)
    with (
        open_ledger(pg_url, net, role="leader", poll=0.1) as lead,
        open_ledger(pg_url, role="client", poll=0.1) as client,
    ):
        assert isinstance(client, SharedLedger)
        assert lead.leader is not None and lead.leader.leading.wait(10)
        steps: list[Any] = [
            Events.receive([0, 0, 1], [0, 1, 0], [5, 2, 3], id=[1, 2, 3]),
            Events.reserve(0, 0, 2, channel=1, id=10),
            Events.reserve(0, 0, 2, channel=1, id=10),  # a redelivery
            Events.reserve(0, 0, 3, channel=1, id=10),  # the same id, another payload
            Events.reserve([0, 0], [0, 0], [1, 100], channel=[1, 1], id=[11, 12]).linked(),
            Events.commit(10, 1, id=13),
            Events.receive(2, 2, 4),  # a ledger-assigned id
            Events.sale(0, 0, 10, id=14),
        ]
        for events in steps:
            got, want = client.apply(events), memory.apply(events)
            np.testing.assert_array_equal(got.ids, want.ids)
            np.testing.assert_array_equal(got.codes, want.codes)
            np.testing.assert_array_equal(got.duplicate, want.duplicate)
        assert client.available(0, 0, 1) == memory.available(0, 0, 1)
        one = client.reserve("SKU-1", "S1", 1, channel="online", id=20)
        assert one.code == memory.reserve("SKU-1", "S1", 1, channel="online", id=20).code
        assert client.state_digest() == memory.state_digest()  # read-your-writes
        assert lead.state_digest() == memory.state_digest() or lead.sync() > 0
    _check_journal(pg_url, memory.state_digest())


def test_follower_reads_sql_submissions_and_reports_staleness(pg_url: str) -> None:
    net = make_small_network()
    pg = PostgresBackend(pg_url)
    with (
        open_ledger(pg_url, net, role="leader", poll=0.1) as lead,
        open_ledger(pg_url, role="follower", poll=0.1) as follower,
    ):
        assert lead.leader is not None and lead.leader.leading.wait(10)
        with pytest.raises(Exception, match="read-only"):
            follower.receive(0, 0, 1, id=1)
        # a program in another language: INSERT rows, wait for the results rows
        sub = int(pg.execute(pg_url, "SELECT nextval('{s}submissions')")[0][0])
        pg.execute(
            pg_url,
            "INSERT INTO {s}inbox (sub, pos, id, kind, sku, location, qty) VALUES"
            " (?, 0, 500, 0, 1, 1, 7)",
            (sub,),
        )
        pg.execute(pg_url, "NOTIFY " + _pgstore.parse_url(pg_url)[1] + "_inbox")
        deadline = time.monotonic() + 20
        rows: list[Any] = []
        while not rows and time.monotonic() < deadline:
            rows = pg.execute(
                pg_url, "SELECT code, duplicate FROM {s}results WHERE sub = ?", (sub,)
            )
            time.sleep(0.02)
        assert rows == [(0, False)]
        follower.sync()
        assert follower.position(1, 1)["on_hand"] == 7
        assert follower.staleness < 30
        # bad rows from outside are answered with the error, never applied
        pg.execute(
            pg_url,
            "INSERT INTO {s}inbox (sub, pos, id, kind, sku, location, qty) VALUES"
            " (?, 0, 501, 0, 99, 1, 7)",
            (sub + 1,),
        )
        deadline = time.monotonic() + 20
        rows = []
        while not rows and time.monotonic() < deadline:
            rows = pg.execute(pg_url, "SELECT error FROM {s}results WHERE sub = ?", (sub + 1,))
            time.sleep(0.02)
        assert rows and "sku" in rows[0][0]
        assert follower.result_of(501)[0] == -1
    _check_journal(pg_url)


def test_deposed_leader_late_write_is_refused(pg_url: str) -> None:
    net = make_small_network()
    old = open_ledger(pg_url, net)  # a writer: holds the lock, epoch 1
    old.receive(0, 0, 5, id=1)
    assert old.store.epoch == 1
    old.store.lock_conn.close()  # its lock session is lost (network partition, say)
    new = open_ledger(pg_url)  # takes the lock, epoch 2, catches up
    assert new.store.epoch == 2 and new.seq == 1
    new.receive(0, 0, 1, id=2)
    with pytest.raises(JournalLockedError, match="deposed"):
        old.receive(0, 0, 100, id=3)  # the late write of the deposed writer
    # nothing of it applied: the deposed writer rebuilt itself from the journal
    assert old.seq == 2 and old.result_of(3)[0] == -1
    new.close()
    old.close()
    pg = PostgresBackend(pg_url)
    assert pg.execute(pg_url, "SELECT seq, epoch FROM {s}batches ORDER BY seq") == [(1, 1), (2, 2)]
    _check_journal(pg_url)


def test_a_deposed_shared_leader_is_refused_and_stands_by(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process took the lease (the epoch moved on) while this leader still
    runs: its next batch is refused by the epoch check, its inbox rows go back, and
    the event is applied once, by a leader holding the current epoch."""
    net = make_small_network()
    pg = PostgresBackend(pg_url)
    with (
        open_ledger(pg_url, net, role="leader", poll=0.1, lease=60) as lead,
        open_ledger(pg_url, role="client", poll=0.1) as client,
    ):
        assert lead.leader is not None and lead.leader.leading.wait(10)
        assert client.receive(0, 0, 5, id=1).accepted
        old = lead.leader.epoch
        assert old is not None
        pg.execute(pg_url, "UPDATE {s}lease SET epoch = epoch + 1")  # a successor's epoch
        with caplog.at_level(logging.WARNING, logger="allocator"):
            got = client.receive(0, 0, 1, id=2)
        assert got.accepted and not got.duplicate
        assert "deposed" in caplog.text
        assert client.position(0, 0)["on_hand"] == 6
    rows = pg.execute(pg_url, "SELECT seq, epoch FROM {s}batches ORDER BY seq")
    assert rows == [(1, old), (2, old + 2)]  # nothing was written under the stale epoch
    assert _journal_counts(pg_url) == {1: 1, 2: 1}
    _check_journal(pg_url)


# --------------------------------------------------------------------------- races
def test_sixteen_processes_race_for_the_last_units(pg_url: str) -> None:
    net = make_small_network()
    stock = {(0, 0): 7, (0, 1): 5, (1, 0): 3, (1, 1): 9}
    with open_ledger(pg_url, net, role="leader", poll=0.1) as lead:
        assert lead.leader is not None and lead.leader.leading.wait(10)
        for i, ((s, loc), q) in enumerate(stock.items()):
            assert lead.receive(s, loc, q, id=900_000_000 + i)
        procs = [_child("race", pg_url, str(c + 1), "6", str(c)) for c in range(16)]
        acks: dict[int, list[tuple[int, int]]] = {}
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err[-3000:]
            lines = out.split("\n")
            assert "done" in lines, err[-3000:]
            for line in lines:
                if line.startswith("ack"):
                    _, ident, code, dup = line.split()
                    acks.setdefault(int(ident), []).append((int(code), int(dup)))
        digest = lead.sync() and lead.state_digest()
        final = {k: lead.position(*k) for k in stock}
    # no oversell: at most the stock was reserved, and reserved never exceeds on_hand
    granted = sum(1 for got in acks.values() for code, dup in got if code == OK and not dup)
    # demand (about 300 fresh reserves) far exceeds the 24 units: every unit goes, none twice
    assert granted == sum(stock.values())
    for key, q in stock.items():
        assert final[key]["reserved"] <= q == final[key]["on_hand"]
    assert sum(p["reserved"] for p in final.values()) == granted
    # every acknowledged event exactly once; redeliveries return the first outcome
    counts = _journal_counts(pg_url)
    for ident, got in acks.items():
        assert counts.get(ident) == 1, ident
        first_codes = {code for code, dup in got if not dup}
        assert len(first_codes) <= 1
    assert replay_journal(pg_url).state_digest() == digest
    _check_journal(pg_url, digest)


# --------------------------------------------------------------------------- faults
class _Load:
    """Threads reserving 1 unit with fresh ids, retrying each id until it is answered."""

    def __init__(self, ledger: Any, threads: int, first_id: int) -> None:
        self.ledger = ledger
        self.stop = threading.Event()
        self.answers: dict[int, list[tuple[int, int]]] = {}
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.next = first_id
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                ident = self.next
                self.next += 1
            while True:
                try:
                    res = self.ledger.reserve(2, 2, 1, channel=1, id=ident)
                except (LedgerBusyError, StorageError) as exc:  # typed, retried by id
                    with self.lock:
                        self.errors.append(type(exc).__name__)
                    time.sleep(0.01)
                    continue
                with self.lock:
                    self.answers.setdefault(ident, []).append((int(res.code), int(res.duplicate)))
                break

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=300)
        assert not any(t.is_alive() for t in self.threads)


def _leader_pid(url: str) -> int:
    pg = PostgresBackend(url)
    holder = pg.execute(url, "SELECT holder FROM {s}lease")[0][0]
    return int(holder.rsplit(":", 1)[1]) if holder else 0


class _Candidates:
    """Leader candidates forked by a zygote (``tests.journal.shared_child zygote``): a new
    candidate costs a fork, not an interpreter start and a kernel load."""

    def __init__(self, url: str) -> None:
        self.zygote = _child("zygote", url)
        _ready(self.zygote)
        self.pids: list[int] = []

    def spawn(self) -> int:
        assert self.zygote.stdin is not None and self.zygote.stdout is not None
        self.zygote.stdin.write("spawn\n")
        self.zygote.stdin.flush()
        pid = int(self.zygote.stdout.readline())
        self.pids.append(pid)
        return pid

    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        self.pids.remove(pid)

    def close(self) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.pids = []
        _reap(self.zygote)


def _kill_leader_trials(url: str, trials: int, pauses: int = 0) -> list[float]:
    """Kill the leader ``trials`` times at random points under load (``pauses`` of
    them are ``SIGSTOP`` instead: the leader freezes, its lease lapses, a standby ends
    its sessions and takes over, and the thawed leader must not write again)."""
    net = make_small_network()
    rng = np.random.default_rng(5)
    paused = set(rng.choice(trials, size=pauses, replace=False).tolist()) if pauses else set()
    pg = PostgresBackend(url)
    failover: list[float] = []
    with open_ledger(url, net, role="client", timeout=30, poll=0.1) as client:
        candidates = _Candidates(url)
        try:
            for _ in range(3):  # a leader and two standbys at all times
                candidates.spawn()
            deadline = time.monotonic() + 60
            while not _leader_pid(url) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert client.receive(2, 2, 10**9, id=1)
            load = _Load(client, 8, 1000)
            try:
                for trial in range(trials):
                    time.sleep(float(rng.uniform(0.02, 0.3)))
                    pid = _leader_pid(url)
                    assert pid in candidates.pids, (pid, candidates.pids)
                    epoch = int(pg.execute(url, "SELECT epoch FROM {s}lease")[0][0])
                    t0 = time.monotonic()
                    if trial in paused:
                        os.kill(pid, signal.SIGSTOP)
                    else:
                        candidates.kill(pid)
                    while time.monotonic() - t0 < 60:  # a new leader has written a batch
                        rows = pg.execute(url, "SELECT max(epoch) FROM {s}batches")
                        if rows[0][0] is not None and int(rows[0][0]) > epoch:
                            break
                        time.sleep(0.005)
                    failover.append(time.monotonic() - t0)
                    if trial in paused:
                        os.kill(pid, signal.SIGCONT)  # deposed: it may only stand by
                    else:
                        candidates.spawn()
            finally:
                load.finish()
        finally:
            candidates.close()
        client.sync()
        digest = client.state_digest()
    assert load.answers, "the load made no progress"
    counts = _journal_counts(url)
    for ident, got in load.answers.items():
        assert counts.get(ident) == 1, ident  # every acknowledged event exactly once
        assert got[0][0] == OK
    epochs = [int(e) for (e,) in pg.execute(url, "SELECT epoch FROM {s}batches ORDER BY seq")]
    assert epochs == sorted(epochs)  # no batch of a deposed leader after its successor's
    assert len(set(epochs)) >= trials  # a new epoch, and batches in it, after every kill
    _check_journal(url, digest)
    return failover


def test_kill_the_leader_at_random_points(pg_url: str) -> None:
    failover = _kill_leader_trials(pg_url, 50, pauses=1)
    assert len(failover) == 50
    print(
        f"50 leader faults: failover median {np.median(failover):.2f} s, max {max(failover):.2f} s"
    )


@pytest.mark.extended
def test_kill_the_leader_at_random_points_extended(pg_url: str) -> None:
    failover = _kill_leader_trials(pg_url, 300, pauses=10)
    print(
        f"300 leader faults: failover median {np.median(failover):.2f} s, max {max(failover):.2f} s"
    )


def test_killed_submitter_then_retry_converges(pg_url: str) -> None:
    net = make_small_network()
    open_ledger(pg_url, net, role="follower").close()  # creates the journal
    waiter = _child("wait", pg_url, "77")
    _ready(waiter, "submitted")
    pg = PostgresBackend(pg_url)
    deadline = time.monotonic() + 60
    while not pg.count(pg_url, "inbox") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pg.count(pg_url, "inbox") == 1  # its reserve sits in the inbox: no leader yet
    _reap(waiter)
    with (
        open_ledger(pg_url, role="leader", poll=0.1) as lead,
        open_ledger(pg_url, role="client", poll=0.1) as client,
    ):
        assert lead.leader is not None and lead.leader.leading.wait(10)
        again = client.reserve(0, 0, 1, channel=1, id=77)  # the retry, same id
        # the killed submitter's event was applied once (insufficient: no stock), and
        # the retry reports that first outcome as a duplicate
        assert again.duplicate and again.code == ResultCode.INSUFFICIENT_AVAILABLE
    assert _journal_counts(pg_url)[77] == 1
    _check_journal(pg_url)


def test_write_without_a_leader_times_out_and_is_withdrawn(pg_url: str) -> None:
    net = make_small_network()
    with open_ledger(pg_url, net, role="client", timeout=0.5, poll=0.1) as client:
        with pytest.raises(LedgerBusyError, match="withdrawn"):
            client.receive(0, 0, 5, id=1)
        pg = PostgresBackend(pg_url)
        assert pg.count(pg_url, "inbox") == 0  # nothing left behind to apply later
    with (
        open_ledger(pg_url, role="leader", poll=0.1) as lead,
        open_ledger(pg_url, role="client", poll=0.1) as client,
    ):
        assert lead.leader is not None and lead.leader.leading.wait(10)
        assert client.receive(0, 0, 5, id=1).accepted  # retried: applied now, once


def test_dropped_connections_and_a_server_restart(pg_server: Any, pg_url: str) -> None:
    net = make_small_network()
    pg = PostgresBackend(pg_url)
    with (
        open_ledger(pg_url, net, role="leader", poll=0.1, timeout=20) as lead,
        open_ledger(pg_url, role="client", poll=0.1, timeout=20) as client,
    ):
        assert lead.leader is not None and lead.leader.leading.wait(10)
        assert client.receive(2, 2, 10**9, id=1)
        load = _Load(client, 6, 1000)
        try:
            time.sleep(0.5)
            pg.execute(  # drop every connection of the library (leader, client, followers)
                pg_url,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name LIKE 'allocator%' AND pid != pg_backend_pid()",
            )
            time.sleep(1.0)
            pg_server.restart("fast")
            time.sleep(1.0)
            pg_server.restart("immediate")  # a crash of the server
            time.sleep(1.5)
        finally:
            load.finish()
        client.sync(timeout=60)
        # the server down: a write fails at once with a typed error, and its retry
        # by id once the server is back is applied exactly once
        pg_server.stop("fast")
        try:
            with pytest.raises(StorageError, match="retry with the same ids"):
                client.reserve(2, 2, 1, channel=1, id=999_999)
        finally:
            pg_server.start()
        while True:
            try:
                again = client.reserve(2, 2, 1, channel=1, id=999_999)
                break
            except (LedgerBusyError, StorageError):
                time.sleep(0.05)  # the leader and the replica reconnect
        assert again.accepted
        client.sync(timeout=60)
        digest = client.state_digest()
    assert load.answers
    assert set(load.errors) <= {"LedgerBusyError", "StorageError"}
    assert _journal_counts(pg_url)[999_999] == 1
    counts = _journal_counts(pg_url)
    for ident in load.answers:
        assert counts.get(ident) == 1, ident
    _check_journal(pg_url, digest)
