"""Durable ledger: a SQLite journal of applied batches, snapshots, recovery and replay.

:func:`open_ledger` (also reachable as :meth:`allocator.Ledger.open`) returns a
:class:`DurableLedger`: an in-memory :class:`~allocator.Ledger` whose every
:meth:`~DurableLedger.apply` batch is written to a SQLite journal, in one
transaction, before its results are returned. Reopening the journal loads the
latest snapshot and replays the later batches through the same kernel, so the
state is identical to the one before a crash, and an event id applied before the
crash returns its original result after it.

Integrity: every batch carries a BLAKE2b hash chained to the previous batch, and a
high-water mark kept outside the database (``PATH-hwm``) records the last
acknowledged batch, so a journal that silently lost acknowledged commits (a bit flip
in the WAL makes SQLite stop recovery early) is detected. See ``docs/journal.md``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from allocator._kernels import ledger as K
from allocator._validate import readonly as _readonly
from allocator.events import Events
from allocator.exceptions import (
    JournalCorruptError,
    JournalError,
    StorageError,
    ValidationError,
)
from allocator.journal import _codec, _store
from allocator.ledger import ApplyResult, Ledger
from allocator.network import NetworkData

__all__ = [
    "DEFAULT_SNAPSHOT_EVERY",
    "DurableLedger",
    "JournalInfo",
    "JournalReport",
    "JournalSlice",
    "open_ledger",
    "repair_journal",
    "replay_journal",
    "verify_journal",
]

logger = logging.getLogger("allocator")

#: Events between automatic snapshots (None in :func:`open_ledger` disables them).
DEFAULT_SNAPSHOT_EVERY = 5_000_000
_SYNC_MODES = ("full", "normal")
_NO_DIGEST = bytes(32)  # snapshot row whose digest was dropped (see _rebase_snapshots)
_ROW = "seq, first_event, num_events, auto_id, recorded_at, events, hash, codes, codes_check"
_INSERT = f"INSERT INTO batches ({_ROW}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_SET_CODES = "UPDATE batches SET codes = ?, codes_check = ? WHERE seq = ?"


# --------------------------------------------------------------------------- results
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

    def summary(self) -> str:
        return (
            f"batches {self.first_seq}..{self.last_seq}: {len(self)} events, "
            f"{int((self.codes == 0).sum())} ok, {int(self.duplicate.sum())} duplicates"
        )

    def to_frame(self, network: NetworkData | None = None) -> Any:
        """One row per event: batch, the event columns, result code and duplicate flag."""
        from allocator.events import ResultCode

        frame = self.events.to_frame(network)
        frame.insert(0, "batch", self.batch)
        frame["code"] = [
            ResultCode(c).slug if r else None
            for c, r in zip(self.codes.tolist(), self.recorded.tolist(), strict=True)
        ]
        frame["duplicate"] = self.duplicate
        return frame


# --------------------------------------------------------------------------- internals
@dataclass
class _Row:
    seq: int
    first_event: int
    num_events: int
    auto_id: int
    recorded_at: int
    events: bytes
    hash: bytes
    codes: bytes | None
    codes_check: bytes | None

    def check(self, prev: bytes) -> bool:
        return (
            _store.chain_hash(
                prev,
                self.seq,
                self.first_event,
                self.num_events,
                self.auto_id,
                self.recorded_at,
                self.events,
            )
            == self.hash
        )

    def decode_codes(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(codes, duplicate)``, or None when not recorded yet; checks the binding."""
        if self.codes is None:
            return None
        if self.codes_check != _store.codes_check(self.hash, self.codes):
            raise _corrupt(self.seq, "result codes fail their check")
        try:
            return _codec.decode_codes(self.codes, self.num_events)
        except ValueError as exc:
            raise _corrupt(self.seq, f"result codes undecodable ({exc})") from None


@dataclass
class _Snapshot:
    seq: int
    num_events: int
    horizon: int | None
    batch_hash: bytes
    digest: bytes
    checksum: bytes
    pruned: bool = False  # data dropped by retention; the row still marks the point
    data: bytes | None = None


class _Ages:
    """When each idempotency entry was first applied (global event number).

    Needed to compact entries older than the horizon. The base holds the entries of
    the last snapshot in first-applied order; batches since then are appended.
    """

    def __init__(self) -> None:
        self.base_id = np.zeros(0, dtype=np.int64)
        self.base_event = np.zeros(0, dtype=np.int64)
        self.tail_id: list[np.ndarray] = []
        self.tail_event: list[np.ndarray] = []

    def add(self, events: Events, result: ApplyResult, first_event: int) -> None:
        new = ~result.duplicate
        n = len(events)
        if n and events.link[-1]:  # an open chain at the end is never recorded
            closed = np.flatnonzero(~events.link)
            new[(int(closed[-1]) + 1 if closed.size else 0) :] = False
        rows = np.flatnonzero(new)
        self.tail_id.append(result.ids[rows])
        self.tail_event.append(rows + first_event)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        ids = np.concatenate([self.base_id, *self.tail_id])
        ev = np.concatenate([self.base_event, *self.tail_event])
        return ids, ev

    def reset(self, ids: np.ndarray, ev: np.ndarray) -> None:
        self.base_id, self.base_event = ids, ev
        self.tail_id, self.tail_event = [], []


