"""The SQLite journal store: schema, the writer lock and the out-of-band high-water mark.

Files of a journal at ``PATH``:

* ``PATH``: the SQLite database (WAL mode), with ``PATH-wal`` and ``PATH-shm``;
* ``PATH-hwm``: the high-water mark, two 64-byte slots written alternately, each
  ``magic, version, seq, num_events, hash, check`` where ``check`` is a BLAKE2b
  digest of the slot. The writer holds an exclusive ``flock`` on this file for as
  long as it is open: that is the one-writer lock.

:class:`SqliteStore` is the one place that speaks SQL to the journal; the durable
ledger, the replayer and the audit functions go through it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import sqlite3
import struct
import time
from collections.abc import Iterator
from pathlib import Path

from allocator.exceptions import JournalError, JournalLockedError, StorageError
from allocator.journal._format import (
    HighWaterMark,
    Row,
    Snapshot,
    chain_hash,
    checksum,
    codes_check,
    corrupt,
    genesis_hash,
)

__all__ = [
    "FORMAT_VERSION",
    "HighWaterMark",
    "SqliteStore",
    "WriterLock",
    "chain_hash",
    "checksum",
    "codes_check",
    "genesis_hash",
    "hwm_path",
    "now_ns",
    "read_hwm",
]

FORMAT_VERSION = 1
APPLICATION_ID = 0x414C4A31  # "ALJ1"
PAGE_SIZE = 4096
SQLITE_MAGIC = b"SQLite format 3\x00"

SCHEMA = (
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT",
    "CREATE TABLE batches("
    " seq INTEGER PRIMARY KEY,"
    " first_event INTEGER NOT NULL CHECK (first_event >= 0),"
    " num_events INTEGER NOT NULL CHECK (num_events >= 0),"
    " auto_id INTEGER NOT NULL CHECK (auto_id < 0),"
    " recorded_at INTEGER NOT NULL,"
    " events BLOB NOT NULL,"
    " hash BLOB NOT NULL CHECK (length(hash) = 32),"
    " codes BLOB,"
    " codes_check BLOB CHECK ((codes IS NULL) = (codes_check IS NULL)"
    " AND (codes_check IS NULL OR length(codes_check) = 32))"
    ") STRICT",
    "CREATE TABLE snapshots("
    " seq INTEGER PRIMARY KEY CHECK (seq >= 0),"
    " num_events INTEGER NOT NULL CHECK (num_events >= 0),"
    " horizon INTEGER CHECK (horizon IS NULL OR horizon >= 0),"
    " batch_hash BLOB NOT NULL CHECK (length(batch_hash) = 32),"
    " digest BLOB NOT NULL CHECK (length(digest) = 32),"
    " checksum BLOB NOT NULL CHECK (length(checksum) = 32),"
    " created_at INTEGER NOT NULL,"
    " data BLOB NOT NULL"
    ") STRICT",
)

ROW_COLUMNS = "seq, first_event, num_events, auto_id, recorded_at, events, hash, codes, codes_check"
_INSERT = f"INSERT INTO batches ({ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_SET_CODES = "UPDATE batches SET codes = ?, codes_check = ? WHERE seq = ?"
_INSERT_SNAPSHOT = (
    "INSERT OR REPLACE INTO snapshots (seq, num_events, horizon, batch_hash, digest, "
    "checksum, created_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

#: Result codes waiting to be stored: ``(codes blob, codes check, seq)``.
PendingCodes = tuple[bytes, bytes, int]


def now_ns() -> int:
    return time.time_ns()


def connect(path: Path, *, readonly: bool, synchronous: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit ``BEGIN IMMEDIATE``)."""
    if readonly:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
        )
    else:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    if not readonly:
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    return conn


