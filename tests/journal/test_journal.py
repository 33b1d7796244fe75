"""The durable ledger: journal, snapshots, recovery, integrity, locking, faults."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator import Events, Ledger, Network, ResultCode
from allocator.events import NO_EXPIRY, EventKind
from allocator.exceptions import (
    JournalCorruptError,
    JournalError,
    JournalLockedError,
    StorageError,
    ValidationError,
)
from allocator.journal import (
    DurableLedger,
    _codec,
    _store,
    open_ledger,
    repair_journal,
    replay_journal,
    verify_journal,
)
from tests.conftest import make_small_network
from tests.journal.backends import Backend, PostgresBackend, SqliteBackend

OK = ResultCode.OK


def _stock(ledger: Ledger) -> None:
    ledger.apply(
        Events.receive([0, 0, 1, 2, 3], [0, 1, 0, 2, 1], [10, 5, 7, 3, 4], id=[1, 2, 3, 4, 5])
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each journal test that takes ``target`` runs on both stores."""
    if request.param == "sqlite":
        return SqliteBackend()
    return PostgresBackend(request.getfixturevalue("pg_url"))


@pytest.fixture
def target(backend: Backend, tmp_path: Path) -> Any:
    """A fresh journal: a SQLite file, or a schema on the test PostgreSQL server."""
    return backend.target(tmp_path)


def _archive_target(target: Any, tmp_path: Path, name: str) -> Any:
    if isinstance(target, str):
        return target.replace("schema=", f"schema={name}_")
    return tmp_path / f"{name}.db"


# --------------------------------------------------------------------------- codec
int64s = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(int64s | st.integers(-3, 3), max_size=60),
    default=st.none() | st.sampled_from([0, -1, int(NO_EXPIRY)]),
    delta=st.booleans(),
)
def test_column_codec_roundtrips(values: list[int], default: int | None, delta: bool) -> None:
    col = np.array(values, dtype=np.int64)
    blob = _codec.encode_column(col, default, delta)
    reader = _codec._Reader(blob)
    out = _codec.decode_column(reader, col.shape[0])
    assert reader.at == len(blob)
    np.testing.assert_array_equal(out, col)


def test_column_codec_picks_compact_forms() -> None:
    ids = np.arange(1, 10_001, dtype=np.int64)
    assert len(_codec.encode_column(ids, None, True)) < 40  # delta of 1: width 0
    exp = np.full(10_000, NO_EXPIRY, dtype=np.int64)
    exp[::100] = 7
    assert len(_codec.encode_column(exp, int(NO_EXPIRY))) < 10_000 // 8 + 200
    small = np.arange(10_000, dtype=np.int64) % 200
    assert len(_codec.encode_column(small)) == 10_000 + 10  # one byte per value