def _compact(
    arrays: dict[str, np.ndarray], ages: _Ages, total: int, horizon: int | None
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Drop closed reservations and id entries first applied before ``total - horizon``.

    Returns the snapshot arrays (id entries in first-applied order, with their
    ``age_event``) and the kept ``(ids, events)`` ages. Open reservations and the ids
    naming them are always kept. Slots of kept reservations are renumbered in order,
    which keeps the expiry order ``(expires_at, slot)``.
    """
    age_id, age_event = ages.arrays()
    sorted_ids = arrays["id"]
    if age_id.shape[0] != sorted_ids.shape[0]:
        raise JournalError(
            f"id tracking out of step with the ledger ({age_id.shape[0]} tracked, "
            f"{sorted_ids.shape[0]} in the index)"
        )
    where = np.searchsorted(sorted_ids, age_id)
    where = np.minimum(where, max(0, sorted_ids.shape[0] - 1))
    if sorted_ids.shape[0] and not np.array_equal(sorted_ids[where], age_id):
        raise JournalError("id tracking out of step with the ledger index")
    value = arrays["id_value"][where]
    out = {k: v for k, v in arrays.items() if k not in ("id", "id_value")}
    if horizon is not None:
        cutoff = total - horizon
        nres = arrays["res_id"].shape[0]
        slot = (value >> 32) - 1
        has_slot = slot >= 0
        res_event = np.full(nres, np.iinfo(np.int64).max, dtype=np.int64)
        res_event[slot[has_slot]] = age_event[has_slot]
        keep_res = (arrays["res_state"] == K.RS_OPEN) | (res_event >= cutoff)
        keep_id = age_event >= cutoff
        keep_id[has_slot] |= keep_res[slot[has_slot]]
        if not keep_res.all() or not keep_id.all():
            new_slot = np.cumsum(keep_res) - 1
            for name in [k for k in out if k.startswith("res_")]:
                out[name] = out[name][keep_res]
            age_id, age_event, value, slot = (
                age_id[keep_id],
                age_event[keep_id],
                value[keep_id],
                slot[keep_id],
            )
            moved = slot >= 0
            value = value.copy()
            value[moved] = (value[moved] & 0xFFFFFFFF) | ((new_slot[slot[moved]] + 1) << 32)
    out["age_id"], out["age_value"], out["age_event"] = age_id, value, age_event
    return out, age_id, age_event


def _ledger_arrays(snap: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Snapshot arrays -> the form of ``Ledger._export_state`` (ids sorted)."""
    order = np.argsort(snap["age_id"], kind="stable")
    out = {k: v for k, v in snap.items() if not k.startswith("age_")}
    out["id"] = snap["age_id"][order]
    out["id_value"] = snap["age_value"][order]
    return out


def _corrupt(seq: int | None, message: str) -> JournalCorruptError:
    where = f"batch {seq}: " if seq is not None else ""
    exc = JournalCorruptError(f"{where}{message}")
    exc.batch = seq  # type: ignore[attr-defined]
    return exc


def _resolve_path(path: Any) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path)


