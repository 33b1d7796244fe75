"""The durable ledger: an in-memory ledger whose every batch is journaled first.

:func:`open_ledger` returns a :class:`DurableLedger`. It *holds* an in-memory
:class:`~allocator.Ledger` (inside a :class:`~allocator.journal._replica.Replica`,
which knows where it stands in the journal) and a journal store, and talks to the
ledger only through its engine interface (``prepare`` / ``apply_prepared`` /
``export_state`` / ``import_state`` / ``digest_state``).

Writes from any number of threads and coroutines are group-committed: one thread
takes everything queued as one group, applies it with one kernel call and writes it
in one transaction with one fsync, then hands each caller its own results.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from allocator._group import GroupCommitter
from allocator.events import Events
from allocator.exceptions import JournalError, StorageError, ValidationError
from allocator.journal import _codec, _pgstore, _store
from allocator.journal._format import (
    HighWaterMark,
    Row,
    Snapshot,
    chain_hash,
    checksum,
    codes_check,
    corrupt,
    genesis_hash,
    kernel_probe,
    ledger_arrays,
)
from allocator.journal._replica import Replica
from allocator.journal._store import PendingCodes, SqliteStore
from allocator.ledger import (
    DEFAULT_MAX_GROUP_EVENTS,
    DEFAULT_MAX_QUEUE_EVENTS,
    DEFAULT_TIMEOUT,
    ApplyResult,
    BaseLedger,
    EventResult,
    Ledger,
    Prepared,
)
from allocator.network import NetworkData

__all__ = ["DEFAULT_SNAPSHOT_EVERY", "DurableLedger", "open_durable"]

logger = logging.getLogger("allocator")

#: Events between automatic snapshots (None in :func:`open_ledger` disables them).
DEFAULT_SNAPSHOT_EVERY = 5_000_000
_SYNC_MODES = ("full", "normal")
#: Groups larger than this are written by a second thread while the kernel applies
#: them; smaller ones are written first, then applied (no thread hand-off).
_OVERLAP_EVENTS = 50_000


class _Control:
    """A maintenance step run on the commit thread, between two groups."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn


