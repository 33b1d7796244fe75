"""The PostgreSQL journal store: schema, leadership (lock, lease, epoch) and the inbox.

A journal on PostgreSQL lives in one schema (``?schema=NAME`` in the connection
URL, default ``allocator``) of one database:

* ``meta``, ``batches``, ``snapshots``: the journal, in the same format as on SQLite
  (the ``batches`` rows also record the ``epoch`` of the leader that wrote them);
* ``mark``: the high-water mark (last acknowledged batch, with its own check),
  updated in the transaction that writes the batch;
* ``lease``: one row, ``epoch`` (the fencing token), ``holder``, the holder's backend
  pids and ``renewed_at``. Leadership is a session advisory lock (released by the
  server the moment the holder's connection closes, e.g. when its process is
  killed) plus this row: whoever takes the lock increments ``epoch``, and every
  batch write updates the row ``WHERE epoch = <its own>`` in its own transaction,
  so a deposed writer's late batch is refused;
* ``inbox``: submitted events, one row per event, keyed by ``(sub, pos)`` (the
  submission and the event's place in it); ``results``: per submitted event, the id
  as applied, the result code, the duplicate flag and the batch ``seq``.

:class:`PgStore` is the one place that speaks SQL to a PostgreSQL journal; it offers
the same methods as :class:`~allocator.journal._store.SqliteStore`.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import struct
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from allocator.events import NO_EXPIRY
from allocator.exceptions import JournalError, JournalLockedError, MissingDependencyError
from allocator.journal._format import (
    HighWaterMark,
    Row,
    Snapshot,
    checksum,
    corrupt,
)

__all__ = [
    "FORMAT_VERSION",
    "PgStore",
    "is_url",
    "parse_url",
]

FORMAT_VERSION = 1
DEFAULT_SCHEMA = "allocator"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MARK = struct.Struct("<qq32s")

ROW_COLUMNS = "seq, first_event, num_events, auto_id, recorded_at, events, hash, codes, codes_check"
INBOX_COLUMNS = "id, kind, sku, location, channel, qty, ref, expires_at, link"


def is_url(path: Any) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) connection URL."""
    return isinstance(path, str) and path.startswith(("postgresql://", "postgres://"))


def parse_url(url: str) -> tuple[str, str, str]:
    """``(conninfo, schema, label)``: the URL without ``schema=``, the schema, and a
    label without the password."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    schema = DEFAULT_SCHEMA
    kept = []
    for key, value in query:
        if key == "schema":
            schema = value
        else:
            kept.append((key, value))
    if not _IDENT.match(schema):
        raise JournalError(
            f"schema {schema!r} is not a plain PostgreSQL identifier (lower case letters, "
            "digits and _, at most 63)"
        )
    conninfo = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(kept)))
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}@{host}"
    label = urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=f"schema={schema}"))
    return conninfo, schema, label


def driver() -> Any:
    """The psycopg module, or :class:`MissingDependencyError` naming the extra."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the extra is part of the test install
        raise MissingDependencyError(
            "a PostgreSQL journal needs psycopg 3: pip install 'allocator[postgres]'"
        ) from None
    return psycopg


def connect(conninfo: str, *, application: str = "allocator", **settings: str) -> Any:
    """An autocommit connection (transactions are explicit ``BEGIN``/``COMMIT``)."""
    psycopg = driver()
    options = " ".join(f"-c {k}={v}" for k, v in settings.items())
    kwargs: dict[str, Any] = {"autocommit": True, "application_name": application}
    if options:
        kwargs["options"] = options
    kwargs.setdefault("connect_timeout", 10)
    return psycopg.connect(conninfo, **kwargs)


