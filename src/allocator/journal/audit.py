"""Reading, verifying, replaying and repairing a journal (no writer needed)."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from allocator._validate import readonly as _readonly
from allocator.events import Events, ResultCode
from allocator.exceptions import JournalCorruptError, JournalError, ValidationError
from allocator.journal import _codec, _pgstore, _store
from allocator.journal._format import NO_DIGEST, HighWaterMark, Row, Snapshot, corrupt, genesis_hash
from allocator.journal._replica import Replica
from allocator.journal._store import SqliteStore
from allocator.journal.durable import resolve_path
from allocator.ledger import Ledger
from allocator.network import NetworkData

__all__ = [
    "JournalInfo",
    "JournalReport",
    "JournalSlice",
    "read_slice",
    "repair_journal",
    "replay_journal",
    "verify_journal",
]

logger = logging.getLogger("allocator")


@dataclass(frozen=True)
class JournalInfo:
    """Where a journal stands: batches, events, snapshots and size on disk."""

    path: str
    last_seq: int
    num_events: int
    first_seq: int
    last_snapshot_seq: int | None
    num_snapshots: int
    bytes_on_disk: int
    synchronous: str
    readonly: bool

    def summary(self) -> str:
        snap = "none" if self.last_snapshot_seq is None else f"at batch {self.last_snapshot_seq}"
        mode = "read-only" if self.readonly else f"writer, synchronous={self.synchronous}"
        return (
            f"journal {self.path}: batches {self.first_seq}..{self.last_seq}, "
            f"{self.num_events:,} events, {self.num_snapshots} snapshots (latest {snap}), "
            f"{self.bytes_on_disk:,} bytes on disk; {mode}"
        )


@dataclass(frozen=True)
class JournalReport:
    """Outcome of :func:`verify_journal`: a full scrub of one journal.

    ``ok`` is True when the hash chain, the high-water mark, every snapshot checksum
    and digest, and the replay of every batch (same ids, same result codes) agree.
    Otherwise ``problems`` lists what failed and ``first_bad_batch`` names the first
    batch that cannot be trusted (None when the fault is not in a batch).
    """

    path: str
    ok: bool
    num_batches: int
    first_seq: int
    last_seq: int
    num_events: int
    snapshots_checked: int
    high_water_mark: int | None
    digest: str
    seconds: float
    first_bad_batch: int | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        head = "OK" if self.ok else "CORRUPT"
        hwm = "none" if self.high_water_mark is None else str(self.high_water_mark)
        lines = [
            f"{head}: {self.path}",
            f"  batches {self.first_seq}..{self.last_seq} ({self.num_batches} checked), "
            f"{self.num_events:,} events replayed",
            f"  snapshots verified: {self.snapshots_checked}; high-water mark: batch {hwm}",
            f"  state digest: {self.digest}",
            f"  time: {self.seconds:.2f} s",
        ]
        if self.first_bad_batch is not None:
            lines.append(f"  first bad batch: {self.first_bad_batch}")
        lines.extend(f"  problem: {p}" for p in self.problems)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON types (``allocator journal verify --json``)."""
        return {
            "path": self.path,
            "ok": self.ok,
            "num_batches": self.num_batches,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "num_events": self.num_events,
            "snapshots_checked": self.snapshots_checked,
            "high_water_mark": self.high_water_mark,
            "digest": self.digest,
            "seconds": self.seconds,
            "first_bad_batch": self.first_bad_batch,
            "problems": list(self.problems),
        }


@dataclass(frozen=True, eq=False)
class JournalSlice:
    """Journaled batches read back: the events as applied and their results.

    ``events.id`` holds the ids as applied (ledger-assigned ids are negative);
    ``batch[i]`` is the sequence number of the batch that event ``i`` belongs to.
    ``recorded`` is False for events whose result codes are not stored yet (the
    codes of a batch are written with the next one; ``codes`` is 0 there).
    """

    first_seq: int
    last_seq: int
    batch: np.ndarray
    events: Events
    codes: np.ndarray
    duplicate: np.ndarray
    recorded: np.ndarray

    def __len__(self) -> int:
        return len(self.events)

    def __repr__(self) -> str:
        return f"JournalSlice({self.summary()})"

    def summary(self) -> str:
        return (
            f"batches {self.first_seq}..{self.last_seq}: {len(self)} events, "
            f"{int((self.codes == 0).sum())} ok, {int(self.duplicate.sum())} duplicates"
        )

    def to_frame(self, network: NetworkData | None = None) -> Any:
        """One row per event: batch, the event columns, result code and duplicate flag."""
        frame = self.events.to_frame(network)
        frame.insert(0, "batch", self.batch)
        frame["code"] = [
            ResultCode(c).slug if r else None
            for c, r in zip(self.codes.tolist(), self.recorded.tolist(), strict=True)
        ]
        frame["duplicate"] = self.duplicate
        return frame