def check_header(path: Path) -> bool:
    """True for an existing non-empty file; raises when it is not a SQLite database."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        raise JournalError(f"{path} is a directory, not a journal") from None
    if not head:
        return False
    if head != SQLITE_MAGIC:
        raise JournalError(f"{path} is not a journal (not a SQLite database)")
    return True


def create_schema(conn: sqlite3.Connection, meta: dict[str, bytes]) -> None:
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for stmt in SCHEMA:
            conn.execute(stmt)
        conn.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def check_format(conn: sqlite3.Connection, path: Path) -> None:
    """Raise :class:`JournalError` unless ``conn`` holds a journal we can read."""
    app = conn.execute("PRAGMA application_id").fetchone()[0]
    if app != APPLICATION_ID:
        raise JournalError(f"{path} is a SQLite database but not an allocator journal")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > FORMAT_VERSION:
        raise JournalError(
            f"{path} has journal format version {version}; this library reads up to "
            f"{FORMAT_VERSION} (upgrade allocator)"
        )
    if version < 1:
        raise JournalError(f"{path} has an unknown journal format version {version}")


# --------------------------------------------------------------------------- high-water mark
_HWM = struct.Struct("<4sIqq32s")
_HWM_MAGIC = b"AHWM"
_SLOT = 64


def hwm_path(path: Path) -> Path:
    return path.with_name(path.name + "-hwm")


def _pack_hwm(mark: HighWaterMark) -> bytes:
    body = _HWM.pack(_HWM_MAGIC, FORMAT_VERSION, mark.seq, mark.num_events, mark.hash)
    return body + hashlib.blake2b(body, digest_size=_SLOT - _HWM.size).digest()


def _unpack_hwm(raw: bytes) -> HighWaterMark | None:
    if len(raw) != _SLOT:
        return None
    body, check = raw[: _HWM.size], raw[_HWM.size :]
    if hashlib.blake2b(body, digest_size=_SLOT - _HWM.size).digest() != check:
        return None
    magic, _version, seq, num_events, digest = _HWM.unpack(body)
    if magic != _HWM_MAGIC:
        return None
    return HighWaterMark(seq, num_events, digest)


def read_hwm(path: Path) -> tuple[HighWaterMark | None, bool]:
    """``(mark, present)``: the newest valid slot (None if none is valid).

    ``present`` is True when the mark file exists, even empty or short: a journal
    with batches whose mark is empty, short or unreadable has lost its mark, which
    the caller treats as corruption (it never means "no mark").
    """
    try:
        with open(hwm_path(path), "rb") as fh:
            raw = fh.read(2 * _SLOT)
    except FileNotFoundError:
        return None, False
    marks = [m for m in (_unpack_hwm(raw[:_SLOT]), _unpack_hwm(raw[_SLOT : 2 * _SLOT])) if m]
    return (max(marks, key=lambda m: m.seq) if marks else None), True


class WriterLock:
    """The exclusive writer lock, held on the high-water-mark file, which it also writes."""

    def __init__(self, path: Path) -> None:
        self.path = hwm_path(path)
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            raise JournalError(
                f"cannot create a journal at {path}: the directory {path.parent} does not exist"
            ) from None
        except OSError as exc:
            raise JournalError(f"cannot open {self.path}: {exc}") from exc
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self.fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise JournalLockedError(
                    f"{path} is open for writing elsewhere (lock on {self.path}); open it "
                    "with readonly=True to read while that writer runs"
                ) from None
            raise JournalError(f"cannot lock {self.path}: {exc}") from exc

    def write(self, mark: HighWaterMark, *, sync: bool) -> None:
        os.pwrite(self.fd, _pack_hwm(mark), _SLOT * (mark.seq % 2))
        if sync:
            os.fdatasync(self.fd)

    def reset(self, mark: HighWaterMark) -> None:
        """Write ``mark`` into both slots (after an explicit truncation)."""
        packed = _pack_hwm(mark)
        os.pwrite(self.fd, packed + packed, 0)
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = -1


# --------------------------------------------------------------------------- the store
class SqliteStore:
    """One SQLite journal: the batches, the snapshots, the meta table and the mark.

    A writer store holds the :class:`WriterLock`; a reader store (``lock=None``)
    opens the database read-only. Every method raises
    :class:`~allocator.exceptions.JournalCorruptError` for damaged content and lets
    ``sqlite3.Error`` through for I/O failures (callers map those).
    """

    #: The driver's error classes: what a failed read or write raises.
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    #: Result codes are stored with the next transaction (the batch is written first,
    #: then applied); see ``DurableLedger``.
    codes_inline = False

    def __init__(
        self, path: Path, conn: sqlite3.Connection, lock: WriterLock | None, synchronous: str
    ) -> None:
        self.path = path
        self.target: object = path
        self.conn = conn
        self.lock = lock
        self.synchronous = synchronous

    @property
    def label(self) -> str:
        return str(self.path)

    @property
    def readonly(self) -> bool:
        return self.lock is None

    # ------------------------------------------------------------ reading
    def meta(self) -> dict[str, bytes]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def rows(self, first: int, last: int | None = None) -> Iterator[Row]:
        """Batches ``first..last`` in order; a gap or a malformed row is corruption."""
        sql = f"SELECT {ROW_COLUMNS} FROM batches WHERE seq >= ?"
        args: tuple[int, ...] = (first,)
        if last is not None:
            sql += " AND seq <= ?"
            args = (first, last)
        expect = first
        cur = self.conn.execute(sql + " ORDER BY seq", args)
        while True:
            try:
                raw = cur.fetchone()
            except sqlite3.DatabaseError as exc:
                raise corrupt(expect, f"unreadable ({exc})") from None
            if raw is None:
                return
            if not (
                all(isinstance(v, int) for v in raw[:5])
                and all(isinstance(v, bytes) for v in raw[5:7])
                and all(v is None or isinstance(v, bytes) for v in raw[7:])
            ):
                raise corrupt(raw[0], "columns of the wrong type")
            row = Row(*raw)
            if row.seq != expect:
                raise corrupt(expect, f"missing (the next batch is {row.seq})")
            expect += 1
            yield row

    def batch_hash(self, seq: int) -> bytes | None:
        row = self.conn.execute("SELECT hash FROM batches WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else row[0]

    def snapshot_index(self, since: int = -1) -> dict[int, Snapshot]:
        """Snapshot rows after batch ``since`` (all by default)."""
        try:
            rows = self.conn.execute(
                "SELECT seq, num_events, horizon, batch_hash, digest, checksum, "
                "length(data) = 0 FROM snapshots WHERE seq > ? ORDER BY seq",
                (since,),
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise corrupt(None, f"snapshot table unreadable ({exc})") from None
        return {r[0]: Snapshot(r[0], r[1], r[2], r[3], r[4], r[5], pruned=bool(r[6])) for r in rows}

    def snapshot_data(self, snap: Snapshot) -> bytes | None:
        """The snapshot's data if it passes its checksum, else None."""
        try:
            row = self.conn.execute(
                "SELECT data FROM snapshots WHERE seq = ?", (snap.seq,)
            ).fetchone()
        except sqlite3.DatabaseError:
            return None
        if row is None or not isinstance(row[0], bytes) or checksum(row[0]) != snap.checksum:
            return None
        return row[0]

    def first_seq(self) -> int | None:
        try:
            first = self.conn.execute("SELECT min(seq) FROM batches").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise corrupt(None, f"batch table unreadable ({exc})") from None
        return None if first is None else int(first)

    def stored_events(self) -> int:
        """Events in the stored batches (0 when unreadable: sizing is only a hint)."""
        try:
            return int(
                self.conn.execute("SELECT coalesce(sum(num_events), 0) FROM batches").fetchone()[0]
            )
        except sqlite3.DatabaseError:
            return 0

    def counts(self) -> tuple[int, int | None, int | None]:
        """``(snapshots, last snapshot seq, first batch seq)``."""
        count = self.conn.execute("SELECT count(*) FROM snapshots").fetchone()[0]
        last_snap = self.conn.execute("SELECT max(seq) FROM snapshots").fetchone()[0]
        return int(count), last_snap, self.first_seq()

    def bytes_on_disk(self) -> int:
        return sum(
            p.stat().st_size
            for p in (self.path, self.path.with_name(self.path.name + "-wal"))
            if p.exists()
        )

    def begin_read(self) -> None:
        """Start one read transaction: a consistent view until :meth:`end_read`."""
        self.conn.execute("BEGIN")

    def end_read(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def read_mark(self) -> tuple[HighWaterMark | None, bool]:
        return read_hwm(self.path)

    # ------------------------------------------------------------ writing
    def append(self, row: Row, pending: list[PendingCodes], extra: object = None) -> None:
        """Commit one batch (and earlier batches' result codes) in one transaction."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
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
            if pending:
                conn.executemany(_SET_CODES, pending)
            conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def withdraw(self, seq: int) -> None:
        """Delete batch ``seq`` (committed, but its results were never returned)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute("DELETE FROM batches WHERE seq = ?", (seq,))
            self.conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def set_codes(self, pending: list[PendingCodes]) -> None:
        if pending:
            self.conn.executemany(_SET_CODES, pending)

    def put_snapshot(
        self, snap: Snapshot, data: bytes, pending: list[PendingCodes], keep_after: int
    ) -> None:
        """Store a snapshot and drop the data of older ones (see the docstring of
        ``DurableLedger.snapshot`` for what is kept)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                _INSERT_SNAPSHOT,
                (
                    snap.seq,
                    snap.num_events,
                    snap.horizon,
                    snap.batch_hash,
                    snap.digest,
                    snap.checksum,
                    now_ns(),
                    data,
                ),
            )
            self.set_codes(pending)
            # keep the data of this snapshot, of the one before (a fallback) and of a
            # pruned journal's anchor; older rows stay, without data, because they mark
            # where compaction happened (a replay from batch 1 compacts at the same
            # points) and carry the digest that verification compares
            conn.execute(
                "UPDATE snapshots SET data = x'' WHERE length(data) > 0 AND seq < "
                "(SELECT max(seq) FROM snapshots WHERE seq < ?)"
                " AND seq != coalesce((SELECT min(seq) - 1 FROM batches), -1)",
                (keep_after,),
            )
            conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def rebase_snapshots(self, probe: bytes) -> None:
        """Drop every snapshot's data and digest (they embed old fingerprints)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("UPDATE snapshots SET data = x'', digest = zeroblob(32)")
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('kernel_probe', ?)", (probe,)
            )
            conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def prune(self, keep: int) -> int:
        """Delete batches up to ``keep`` and snapshots before it; returns batches deleted."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            pruned = conn.execute("DELETE FROM batches WHERE seq <= ?", (keep,)).rowcount
            conn.execute("DELETE FROM snapshots WHERE seq < ?", (keep,))
            conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise
        conn.execute("VACUUM")
        return int(pruned)

    def backup(self, destination: Path) -> None:
        target = sqlite3.connect(str(destination))
        try:
            self.conn.backup(target)
        finally:
            target.close()

    def checkpoint(self) -> bool:
        """Copy the WAL into the database and truncate it; True when complete."""
        busy, _, _ = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy

    def write_mark(self, mark: HighWaterMark, *, sync: bool) -> None:
        assert self.lock is not None
        self.lock.write(mark, sync=sync)

    def reset_mark(self, mark: HighWaterMark) -> None:
        assert self.lock is not None
        self.lock.reset(mark)

    def rollback(self) -> None:
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            if self.lock is not None:
                self.lock.close()
                self.lock = None


def storage_error(label: str, what: str, exc: BaseException) -> StorageError:
    return StorageError(f"journal {label}: {what} ({exc})")