def _schema_sql(s: str) -> list[str]:
    return [
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"CREATE TABLE {s}.meta(key text PRIMARY KEY, value bytea NOT NULL)",
        f"CREATE TABLE {s}.batches("
        " seq bigint PRIMARY KEY CHECK (seq >= 1),"
        " first_event bigint NOT NULL CHECK (first_event >= 0),"
        " num_events bigint NOT NULL CHECK (num_events >= 0),"
        " auto_id bigint NOT NULL CHECK (auto_id < 0),"
        " recorded_at bigint NOT NULL,"
        " events bytea NOT NULL,"
        " hash bytea NOT NULL CHECK (length(hash) = 32),"
        " codes bytea,"
        " codes_check bytea CHECK ((codes IS NULL) = (codes_check IS NULL)"
        " AND (codes_check IS NULL OR length(codes_check) = 32)),"
        " epoch bigint NOT NULL, parts bytea)",
        f"CREATE TABLE {s}.snapshots("
        " seq bigint PRIMARY KEY CHECK (seq >= 0),"
        " num_events bigint NOT NULL CHECK (num_events >= 0),"
        " horizon bigint CHECK (horizon IS NULL OR horizon >= 0),"
        " batch_hash bytea NOT NULL CHECK (length(batch_hash) = 32),"
        " digest bytea NOT NULL CHECK (length(digest) = 32),"
        " checksum bytea NOT NULL CHECK (length(checksum) = 32),"
        " created_at bigint NOT NULL,"
        " data bytea NOT NULL)",
        f"CREATE TABLE {s}.mark(id int PRIMARY KEY CHECK (id = 1), body bytea NOT NULL,"
        " check_ bytea NOT NULL)",
        f"CREATE TABLE {s}.lease(id int PRIMARY KEY CHECK (id = 1),"
        " epoch bigint NOT NULL CHECK (epoch >= 0), holder text NOT NULL,"
        " pids int[] NOT NULL, renewed_at timestamptz NOT NULL)",
        f"CREATE TABLE {s}.inbox("
        " sub bigint NOT NULL, pos int NOT NULL CHECK (pos >= 0),"
        " arrival bigint GENERATED ALWAYS AS IDENTITY,"
        " id bigint NOT NULL DEFAULT 0, kind smallint NOT NULL,"
        " sku bigint NOT NULL DEFAULT -1, location bigint NOT NULL DEFAULT -1,"
        " channel bigint NOT NULL DEFAULT -1, qty bigint NOT NULL DEFAULT 0,"
        " ref bigint NOT NULL DEFAULT 0,"
        f" expires_at bigint NOT NULL DEFAULT {int(NO_EXPIRY)},"
        " link boolean NOT NULL DEFAULT false,"
        " submitted_at timestamptz NOT NULL DEFAULT now(),"
        " PRIMARY KEY (sub, pos))",
        f"CREATE INDEX inbox_arrival ON {s}.inbox (arrival)",
        f"CREATE TABLE {s}.results("
        " sub bigint NOT NULL, pos int NOT NULL, id bigint NOT NULL, code smallint,"
        " duplicate boolean NOT NULL, seq bigint NOT NULL, error text,"
        " PRIMARY KEY (sub, pos))",
        f"CREATE INDEX results_seq ON {s}.results (seq)",
        # submission keys: Python clients use (client << 32) | n with a client number
        # from ``clients``; other programs may take keys from ``submissions`` (< 2**32)
        f"CREATE SEQUENCE {s}.clients START 1",
        f"CREATE SEQUENCE {s}.submissions START 1 MAXVALUE 4294967295",
    ]