def test_codec_rejects_truncated_blobs() -> None:
    arrays = {"a": np.arange(50, dtype=np.int64) * 1000, "b": np.ones((4, 3), dtype=np.int8)}
    blob = _codec.encode_arrays(arrays)
    back = _codec.decode_arrays(blob)
    np.testing.assert_array_equal(back["a"], arrays["a"])
    np.testing.assert_array_equal(back["b"], arrays["b"])
    assert back["b"].dtype == np.int8
    for cut in (1, 7, len(blob) // 2, len(blob) - 1):
        with pytest.raises(ValueError):
            _codec.decode_arrays(blob[:cut])
    with pytest.raises(ValueError):
        _codec.decode_arrays(blob + b"\0")


def test_network_roundtrip() -> None:
    net = make_small_network()
    back = _codec.decode_network(_codec.encode_network(net))
    assert back.sku_names == net.sku_names and back.channel_names == net.channel_names
    assert _codec.network_digest(back) == _codec.network_digest(net)


# --------------------------------------------------------------------------- basics
def test_reopen_restores_identical_state_and_idempotency(target: Any) -> None:
    net = make_small_network()
    with open_ledger(target, net) as ledger:
        assert isinstance(ledger, DurableLedger)
        _stock(ledger)
        r = ledger.reserve("SKU-0", "S1", 4, channel="online", id=10, expires_at=50)
        failed = ledger.reserve("SKU-0", "S1", 100, channel="online", id=11)
        assert failed.code == ResultCode.INSUFFICIENT_AVAILABLE
        ledger.commit(r.id, 1, id=12)
        auto = ledger.receive("SKU-1", "S2", 2)  # ledger-assigned (negative) id
        assert auto.id < 0
        digest = ledger.state_digest()
        seq = ledger.seq
    with open_ledger(target) as again:  # the network comes from the journal
        assert again.state_digest() == digest
        assert again.seq == seq
        assert again.network.sku_names == net.sku_names
        # an id applied before the restart returns its original result, changes nothing
        dup = again.apply(Events.reserve(0, 0, 100, channel=1, id=11))
        assert dup.duplicate[0] and dup.code == ResultCode.INSUFFICIENT_AVAILABLE
        assert again.reservation(10).open_qty == 0
        # ledger-assigned ids continue where they were
        nxt = again.receive("SKU-1", "S2", 1)
        assert nxt.id == auto.id - 1
        assert again.state_digest() != digest


def test_replayed_auto_ids_match_memory(target: Any) -> None:
    net = make_small_network()
    memory = Ledger(net)
    batches = [
        Events.receive([0, 1, 2], [0, 1, 2], [3, 4, 5]),
        Events.receive([1, 1], [0, 0], [1, 1], id=[0, 77]),
        Events.reserve([0, 1], [0, 1], [1, 1], channel=[1, 2]),
    ]
    with open_ledger(target, net) as durable:
        for b in batches:
            a, m = durable.apply(b), memory.apply(b)
            np.testing.assert_array_equal(a.ids, m.ids)
            np.testing.assert_array_equal(a.codes, m.codes)
    with open_ledger(target) as again:
        assert again.state_digest() == memory.state_digest()
        got = again.read()
        np.testing.assert_array_equal(got.events.id[:3], [-1, -2, -3])
        assert got.recorded.all()


def test_validation_errors_write_nothing(target: Any) -> None:
    net = make_small_network()
    with open_ledger(target, net) as ledger:
        _stock(ledger)
        before = (ledger.seq, ledger.state_digest())
        with pytest.raises(ValidationError):
            ledger.apply(Events.receive([0, 99], [0, 0], [1, 1]))
        good = Events.receive(0, 0, 1)
        cols = {f: getattr(good, f) for f in Events.FIELDS}
        cols["id"] = _ro(np.array([-5]))  # never assigned by this ledger
        with pytest.raises(ValidationError):
            ledger.apply(Events(**cols))
        with pytest.raises(TypeError):
            ledger.apply("receive")  # type: ignore[arg-type]
        assert (ledger.seq, ledger.state_digest()) == before
    with open_ledger(target) as again:
        assert (again.seq, again.state_digest()) == before


def _ro(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def test_network_mismatch_and_missing(target: Any) -> None:
    with pytest.raises(JournalError, match="pass network_data"):
        open_ledger(target)
    net = make_small_network()
    open_ledger(target, net).close()
    other = Network()
    other.add_channel("store")
    other.add_location("X", kind="store", lat=0.0, lon=0.0)
    other.add_sku("A")
    with pytest.raises(JournalError, match="differs"):
        open_ledger(target, other.build())
    open_ledger(target, net).close()  # the same network is fine


def test_not_a_journal_and_newer_version(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"hello, this is not a database at all" * 10)
    with pytest.raises(JournalError, match="not a journal"):
        open_ledger(junk)
    plain = tmp_path / "plain.db"
    conn = sqlite3.connect(plain)
    conn.execute("CREATE TABLE t(x)")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="not an allocator journal"):
        open_ledger(plain)
    newer = tmp_path / "newer.db"
    open_ledger(newer, make_small_network()).close()
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {_store.FORMAT_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match=r"newer|format version"):
        open_ledger(newer)
    with pytest.raises(JournalError):
        verify_journal(newer)


def test_bad_options(path: Path) -> None:
    net = make_small_network()
    with pytest.raises(ValidationError):
        open_ledger(path, net, synchronous="off")
    with pytest.raises(ValidationError):
        open_ledger(path, net, snapshot_every=0)
    with pytest.raises(ValidationError):
        open_ledger(path, net, horizon=-1)
    with pytest.raises(JournalError):
        open_ledger(path, readonly=True)  # nothing to read yet


# --------------------------------------------------------------------------- writers/readers
def test_second_writer_refused_reader_allowed(target: Any) -> None:
    net = make_small_network()
    writer = open_ledger(target, net)
    _stock(writer)
    with pytest.raises(JournalLockedError):
        open_ledger(target)
    code = (
        "import sys\nfrom allocator.journal import open_ledger\n"
        "from allocator.exceptions import JournalLockedError\n"
        "try:\n    open_ledger(sys.argv[1])\nexcept JournalLockedError:\n"
        "    sys.exit(7)\nsys.exit(0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(target)], capture_output=True, timeout=120
    )
    assert proc.returncode == 7, proc.stderr.decode()[-2000:]
    with open_ledger(target, readonly=True) as reader:
        assert reader.state_digest() == writer.state_digest()
        with pytest.raises(JournalError, match="read-only"):
            reader.receive(0, 0, 1)
        writer.receive(0, 0, 1, id=500)
        assert reader.refresh() == 1
        assert reader.state_digest() == writer.state_digest()
    writer.close()
    with open_ledger(target) as again:  # the lock is released on close
        assert again.seq == 2


def test_reader_sees_only_whole_batches(target: Any) -> None:
    net = make_small_network()
    writer = open_ledger(target, net, snapshot_every=200)
    digests = {0: writer.state_digest()}
    batch = 25
    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            rng = np.random.default_rng(1)
            for k in range(40):
                n = batch
                writer.apply(
                    Events.receive(
                        rng.integers(0, 4, n),
                        rng.integers(0, 3, n),
                        rng.integers(1, 5, n),
                        id=np.arange(k * n + 1, k * n + n + 1),
                    )
                )
                digests[writer.seq] = writer.state_digest()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            stop.set()

    reader = open_ledger(target, readonly=True)
    thread = threading.Thread(target=write)
    thread.start()
    seen = []
    while not stop.is_set():
        reader.refresh()
        seen.append((reader.seq, reader.num_events, reader.state_digest()))
    thread.join()
    reader.refresh()
    seen.append((reader.seq, reader.num_events, reader.state_digest()))
    assert not errors
    for seq, num_events, digest in seen:
        assert num_events == seq * batch  # whole batches only
        assert digest == digests[seq]
    assert seen[-1][0] == 40
    reader.close()
    writer.close()


# --------------------------------------------------------------------------- integrity
def _blob_offset(path: Path, seq: int) -> int:
    conn = sqlite3.connect(path)
    blob = conn.execute("SELECT events FROM batches WHERE seq = ?", (seq,)).fetchone()[0]
    conn.close()
    data = path.read_bytes()
    at = data.find(blob)
    assert at > 0 and data.find(blob, at + 1) < 0
    return at + len(blob) // 2


def _three_batches(path: Any) -> str:
    net = make_small_network()
    with open_ledger(path, net, snapshot_every=None) as ledger:
        for k in range(3):
            ledger.apply(
                Events.receive(
                    [0, 1, 2, 3] * 10,
                    [0, 1, 2, 0] * 10,
                    np.arange(1, 41) + 1000 * k,
                    id=np.arange(1, 41) + 100 * k,
                )
            )
        return ledger.state_digest()


def test_flipped_byte_in_a_batch_is_named(backend: Backend, target: Any) -> None:
    _three_batches(target)
    backend.flip_batch(target, 2)
    with pytest.raises(JournalCorruptError, match="batch 2"):
        open_ledger(target)
    report = verify_journal(target)
    assert not report.ok and report.first_bad_batch == 2
    assert repair_journal(target) == 2  # batches 2 and 3 go
    with open_ledger(target) as again:
        assert again.seq == 1
        assert verify_journal(target).ok


def test_truncated_journal_is_detected(path: Path) -> None:
    _three_batches(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(JournalError):  # JournalCorruptError or an unreadable file
        open_ledger(path)
    assert not verify_journal(path).ok


def test_random_byte_flips_never_yield_a_wrong_state(tmp_path: Path) -> None:
    clean = tmp_path / "clean.db"
    digest = _three_batches(clean)
    raw = clean.read_bytes()
    rng = np.random.default_rng(7)
    outcomes = {"error": 0, "same": 0}
    for trial in range(40):
        p = tmp_path / f"flip{trial}.db"
        data = bytearray(raw)
        at = int(rng.integers(0, len(data)))
        data[at] ^= 1 << int(rng.integers(0, 8))
        p.write_bytes(bytes(data))
        p.with_name(p.name + "-hwm").write_bytes((tmp_path / "clean.db-hwm").read_bytes())
        try:
            with open_ledger(p) as ledger:
                assert ledger.state_digest() == digest  # never a silently wrong state
                outcomes["same"] += 1
        except (JournalError, sqlite3.DatabaseError):
            outcomes["error"] += 1
    assert outcomes["error"] + outcomes["same"] == 40


def test_lost_acknowledged_batches_are_caught_by_the_high_water_mark(
    backend: Backend, target: Any
) -> None:
    _three_batches(target)
    backend.delete_batch(target, 3)  # what a bit flip in the WAL does: commits silently gone
    with pytest.raises(JournalCorruptError, match="high-water mark"):
        open_ledger(target)
    assert repair_journal(target) == 0
    with open_ledger(target) as again:
        assert again.seq == 2


def test_corrupt_snapshot_is_rebuilt_from_the_journal(backend: Backend, target: Any) -> None:
    net = make_small_network()
    with open_ledger(target, net, snapshot_every=None) as ledger:
        _stock(ledger)
        ledger.snapshot()
        ledger.receive(0, 0, 5, id=77)
        digest = ledger.state_digest()
    backend.flip_snapshot(target)
    with open_ledger(target) as again:
        assert again.state_digest() == digest
    report = verify_journal(target)
    assert not report.ok and "checksum" in report.problems[0]


# --------------------------------------------------------------------------- faults
def test_disk_full_leaves_ledger_and_journal_at_previous_batch(path: Path) -> None:
    net = make_small_network()
    ledger = open_ledger(path, net, snapshot_every=None)
    _stock(ledger)
    before = (ledger.seq, ledger.state_digest())
    assert ledger._store is not None
    conn = ledger._store.conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 1}")
    rng = np.random.default_rng(3)
    n = 20_000  # far more than one page of events
    big = Events.receive(
        rng.integers(0, 4, n),
        rng.integers(0, 3, n),
        rng.integers(1, 9, n),
        id=rng.permutation(n) + 10_000,
    )
    with pytest.raises(StorageError):
        ledger.apply(big)
    assert (ledger.seq, ledger.state_digest()) == before
    # space freed: the same ledger continues, with the same ids
    conn.execute("PRAGMA max_page_count = 1073741823")
    result = ledger.apply(big)
    assert result.accepted.all()
    after = ledger.state_digest()
    ledger.close()
    with open_ledger(path) as again:
        assert again.state_digest() == after


def test_server_refusing_writes_leaves_ledger_at_previous_batch(pg_url: str) -> None:
    """The PostgreSQL analogue of a full disk: the server refuses the batch (here a
    trigger raises). The ledger stays at the previous batch and continues with the
    same ids once writes are accepted again."""
    pg = PostgresBackend(pg_url)
    net = make_small_network()
    ledger = open_ledger(pg_url, net, snapshot_every=None)
    _stock(ledger)
    before = (ledger.seq, ledger.state_digest())
    pg.execute(
        pg_url,
        "CREATE FUNCTION {s}refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$",
    )
    pg.execute(
        pg_url,
        "CREATE TRIGGER refuse BEFORE INSERT ON {s}batches FOR EACH ROW EXECUTE FUNCTION"
        " {s}refuse()",
    )
    big = Events.receive([0, 1, 2], [0, 1, 2], [1, 2, 3], id=[100, 101, 102])
    with pytest.raises(StorageError, match="No space left"):
        ledger.apply(big)
    assert (ledger.seq, ledger.state_digest()) == before
    pg.execute(pg_url, "DROP TRIGGER refuse ON {s}batches")
    assert ledger.apply(big).accepted.all()
    after = ledger.state_digest()
    ledger.close()
    with open_ledger(pg_url) as again:
        assert again.state_digest() == after


def test_kernel_failure_after_commit_withdraws_the_batch(
    target: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = make_small_network()
    ledger = open_ledger(target, net)
    _stock(ledger)
    before = (ledger.seq, ledger.state_digest())
    original = Ledger._apply_prepared
    failures = [MemoryError("simulated")]

    def broken(self: Ledger, prepared: object) -> object:
        result = original(self, prepared)  # type: ignore[arg-type]
        if failures:  # the first call fails after changing state; the replay works
            raise failures.pop()
        return result

    monkeypatch.setattr(Ledger, "_apply_prepared", broken)
    with pytest.raises(MemoryError):
        ledger.apply(Events.receive(0, 0, 3, id=900))
    monkeypatch.setattr(Ledger, "_apply_prepared", original)
    assert (ledger.seq, ledger.state_digest()) == before
    ledger.close()
    with open_ledger(target) as again:
        assert (again.seq, again.state_digest()) == before
        assert again.result_of(900)[0] == -1


# --------------------------------------------------------------------------- snapshots
def test_compaction_horizon_semantics(target: Any) -> None:
    net = make_small_network()
    with open_ledger(target, net, snapshot_every=None, horizon=5) as ledger:
        _stock(ledger)  # ids 1..5
        ledger.reserve(0, 0, 2, channel=1, id=20)  # will be committed: closed
        ledger.reserve(0, 0, 1, channel=1, id=21)  # stays open
        ledger.commit(20, id=22)
        for k in range(6):
            ledger.receive(3, 2, 1, id=30 + k)  # pushes everything above past the horizon
        before = ledger.num_ids_tracked
        ledger.snapshot()
        assert ledger.num_ids_tracked < before
        digest = ledger.state_digest()
    with open_ledger(target, horizon=5) as again:
        assert again.state_digest() == digest
        # the closed reservation is forgotten; the open one is kept with its id
        assert again.reservation(20) is None
        assert again.commit(20, id=40).code == ResultCode.RESERVATION_NOT_FOUND
        assert again.reservation(21).open_qty == 1
        assert again.commit(21, id=41).code == OK
        # an old id beyond the horizon is applied as new; a recent one is a duplicate
        assert not again.apply(Events.receive(0, 0, 1, id=1)).duplicate[0]
        assert again.apply(Events.receive(3, 2, 1, id=35)).duplicate[0]
    assert verify_journal(target).ok


st_event = st.tuples(
    st.sampled_from(["receive", "reserve", "commit", "release", "sale", "expire", "adjust"]),
    st.integers(0, 3),
    st.integers(0, 2),
    st.integers(1, 6),
    st.integers(0, 40),
    st.booleans(),
)


@settings(max_examples=25, deadline=None)
@given(
    history=st.lists(st.lists(st_event, min_size=1, max_size=8), min_size=1, max_size=14),
    snapshot_every=st.sampled_from([None, 3, 10]),
    horizon=st.sampled_from([None, 0, 4, 20]),
)
def test_replay_equals_snapshot_for_random_histories(
    tmp_path_factory: pytest.TempPathFactory,
    history: list[list[tuple]],
    snapshot_every: int | None,
    horizon: int | None,
) -> None:
    path = tmp_path_factory.mktemp("h") / "j.db"
    _check_reopen_verify_replay(path, history, snapshot_every, horizon, checkpoint=True)


def _check_reopen_verify_replay(
    target: Any,
    history: list[list[tuple]],
    snapshot_every: int | None,
    horizon: int | None,
    *,
    checkpoint: bool,
) -> None:
    """Journal ``history`` at ``target``; reopening, verifying and replaying it must all
    give the state the ledger had."""
    ledger = open_ledger(
        target, make_small_network(), snapshot_every=snapshot_every, horizon=horizon
    )
    for t, batch in enumerate(history):
        ledger.apply(_batch(batch, t))
    if checkpoint:
        ledger.checkpoint()
    digest = ledger.state_digest()
    seq = ledger.seq
    ledger.close()
    with open_ledger(target, horizon=horizon) as again:
        assert again.state_digest() == digest and again.seq == seq
    report = verify_journal(target)
    assert report.ok, report.summary()
    assert report.digest == digest
    assert replay_journal(target).state_digest() == digest


def _batch(spec: list[tuple], t: int) -> Events:
    kinds, ids, sku, loc, chan, qty, ref, exp = [], [], [], [], [], [], [], []
    for kind, s, loc_, q, ident, timed in spec:
        k = EventKind[kind.upper()]
        kinds.append(k)
        ids.append(ident)  # 0 = ledger-assigned; small ids repeat (duplicates)
        position = k not in (EventKind.COMMIT, EventKind.RELEASE, EventKind.EXPIRE)
        sku.append(s if position else -1)
        loc.append(loc_ if position else -1)
        chan.append(q % 3 if k == EventKind.RESERVE else -1)
        qty.append(
            0
            if k in (EventKind.RELEASE, EventKind.EXPIRE)
            else (-1 if k == EventKind.COMMIT else q)
        )
        ref.append(ident + 1 if k in (EventKind.COMMIT, EventKind.RELEASE) else 0)
        exp.append(
            t
            if k == EventKind.EXPIRE
            else (t + q if timed and k == EventKind.RESERVE else NO_EXPIRY)
        )
    return Events.from_arrays(
        kind=kinds, id=ids, sku=sku, location=loc, channel=chan, qty=qty, ref=ref, expires_at=exp
    )


@settings(max_examples=8, deadline=None)
@given(
    history=st.lists(st.lists(st_event, min_size=1, max_size=8), min_size=1, max_size=10),
    snapshot_every=st.sampled_from([None, 3, 10]),
    horizon=st.sampled_from([None, 0, 4, 20]),
)
def test_replay_equals_snapshot_for_random_histories_postgres(
    pg_server: Any,
    history: list[list[tuple]],
    snapshot_every: int | None,
    horizon: int | None,
) -> None:
    import uuid

    url = pg_server.url(f"h_{uuid.uuid4().hex[:16]}")
    _check_reopen_verify_replay(url, history, snapshot_every, horizon, checkpoint=False)


def test_read_and_replay_a_range(target: Any) -> None:
    net = make_small_network()
    applied = []
    with open_ledger(target, net, snapshot_every=None) as ledger:
        for k in range(4):
            events = Events.receive([k % 4, 1], [0, 1], [k + 1, 2], id=[10 * k + 1, 0])
            applied.append(ledger.apply(events))
        part = ledger.read(2, 3)
        assert (part.first_seq, part.last_seq, len(part)) == (2, 3, 4)
        np.testing.assert_array_equal(part.batch, [2, 2, 3, 3])
        np.testing.assert_array_equal(
            part.events.id, np.concatenate([applied[1].ids, applied[2].ids])
        )
        frame = part.to_frame(net)
        assert list(frame["code"]) == ["ok"] * 4
        assert "sku_name" in frame.columns
        digest = ledger.state_digest()
        assert "4 events" in part.summary()
    partial = replay_journal(target, last=2)
    assert partial.on_hand.sum() == 1 + 2 + 2 + 2
    assert replay_journal(target).state_digest() == digest


def test_archive_prunes_and_keeps_history(target: Any, tmp_path: Path) -> None:
    net = make_small_network()
    path = target
    archive = _archive_target(target, tmp_path, "archive")
    with open_ledger(path, net, snapshot_every=None) as ledger:
        _stock(ledger)
        ledger.receive(0, 0, 1, id=50)
        pruned = ledger.archive(archive)
        assert pruned == 2
        ledger.receive(0, 0, 1, id=51)
        digest = ledger.state_digest()
        assert ledger.info().first_seq == 3
    with open_ledger(path) as again:
        assert again.state_digest() == digest
        assert again.apply(Events.receive(0, 0, 1, id=1)).duplicate[0]  # still remembered
    assert verify_journal(path).ok
    old = verify_journal(archive)
    assert old.ok and old.last_seq == 2


def test_normal_mode_and_checkpoint(path: Path) -> None:
    net = make_small_network()
    with open_ledger(path, net, synchronous="normal") as ledger:
        _stock(ledger)
        assert _store.read_hwm(path)[0].seq == 0  # not durable yet: the mark waits
        ledger.checkpoint()
        assert _store.read_hwm(path)[0].seq == 1
        ledger.receive(0, 0, 1, id=60)
        digest = ledger.state_digest()
    assert _store.read_hwm(path)[0].seq == 2
    with open_ledger(path) as again:
        assert again.state_digest() == digest
        assert "synchronous=full" in again.info().summary()


# --------------------------------------------------------------------------- crash test
CRASH_BATCH = r"""
import numpy as np
from allocator import Events
from allocator.events import EventKind


def crash_batch(k):
    # batch k of the crash test: deterministic, with reserves and commits
    rng = np.random.default_rng(k)
    n = 30
    kind = rng.choice([EventKind.RECEIVE, EventKind.RESERVE, EventKind.COMMIT], n)
    ref = np.where(kind == EventKind.COMMIT, rng.integers(1, max(2, 30 * k), n), 0)
    ids = np.arange(30 * (k - 1) + 1, 30 * k + 1)
    ids[::7] = 0  # some ledger-assigned ids
    commit = kind == EventKind.COMMIT
    return Events.from_arrays(
        kind=kind, id=ids, sku=np.where(commit, -1, rng.integers(0, 4, n)),
        location=np.where(commit, -1, rng.integers(0, 3, n)),
        channel=np.where(kind == EventKind.RESERVE, rng.integers(0, 3, n), -1),
        qty=np.where(commit, -1, rng.integers(1, 4, n)), ref=ref)
"""

CHILD = (
    CRASH_BATCH
    + r"""
import sys
from allocator.journal import open_ledger

ledger = open_ledger(sys.argv[1], snapshot_every=int(sys.argv[2]))
k = ledger.seq
print("open", k, flush=True)
while True:
    k += 1
    ledger.apply(crash_batch(k))
    print(k, flush=True)
"""
)

_crash_ns: dict[str, object] = {}
exec(CRASH_BATCH, _crash_ns)
crash_batch = _crash_ns["crash_batch"]


def _crash_lane(path: Any, trials: int, seed: int) -> list[tuple[int, int]]:
    """Kill a writer ``trials`` times; returns (acknowledged, present) per trial."""
    rng = np.random.default_rng(seed)
    reference = Ledger(make_small_network())
    ref_seq = 0
    log = []
    open_ledger(path, make_small_network()).close()  # children reopen it by path alone
    for _ in range(trials):
        args = [
            sys.executable,
            "-c",
            CHILD,
            str(path),
            str(int(rng.choice([60, 200, 10_000]))),
        ]
        with subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            first = proc.stdout.readline()
            if not first.startswith("open"):
                raise AssertionError(proc.stderr.read())
            timer = threading.Timer(float(rng.uniform(0.0, 0.15)), proc.kill)  # SIGKILL
            timer.start()
            acked = int(first.split()[1])
            for line in proc.stdout:
                acked = int(line)
            proc.wait()
            timer.join()
            assert proc.returncode == -9, proc.stderr.read()
        with open_ledger(path, readonly=True) as ledger:
            present = ledger.seq
            assert acked <= present <= acked + 1  # acknowledged: all; in flight: 0 or 1
            while ref_seq < present:
                ref_seq += 1
                reference.apply(crash_batch(ref_seq))
            assert ledger.state_digest() == reference.state_digest()
            ids = ledger.read(max(1, present - 2)).events.id
            assert np.unique(ids).shape[0] == ids.shape[0]  # each batch exactly once
        log.append((acked, present))
    return log


def _crash_test(tmp_path: Path, trials: int, url: str | None = None) -> list[tuple[int, int]]:
    lanes = 2
    targets: list[Any] = [
        tmp_path / f"crash{i}.db" if url is None else url.replace("schema=", f"schema=c{i}_")
        for i in range(lanes)
    ]
    results: list[list[tuple[int, int]]] = [[] for _ in range(lanes)]
    errors: list[BaseException] = []

    def lane(i: int) -> None:
        try:
            results[i] = _crash_lane(targets[i], trials // lanes + (i < trials % lanes), i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    for i in range(lanes):
        assert verify_journal(targets[i]).ok
    return [r for rs in results for r in rs]


def test_sigkill_crash_trials(tmp_path: Path) -> None:
    log = _crash_test(tmp_path, 20)
    assert len(log) == 20
    assert sum(p for _, p in log[-2:]) > 0  # batches were really written


def test_sigkill_crash_trials_postgres(tmp_path: Path, pg_url: str) -> None:
    log = _crash_test(tmp_path, 10, pg_url)
    assert len(log) == 10
    assert sum(p for _, p in log) > 0


@pytest.mark.extended
def test_sigkill_crash_trials_extended(tmp_path: Path) -> None:
    log = _crash_test(tmp_path, 500)
    in_flight = sum(p == a + 1 for a, p in log)
    print(
        f"{len(log)} SIGKILL trials: 0 lost acknowledgements; {in_flight} kills left "
        "an unacknowledged batch committed"
    )
    assert len(log) == 500


# --------------------------------------------------------------------------- command and bench
def test_verify_command(
    backend: Backend, target: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from allocator.cli import main

    path = target
    _three_batches(path)
    assert main(["journal", "verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK") and "batches 1..3" in out
    backend.flip_batch(path, 3)
    assert main(["journal", "verify", str(path)]) == 1
    assert "first bad batch: 3" in capsys.readouterr().out
    import json

    assert main(["journal", "verify", "--json", str(path)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["first_bad_batch"] == 3 and doc["num_batches"] == 2
    assert isinstance(doc["num_events"], int) and doc["problems"]
    assert main(["journal", "verify", "--json", str(_archive_target(path, tmp_path, "none"))]) == 2
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_bench_quick_reports_the_keys() -> None:
    import argparse

    from allocator.bench import journal as bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    figures = bench.run(parser.parse_args(["--quick"]))
    for key in (
        "journaled_events_per_s",
        "memory_events_per_s",
        "recover_s",
        "bytes_per_event",
        "jit_compile_s",
    ):
        assert figures[key] > 0
    assert figures["states_equal"] is True
    assert figures["events"] == 200_000


def test_snapshots_kept_are_the_latest_two(backend: Backend, target: Any) -> None:
    net = make_small_network()
    path = target
    with open_ledger(path, net, snapshot_every=None) as ledger:
        for k in range(4):
            ledger.receive(0, 0, 1, id=k + 1)
            assert ledger.snapshot() == k + 1
        digest = ledger.state_digest()
    kept = backend.snapshots_with_data(path)
    rows = backend.count(path, "snapshots")
    assert kept == [3, 4] and rows == 4
    assert verify_journal(path).snapshots_checked == 4
    with open_ledger(path) as again:
        assert again.state_digest() == digest


def test_reader_follows_a_compacting_snapshot_taken_after_it_read(target: Any) -> None:
    net = make_small_network()
    writer = open_ledger(target, net, snapshot_every=None, horizon=2)
    _stock(writer)
    writer.reserve(0, 0, 1, channel=1, id=20)
    writer.commit(20, id=21)
    reader = open_ledger(target, readonly=True)
    writer.receive(1, 1, 1, id=30)
    writer.receive(1, 1, 1, id=31)
    assert reader.refresh() == 2  # the reader passes the batch before the snapshot
    writer.snapshot()  # compacts ids 1..21 away, at a batch the reader already has
    writer.receive(2, 2, 1, id=40)
    reader.refresh()
    assert reader.seq == writer.seq
    assert reader.state_digest() == writer.state_digest()
    assert reader.reservation(20) is None
    reader.close()
    writer.close()


def test_snapshots_from_another_kernel_are_rebuilt(backend: Backend, target: Any) -> None:
    net = make_small_network()
    path = target
    with open_ledger(path, net, snapshot_every=None) as ledger:
        _stock(ledger)
        ledger.snapshot()
        ledger.receive(0, 0, 1, id=70)
        digest = ledger.state_digest()
    # as if written by a kernel that fingerprints otherwise
    backend.set_meta(path, "kernel_probe", b"\x00")
    with open_ledger(path) as again:  # rebuilt from batch 1, snapshot taken anew
        assert again.state_digest() == digest
        assert again.apply(Events.receive(0, 0, 1, id=70)).duplicate[0]
    with open_ledger(path) as third:
        assert third.state_digest() == digest
    report = verify_journal(path)
    assert report.ok, report.summary()


# --------------------------------------------------------------------------- regressions
def test_reader_behind_an_archive_catches_up(target: Any, tmp_path: Path) -> None:
    """A reader that had not read the batches an archive pruned rebuilds from the
    anchor snapshot instead of reporting a false 'missing' batch."""
    net = make_small_network()
    path = target
    with open_ledger(path, net) as writer:
        _stock(writer)
        with open_ledger(path, readonly=True) as reader:
            assert reader.refresh() == 0 and reader.seq == 1
            for i in range(4):
                writer.apply(Events.receive(0, 0, 1, id=100 + i))
            writer.archive(_archive_target(target, tmp_path, "old"))  # prunes batches 1..5
            writer.apply(Events.receive(1, 1, 1, id=200))
            reader.refresh()
            assert reader.seq == writer.seq == 6
            assert reader.state_digest() == writer.state_digest()
            writer.apply(Events.receive(1, 1, 1, id=201))
            assert reader.refresh() == 1
            assert reader.state_digest() == writer.state_digest()


@pytest.mark.parametrize("size", [0, 10, 63, 64, 100])
def test_emptied_or_short_high_water_mark_is_corruption(path: Path, size: int) -> None:
    """A mark file that lost its slots, for a journal with batches, is never read as
    'no mark' (with a torn WAL on top, acknowledged batches would vanish silently)."""
    net = make_small_network()
    with open_ledger(path, net) as led:
        _stock(led)
        led.apply(Events.receive(0, 0, 1, id=50))
    mark = _store.hwm_path(path)
    data = mark.read_bytes()
    mark.write_bytes(data[:size] if size < 64 else bytes(size))
    with pytest.raises(JournalCorruptError, match="high-water mark"):
        open_ledger(path)
    report = verify_journal(path)
    assert not report.ok and any("high-water mark" in p for p in report.problems)
    with pytest.raises(JournalCorruptError):
        open_ledger(path, readonly=True)


def test_missing_directory_and_home_are_handled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = make_small_network()
    with pytest.raises(JournalError, match="not a directory"):
        open_ledger(tmp_path / "nope" / "x.db", net)
    monkeypatch.setenv("HOME", str(tmp_path))
    with open_ledger("~/home.db", net) as led:
        assert led.path == tmp_path / "home.db"


def test_a_durable_ledger_feeds_every_model(path: Path) -> None:
    """Sourcing, channel split and replenishment take a durable ledger like an in-memory one."""
    from allocator.channels import ChannelForecast, allocate_channels
    from allocator.replenishment import replenish
    from allocator.sourcing import Orders, reserve_plan, source

    net = make_small_network()
    with open_ledger(path, net) as ledger:
        _stock(ledger)
        orders = Orders.from_lines(
            order=[1, 2], sku=[0, 1], qty=[1, 1], channel=1, lat=31.2, lon=121.5
        )
        held = reserve_plan(ledger, source(net, ledger, orders))
        assert held.ok and held.commit(1).ok
        n = ledger.num_positions
        fc = ChannelForecast.poisson(np.ones((n, net.num_channels)))
        alloc = allocate_channels(net, ledger, fc, margin=[1.0, 2.0, 1.5])
        assert alloc.fence.shape == (n, net.num_channels)
        plan = replenish(net, ledger, np.ones((n, 14), dtype=np.int64))
        assert len(plan.to_frame()) == n