# --------------------------------------------------------------------------- the ledger
class DurableLedger(Ledger):
    """A :class:`~allocator.Ledger` journaled to SQLite; open with :func:`open_ledger`.

    Everything :class:`~allocator.Ledger` offers works unchanged: every state change
    goes through :meth:`apply`, which journals the batch before returning. Use it as a
    context manager, or call :meth:`close`.

    Attributes
    ----------
    path
        The journal database.
    readonly
        True for a reader (``apply`` raises; :meth:`refresh` follows the writer).
    synchronous
        ``"full"`` (default) or ``"normal"``, see :func:`open_ledger`.
    """

    path: Path
    readonly: bool
    synchronous: str

    def __init__(self, network: NetworkData, **kwargs: Any) -> None:  # pragma: no cover
        raise TypeError("open a DurableLedger with Ledger.open(path, ...) or open_ledger()")

    @classmethod
    def _new(cls, network: NetworkData, num_events: int = 0) -> DurableLedger:
        """An empty ledger sized for replaying ``num_events`` events without regrowing."""
        self = cls.__new__(cls)
        positions = min(num_events, network.num_skus * network.num_locations)
        Ledger.__init__(
            self, network, capacity=max(1024, positions), reservation_capacity=max(1024, num_events)
        )
        return self

    # ------------------------------------------------------------ state bookkeeping
    def _setup(
        self,
        path: Path,
        conn: sqlite3.Connection,
        lock: _store.WriterLock | None,
        *,
        synchronous: str,
        snapshot_every: int | None,
        horizon: int | None,
        genesis: bytes,
    ) -> None:
        self.path = path
        self.readonly = lock is None
        self.synchronous = synchronous
        self._conn: sqlite3.Connection | None = conn
        self._lock = lock
        self._snapshot_every = snapshot_every
        self._horizon = horizon
        self._genesis = genesis
        self._seq = 0
        self._num_events = 0
        self._hash = genesis
        self._ages = _Ages()
        self._snap_seq: int | None = None
        self._snap_events = 0
        self._failed: BaseException | None = None
        self._pending: list[tuple[bytes, bytes, int]] = []
        self._writer: ThreadPoolExecutor | None = None

    @staticmethod
    def _codes_of(seq: int, batch_hash: bytes, result: ApplyResult) -> tuple[bytes, bytes, int]:
        codes = _codec.encode_codes(result.codes, result.duplicate)
        return codes, _store.codes_check(batch_hash, codes), seq

    def _replay_row(self, row: _Row, snaps: dict[int, _Snapshot]) -> None:
        """Apply one journaled batch through the kernel and check its ids and results."""
        try:
            cols = _codec.decode_events(row.events)
        except ValueError as exc:
            raise _corrupt(row.seq, f"undecodable ({exc})") from None
        recorded = row.decode_codes()
        applied = cols["id"]
        if applied.shape[0] != row.num_events:
            raise _corrupt(row.seq, "event count differs from the header")
        given = applied.copy()
        given[given <= row.auto_id] = 0  # ids the ledger assigned in this batch
        cols["id"] = given
        events = Events(**{k: _readonly(v) for k, v in cols.items()})
        if self._next_auto_id != row.auto_id:
            raise _corrupt(
                row.seq, f"expected next ledger id {row.auto_id}, replay is at {self._next_auto_id}"
            )
        try:
            result = Ledger.apply(self, events)
        except Exception as exc:
            raise _corrupt(row.seq, f"cannot be replayed ({exc})") from exc
        if not np.array_equal(result.ids, applied):
            raise _corrupt(row.seq, "replay assigned different event ids")
        if recorded is None:  # the crash came before they were written: record them now
            if not self.readonly:
                self._pending.append(self._codes_of(row.seq, row.hash, result))
        else:
            codes, dup = recorded
            if not (np.array_equal(result.codes, codes) and np.array_equal(result.duplicate, dup)):
                bad = int(np.flatnonzero((result.codes != codes) | (result.duplicate != dup))[0])
                raise _corrupt(
                    row.seq,
                    f"replay gave a different result at event {bad}: the "
                    "journal or the kernel changed",
                )
        self._ages.add(events, result, row.first_event)
        self._seq, self._hash = row.seq, row.hash
        self._num_events = row.first_event + row.num_events
        snap = snaps.get(row.seq)
        if snap is not None and snap.horizon is not None:
            self._compact_live(snap.horizon)
            self._snap_seq = row.seq

    def _compact_live(self, horizon: int | None) -> dict[str, np.ndarray]:
        snap, ids, ev = _compact(self._export_state(), self._ages, self._num_events, horizon)
        if ids.shape[0] != self.num_ids_tracked():
            self._import_state(_ledger_arrays(snap))
        self._ages.reset(ids, ev)
        return snap

    def num_ids_tracked(self) -> int:
        """Number of event ids the idempotency index remembers."""
        return int(self._meta[K.M_NIDS])

    def _load_snapshot(self, snap: _Snapshot) -> None:
        assert snap.data is not None
        arrays = _codec.decode_arrays(snap.data)
        self._import_state(_ledger_arrays(arrays))
        self._ages.reset(arrays["age_id"], arrays["age_event"])
        self._seq, self._num_events, self._hash = snap.seq, snap.num_events, snap.batch_hash
        self._snap_seq, self._snap_events = snap.seq, snap.num_events

    # ------------------------------------------------------------ writing
    def _check_writable(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"journal {self.path} is closed")
        if self.readonly:
            raise JournalError(f"journal {self.path} is open read-only")
        if self._failed is not None:
            raise StorageError(
                f"journal {self.path} could not restore the ledger after a storage error "
                f"({self._failed}); close and reopen it"
            )
        return self._conn

    def apply(self, events: Events) -> ApplyResult:
        """Apply a batch, journal it durably, then return the results.

        The batch (its events, with the ids as applied) is written in one
        ``BEGIN IMMEDIATE`` transaction and committed (fsynced under
        ``synchronous="full"``) before the results are returned. The write runs on a
        writer thread while the kernel applies the batch in memory; the result codes,
        which a replay reproduces, are stored with the next transaction.

        Bad input raises :class:`~allocator.ValidationError` with nothing applied or
        written. If the write fails (disk full, I/O error), the in-memory ledger is
        restored from the journal to the previous batch and :class:`StorageError` is
        raised; should the failure hit after the commit point, the batch is wholly
        present instead, and retrying with the same ids converges (``exists``).
        """
        conn = self._check_writable()
        auto_id = self._next_auto_id
        ids = self._prepare(events)  # validated, with the ids the ledger will assign
        seq, first = self._seq + 1, self._num_events
        pending = self._pending
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="allocator-journal")
        job = self._writer.submit(
            self._write_batch, conn, seq, first, events, ids, auto_id, self._hash, pending
        )
        try:
            result = self._apply_prepared(events, ids)
        except BaseException as exc:
            self._undo_batch(conn, job, seq, exc)
            raise
        try:
            digest = job.result()
        except sqlite3.Error as exc:
            self._rollback(conn)
            self._restore()
            raise StorageError(
                f"journal {self.path}: batch {seq} could not be written ({exc}); the "
                f"ledger is back at batch {self._seq}"
            ) from exc
        except BaseException:
            self._rollback(conn)
            self._restore()
            raise
        if not np.array_equal(result.ids, ids):
            self._undo_batch(conn, None, seq, None)
            raise JournalError("the ledger assigned other ids than were journaled; batch withdrawn")
        self._pending = [self._codes_of(seq, digest, result)]
        self._seq, self._num_events, self._hash = seq, first + len(events), digest
        self._ages.add(events, result, first)
        self._mark()
        if (
            self._snapshot_every is not None
            and self._num_events - self._snap_events >= self._snapshot_every
        ):
            try:
                self.snapshot()
            except StorageError as exc:  # the batch itself is durable
                logger.warning("automatic snapshot failed, will retry: %s", exc)
        return result

    @staticmethod
    def _write_batch(
        conn: sqlite3.Connection,
        seq: int,
        first: int,
        events: Events,
        ids: np.ndarray,
        auto_id: int,
        prev: bytes,
        pending: list[tuple[bytes, bytes, int]],
    ) -> bytes:
        """Writer thread: encode, hash and commit one batch (plus earlier result codes)."""
        blob = _codec.encode_events(events, ids)
        stamp = _store.now_ns()
        digest = _store.chain_hash(prev, seq, first, len(events), auto_id, stamp, blob)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_INSERT, (seq, first, len(events), auto_id, stamp, blob, digest, None, None))
        if pending:
            conn.executemany(_SET_CODES, pending)
        conn.execute("COMMIT")
        return digest

    def _undo_batch(
        self,
        conn: sqlite3.Connection,
        job: Future[bytes] | None,
        seq: int,
        exc: BaseException | None,
    ) -> None:
        """The in-memory apply failed: withdraw the batch if it was committed, restore."""
        committed = True
        if job is not None:
            try:
                job.result()
            except BaseException:  # the writer stopped before its COMMIT returned
                committed = False
                self._rollback(conn)
        if committed:
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DELETE FROM batches WHERE seq = ?", (seq,))
                conn.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback(conn)
                self._failed = err
                logger.error(
                    "journal %s: batch %d could not be withdrawn after %r: %s",
                    self.path,
                    seq,
                    exc,
                    err,
                )
                return
        if isinstance(exc, ValidationError | TypeError):
            return  # Ledger.apply validates before it changes anything
        self._restore()

    def _flush_codes(self, conn: sqlite3.Connection) -> None:
        if self._pending:
            conn.executemany(_SET_CODES, self._pending)
            self._pending = []

    def _mark(self, *, sync: bool = False) -> None:
        """Advance the high-water mark to the last committed batch.

        The mark only ever trails the journal: it is written after the commit, and
        without its own fsync (forced at snapshots, checkpoints and close), so after
        a power loss it may lag, which narrows what it detects but never raises a
        false alarm. In ``normal`` mode commits are not durable when they return, so
        the mark advances only at checkpoints.
        """
        assert self._lock is not None
        if self.synchronous != "full" and not sync:
            return
        try:
            self._lock.write(
                _store.HighWaterMark(self._seq, self._num_events, self._hash), sync=sync
            )
        except OSError as exc:  # the batch is durable; a stale mark only weakens checks
            logger.error("journal %s: high-water mark not updated: %s", self.path, exc)

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                logger.exception("rollback failed")

    def _restore(self) -> None:
        """Rebuild the in-memory state from the journal (latest snapshot + tail)."""
        assert self._conn is not None
        try:
            Ledger.__init__(self, self.network)
            self._ages = _Ages()
            self._seq, self._num_events, self._hash = 0, 0, self._genesis
            self._snap_seq, self._snap_events = None, 0
            self._pending = []
            _load(self, self._conn, verify="tail")
        except BaseException as exc:
            self._failed = exc
            logger.error("journal %s: ledger could not be restored: %s", self.path, exc)
            raise

    def snapshot(self) -> int:
        """Write a snapshot of the state now; returns the batch number it follows.

        The journal keeps the data of this snapshot and of the one before it (the
        fallback should this one fail its checksum), plus the anchor of a pruned
        journal; older snapshots keep only their row (batch, horizon, digest).

        Closed reservations and id entries first applied more than ``horizon``
        events ago are compacted first (see :func:`open_ledger`), in the live ledger
        too, so that it stays equal to what a reopen yields.
        """
        conn = self._check_writable()
        if self._snap_seq == self._seq:
            return self._seq
        snap, ids, ev = _compact(self._export_state(), self._ages, self._num_events, self._horizon)
        data = _codec.encode_arrays(snap)
        digest = bytes.fromhex(self._digest_state(_ledger_arrays(snap)))
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT OR REPLACE INTO snapshots (seq, num_events, horizon, batch_hash, "
                "digest, checksum, created_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self._seq,
                    self._num_events,
                    self._horizon,
                    self._hash,
                    digest,
                    _store.checksum(data),
                    _store.now_ns(),
                    data,
                ),
            )
            self._flush_codes(conn)
            # keep the data of this snapshot, of the one before (a fallback) and of a
            # pruned journal's anchor; older rows stay, without data, because they mark
            # where compaction happened (a replay from batch 1 compacts at the same
            # points) and carry the digest that verification compares
            conn.execute(
                "UPDATE snapshots SET data = x'' WHERE length(data) > 0 AND seq < "
                "(SELECT max(seq) FROM snapshots WHERE seq < ?)"
                " AND seq != coalesce((SELECT min(seq) - 1 FROM batches), -1)",
                (self._seq,),
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(conn)
            raise StorageError(f"journal {self.path}: snapshot failed ({exc})") from exc
        if ids.shape[0] != self.num_ids_tracked():
            self._import_state(_ledger_arrays(snap))
        self._ages.reset(ids, ev)
        self._snap_seq, self._snap_events = self._seq, self._num_events
        if self.synchronous == "full":
            self._mark(sync=True)
        logger.info(
            "journal %s: snapshot at batch %d (%d events, %d bytes)",
            self.path,
            self._seq,
            self._num_events,
            len(data),
        )
        return self._seq

    def _rebase_snapshots(self) -> None:
        """After a rebuild under a changed kernel: drop old snapshot data, snapshot anew."""
        conn = self._check_writable()
        try:
            conn.execute("BEGIN IMMEDIATE")
            # their data and digests embed the old fingerprints: keep only the rows
            conn.execute("UPDATE snapshots SET data = x'', digest = zeroblob(32)")
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('kernel_probe', ?)",
                (_kernel_probe(),),
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(conn)
            raise StorageError(f"journal {self.path}: rebase failed ({exc})") from exc
        self._snap_seq = None
        self.snapshot()

    def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it (``wal_checkpoint``).

        In ``synchronous="normal"`` mode this is also the point up to which the
        high-water mark advances.
        """
        conn = self._check_writable()
        try:
            self._flush_codes(conn)
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"journal {self.path}: checkpoint failed ({exc})") from exc
        if busy:
            logger.info("journal %s: checkpoint incomplete (readers active)", self.path)
            if self.synchronous != "full":
                return  # the WAL was not synced as a whole: the mark stays where it is
        self._mark(sync=True)

    def archive(self, destination: Any) -> int:
        """Copy the whole journal to ``destination``, then prune it.

        Takes a snapshot, copies the journal with SQLite's online backup, and deletes
        the batches up to that snapshot and the older snapshots from this journal.
        The copy keeps the full history (verify or replay it from batch 1); this
        journal then verifies from its snapshot on. Returns the batches pruned.
        """
        conn = self._check_writable()
        dest = _resolve_path(destination)
        if dest.exists():
            raise JournalError(f"archive destination {dest} exists")
        self.snapshot()
        target = sqlite3.connect(str(dest))
        try:
            conn.backup(target)
        finally:
            target.close()
        keep = self._seq
        try:
            conn.execute("BEGIN IMMEDIATE")
            pruned = conn.execute("DELETE FROM batches WHERE seq <= ?", (keep,)).rowcount
            conn.execute("DELETE FROM snapshots WHERE seq < ?", (keep,))
            conn.execute("COMMIT")
            conn.execute("VACUUM")
        except sqlite3.Error as exc:
            self._rollback(conn)
            raise StorageError(f"journal {self.path}: pruning failed ({exc})") from exc
        return int(pruned)

    # ------------------------------------------------------------ reading
    def refresh(self) -> int:
        """Reader only: apply the batches the writer committed since; returns how many."""
        if self._conn is None:
            raise JournalError(f"journal {self.path} is closed")
        if not self.readonly:
            return 0
        mark, _ = _store.read_hwm(self.path)  # read the mark before the data
        snaps = _snapshot_index(self._conn)
        before = self._seq
        behind = [
            s
            for s in snaps.values()
            if s.horizon is not None and (self._snap_seq or 0) < s.seq <= self._seq
        ]
        if behind:
            # the writer compacted at a batch this reader had already passed: start
            # again from that snapshot, so the reader stays equal to the writer
            Ledger.__init__(self, self.network)
            self._ages = _Ages()
            self._seq, self._num_events, self._hash = 0, 0, self._genesis
            self._snap_seq, self._snap_events = None, 0
            _load(self, self._conn, verify="tail")
            return self._seq - before
        for row in _rows(self._conn, self._seq + 1):
            if not row.check(self._hash):
                raise _corrupt(row.seq, "hash chain broken")
            self._replay_row(row, snaps)
        _check_mark(mark, self._conn, self._seq)
        return self._seq - before

    def read(self, first: int = 1, last: int | None = None) -> JournalSlice:
        """Batches ``first..last`` (inclusive; default to the end) read back."""
        conn = self._require_conn()
        if not self.readonly and self._failed is None:
            try:
                self._flush_codes(conn)
            except sqlite3.Error as exc:
                logger.warning("journal %s: result codes not stored yet: %s", self.path, exc)
        return _read_slice(conn, self.network, first, last)

    def info(self) -> JournalInfo:
        """Where the journal stands."""
        conn = self._require_conn()
        count = conn.execute("SELECT count(*) FROM snapshots").fetchone()[0]
        last_snap = conn.execute("SELECT max(seq) FROM snapshots").fetchone()[0]
        first_seq = conn.execute("SELECT min(seq) FROM batches").fetchone()[0]
        size = sum(
            p.stat().st_size
            for p in (self.path, self.path.with_name(self.path.name + "-wal"))
            if p.exists()
        )
        return JournalInfo(
            path=str(self.path),
            last_seq=self._seq,
            num_events=self._num_events,
            first_seq=int(first_seq or self._seq),
            last_snapshot_seq=last_snap,
            num_snapshots=int(count),
            bytes_on_disk=size,
            synchronous=self.synchronous,
            readonly=self.readonly,
        )

    def verify(self) -> JournalReport:
        """A full scrub of the journal on disk (see :func:`verify_journal`)."""
        self._require_conn()
        return verify_journal(self.path)

    @property
    def seq(self) -> int:
        """Sequence number of the last batch applied (0 before any)."""
        return self._seq

    @property
    def num_events(self) -> int:
        """Events journaled so far (all batches, including pruned ones)."""
        return self._num_events

    def _require_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"journal {self.path} is closed")
        return self._conn

    # ------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Close the journal and release the writer lock (idempotent)."""
        conn, self._conn = self._conn, None
        writer, self._writer = getattr(self, "_writer", None), None
        if writer is not None:
            writer.shutdown(wait=True)
        if conn is not None:
            try:
                if not self.readonly and self._failed is None:
                    self._flush_codes(conn)
                    if self.synchronous != "full":
                        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    self._mark(sync=True)
            except sqlite3.Error as exc:
                logger.error("journal %s: final checkpoint failed: %s", self.path, exc)
            finally:
                conn.close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> DurableLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if getattr(self, "_conn", None) is not None:
                self.close()
        except Exception:  # never raise from a finaliser
            pass

    def __repr__(self) -> str:
        mode = "read-only" if getattr(self, "readonly", True) else "writer"
        return (
            f"DurableLedger({getattr(self, 'path', '?')}, {mode}, batch "
            f"{getattr(self, '_seq', 0)}, {self.num_positions} positions)"
        )


# --------------------------------------------------------------------------- loading
def _rows(conn: sqlite3.Connection, first: int, last: int | None = None) -> Iterator[_Row]:
    sql = f"SELECT {_ROW} FROM batches WHERE seq >= ?"
    args: tuple[int, ...] = (first,)
    if last is not None:
        sql += " AND seq <= ?"
        args = (first, last)
    expect = first
    cur = conn.execute(sql + " ORDER BY seq", args)
    while True:
        try:
            raw = cur.fetchone()
        except sqlite3.DatabaseError as exc:
            raise _corrupt(expect, f"unreadable ({exc})") from None
        if raw is None:
            return
        if not (
            all(isinstance(v, int) for v in raw[:5])
            and all(isinstance(v, bytes) for v in raw[5:7])
            and all(v is None or isinstance(v, bytes) for v in raw[7:])
        ):
            raise _corrupt(raw[0], "columns of the wrong type")
        row = _Row(*raw)
        if row.seq != expect:
            raise _corrupt(expect, f"missing (the next batch is {row.seq})")
        expect += 1
        yield row


def _snapshot_index(conn: sqlite3.Connection) -> dict[int, _Snapshot]:
    try:
        rows = conn.execute(
            "SELECT seq, num_events, horizon, batch_hash, digest, checksum, "
            "length(data) = 0 FROM snapshots ORDER BY seq"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise _corrupt(None, f"snapshot table unreadable ({exc})") from None
    return {r[0]: _Snapshot(r[0], r[1], r[2], r[3], r[4], r[5], pruned=bool(r[6])) for r in rows}


def _snapshot_data(conn: sqlite3.Connection, snap: _Snapshot) -> bytes | None:
    try:
        row = conn.execute("SELECT data FROM snapshots WHERE seq = ?", (snap.seq,)).fetchone()
    except sqlite3.DatabaseError:
        return None
    if row is None or not isinstance(row[0], bytes) or _store.checksum(row[0]) != snap.checksum:
        return None
    return row[0]


def _anchor_seq(conn: sqlite3.Connection, snaps: dict[int, _Snapshot]) -> int:
    """The batch the stored chain starts after: 0, or the prune point of an archive."""
    try:
        first = conn.execute("SELECT min(seq) FROM batches").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise _corrupt(None, f"batch table unreadable ({exc})") from None
    if first is None:
        return max(snaps, default=0)
    return int(first) - 1


def _start_from_anchor(
    ledger: DurableLedger, conn: sqlite3.Connection, snaps: dict[int, _Snapshot], anchor_seq: int
) -> bytes:
    """Load the anchor snapshot of a pruned journal; returns the hash to chain from."""
    if anchor_seq == 0:
        return ledger._genesis
    anchor = snaps.get(anchor_seq)
    data = None if anchor is None else _snapshot_data(conn, anchor)
    if anchor is None or data is None:
        raise _corrupt(anchor_seq + 1, "pruned journal without a usable anchor snapshot")
    anchor.data = data
    ledger._load_snapshot(anchor)
    return anchor.batch_hash


def _check_mark(mark: _store.HighWaterMark | None, conn: sqlite3.Connection, last: int) -> None:
    if mark is None or mark.seq == 0:
        return
    if mark.seq > last:
        raise _corrupt(
            last + 1,
            f"missing: the high-water mark records batch {mark.seq} as "
            f"acknowledged but the journal ends at batch {last}",
        )
    row = conn.execute("SELECT hash FROM batches WHERE seq = ?", (mark.seq,)).fetchone()
    if row is not None and row[0] != mark.hash:
        raise _corrupt(mark.seq, "differs from the acknowledged batch (high-water mark hash)")


def _kernel_probe() -> bytes:
    """Digest of the kernel's payload fingerprints of fixed payloads.

    Snapshots store the idempotency index, whose values embed these fingerprints: a
    library whose kernel fingerprints payloads differently cannot use them.
    """
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    for args in ((0, 1, 2, 3, 4, 5, 6), (2, 7, 1, 0, 3, 0, 2**62), (10, 0, 0, -1, 0, 0, 0)):
        h.update(int(K.fingerprint(*args)).to_bytes(8, "little", signed=True))
    return h.digest()


def _load(
    ledger: DurableLedger, conn: sqlite3.Connection, *, verify: str, snapshots: bool = True
) -> None:
    """Latest good snapshot + replay of the later batches into ``ledger`` (freshly reset).

    ``verify="full"`` checks the hash chain of every stored batch; ``"tail"`` only of
    the batches after the snapshot (the snapshot's own checksum covers the rest).
    ``snapshots=False`` replays from batch 1, using snapshot rows only as compaction
    points.
    """
    mark, mark_file = _store.read_hwm(ledger.path)
    if mark_file and mark is None:
        raise _corrupt(
            None,
            f"high-water mark file {_store.hwm_path(ledger.path)} is "
            "unreadable (both slots fail their check)",
        )
    snaps = _snapshot_index(conn)
    anchor_seq = _anchor_seq(conn, snaps)
    base: _Snapshot | None = None
    for snap in sorted(snaps.values(), key=lambda s: -s.seq):
        if snap.pruned or not snapshots:
            continue
        data = _snapshot_data(conn, snap)
        if data is not None:
            snap.data = data
            base = snap
            break
        logger.warning(
            "journal %s: snapshot at batch %d fails its checksum; using an older one and replaying",
            ledger.path,
            snap.seq,
        )
    if base is None and anchor_seq > 0:
        raise _corrupt(
            None,
            "no usable snapshot, and the batches up to "
            f"{anchor_seq} were pruned: the state cannot be rebuilt",
        )
    if base is not None and base.seq < anchor_seq:
        raise _corrupt(
            None,
            f"the usable snapshot (batch {base.seq}) is older than the "
            f"first stored batch {anchor_seq + 1}",
        )
    # anchor of the hash chain: genesis, or the snapshot at the prune point
    prev = ledger._genesis
    if anchor_seq > 0:
        anchor = snaps.get(anchor_seq)
        if anchor is None:
            raise _corrupt(anchor_seq + 1, "no snapshot anchors the pruned journal")
        prev = anchor.batch_hash
    if base is not None:
        ledger._load_snapshot(base)
    start = anchor_seq + 1 if verify == "full" or base is None else base.seq + 1
    if base is not None and verify != "full":
        prev = base.batch_hash
    for row in _rows(conn, start):
        if not row.check(prev):
            raise _corrupt(row.seq, "hash chain broken (the batch was altered or torn)")
        prev = row.hash
        if base is not None and row.seq <= base.seq:
            if row.seq == base.seq and row.hash != base.batch_hash:
                raise _corrupt(row.seq, "differs from the snapshot taken after it")
            continue
        ledger._replay_row(row, snaps)
    if base is not None and ledger._seq < base.seq:
        raise _corrupt(ledger._seq + 1, f"missing: the snapshot follows batch {base.seq}")
    _check_mark(mark, conn, ledger._seq)


def open_ledger(
    path: Any,
    network_data: NetworkData | None = None,
    *,
    readonly: bool = False,
    synchronous: str = "full",
    snapshot_every: int | None = DEFAULT_SNAPSHOT_EVERY,
    horizon: int | None = None,
    verify: str = "full",
) -> DurableLedger:
    """Open the journal at ``path`` (creating it when absent) as a :class:`DurableLedger`.

    Parameters
    ----------
    path
        The SQLite file. ``PATH-wal``, ``PATH-shm`` and ``PATH-hwm`` sit beside it.
    network_data
        Required to create a journal, where it is stored; optional on reopen, where
        it must equal the stored one.
    readonly
        Open as a reader: no lock taken, allowed while a writer runs; ``apply``
        raises and :meth:`DurableLedger.refresh` catches up with the writer.
    synchronous
        ``"full"`` (default): every batch is fsynced before ``apply`` returns, so an
        acknowledged batch survives power loss. ``"normal"``: commits are not
        fsynced; an application crash loses nothing, but a power loss or OS crash
        may lose the batches committed since the last checkpoint (automatic every
        few MB of WAL, and on :meth:`~DurableLedger.checkpoint`, snapshot and close).
        The journal stays consistent either way.
    snapshot_every
        Take a snapshot automatically once this many events were applied since the
        last one (None: only on :meth:`DurableLedger.snapshot`).
    horizon
        Compaction horizon in events, or None (default) to keep everything. At each
        snapshot, closed reservations and idempotency entries first applied more
        than ``horizon`` events ago are dropped. A later duplicate of such an id is
        then applied as a new event, and a commit naming such a reservation gets
        ``reservation_not_found``. Open reservations are always kept.
    verify
        ``"full"`` (default) checks the hash chain of every stored batch on open;
        ``"tail"`` only of those after the latest snapshot.

    Raises
    ------
    JournalLockedError
        Another writer (process or object) holds the journal.
    JournalCorruptError
        A broken hash chain, a torn or missing batch, or a high-water mark ahead of
        the journal; the message names the first bad batch.
    JournalError
        Not a journal, a newer format version, or a network mismatch.
    """
    path = _resolve_path(path)
    if synchronous not in _SYNC_MODES:
        raise ValidationError(
            f"expected one of {_SYNC_MODES}, got {synchronous!r}", field="synchronous"
        )
    if verify not in ("full", "tail"):
        raise ValidationError(f"expected 'full' or 'tail', got {verify!r}", field="verify")
    for name, value in (("snapshot_every", snapshot_every), ("horizon", horizon)):
        if value is not None and (
            type(value) is not int or value < (1 if name == "snapshot_every" else 0)
        ):
            raise ValidationError(f"expected a positive int or None, got {value!r}", field=name)
    if network_data is not None and not isinstance(network_data, NetworkData):
        raise TypeError("network_data must be a NetworkData (Network().build())")
    exists = _store.check_header(path)
    if readonly and not exists:
        raise JournalError(f"no journal at {path}")
    lock = None if readonly else _store.WriterLock(path)
    conn: sqlite3.Connection | None = None
    ledger: DurableLedger | None = None
    try:
        if not exists:
            if network_data is None:
                raise JournalError(f"no journal at {path}; pass network_data to create one")
            conn = _store.connect(path, readonly=False, synchronous=synchronous)
            digest = _codec.network_digest(network_data)
            _store.create_schema(
                conn,
                {
                    "format_version": str(_store.FORMAT_VERSION).encode(),
                    "network": _codec.encode_network(network_data),
                    "network_digest": digest,
                    "created_at": str(_store.now_ns()).encode(),
                    "kernel_probe": _kernel_probe(),
                },
            )
            assert lock is not None
            lock.reset(_store.HighWaterMark(0, 0, _store.genesis_hash(digest)))
        try:
            if conn is None:
                conn = _store.connect(path, readonly=readonly, synchronous=synchronous)
            _store.check_format(conn, path)
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            network = _codec.decode_network(meta["network"])
            digest = meta["network_digest"]
        except sqlite3.DatabaseError as exc:
            raise _corrupt(None, f"{path} is damaged: {exc}") from None
        except (KeyError, ValueError, OSError) as exc:
            raise _corrupt(None, f"journal metadata unreadable ({exc})") from None
        if _codec.network_digest(network) != digest:
            raise _corrupt(None, "stored network fails its digest")
        if network_data is not None and _codec.network_digest(network_data) != digest:
            raise JournalError(f"network_data differs from the network stored in {path}")
        ledger = DurableLedger._new(network, _stored_events(conn))
        ledger._setup(
            path,
            conn,
            lock,
            synchronous=synchronous,
            snapshot_every=snapshot_every,
            horizon=horizon,
            genesis=_store.genesis_hash(digest),
        )
        t0 = time.perf_counter()
        compatible = meta.get("kernel_probe") == _kernel_probe()
        if not compatible:
            logger.warning(
                "journal %s: the kernel fingerprints payloads differently from the one that "
                "wrote the snapshots; rebuilding from batch 1",
                path,
            )
        try:
            _load(ledger, conn, verify=verify, snapshots=compatible)
        except sqlite3.DatabaseError as exc:
            raise _corrupt(ledger._seq + 1, f"unreadable ({exc})") from None
        if not compatible and lock is not None:
            ledger._rebase_snapshots()
        logger.info(
            "journal %s: opened at batch %d (%d events) in %.3f s",
            path,
            ledger._seq,
            ledger._num_events,
            time.perf_counter() - t0,
        )
        return ledger
    except BaseException:
        if ledger is not None:  # detach, so that its finaliser touches nothing
            ledger._conn, ledger._lock = None, None
        if conn is not None:
            conn.close()
        if lock is not None:
            lock.close()
        raise


def _read_slice(
    conn: sqlite3.Connection, network: NetworkData, first: int, last: int | None
) -> JournalSlice:
    if type(first) is not int or first < 1:
        raise ValidationError(f"expected a batch number >= 1, got {first!r}", field="first")
    cols: dict[str, list[np.ndarray]] = {name: [] for name in Events.FIELDS}
    codes, dups, known, batch = [], [], [], []
    end = first - 1
    for row in _rows(conn, first, last):
        try:
            got = _codec.decode_events(row.events)
        except ValueError as exc:
            raise _corrupt(row.seq, f"undecodable ({exc})") from None
        recorded = row.decode_codes()
        n = row.num_events
        if recorded is None:
            recorded = (np.zeros(n, dtype=np.uint8), np.zeros(n, dtype=np.bool_))
        for name in Events.FIELDS:
            cols[name].append(got[name])
        codes.append(recorded[0])
        dups.append(recorded[1])
        known.append(np.full(n, row.codes is not None))
        batch.append(np.full(n, row.seq, dtype=np.int64))
        end = row.seq
    if not batch:
        empty = Events.from_arrays(kind=np.zeros(0, dtype=np.int64))
        z = np.zeros(0, dtype=np.int64)
        return JournalSlice(
            first,
            end,
            _readonly(z),
            empty,
            _readonly(z.astype(np.uint8)),
            _readonly(z.astype(np.bool_)),
            _readonly(z.astype(np.bool_)),
        )
    events = Events(**{k: _readonly(np.concatenate(v)) for k, v in cols.items()})
    return JournalSlice(
        first,
        end,
        _readonly(np.concatenate(batch)),
        events,
        _readonly(np.concatenate(codes)),
        _readonly(np.concatenate(dups)),
        _readonly(np.concatenate(known)),
    )


# --------------------------------------------------------------------------- audit
def _open_reader(path: Path) -> tuple[sqlite3.Connection, NetworkData, bytes]:
    if not _store.check_header(path):
        raise JournalError(f"no journal at {path}")
    try:
        conn = _store.connect(path, readonly=True, synchronous="full")
    except sqlite3.DatabaseError as exc:
        raise _corrupt(None, f"{path} is damaged: {exc}") from None
    try:
        _store.check_format(conn, path)
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        network = _codec.decode_network(meta["network"])
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise _corrupt(None, f"{path} is damaged: {exc}") from None
    except (KeyError, ValueError) as exc:
        conn.close()
        raise _corrupt(None, f"journal metadata unreadable ({exc})") from None
    except BaseException:
        conn.close()
        raise
    return conn, network, _store.genesis_hash(_codec.network_digest(network))


def _stored_events(conn: sqlite3.Connection) -> int:
    """Events in the stored batches (0 when unreadable: sizing is only a hint)."""
    try:
        return int(conn.execute("SELECT coalesce(sum(num_events), 0) FROM batches").fetchone()[0])
    except sqlite3.DatabaseError:
        return 0


def _replayer(
    path: Path, conn: sqlite3.Connection, network: NetworkData, genesis: bytes
) -> DurableLedger:
    ledger = DurableLedger._new(network, _stored_events(conn))
    ledger._setup(
        path, conn, None, synchronous="full", snapshot_every=None, horizon=None, genesis=genesis
    )
    return ledger


def verify_journal(path: Any) -> JournalReport:
    """Scrub a journal: chain, high-water mark, snapshots, and a full replay.

    Replays every stored batch from the start (batch 1, or the earliest snapshot of
    a pruned journal) through the kernel, checking that each batch hashes into the
    chain, reproduces its journaled ids and result codes, and that the state after
    each snapshot's batch has the snapshot's digest. Read-only: safe while a writer
    runs (it checks the batches committed when it starts).
    """
    path = _resolve_path(path)
    t0 = time.perf_counter()
    mark, mark_file = _store.read_hwm(path)
    try:
        conn, network, genesis = _open_reader(path)
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
    ledger = _replayer(path, conn, network, genesis)
    problems: list[str] = []
    bad: int | None = None
    checked = snaps_ok = 0
    first_seq = 1
    try:
        conn.execute("BEGIN")  # one read transaction: a consistent view
        snaps = _snapshot_index(conn)
        first_seq = _anchor_seq(conn, snaps) + 1
        prev = _start_from_anchor(ledger, conn, snaps, first_seq - 1)
        snaps_ok += first_seq > 1
        for row in _rows(conn, first_seq):
            if not row.check(prev):
                raise _corrupt(row.seq, "hash chain broken (the batch was altered or torn)")
            prev = row.hash
            ledger._replay_row(row, snaps)
            checked += 1
            snap = snaps.get(row.seq)
            if snap is not None:
                if snap.batch_hash != row.hash:
                    raise _corrupt(row.seq, "snapshot does not follow this batch")
                if not snap.pruned and _snapshot_data(conn, snap) is None:
                    problems.append(f"snapshot at batch {row.seq} fails its checksum")
                elif snap.digest != _NO_DIGEST and bytes.fromhex(ledger.state_digest()) != (
                    snap.digest
                ):
                    raise _corrupt(row.seq, "replay does not reproduce the snapshot after it")
                else:
                    snaps_ok += 1
        if mark_file and mark is None:
            problems.append("high-water mark unreadable")
        _check_mark(mark, conn, ledger._seq)
    except JournalCorruptError as exc:
        problems.append(str(exc))
        bad = getattr(exc, "batch", None)
    except sqlite3.DatabaseError as exc:
        problems.append(f"database error: {exc}")
        bad = ledger._seq + 1
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
    return JournalReport(
        path=str(path),
        ok=not problems,
        num_batches=checked,
        first_seq=int(first_seq),
        last_seq=ledger._seq,
        num_events=ledger._num_events,
        snapshots_checked=snaps_ok,
        high_water_mark=None if mark is None else mark.seq,
        digest=ledger.state_digest(),
        seconds=time.perf_counter() - t0,
        first_bad_batch=bad,
        problems=tuple(problems),
    )


def replay_journal(path: Any, last: int | None = None) -> Ledger:
    """A fresh in-memory :class:`~allocator.Ledger` replayed from the journal.

    Replays from batch 1 (or from the anchor snapshot of a pruned journal) up to
    batch ``last`` (default: the end), checking the chain and every result.
    """
    path = _resolve_path(path)
    conn, network, genesis = _open_reader(path)
    try:
        ledger = _replayer(path, conn, network, genesis)
        conn.execute("BEGIN")
        snaps = _snapshot_index(conn)
        first_seq = _anchor_seq(conn, snaps) + 1
        prev = _start_from_anchor(ledger, conn, snaps, first_seq - 1)
        for row in _rows(conn, first_seq, last):
            if not row.check(prev):
                raise _corrupt(row.seq, "hash chain broken (the batch was altered or torn)")
            prev = row.hash
            ledger._replay_row(row, snaps)
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    plain = Ledger.__new__(Ledger)  # hand the arrays over, no copy
    fields = vars(Ledger(network, capacity=16, reservation_capacity=16)).keys()
    plain.__dict__.update({k: v for k, v in vars(ledger).items() if k in fields})
    return plain


def repair_journal(path: Any) -> int:
    """Truncate a corrupt journal to its last good batch; returns the batches removed.

    Walks the hash chain from the start and keeps the longest prefix of batches that
    read, decode and chain correctly, with the snapshots that follow one of them and
    pass their checksum. The journal is rebuilt into a new file that replaces the
    old one, and the high-water mark is reset to the new end. Needs the writer lock
    (no writer may be open); close readers first. This discards data on purpose:
    the removed batches are logged, and should be re-sent from their source.
    """
    path = _resolve_path(path)
    lock = _store.WriterLock(path)
    try:
        conn, _, genesis = _open_reader(path)
        tmp = path.with_name(path.name + ".repair")
        for stale in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            stale.unlink(missing_ok=True)
        try:
            meta = conn.execute("SELECT key, value FROM meta").fetchall()
            total = conn.execute("SELECT count(*) FROM batches").fetchone()[0]
            snaps = _snapshot_index(conn)
            out = _store.connect(tmp, readonly=False, synchronous="full")
            _store.create_schema(out, dict(meta))
            good: list[_Row] = []
            prev = genesis
            last_mark = _store.HighWaterMark(0, 0, genesis)
            keep_snap: list[_Snapshot] = []
            try:
                first = _anchor_seq(conn, snaps) + 1
                if first > 1:
                    anchor = snaps.get(first - 1)
                    if anchor is None:
                        raise _corrupt(first, "no anchor snapshot")
                    prev = anchor.batch_hash
                    keep_snap.append(anchor)
                    last_mark = _store.HighWaterMark(anchor.seq, anchor.num_events, prev)
                for row in _rows(conn, first):
                    if not row.check(prev):
                        break
                    try:
                        _codec.decode_events(row.events)
                        row.decode_codes()
                    except (ValueError, JournalCorruptError):
                        break
                    good.append(row)
                    prev = row.hash
                    if row.seq in snaps:
                        keep_snap.append(snaps[row.seq])
            except (JournalCorruptError, sqlite3.DatabaseError) as exc:
                logger.warning("repair %s: stopped reading at %s", path, exc)
            out.execute("BEGIN IMMEDIATE")
            for row in good:
                out.execute(
                    _INSERT,
                    (
                        row.seq,
                        row.first_event,
                        row.num_events,
                        row.auto_id,
                        row.recorded_at,
                        row.events,
                        row.hash,
                        row.codes,
                        row.codes_check,
                    ),
                )
            for snap in keep_snap:
                data = b"" if snap.pruned else _snapshot_data(conn, snap)
                if data is None:
                    continue
                out.execute(
                    "INSERT INTO snapshots (seq, num_events, horizon, batch_hash, digest, "
                    "checksum, created_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        snap.seq,
                        snap.num_events,
                        snap.horizon,
                        snap.batch_hash,
                        snap.digest,
                        snap.checksum,
                        _store.now_ns(),
                        data,
                    ),
                )
            out.execute("COMMIT")
            out.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            out.close()
            if good:
                last = good[-1]
                last_mark = _store.HighWaterMark(
                    last.seq, last.first_event + last.num_events, last.hash
                )
        finally:
            conn.close()
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