def read_slice(store: Any, first: int, last: int | None) -> JournalSlice:
    """Batches ``first..last`` of ``store`` as a :class:`JournalSlice`."""
    if type(first) is not int or first < 1:
        raise ValidationError(f"expected a batch number >= 1, got {first!r}", field="first")
    if last is not None and (type(last) is not int or last < first):
        raise ValidationError(f"expected a batch number >= first, got {last!r}", field="last")
    parts: list[Events] = []
    codes, dups, known, batch = [], [], [], []
    end = first - 1
    for row in store.rows(first, last):
        parts.append(row.decode_events())
        recorded = row.decode_codes()
        n = row.num_events
        if recorded is None:
            recorded = (np.zeros(n, dtype=np.uint8), np.zeros(n, dtype=np.bool_))
        codes.append(recorded[0])
        dups.append(recorded[1])
        known.append(np.full(n, row.codes is not None))
        batch.append(np.full(n, row.seq, dtype=np.int64))
        end = row.seq
    if not batch:
        z = np.zeros(0, dtype=np.int64)
        return JournalSlice(
            first,
            end,
            _readonly(z),
            Events._from_rows([]),
            _readonly(z.astype(np.uint8)),
            _readonly(z.astype(np.bool_)),
            _readonly(z.astype(np.bool_)),
        )
    return JournalSlice(
        first,
        end,
        _readonly(np.concatenate(batch)),
        Events._concat_closed(parts),
        _readonly(np.concatenate(codes)),
        _readonly(np.concatenate(dups)),
        _readonly(np.concatenate(known)),
    )


# --------------------------------------------------------------------------- readers
def open_reader(path: Any) -> tuple[Any, NetworkData, bytes]:
    """A read-only store of the journal at ``path`` (a file or a PostgreSQL URL), its
    network and genesis hash."""
    if _pgstore.is_url(path):
        from allocator.journal.durable import open_network, open_pg_store

        pg = open_pg_store(path, None, readonly=True)
        try:
            network, digest = open_network(pg, None)
        except BaseException:
            pg.close()
            raise
        return pg, network, genesis_hash(digest)
    if not _store.check_header(path):
        raise JournalError(f"no journal at {path}")
    try:
        conn = _store.connect(path, readonly=True, synchronous="full")
    except sqlite3.DatabaseError as exc:
        raise corrupt(None, f"{path} is damaged: {exc}") from None
    store = SqliteStore(path, conn, None, "full")
    try:
        _store.check_format(conn, path)
        network = _codec.decode_network(store.meta()["network"])
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise corrupt(None, f"{path} is damaged: {exc}") from None
    except (KeyError, ValueError) as exc:
        conn.close()
        raise corrupt(None, f"journal metadata unreadable ({exc})") from None
    except BaseException:
        conn.close()
        raise
    return store, network, genesis_hash(_codec.network_digest(network))