def resolve_path(path: Any) -> Path:
    """``path`` as a :class:`~pathlib.Path` with ``~`` expanded; typed errors otherwise."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path).expanduser()


class DurableLedger(BaseLedger):
    """A ledger journaled to SQLite; open one with :func:`open_ledger`.

    Every read of :class:`~allocator.Ledger` works unchanged, and every write (sync
    or async, batch or single event) is journaled before it returns. Use it as a
    context manager, or call :meth:`close`.

    Attributes
    ----------
    path
        The journal database.
    readonly
        True for a reader (writes raise; :meth:`refresh` follows the writer).
    synchronous
        ``"full"`` (default) or ``"normal"``, see :func:`open_ledger`.
    timeout
        Seconds a write waits for its turn before
        :class:`~allocator.LedgerBusyError` (nothing applied; retry with the same ids).
    """

    path: Path
    readonly: bool
    synchronous: str
    timeout: float
    _store: Any | None
    _replica: Replica
    _snapshot_every: int | None
    _horizon: int | None
    _failed: BaseException | None
    _pending: list[PendingCodes]
    _io: Any  # threading.RLock
    _writer: ThreadPoolExecutor | None
    _committer: GroupCommitter | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("open a DurableLedger with allocator.open_ledger(path, network_data)")

    @property
    def store(self) -> Any:
        """The journal store (for the shared ledger's leader; None once closed)."""
        return self._store

    @classmethod
    def _create(
        cls,
        store: Any,
        replica: Replica,
        *,
        snapshot_every: int | None,
        horizon: int | None,
        timeout: float,
        max_queue_events: int,
        max_group_events: int,
    ) -> DurableLedger:
        self = cls.__new__(cls)
        self.network = replica.network
        self.path = store.path
        self.readonly = store.readonly
        self.synchronous = store.synchronous
        self.timeout = timeout
        self._store = store
        self._replica = replica
        self._snapshot_every = snapshot_every
        self._horizon = horizon
        self._failed = None
        self._pending = []
        self._io = threading.RLock()  # connection use outside the commit thread
        self._writer = None
        self._committer = None
        if not self.readonly:
            self._committer = GroupCommitter(
                self._commit_group,
                name="allocator-journal-commit",
                max_queue_events=max_queue_events,
                max_group_events=max_group_events,
                timeout=timeout,
            )
        return self

    # ------------------------------------------------------------ the view
    def _view(self) -> Ledger:
        return self._replica.ledger

    @property
    def seq(self) -> int:
        """Sequence number of the last batch applied (0 before any)."""
        return self._replica.seq

    @property
    def num_events(self) -> int:
        """Events journaled so far (all batches, including pruned ones)."""
        return self._replica.num_events

    @property
    def groups_committed(self) -> int:
        """Groups the commit thread has served (each one transaction)."""
        return 0 if self._committer is None else self._committer.groups

    # ------------------------------------------------------------ writes
    def _writable(self) -> GroupCommitter:
        if self._store is None or self._committer is None:
            if self._store is None:
                raise JournalError(f"journal {self.path} is closed")
            raise JournalError(f"journal {self.path} is open read-only")
        return self._committer

    def apply(self, events: Events) -> ApplyResult:
        """Apply a batch, journal it durably, then return its results.

        The batch joins whatever other threads and coroutines submitted meanwhile:
        the group is applied with one kernel call and written in one ``BEGIN
        IMMEDIATE`` transaction, committed (fsynced under ``synchronous="full"``)
        before any caller of the group gets its results. A caller's batch is never
        split or interleaved, and its results are exactly those it would get alone.

        Bad input raises :class:`~allocator.ValidationError` with nothing applied or
        written. If the write fails (disk full, I/O error), the in-memory ledger is
        restored from the journal to the previous batch and :class:`StorageError` is
        raised to every caller of the group; should the failure hit after the
        commit point, the group is wholly present instead, and retrying with the
        same ids converges (``exists``).
        """
        committer = self._writable()
        if not isinstance(events, Events):
            raise TypeError(f"apply() takes Events, got {type(events).__name__}")
        events.check_network(self.network)
        return committer.submit(events, max(1, len(events)))  # type: ignore[no-any-return]

    async def apply_async(self, events: Events) -> ApplyResult:
        """:meth:`apply` for asyncio code: never blocks the event loop."""
        committer = self._writable()
        if not isinstance(events, Events):
            raise TypeError(f"apply_async() takes Events, got {type(events).__name__}")
        events.check_network(self.network)
        return await committer.submit_async(events, max(1, len(events)))  # type: ignore[no-any-return]

    def _submit_one(self, event: tuple[int, ...]) -> EventResult:
        committer = self._writable()
        self._view().check_one(event)  # type: ignore[arg-type]
        return committer.submit(event, 1)  # type: ignore[no-any-return]

    async def _submit_one_async(self, event: tuple[int, ...]) -> EventResult:
        committer = self._writable()
        self._view().check_one(event)  # type: ignore[arg-type]
        return await committer.submit_async(event, 1)  # type: ignore[no-any-return]

    def _control(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the commit thread between groups (a writer), or under the
        connection lock (a reader)."""
        if self._committer is None:
            with self._io:
                return fn()
        if self._committer.on_thread():
            return fn()
        return self._committer.submit(_Control(fn), 1)

    # ------------------------------------------------------------ the commit thread
    def _commit_group(self, parts: list[Any]) -> list[Any]:
        outcomes: list[Any] = []
        i = 0
        while i < len(parts):
            if isinstance(parts[i], _Control):
                try:
                    outcomes.append(parts[i].fn())
                except BaseException as exc:
                    outcomes.append(exc)
                i += 1
                continue
            j = i
            while j < len(parts) and not isinstance(parts[j], _Control):
                j += 1
            try:
                outcomes.extend(self._commit_events(parts[i:j]))
            except BaseException as exc:
                outcomes.extend([exc] * (j - i))
            i = j
        return outcomes

    def _check_failed(self) -> Any:
        if self._store is None:
            raise JournalError(f"journal {self.path} is closed")
        if self._failed is not None:  # the last restore failed (e.g. the server was down)
            try:
                self._restore()
            except self._store.errors as exc:
                raise StorageError(
                    f"journal {self.path} could not restore the ledger after a storage error "
                    f"({exc}); nothing was applied, retry with the same ids"
                ) from exc
            except BaseException as exc:
                raise StorageError(
                    f"journal {self.path} could not restore the ledger after a storage error "
                    f"({exc}); close and reopen it"
                ) from exc
            self._failed = None
        return self._store

    def commit_group(
        self, parts: list[Any], attach: Callable[[Prepared, list[Any], Row], Any] | None = None
    ) -> list[Any]:
        """Apply and journal one group of submissions; one outcome per submission.

        For the owner of the commit loop (the shared ledger's leader, which runs it
        on its own thread instead of the group committer). ``attach(prepared,
        outcomes, row)`` returns what the store writes in the batch's transaction
        besides the batch (the leader's inbox rows and results); it needs a store
        that writes result codes with their batch.
        """
        return self._commit_events(parts, attach)

    def _commit_events(
        self, parts: list[Any], attach: Callable[[Prepared, list[Any], Row], Any] | None = None
    ) -> list[Any]:
        store = self._check_failed()
        rep = self._replica
        led = rep.ledger
        prepared = led.prepare(parts)
        if len(prepared) == 0:  # nothing to journal: empty batches or refused submissions
            return prepared.split(led.apply_prepared(prepared))
        seq, first = rep.seq + 1, rep.num_events
        if store.codes_inline:
            row, result, outcomes = self._apply_then_write(store, seq, first, prepared, attach)
        else:
            if len(prepared) <= _OVERLAP_EVENTS:
                row, result = self._write_then_apply(store, seq, first, prepared)
            else:
                row, result = self._write_while_applying(store, seq, first, prepared)
            self._pending = [_codes_of(seq, row.hash, result)]
            outcomes = None
        rep.advance(row, result)
        self._mark()
        if (
            self._snapshot_every is not None
            and rep.num_events - rep.snap_events >= self._snapshot_every
        ):
            try:
                self._snapshot()
            except StorageError as exc:  # the batch itself is durable
                logger.warning("automatic snapshot failed, will retry: %s", exc)
        return prepared.split(result) if outcomes is None else outcomes

    def _apply_then_write(
        self,
        store: Any,
        seq: int,
        first: int,
        prepared: Prepared,
        attach: Callable[[Prepared, list[Any], Row], Any] | None,
    ) -> tuple[Row, ApplyResult, list[Any]]:
        """Apply the group, then commit it with its result codes in one transaction.

        The store's commit may fail after its commit point (a connection lost during
        ``COMMIT``), so any failure rebuilds the ledger from what the journal holds:
        the batch is then wholly present or wholly absent, and a retry with the same
        ids converges.
        """
        rep = self._replica
        try:
            result = rep.ledger.apply_prepared(prepared)
        except BaseException:
            store.rollback()
            self._restore_after_failure()
            raise
        outcomes = prepared.split(result)
        blob = _codec.encode_events(prepared.events, prepared.ids)
        stamp = _store.now_ns()
        n = len(prepared)
        digest = chain_hash(rep.hash, seq, first, n, prepared.auto_id, stamp, blob)
        codes = _codec.encode_codes(result.codes, result.duplicate)
        row = Row(
            seq, first, n, prepared.auto_id, stamp, blob, digest, codes, codes_check(digest, codes)
        )
        try:
            extra = None if attach is None else attach(prepared, outcomes, row)
            store.append(row, self._pending, extra)
        except store.errors as exc:
            store.rollback()
            self._restore_after_failure()
            raise StorageError(
                f"journal {self.path}: batch {seq} could not be written ({exc}); nothing "
                "was acknowledged, retry with the same ids"
            ) from exc
        except BaseException:
            store.rollback()
            self._restore_after_failure()
            raise
        self._pending = []
        return row, result, outcomes

    def _restore_after_failure(self) -> None:
        """Rebuild from the journal; if that fails too, try again on the next call."""
        try:
            self._restore()
        except BaseException as exc:
            logger.warning("journal %s: ledger not restored yet: %s", self.path, exc)

    def _write_then_apply(
        self, store: Any, seq: int, first: int, prepared: Prepared
    ) -> tuple[Row, ApplyResult]:
        """A small group: commit it, then apply it (the kernel takes microseconds)."""
        rep = self._replica
        try:
            row = self._write_batch(store, seq, first, prepared, rep.hash)
        except store.errors as exc:  # nothing applied in memory: nothing to restore
            store.rollback()
            raise StorageError(
                f"journal {self.path}: batch {seq} could not be written ({exc}); the ledger "
                f"stays at batch {rep.seq}"
            ) from exc
        try:
            result = rep.ledger.apply_prepared(prepared)
        except BaseException as exc:
            done: Future[Row] = Future()
            done.set_result(row)
            self._undo_batch(store, done, seq, exc)
            raise
        return row, result

    def _write_while_applying(
        self, store: Any, seq: int, first: int, prepared: Prepared
    ) -> tuple[Row, ApplyResult]:
        """A large group: the writer thread commits it while the kernel applies it."""
        rep = self._replica
        led = rep.ledger
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="allocator-journal-write")
        job = self._writer.submit(self._write_batch, store, seq, first, prepared, rep.hash)
        try:
            result = led.apply_prepared(prepared)
        except BaseException as exc:
            self._undo_batch(store, job, seq, exc)
            raise
        try:
            row = job.result()
        except self._errors() as exc:
            store.rollback()
            self._restore()
            raise StorageError(
                f"journal {self.path}: batch {seq} could not be written ({exc}); the ledger "
                f"is back at batch {self._replica.seq}"
            ) from exc
        except BaseException:
            store.rollback()
            self._restore()
            raise
        return row, result

    def _write_batch(
        self, store: Any, seq: int, first: int, prepared: Prepared, prev: bytes
    ) -> Row:
        """Writer thread: encode, hash and commit one batch (plus earlier result codes)."""
        blob = _codec.encode_events(prepared.events, prepared.ids)
        stamp = _store.now_ns()
        n = len(prepared)
        digest = chain_hash(prev, seq, first, n, prepared.auto_id, stamp, blob)
        row = Row(seq, first, n, prepared.auto_id, stamp, blob, digest, None, None)
        store.append(row, self._pending)
        return row

    def _undo_batch(self, store: Any, job: Future[Row], seq: int, exc: BaseException) -> None:
        """The in-memory apply failed: withdraw the batch if it was committed, restore."""
        try:
            job.result()
        except BaseException:  # the writer stopped before its COMMIT returned
            store.rollback()
        else:
            try:
                store.withdraw(seq)
            except store.errors as err:
                self._failed = err
                logger.error(
                    "journal %s: batch %d could not be withdrawn after %r: %s",
                    self.path,
                    seq,
                    exc,
                    err,
                )
                return
        self._restore()

    def _mark(self, *, sync: bool = False) -> None:
        """Advance the high-water mark to the last committed batch.

        The mark only ever trails the journal: it is written after the commit, and
        without its own fsync (forced at snapshots, checkpoints and close), so after
        a power loss it may lag, which narrows what it detects but never raises a
        false alarm. In ``normal`` mode commits are not durable when they return, so
        the mark advances only at checkpoints.
        """
        if self.synchronous != "full" and not sync:
            return
        assert self._store is not None
        rep = self._replica
        try:
            self._store.write_mark(HighWaterMark(rep.seq, rep.num_events, rep.hash), sync=sync)
        except OSError as exc:  # the batch is durable; a stale mark only weakens checks
            logger.error("journal %s: high-water mark not updated: %s", self.path, exc)

    def _restore(self) -> None:
        """Rebuild the in-memory state from the journal (latest snapshot + tail)."""
        assert self._store is not None
        try:
            fresh = Replica(self.network, self._replica.genesis, self._store.stored_events())
            unrecorded = fresh.load(self._store, verify="tail")
        except BaseException as exc:
            self._failed = exc
            logger.error("journal %s: ledger could not be restored: %s", self.path, exc)
            raise
        self._replica = fresh
        self._pending = [_codes_of(seq, h, r) for seq, h, r in unrecorded]

    def _flush_codes(self) -> None:
        assert self._store is not None
        if self._pending and not self.readonly and self._failed is None:
            self._store.set_codes(self._pending)
            self._pending = []

    # ------------------------------------------------------------ maintenance
    def snapshot(self) -> int:
        """Write a snapshot of the state now; returns the batch number it follows.

        The journal keeps the data of this snapshot and of the one before it (the
        fallback should this one fail its checksum), plus the anchor of a pruned
        journal; older snapshots keep only their row (batch, horizon, digest).

        Closed reservations and id entries first applied more than ``horizon``
        events ago are compacted first (see :func:`open_ledger`), in the live ledger
        too, so that it stays equal to what a reopen yields.
        """
        self._writable()
        return int(self._control(self._snapshot))

    def _snapshot(self) -> int:
        store = self._check_failed()
        rep = self._replica
        if rep.snap_seq == rep.seq:
            return rep.seq
        snap_arrays, ids, ev = rep.compaction(self._horizon)
        data = _codec.encode_arrays(snap_arrays)
        digest = bytes.fromhex(rep.ledger.digest_state(ledger_arrays(snap_arrays)))
        snap = Snapshot(rep.seq, rep.num_events, self._horizon, rep.hash, digest, checksum(data))
        try:
            store.put_snapshot(snap, data, self._pending, keep_after=rep.seq)
        except self._errors() as exc:
            raise StorageError(f"journal {self.path}: snapshot failed ({exc})") from exc
        self._pending = []
        rep.apply_compaction(snap_arrays, ids, ev)
        rep.snap_seq, rep.snap_events = rep.seq, rep.num_events
        if self.synchronous == "full":
            self._mark(sync=True)
        logger.info(
            "journal %s: snapshot at batch %d (%d events, %d bytes)",
            self.path,
            rep.seq,
            rep.num_events,
            len(data),
        )
        return rep.seq

    def _rebase_snapshots(self) -> None:
        """After a rebuild under a changed kernel: drop old snapshot data, snapshot anew."""
        store = self._check_failed()
        try:
            store.rebase_snapshots(kernel_probe())
        except self._errors() as exc:
            raise StorageError(f"journal {self.path}: rebase failed ({exc})") from exc
        self._replica.snap_seq = None
        self._snapshot()

    def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it (``wal_checkpoint``).

        In ``synchronous="normal"`` mode this is also the point up to which the
        high-water mark advances.
        """
        self._writable()
        self._control(self._checkpoint)

    def _checkpoint(self) -> None:
        store = self._check_failed()
        try:
            self._flush_codes()
            complete = store.checkpoint()
        except self._errors() as exc:
            raise StorageError(f"journal {self.path}: checkpoint failed ({exc})") from exc
        if not complete:
            logger.info("journal %s: checkpoint incomplete (readers active)", self.path)
            if self.synchronous != "full":
                return  # the WAL was not synced as a whole: the mark stays where it is
        self._mark(sync=True)

    def archive(self, destination: Any) -> int:
        """Copy the full history to ``destination`` and prune this journal.

        Takes a snapshot, copies the journal with SQLite's online backup, and deletes
        the batches up to that snapshot and the older snapshots from this journal.
        The copy keeps the full history (verify or replay it from batch 1); this
        journal then verifies from its snapshot on. Readers that are behind catch up
        from the snapshot. Returns the batches pruned.
        """
        self._writable()
        dest: Any = destination
        if not _pgstore.is_url(destination):
            dest = resolve_path(destination)
            if dest.exists():
                raise JournalError(f"archive destination {dest} exists")

        def run() -> int:
            store = self._check_failed()
            self._snapshot()
            try:
                store.backup(dest)
                return store.prune(self._replica.seq)
            except store.errors as exc:
                store.rollback()
                raise StorageError(f"journal {self.path}: pruning failed ({exc})") from exc

        return int(self._control(run))

    # ------------------------------------------------------------ reading
    def refresh(self) -> int:
        """Reader only: apply the batches the writer committed since; returns how many.

        A reader that fell behind a compacting snapshot or an :meth:`archive` is
        rebuilt from the latest snapshot (never a false corruption alarm).
        """
        store = self._require_store()
        if not self.readonly:
            return 0
        with self._io:
            before = self._replica.seq
            moved = self._replica.follow(store)
            if moved is None:  # compacted or pruned behind us: rebuild, then swap
                fresh = Replica(self.network, self._replica.genesis, store.stored_events())
                fresh.load(store, verify="tail")
                self._replica = fresh
                return fresh.seq - before
            return moved

    def read(self, first: int = 1, last: int | None = None) -> Any:
        """Batches ``first..last`` (inclusive; default to the end) read back."""
        from allocator.journal.audit import read_slice

        store = self._require_store()

        def run() -> Any:
            if not self.readonly and self._failed is None:
                try:
                    self._flush_codes()
                except self._errors() as exc:
                    logger.warning("journal %s: result codes not stored yet: %s", self.path, exc)
            return read_slice(store, first, last)

        return self._control(run)

    def info(self) -> Any:
        """Where the journal stands (a :class:`~allocator.journal.JournalInfo`)."""
        from allocator.journal.audit import JournalInfo

        store = self._require_store()

        def run() -> JournalInfo:
            count, last_snap, first_seq = store.counts()
            return JournalInfo(
                path=str(self.path),
                last_seq=self._replica.seq,
                num_events=self._replica.num_events,
                first_seq=int(first_seq or self._replica.seq),
                last_snapshot_seq=last_snap,
                num_snapshots=count,
                bytes_on_disk=store.bytes_on_disk(),
                synchronous=self.synchronous,
                readonly=self.readonly,
            )

        return self._control(run)

    def verify(self) -> Any:
        """A full scrub of the journal on disk (see :func:`verify_journal`)."""
        from allocator.journal.audit import verify_journal

        return verify_journal(self._require_store().target)

    def _errors(self) -> tuple[type[BaseException], ...]:
        """The store driver's error classes (none once closed)."""
        store = getattr(self, "_store", None)
        return () if store is None else tuple(store.errors)

    def _require_store(self) -> Any:
        if self._store is None:
            raise JournalError(f"journal {self.path} is closed")
        return self._store

    # ------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Serve what is queued, close the journal and release the writer lock
        (idempotent)."""
        committer, self._committer = getattr(self, "_committer", None), None
        if committer is not None:
            committer.close()
        writer, self._writer = getattr(self, "_writer", None), None
        if writer is not None:
            writer.shutdown(wait=True)
        with self._io:
            store, self._store = getattr(self, "_store", None), None
            if store is None:
                return
            try:
                if not store.readonly and self._failed is None:
                    self._store = store
                    self._flush_codes()
                    if self.synchronous != "full":
                        store.checkpoint()
                    self._mark(sync=True)
            except store.errors as exc:
                logger.error("journal %s: final checkpoint failed: %s", self.path, exc)
            finally:
                self._store = None
                store.close()

    def __enter__(self) -> DurableLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if getattr(self, "_store", None) is not None:
                self.close()
        except Exception:  # never raise from a finaliser
            pass

    def __repr__(self) -> str:
        mode = "read-only" if getattr(self, "readonly", True) else "writer"
        rep = getattr(self, "_replica", None)
        seq = rep.seq if rep is not None else 0
        npos = rep.ledger.num_positions if rep is not None else 0
        return f"DurableLedger({getattr(self, 'path', '?')}, {mode}, batch {seq}, {npos} positions)"


def _codes_of(seq: int, batch_hash: bytes, result: ApplyResult) -> PendingCodes:
    codes = _codec.encode_codes(result.codes, result.duplicate)
    return codes, codes_check(batch_hash, codes), seq


def open_durable(
    path: Any,
    network_data: NetworkData | None = None,
    *,
    readonly: bool = False,
    synchronous: str = "full",
    snapshot_every: int | None = DEFAULT_SNAPSHOT_EVERY,
    horizon: int | None = None,
    verify: str = "full",
    timeout: float = DEFAULT_TIMEOUT,
    max_queue_events: int = DEFAULT_MAX_QUEUE_EVENTS,
    max_group_events: int = DEFAULT_MAX_GROUP_EVENTS,
) -> DurableLedger:
    """Open the journal at ``path`` (creating it when absent) as a :class:`DurableLedger`.

    :func:`~allocator.open_ledger` calls this for a path, and for a PostgreSQL URL
    opened by one process alone (``role="writer"`` or ``"reader"``).

    Parameters
    ----------
    path
        The SQLite file (``~`` is expanded). ``PATH-wal``, ``PATH-shm`` and
        ``PATH-hwm`` sit beside it; its directory must exist. Or a
        ``postgresql://`` URL (``?schema=NAME`` picks the schema, default
        ``allocator``): the writer then takes the journal's leadership.
    network_data
        Required to create a journal, where it is stored; optional on reopen, where
        it must equal the stored one.
    readonly
        Open as a reader: no lock taken, allowed while a writer runs; writes raise
        and :meth:`DurableLedger.refresh` catches up with the writer.
    synchronous
        ``"full"`` (default): every group commit is fsynced before its callers get
        their results, so an acknowledged batch survives power loss. ``"normal"``:
        commits are not fsynced; an application crash loses nothing, but a power
        loss or OS crash may lose the batches committed since the last checkpoint
        (automatic every few MB of WAL, and on :meth:`~DurableLedger.checkpoint`,
        snapshot and close). The journal stays consistent either way.
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
    timeout
        Seconds a write waits for its turn (room in the queue, then the commit
        thread) before :class:`~allocator.LedgerBusyError`; nothing is applied then.
    max_queue_events, max_group_events
        The most events waiting in the queue, and taken into one group commit.

    Raises
    ------
    JournalLockedError
        Another writer (process or object) holds the journal.
    JournalCorruptError
        A broken hash chain, a torn or missing batch, or a high-water mark ahead of
        the journal (or emptied); the message names the first bad batch.
    JournalError
        Not a journal, a newer format version, a network mismatch, or a directory
        that does not exist.
    """
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
    for name, value in (
        ("max_queue_events", max_queue_events),
        ("max_group_events", max_group_events),
    ):
        if type(value) is not int or value < 1:
            raise ValidationError(f"expected an int >= 1, got {value!r}", field=name)
    if not isinstance(timeout, int | float) or not timeout > 0:
        raise ValidationError(f"expected seconds > 0, got {timeout!r}", field="timeout")
    if network_data is not None and not isinstance(network_data, NetworkData):
        raise TypeError("network_data must be a NetworkData (Network().build())")
    options = {
        "snapshot_every": snapshot_every,
        "horizon": horizon,
        "timeout": float(timeout),
        "max_queue_events": max_queue_events,
        "max_group_events": max_group_events,
    }
    if _pgstore.is_url(path):
        store = open_pg_store(path, network_data, readonly=readonly, synchronous=synchronous)
    else:
        store = _open_sqlite_store(resolve_path(path), network_data, readonly, synchronous)
    return _open_on(store, network_data, readonly=readonly, verify=verify, options=options)


def open_pg_store(
    url: str,
    network_data: NetworkData | None,
    *,
    readonly: bool,
    synchronous: str = "full",
    lead: bool = True,
    application: str = "allocator",
) -> Any:
    """A :class:`~allocator.journal._pgstore.PgStore` on ``url``, creating the journal
    when absent; a writer (``lead``) takes leadership or raises
    :class:`JournalLockedError`."""
    try:
        store = _pgstore.PgStore(
            url, readonly=readonly, synchronous=synchronous, application=application
        )
    except _pgstore.driver().Error as exc:
        raise StorageError(f"journal {_pgstore.parse_url(url)[2]}: cannot connect ({exc})") from exc
    try:
        if not store.exists():
            if readonly:
                raise JournalError(f"no journal at {store.label}")
            if network_data is None:
                raise JournalError(f"no journal at {store.label}; pass network_data to create one")
            digest = _codec.network_digest(network_data)
            try:
                store.create(_new_meta(network_data), HighWaterMark(0, 0, genesis_hash(digest)))
            except JournalError:
                pass  # another process created it meanwhile
        store.check_format()
        if not readonly and lead:
            store.acquire(_pgstore.holder_name())
    except _pgstore.driver().Error as exc:
        store.close()
        raise StorageError(f"journal {store.label}: {exc}") from exc
    except BaseException:
        store.close()
        raise
    return store


def _new_meta(network_data: NetworkData) -> dict[str, bytes]:
    return {
        "format_version": str(_store.FORMAT_VERSION).encode(),
        "network": _codec.encode_network(network_data),
        "network_digest": _codec.network_digest(network_data),
        "created_at": str(_store.now_ns()).encode(),
        "kernel_probe": kernel_probe(),
    }


def _open_sqlite_store(
    path: Path, network_data: NetworkData | None, readonly: bool, synchronous: str
) -> SqliteStore:
    if not path.parent.is_dir():
        raise JournalError(f"cannot open a journal at {path}: {path.parent} is not a directory")
    exists = _store.check_header(path)
    if readonly and not exists:
        raise JournalError(f"no journal at {path}")
    lock = None if readonly else _store.WriterLock(path)
    conn: sqlite3.Connection | None = None
    try:
        if not exists:
            if network_data is None:
                raise JournalError(f"no journal at {path}; pass network_data to create one")
            conn = _store.connect(path, readonly=False, synchronous=synchronous)
            meta = _new_meta(network_data)
            _store.create_schema(conn, meta)
            assert lock is not None
            lock.reset(HighWaterMark(0, 0, genesis_hash(meta["network_digest"])))
        if conn is None:
            try:
                conn = _store.connect(path, readonly=readonly, synchronous=synchronous)
            except sqlite3.DatabaseError as exc:
                raise corrupt(None, f"{path} is damaged: {exc}") from None
        store = SqliteStore(path, conn, lock, synchronous)
        try:
            _store.check_format(conn, path)
        except sqlite3.DatabaseError as exc:
            raise corrupt(None, f"{path} is damaged: {exc}") from None
    except BaseException:
        if conn is not None:
            conn.close()
        if lock is not None:
            lock.close()
        raise
    return store


def open_network(store: Any, network_data: NetworkData | None) -> tuple[NetworkData, bytes]:
    """The network stored in a journal (checked against ``network_data``) and its digest."""
    try:
        meta = store.meta()
        network = _codec.decode_network(meta["network"])
        digest = meta["network_digest"]
    except store.errors as exc:
        if isinstance(store, SqliteStore):
            raise corrupt(None, f"{store.label} is damaged: {exc}") from None
        raise StorageError(f"journal {store.label}: {exc}") from exc
    except (KeyError, ValueError, OSError) as exc:
        raise corrupt(None, f"journal metadata unreadable ({exc})") from None
    if _codec.network_digest(network) != digest:
        raise corrupt(None, "stored network fails its digest")
    if network_data is not None and _codec.network_digest(network_data) != digest:
        raise JournalError(f"network_data differs from the network stored in {store.label}")
    return network, digest


def _open_on(
    store: Any,
    network_data: NetworkData | None,
    *,
    readonly: bool,
    verify: str,
    options: dict[str, Any],
) -> DurableLedger:
    try:
        network, digest = open_network(store, network_data)
        replica = Replica(network, genesis_hash(digest), store.stored_events())
        ledger = DurableLedger._create(store, replica, **options)
        t0 = time.perf_counter()
        compatible = store.meta().get("kernel_probe") == kernel_probe()
        if not compatible:
            logger.warning(
                "journal %s: the kernel fingerprints payloads differently from the one that "
                "wrote the snapshots; rebuilding from batch 1",
                store.label,
            )
        try:
            unrecorded = replica.load(store, verify=verify, snapshots=compatible)
        except store.errors as exc:
            if isinstance(store, SqliteStore):
                raise corrupt(replica.seq + 1, f"unreadable ({exc})") from None
            raise StorageError(f"journal {store.label}: {exc}") from exc
        if not readonly:
            ledger._pending = [_codes_of(seq, h, r) for seq, h, r in unrecorded]
            if store.codes_inline and ledger._pending:
                ledger._flush_codes()
            if not compatible:
                ledger._rebase_snapshots()
        logger.info(
            "journal %s: opened at batch %d (%d events) in %.3f s",
            store.label,
            replica.seq,
            replica.num_events,
            time.perf_counter() - t0,
        )
        return ledger
    except BaseException:
        store.close()
        raise
