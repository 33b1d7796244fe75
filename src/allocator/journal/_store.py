"""SQLite schema, the writer lock and the out-of-band high-water mark.

Files of a journal at ``PATH``:

* ``PATH``: the SQLite database (WAL mode), with ``PATH-wal`` and ``PATH-shm``;
* ``PATH-hwm``: the high-water mark, two 64-byte slots written alternately, each
  ``magic, version, seq, num_events, hash, check`` where ``check`` is a BLAKE2b
  digest of the slot. The writer holds an exclusive ``flock`` on this file for as
  long as it is open: that is the one-writer lock.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import sqlite3
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from allocator.exceptions import JournalError, JournalLockedError

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

BATCH_HEAD = struct.Struct("<qqqqqq")


def chain_hash(
    prev: bytes,
    seq: int,
    first_event: int,
    num_events: int,
    auto_id: int,
    recorded_at: int,
    events: bytes,
) -> bytes:
    """BLAKE2b-256 of the previous hash, the batch header and the events blob."""
    h = hashlib.blake2b(prev, digest_size=32)
    h.update(BATCH_HEAD.pack(seq, first_event, num_events, auto_id, recorded_at, len(events)))
    h.update(events)
    return h.digest()


def codes_check(batch_hash: bytes, codes: bytes) -> bytes:
    """BLAKE2b-256 binding a batch's result codes to the batch's chain hash."""
    return hashlib.blake2b(batch_hash + codes, digest_size=32).digest()


def genesis_hash(network_digest: bytes) -> bytes:
    """The hash that batch 1 chains to."""
    return hashlib.blake2b(b"allocator journal\0" + network_digest, digest_size=32).digest()


def checksum(blob: bytes) -> bytes:
    return hashlib.blake2b(blob, digest_size=32).digest()


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


@dataclass(frozen=True)
class HighWaterMark:
    """Last acknowledged batch: its sequence number, event count and chain hash."""

    seq: int
    num_events: int
    hash: bytes


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
    """``(mark, exists)``: the newest valid slot (None if none is valid)."""
    try:
        with open(hwm_path(path), "rb") as fh:
            raw = fh.read(2 * _SLOT)
    except FileNotFoundError:
        return None, False
    if not raw:
        return None, False
    marks = [m for m in (_unpack_hwm(raw[:_SLOT]), _unpack_hwm(raw[_SLOT : 2 * _SLOT])) if m]
    return (max(marks, key=lambda m: m.seq) if marks else None), True


class WriterLock:
    """The exclusive writer lock, held on the high-water-mark file, which it also writes."""

    def __init__(self, path: Path) -> None:
        self.path = hwm_path(path)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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


def now_ns() -> int:
    return time.time_ns()