def verify_journal(path: Any) -> JournalReport:
    """Scrub a journal: chain, high-water mark, snapshots, and a full replay.

    Replays every stored batch from the start (batch 1, or the earliest snapshot of
    a pruned journal) through the kernel, checking that each batch hashes into the
    chain, reproduces its journaled ids and result codes, and that the state after
    each snapshot's batch has the snapshot's digest. Read-only: safe while a writer
    runs (it checks the batches committed when it starts).
    """
    path = path if _pgstore.is_url(path) else resolve_path(path)
    t0 = time.perf_counter()
    mark, present = (None, False) if _pgstore.is_url(path) else _store.read_hwm(path)
    try:
        store, network, genesis = open_reader(path)
        if _pgstore.is_url(path):
            mark, present = store.read_mark()
    except JournalCorruptError as exc:
        return JournalReport(
            path=str(path),
            ok=False,
            num_batches=0,
            first_seq=0,
            last_seq=0,
            num_events=0,
            snapshots_checked=0,
            high_water_mark=None if mark is None else mark.seq,
            digest="",
            seconds=time.perf_counter() - t0,
            first_bad_batch=None,
            problems=(str(exc),),
        )
    replica = Replica(network, genesis, store.stored_events())
    problems: list[str] = []
    bad: int | None = None
    checked = snaps_ok = 0
    first_seq = 1
    try:
        store.begin_read()  # one read transaction: a consistent view
        snaps = store.snapshot_index()
        first_seq = replica.anchor_seq(store, snaps) + 1
        prev = replica.start_from_anchor(store, snaps, first_seq - 1)
        snaps_ok += first_seq > 1
        for row in store.rows(first_seq):
            if not row.check(prev):
                raise corrupt(row.seq, "hash chain broken (the batch was altered or torn)")
            prev = row.hash
            replica.replay_row(row, snaps)
            checked += 1
            snap = snaps.get(row.seq)
            if snap is not None:
                snaps_ok += _check_snapshot(store, replica, row, snap, problems)
        replica.check_mark(store, mark, present)
    except JournalCorruptError as exc:
        problems.append(str(exc))
        bad = getattr(exc, "batch", None)
    except store.errors as exc:
        problems.append(f"database error: {exc}")
        bad = replica.seq + 1
    finally:
        store.end_read()
        store.close()
    return JournalReport(
        path=str(store.label),
        ok=not problems,
        num_batches=checked,
        first_seq=int(first_seq),
        last_seq=replica.seq,
        num_events=replica.num_events,
        snapshots_checked=snaps_ok,
        high_water_mark=None if mark is None else mark.seq,
        digest=replica.ledger.state_digest(),
        seconds=time.perf_counter() - t0,
        first_bad_batch=bad,
        problems=tuple(problems),
    )


def _check_snapshot(
    store: Any, replica: Replica, row: Row, snap: Snapshot, problems: list[str]
) -> int:
    """Check the snapshot after ``row``; 1 when it verified."""
    if snap.batch_hash != row.hash:
        raise corrupt(row.seq, "snapshot does not follow this batch")
    if not snap.pruned and store.snapshot_data(snap) is None:
        problems.append(f"snapshot at batch {row.seq} fails its checksum")
        return 0
    if snap.digest != NO_DIGEST and bytes.fromhex(replica.ledger.state_digest()) != snap.digest:
        raise corrupt(row.seq, "replay does not reproduce the snapshot after it")
    return 1


def replay_journal(path: Any, last: int | None = None) -> Ledger:
    """A fresh in-memory :class:`~allocator.Ledger` replayed from the journal.

    Replays from batch 1 (or from the anchor snapshot of a pruned journal) up to
    batch ``last`` (default: the end), checking the chain and every result.
    """
    path = path if _pgstore.is_url(path) else resolve_path(path)
    store, network, genesis = open_reader(path)
    try:
        replica = Replica(network, genesis, store.stored_events())
        store.begin_read()
        snaps = store.snapshot_index()
        first_seq = replica.anchor_seq(store, snaps) + 1
        prev = replica.start_from_anchor(store, snaps, first_seq - 1)
        for row in store.rows(first_seq, last):
            if not row.check(prev):
                raise corrupt(row.seq, "hash chain broken (the batch was altered or torn)")
            prev = row.hash
            replica.replay_row(row, snaps)
        store.end_read()
    finally:
        store.close()
    return replica.ledger