def lock_key(schema: str) -> int:
    """The advisory lock key of a schema's journal (a signed 64-bit int)."""
    digest = hashlib.blake2b(b"allocator leader\0" + schema.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def _pack_mark(mark: HighWaterMark) -> tuple[bytes, bytes]:
    body = _MARK.pack(mark.seq, mark.num_events, mark.hash)
    return body, hashlib.blake2b(b"AHWM" + body, digest_size=32).digest()


def _unpack_mark(body: bytes, check: bytes) -> HighWaterMark | None:
    if len(body) != _MARK.size or hashlib.blake2b(b"AHWM" + body, digest_size=32).digest() != bytes(
        check
    ):
        return None
    seq, num_events, digest = _MARK.unpack(body)
    return HighWaterMark(seq, num_events, digest)


def channel_name(schema: str, what: str) -> str:
    """NOTIFY channel of a journal: ``<schema>_batch`` (new batches) or ``_inbox``."""
    return f"{schema}_{what}"


class PgStore:
    """One PostgreSQL journal (a schema): batches, snapshots, meta, mark and lease.

    A writer store holds leadership (see :meth:`acquire`) and stamps every batch it
    writes with its epoch, checked in the same transaction. A reader store only
    reads. Every method raises :class:`~allocator.exceptions.JournalCorruptError`
    for damaged content and lets ``psycopg.Error`` through for connection and server
    failures (callers map those to :class:`~allocator.exceptions.StorageError`);
    :attr:`errors` names them. A broken connection is replaced on the next call.
    """

    synchronous: str

    def __init__(
        self,
        url: str,
        *,
        readonly: bool,
        synchronous: str = "full",
        application: str = "allocator",
    ) -> None:
        psycopg = driver()
        self.url = url
        self.target = url
        self.conninfo, self.schema, self.label = parse_url(url)
        self.path = self.label
        self._readonly = readonly
        self.synchronous = synchronous
        self.application = application
        self.errors: tuple[type[BaseException], ...] = (psycopg.Error,)
        self.connection_errors: tuple[type[BaseException], ...] = (
            psycopg.OperationalError,
            psycopg.InterfaceError,
        )
        self.epoch: int | None = None  # set while this store holds leadership
        self._fenced = False  # the open transaction checked the epoch
        self.lock_conn: Any = None
        self.conn: Any = None
        self.conn = self._connect()
        self.codes_inline = True  # result codes are written with their batch

    # ------------------------------------------------------------ connections
    def _connect(self) -> Any:
        commit = "on" if self.synchronous == "full" else "off"
        return connect(self.conninfo, application=self.application, synchronous_commit=commit)

    def _c(self) -> Any:
        """The data connection, reconnected if it broke."""
        conn = self.conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass
            self.conn = None
            self.conn = self._connect()
        return self.conn

    def q(self, name: str) -> str:
        """The qualified name of one of the journal's tables."""
        return f"{self.schema}.{name}"

    @property
    def readonly(self) -> bool:
        return self._readonly

    def exists(self) -> bool:
        """True when the schema holds a journal (its ``meta`` table)."""
        row = self._c().execute("SELECT to_regclass(%s) IS NOT NULL", (self.q("meta"),)).fetchone()
        return bool(row[0])

    def create(self, meta: dict[str, bytes], genesis: HighWaterMark) -> None:
        """Create the journal's tables (raises :class:`JournalError` if they exist)."""
        conn = self._c()
        conn.execute("BEGIN")
        try:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(self.schema) ^ 1,))
            if conn.execute("SELECT to_regclass(%s)", (self.q("meta"),)).fetchone()[0]:
                raise JournalError(f"{self.label} already holds a journal")
            for stmt in _schema_sql(self.schema):
                conn.execute(stmt)
            for key, value in meta.items():
                conn.execute(f"INSERT INTO {self.q('meta')} VALUES (%s, %s)", (key, value))
            body, check = _pack_mark(genesis)
            conn.execute(f"INSERT INTO {self.q('mark')} VALUES (1, %s, %s)", (body, check))
            conn.execute(
                f"INSERT INTO {self.q('lease')} VALUES (1, 0, '', '{{}}', now())",
            )
            conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def check_format(self) -> None:
        """Raise :class:`JournalError` unless the schema holds a journal we can read."""
        meta = self.meta()
        raw = meta.get("format_version")
        if raw is None or "network" not in meta:
            raise JournalError(f"{self.label} is not an allocator journal")
        try:
            version = int(raw.decode())
        except ValueError:
            raise JournalError(f"{self.label} has an unknown journal format {raw!r}") from None
        if version > FORMAT_VERSION:
            raise JournalError(
                f"{self.label} has journal format version {version}; this library reads up "
                f"to {FORMAT_VERSION} (upgrade allocator)"
            )

    # ------------------------------------------------------------ leadership
    def acquire(self, holder: str, *, wait: float = 0.0) -> int:
        """Take leadership: the advisory lock, then a new epoch; returns the epoch.

        ``wait`` seconds to wait for the lock (0: fail at once). Raises
        :class:`JournalLockedError` when another process leads.
        """
        psycopg = driver()
        if self.lock_conn is None or self.lock_conn.closed or self.lock_conn.broken:
            self.lock_conn = connect(self.conninfo, application=self.application + " lease")
        lc = self.lock_conn
        key = lock_key(self.schema)
        if wait > 0:
            lc.execute(f"SET lock_timeout = '{max(1, int(wait * 1000))}ms'")
            try:
                lc.execute("SELECT pg_advisory_lock(%s)", (key,))
                got = True
            except psycopg.errors.LockNotAvailable:
                got = False
            finally:
                if not lc.broken:
                    lc.execute("SET lock_timeout = 0")
        else:
            got = bool(lc.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0])
        if not got:
            raise JournalLockedError(
                f"{self.label} is led by another process (its advisory lock is held)"
            )
        data_pid = self._c().info.backend_pid
        epoch = lc.execute(
            f"UPDATE {self.q('lease')} SET epoch = epoch + 1, holder = %s, pids = %s,"
            " renewed_at = now() WHERE id = 1 RETURNING epoch",
            (holder, [lc.info.backend_pid, data_pid]),
        ).fetchone()[0]
        self.epoch = int(epoch)
        return self.epoch

    def release(self) -> None:
        """Give up leadership (close the lock connection: the server drops the lock)."""
        self.epoch = None
        lc, self.lock_conn = self.lock_conn, None
        if lc is not None:
            try:
                lc.close()
            except Exception:
                pass

    def lease(self) -> tuple[int, str, list[int], float]:
        """``(epoch, holder, pids, seconds since renewal)`` of the lease row."""
        row = (
            self._c()
            .execute(
                f"SELECT epoch, holder, pids, extract(epoch FROM now() - renewed_at)"
                f" FROM {self.q('lease')} WHERE id = 1"
            )
            .fetchone()
        )
        return int(row[0]), str(row[1]), list(row[2]), float(row[3])

    def renew(self) -> bool:
        """Renew the lease; False when this store's epoch is no longer current."""
        if self.epoch is None:
            return False
        cur = self._c().execute(
            f"UPDATE {self.q('lease')} SET renewed_at = now() WHERE id = 1 AND epoch = %s",
            (self.epoch,),
        )
        return cur.rowcount == 1

    def lock_alive(self) -> bool:
        """True while the lock connection is up (so the advisory lock is held)."""
        lc = self.lock_conn
        if lc is None or lc.closed or lc.broken:
            return False
        try:
            lc.execute("SELECT 1")
        except self.errors:
            return False
        return True

    def terminate(self, pids: list[int]) -> None:
        """End the server sessions ``pids`` (a holder whose lease lapsed)."""
        conn = self._c()
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    def _fence(self, conn: Any) -> None:
        """Inside a write transaction: refuse it unless this store's epoch is current."""
        self._fence_check(conn, self._fence_send(conn))

    def _fence_send(self, conn: Any) -> Any:
        """Send the epoch check (its outcome is read by :meth:`_fence_check`, which may
        come after more statements of a pipeline)."""
        if self.epoch is None:
            raise JournalLockedError(f"{self.label}: this process does not lead the journal")
        return conn.execute(
            f"UPDATE {self.q('lease')} SET renewed_at = now() WHERE id = 1 AND epoch = %s",
            (self.epoch,),
        )

    def _fence_check(self, conn: Any, cur: Any) -> None:
        if cur.rowcount != 1:
            epoch = conn.execute(f"SELECT epoch FROM {self.q('lease')} WHERE id = 1").fetchone()[0]
            stale = self.epoch
            self.epoch = None
            raise JournalLockedError(
                f"{self.label}: deposed (epoch {stale} superseded by epoch {epoch}); the "
                "batch was refused"
            )

    # ------------------------------------------------------------ reading
    def meta(self) -> dict[str, bytes]:
        rows = self._c().execute(f"SELECT key, value FROM {self.q('meta')}").fetchall()
        return {k: bytes(v) for k, v in rows}

    def rows(self, first: int, last: int | None = None, *, parts: bool = False) -> Iterator[Row]:
        """Batches ``first..last`` in order; a gap or a malformed row is corruption.

        ``parts``: also read which submission each part of a batch came from
        (``Row.extra``).
        """
        cols = ROW_COLUMNS + (", parts" if parts else "")
        sql = f"SELECT {cols} FROM {self.q('batches')} WHERE seq >= %s"
        args: tuple[int, ...] = (first,)
        if last is not None:
            sql += " AND seq <= %s"
            args = (first, last)
        expect = first
        conn = self._c()
        with conn.cursor() as cur:
            cur.execute(sql + " ORDER BY seq", args)
            while True:
                raws = cur.fetchmany(256)
                if not raws:
                    return
                for raw in raws:
                    row = Row(
                        int(raw[0]),
                        int(raw[1]),
                        int(raw[2]),
                        int(raw[3]),
                        int(raw[4]),
                        bytes(raw[5]),
                        bytes(raw[6]),
                        None if raw[7] is None else bytes(raw[7]),
                        None if raw[8] is None else bytes(raw[8]),
                        None if not parts or raw[9] is None else bytes(raw[9]),
                    )
                    if row.seq != expect:
                        raise corrupt(expect, f"missing (the next batch is {row.seq})")
                    expect += 1
                    yield row

    def batch_hash(self, seq: int) -> bytes | None:
        row = (
            self._c()
            .execute(f"SELECT hash FROM {self.q('batches')} WHERE seq = %s", (seq,))
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def num_batches(self) -> int:
        return int(self._c().execute(f"SELECT count(*) FROM {self.q('batches')}").fetchone()[0])

    def last_seq(self) -> int:
        row = self._c().execute(f"SELECT coalesce(max(seq), 0) FROM {self.q('batches')}").fetchone()
        return int(row[0])

    def snapshot_index(self, since: int = -1) -> dict[int, Snapshot]:
        rows = (
            self._c()
            .execute(
                "SELECT seq, num_events, horizon, batch_hash, digest, checksum, "
                f"length(data) = 0 FROM {self.q('snapshots')} WHERE seq > %s ORDER BY seq",
                (since,),
            )
            .fetchall()
        )
        return {
            int(r[0]): Snapshot(
                int(r[0]),
                int(r[1]),
                None if r[2] is None else int(r[2]),
                bytes(r[3]),
                bytes(r[4]),
                bytes(r[5]),
                pruned=bool(r[6]),
            )
            for r in rows
        }

    def snapshot_data(self, snap: Snapshot) -> bytes | None:
        """The snapshot's data if it passes its checksum, else None."""
        row = (
            self._c()
            .execute(f"SELECT data FROM {self.q('snapshots')} WHERE seq = %s", (snap.seq,))
            .fetchone()
        )
        if row is None:
            return None
        data = bytes(row[0])
        return data if checksum(data) == snap.checksum else None

    def first_seq(self) -> int | None:
        first = self._c().execute(f"SELECT min(seq) FROM {self.q('batches')}").fetchone()[0]
        return None if first is None else int(first)

    def stored_events(self) -> int:
        """Events in the stored batches (a sizing hint)."""
        return int(
            self._c()
            .execute(f"SELECT coalesce(sum(num_events), 0) FROM {self.q('batches')}")
            .fetchone()[0]
        )

    def counts(self) -> tuple[int, int | None, int | None]:
        """``(snapshots, last snapshot seq, first batch seq)``."""
        count, last = (
            self._c().execute(f"SELECT count(*), max(seq) FROM {self.q('snapshots')}").fetchone()
        )
        return int(count), None if last is None else int(last), self.first_seq()

    def bytes_on_disk(self) -> int:
        total = 0
        for table in ("meta", "batches", "snapshots", "mark", "lease", "inbox", "results"):
            total += int(
                self._c()
                .execute("SELECT pg_total_relation_size(%s)", (self.q(table),))
                .fetchone()[0]
            )
        return total

    def begin_read(self) -> None:
        """Start one read transaction: a consistent view until :meth:`end_read`."""
        self._c().execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def end_read(self) -> None:
        self.rollback()

    def read_mark(self) -> tuple[HighWaterMark | None, bool]:
        row = (
            self._c().execute(f"SELECT body, check_ FROM {self.q('mark')} WHERE id = 1").fetchone()
        )
        if row is None:
            return None, True
        return _unpack_mark(bytes(row[0]), bytes(row[1])), True

    # ------------------------------------------------------------ writing
    def in_transaction(self) -> bool:
        conn = self.conn
        if conn is None or conn.closed:
            return False
        return int(conn.info.transaction_status) != 0  # IDLE

    def begin_write(self, *, fence: bool = True) -> Any:
        """Open (or continue) a write transaction, fenced by the epoch; returns the
        connection. ``fence=False`` defers the check to the next call that fences
        (the leader takes its inbox rows first)."""
        conn = self._c()
        if not self.in_transaction():
            conn.execute("BEGIN")
            self._fenced = False
        if fence and not self._fenced:
            try:
                self._fence(conn)
            except BaseException:
                self.rollback()
                raise
            self._fenced = True
        return conn

    def append(
        self, row: Row, pending: list[Any], extra: Callable[[Any], None] | None = None
    ) -> None:
        """Commit one batch, its mark, and ``extra(conn)`` in one fenced transaction.

        A transaction opened by :meth:`take` (the leader took its inbox rows in it)
        is continued and committed here.
        """
        conn = self.begin_write(fence=False)
        fence = None
        try:
            # one round trip for the epoch check and every write, one for the COMMIT
            # (sent only once the check passed): a pipeline
            with conn.pipeline():
                if not self._fenced:
                    fence = self._fence_send(conn)
                self._append_rows(conn, row, pending, extra)
            if fence is not None:
                self._fence_check(conn, fence)
                self._fenced = True
            conn.execute("COMMIT")
        except BaseException as exc:
            self.rollback()
            if fence is not None and isinstance(exc, self.errors):
                # a write of the pipeline failed before the check was read (a deposed
                # writer's batch number is taken, say): name the deposition if it is one
                self._raise_if_deposed(exc)
            raise

    def _raise_if_deposed(self, exc: BaseException) -> None:
        try:
            row = self._c().execute(f"SELECT epoch FROM {self.q('lease')} WHERE id = 1").fetchone()
        except self.errors:
            return  # the original error says more
        if row is not None and self.epoch is not None and int(row[0]) != self.epoch:
            stale, self.epoch = self.epoch, None
            raise JournalLockedError(
                f"{self.label}: deposed (epoch {stale} superseded by epoch {int(row[0])}); "
                "the batch was refused"
            ) from exc

    def _append_rows(
        self, conn: Any, row: Row, pending: list[Any], extra: Callable[[Any], None] | None
    ) -> None:
        conn.execute(
            f"INSERT INTO {self.q('batches')} ({ROW_COLUMNS}, epoch, parts) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
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
                self.epoch,
                row.extra,
            ),
        )
        self._set_codes(conn, pending)
        body, check = _pack_mark(HighWaterMark(row.seq, row.first_event + row.num_events, row.hash))
        conn.execute(
            f"UPDATE {self.q('mark')} SET body = %s, check_ = %s WHERE id = 1", (body, check)
        )
        if extra is not None:
            extra(conn)
        conn.execute("SELECT pg_notify(%s, %s)", (channel_name(self.schema, "batch"), str(row.seq)))

    def take(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Open a write transaction and run ``sql`` in it (the leader taking its inbox
        rows), in one round trip; returns the rows. The epoch is checked when the
        transaction writes (:meth:`append`)."""
        conn = self._c()
        if self.in_transaction():
            raise JournalError(f"{self.label}: a transaction is already open")
        try:
            with conn.pipeline():
                conn.execute("BEGIN")
                cur = conn.execute(sql, args)
            self._fenced = False
            return list(cur.fetchall())
        except BaseException:
            self.rollback()
            raise

    def _set_codes(self, conn: Any, pending: list[Any]) -> None:
        for codes, check, seq in pending:
            conn.execute(
                f"UPDATE {self.q('batches')} SET codes = %s, codes_check = %s WHERE seq = %s",
                (codes, check, seq),
            )

    def withdraw(self, seq: int) -> None:
        """Delete batch ``seq`` (committed, but its results were never returned)."""
        conn = self.begin_write()
        try:
            conn.execute(f"DELETE FROM {self.q('batches')} WHERE seq = %s", (seq,))
            prev = conn.execute(
                f"SELECT seq, first_event + num_events, hash FROM {self.q('batches')}"
                " WHERE seq = %s",
                (seq - 1,),
            ).fetchone()
            if prev is not None:
                body, check = _pack_mark(HighWaterMark(int(prev[0]), int(prev[1]), bytes(prev[2])))
                conn.execute(
                    f"UPDATE {self.q('mark')} SET body = %s, check_ = %s WHERE id = 1",
                    (body, check),
                )
            conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def set_codes(self, pending: list[Any]) -> None:
        if pending:
            conn = self.begin_write()
            try:
                self._set_codes(conn, pending)
                conn.execute("COMMIT")
            except BaseException:
                self.rollback()
                raise

    def put_snapshot(
        self, snap: Snapshot, data: bytes, pending: list[Any], keep_after: int
    ) -> None:
        """Store a snapshot and drop the data of older ones (as the SQLite store)."""
        conn = self.begin_write()
        s = self.q("snapshots")
        try:
            conn.execute(
                f"INSERT INTO {s} (seq, num_events, horizon, batch_hash, digest, checksum,"
                " created_at, data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (seq) DO UPDATE SET num_events = excluded.num_events,"
                " horizon = excluded.horizon, batch_hash = excluded.batch_hash,"
                " digest = excluded.digest, checksum = excluded.checksum,"
                " created_at = excluded.created_at, data = excluded.data",
                (
                    snap.seq,
                    snap.num_events,
                    snap.horizon,
                    snap.batch_hash,
                    snap.digest,
                    snap.checksum,
                    time.time_ns(),
                    data,
                ),
            )
            self._set_codes(conn, pending)
            conn.execute("SELECT pg_notify(%s, 's')", (channel_name(self.schema, "batch"),))
            conn.execute(
                f"UPDATE {s} SET data = ''::bytea WHERE length(data) > 0 AND seq < "
                f"(SELECT max(seq) FROM {s} WHERE seq < %s)"
                f" AND seq != coalesce((SELECT min(seq) - 1 FROM {self.q('batches')}), -1)",
                (keep_after,),
            )
            conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def rebase_snapshots(self, probe: bytes) -> None:
        """Drop every snapshot's data and digest (they embed old fingerprints)."""
        conn = self.begin_write()
        try:
            conn.execute(
                f"UPDATE {self.q('snapshots')} SET data = ''::bytea, digest = %s", (bytes(32),)
            )
            conn.execute(
                f"INSERT INTO {self.q('meta')} (key, value) VALUES ('kernel_probe', %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (probe,),
            )
            conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def prune(self, keep: int) -> int:
        """Delete batches up to ``keep`` and snapshots before it; returns batches deleted."""
        conn = self.begin_write()
        try:
            pruned = conn.execute(
                f"DELETE FROM {self.q('batches')} WHERE seq <= %s", (keep,)
            ).rowcount
            conn.execute(f"DELETE FROM {self.q('snapshots')} WHERE seq < %s", (keep,))
            conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise
        return int(pruned)

    def backup(self, destination: Any) -> None:
        """Copy the journal into the (new) schema named by the URL ``destination``."""
        conninfo, schema, label = parse_url(str(destination))
        if conninfo != self.conninfo:
            raise JournalError(f"archive {label}: must be in the same database as {self.label}")
        conn = self._c()
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        try:
            if conn.execute("SELECT to_regclass(%s)", (f"{schema}.meta",)).fetchone()[0]:
                raise JournalError(f"archive destination {label} exists")
            for stmt in _schema_sql(schema):
                conn.execute(stmt)
            for table in ("meta", "snapshots", "mark"):
                conn.execute(f"INSERT INTO {schema}.{table} SELECT * FROM {self.q(table)}")
            conn.execute(f"INSERT INTO {schema}.batches SELECT * FROM {self.q('batches')}")
            conn.execute(f"INSERT INTO {schema}.lease VALUES (1, 0, '', '{{}}', now())")
            conn.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def checkpoint(self) -> bool:
        """Nothing to do: every commit is in PostgreSQL's WAL (True: complete)."""
        return True

    def write_mark(self, mark: HighWaterMark, *, sync: bool) -> None:
        """The mark is written with each batch (see :meth:`append`)."""

    def reset_mark(self, mark: HighWaterMark) -> None:
        conn = self._c()
        body, check = _pack_mark(mark)
        conn.execute(
            f"UPDATE {self.q('mark')} SET body = %s, check_ = %s WHERE id = 1", (body, check)
        )

    def rollback(self) -> None:
        conn = self.conn
        if conn is None or conn.closed or conn.broken:
            return
        if self.in_transaction():
            try:
                conn.execute("ROLLBACK")
            except self.errors:
                pass

    def close(self) -> None:
        conn, self.conn = self.conn, None
        try:
            if conn is not None:
                conn.close()
        finally:
            self.release()


def holder_name() -> str:
    """``host:pid``, how the lease row names its holder."""
    return f"{socket.gethostname()}:{os.getpid()}"


def submission_base(conn: Any, schema: str) -> int:
    """A new client number, shifted: this client's submission keys are ``base | n``."""
    client = int(conn.execute(f"SELECT nextval('{schema}.clients')").fetchone()[0])
    return client << 32