def repair_journal(path: Any) -> int:
    """Truncate a corrupt journal to its last good batch; returns the batches removed.

    Walks the hash chain from the start and keeps the longest prefix of batches that
    read, decode and chain correctly, with the snapshots that follow one of them and
    pass their checksum. The journal is rebuilt into a new file that replaces the
    old one, and the high-water mark is reset to the new end. Needs the writer lock
    (no writer may be open); close readers first. This discards data on purpose:
    the removed batches are logged, and should be re-sent from their source.
    """
    if _pgstore.is_url(path):
        return _repair_pg(path)
    path = resolve_path(path)
    lock = _store.WriterLock(path)
    try:
        store, _, genesis = open_reader(path)
        tmp = path.with_name(path.name + ".repair")
        for stale in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            stale.unlink(missing_ok=True)
        try:
            meta = store.meta()
            total = store.conn.execute("SELECT count(*) FROM batches").fetchone()[0]
            snaps = store.snapshot_index()
            good: list[Row] = []
            prev = genesis
            last_mark = HighWaterMark(0, 0, genesis)
            keep_snap: list[tuple[Snapshot, bytes]] = []
            probe = Replica(_codec.decode_network(meta["network"]), genesis)
            try:
                first = probe.anchor_seq(store, snaps) + 1
                if first > 1:
                    anchor = snaps.get(first - 1)
                    data = None if anchor is None else store.snapshot_data(anchor)
                    if anchor is None or data is None:
                        raise corrupt(first, "no anchor snapshot")
                    prev = anchor.batch_hash
                    keep_snap.append((anchor, data))
                    last_mark = HighWaterMark(anchor.seq, anchor.num_events, prev)
                for row in store.rows(first):
                    if not row.check(prev):
                        break
                    try:
                        row.decode_events()
                        row.decode_codes()
                    except JournalCorruptError:
                        break
                    good.append(row)
                    prev = row.hash
                    snap = snaps.get(row.seq)
                    if snap is not None:
                        data = b"" if snap.pruned else store.snapshot_data(snap)
                        if data is not None:
                            keep_snap.append((snap, data))
            except (JournalCorruptError, sqlite3.DatabaseError) as exc:
                logger.warning("repair %s: stopped reading at %s", path, exc)
            out_conn = _store.connect(tmp, readonly=False, synchronous="full")
            _store.create_schema(out_conn, meta)
            out = SqliteStore(tmp, out_conn, None, "full")
            for row in good:
                out.append(row, [])
            for snap, data in keep_snap:
                out.put_snapshot(snap, data, [], keep_after=-1)
            out.checkpoint()
            out_conn.close()
            if good:
                last = good[-1]
                last_mark = HighWaterMark(last.seq, last.first_event + last.num_events, last.hash)
        finally:
            store.close()
        for side in ("-wal", "-shm"):
            path.with_name(path.name + side).unlink(missing_ok=True)
        os.replace(tmp, path)
        for side in ("-wal", "-shm"):
            tmp.with_name(tmp.name + side).unlink(missing_ok=True)
        lock.reset(last_mark)
        removed = int(total) - len(good)
        if removed:
            logger.warning(
                "repair %s: removed %d batches after batch %d", path, removed, last_mark.seq
            )
        return removed
    finally:
        lock.close()


def _repair_pg(url: str) -> int:
    """:func:`repair_journal` on PostgreSQL: truncate in place, under leadership."""
    from allocator.journal.durable import open_pg_store

    store = open_pg_store(url, None, readonly=False)
    try:
        meta = store.meta()
        genesis = genesis_hash(meta["network_digest"])
        snaps = store.snapshot_index()
        probe = Replica(_codec.decode_network(meta["network"]), genesis)
        total = store.num_batches()
        prev = genesis
        last_mark = HighWaterMark(0, 0, genesis)
        kept = 0
        last_good = 0
        try:
            first = probe.anchor_seq(store, snaps) + 1
            last_good = first - 1
            if first > 1:
                anchor = snaps.get(first - 1)
                if anchor is None or store.snapshot_data(anchor) is None:
                    raise corrupt(first, "no anchor snapshot")
                prev = anchor.batch_hash
                last_mark = HighWaterMark(anchor.seq, anchor.num_events, prev)
            for row in store.rows(first):
                if not row.check(prev):
                    break
                try:
                    row.decode_events()
                    row.decode_codes()
                except JournalCorruptError:
                    break
                prev = row.hash
                kept += 1
                last_good = row.seq
                last_mark = HighWaterMark(row.seq, row.first_event + row.num_events, row.hash)
        except JournalCorruptError as exc:
            logger.warning("repair %s: stopped reading at %s", store.label, exc)
        bad_snaps = [
            s.seq
            for s in snaps.values()
            if s.seq > last_good or (not s.pruned and store.snapshot_data(s) is None)
        ]
        conn = store.begin_write()
        try:
            conn.execute(f"DELETE FROM {store.q('batches')} WHERE seq > %s", (last_good,))
            if bad_snaps:
                conn.execute(
                    f"DELETE FROM {store.q('snapshots')} WHERE seq = ANY(%s)", (bad_snaps,)
                )
            conn.execute("COMMIT")
        except BaseException:
            store.rollback()
            raise
        store.reset_mark(last_mark)
        removed = int(total) - kept
        if removed:
            logger.warning(
                "repair %s: removed %d batches after batch %d", store.label, removed, last_good
            )
        return removed
    finally:
        store.close()
