"""One ledger for many processes and hosts: PostgreSQL inbox, leader, followers.

Every process opens the same PostgreSQL journal (:func:`open_shared`, or
:func:`~allocator.open_ledger` with a ``postgresql://`` URL and a shared role) and
gets a :class:`SharedLedger`, whose API is the ledger's:

* **writes** (``reserve``, ``commit``, ``apply``, ..., sync and async) are inserted
  into the ``inbox`` table, one row per event, keyed by ``(sub, pos)``: the
  submission and the event's place in it. The process's concurrent writes are
  group-inserted (one statement per group) and the leader is woken by NOTIFY. A
  write returns once the batch that applied it is committed (durably, with
  ``synchronous_commit=on``) *and* the local replica has applied that batch, so a
  caller always reads its own writes;
* **reads** (``available``, ``position``, ``reservation``, ...) are answered by a
  local in-memory replica that follows the journal (woken by NOTIFY, polling as a
  fallback). :attr:`SharedLedger.staleness` reports how long ago the replica was
  last known current; ``max_staleness`` bounds it (a read catches up first when
  the replica has not been confirmed current for longer);
* the **leader** (the one process holding the lease; ``role="leader"`` makes a
  process a candidate, and the others wait as standbys) takes everything pending
  in the inbox as one group, applies it with the kernel (each submission gets
  exactly the result it would get applied alone), and in one transaction deletes
  the inbox rows, writes the batch (with its result codes and which submission
  each part came from) and a ``results`` row per event, and checks its epoch.

Idempotency is the kernel's: an event id seen before returns its first result with
``duplicate=True`` (a different payload: ``exists_with_different_fields``), so
retrying a submission with the same ids always converges.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from typing import Any

import numpy as np

from allocator._group import GroupCommitter
from allocator._validate import readonly as _readonly
from allocator.events import CODES, EventKind, Events
from allocator.exceptions import (
    JournalError,
    JournalLockedError,
    LedgerBusyError,
    StorageError,
    ValidationError,
)
from allocator.journal import _pgstore
from allocator.journal._format import Row, genesis_hash
from allocator.journal._replica import Replica
from allocator.journal.durable import (
    DEFAULT_SNAPSHOT_EVERY,
    DurableLedger,
    open_network,
    open_pg_store,
)
from allocator.ledger import (
    DEFAULT_MAX_GROUP_EVENTS,
    DEFAULT_MAX_QUEUE_EVENTS,
    DEFAULT_TIMEOUT,
    NO_SHORTFALLS,
    ApplyResult,
    BaseLedger,
    EventResult,
    Ledger,
    Prepared,
)
from allocator.network import NetworkData

__all__ = ["DEFAULT_LEASE", "Leader", "SharedLedger", "open_shared"]

logger = logging.getLogger("allocator")

#: Seconds a leader's lease lasts without renewal before a standby ends its sessions.
DEFAULT_LEASE = 10.0
#: Seconds between polls of the journal when no notification arrives.
DEFAULT_POLL = 0.5
#: The most inbox rows a leader takes into one group.
DEFAULT_TAKE = 20_000
#: Batches of results kept in the ``results`` table behind the newest.
RESULTS_KEPT = 100_000

_PART = 5  # int64 words per part in a batch's ``parts``: sub, start, closed, size, error
_NKINDS = len(EventKind)


def _encode_parts(parts: list[tuple[int, int, int, int, int]]) -> bytes:
    return np.asarray(parts, dtype=np.int64).reshape(-1, _PART).tobytes()


def _decode_parts(blob: bytes | None) -> np.ndarray:
    if not blob:
        return np.zeros((0, _PART), dtype=np.int64)
    return np.frombuffer(blob, dtype=np.int64).reshape(-1, _PART)


# --------------------------------------------------------------------------- waiting
class _Waiter:
    """One submission waiting for its outcome (resolved by the follower thread)."""

    __slots__ = ("_lock", "done", "futures", "outcome", "payload", "size", "sub")

    def __init__(self, sub: int, payload: Any, size: int) -> None:
        self.sub = sub
        self.payload = payload
        self.size = size
        self.outcome: Any = None
        self.done = threading.Event()
        self.futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = []
        self._lock = threading.Lock()

    def resolve(self, outcome: Any, wake: dict[Any, list[Any]] | None = None) -> None:
        """Hand over the outcome. The asyncio futures waiting for it are set on their
        loops: at once, or, with ``wake``, collected per loop for :func:`_wake` (one
        wake-up of each loop for all the waiters a batch resolves)."""
        with self._lock:
            if self.done.is_set():
                return
            self.outcome = outcome
            self.done.set()
            futures, self.futures = self.futures, []
        for loop, fut in futures:
            if wake is None:
                _wake(loop, [(fut, outcome)])
            else:
                wake.setdefault(loop, []).append((fut, outcome))

    def future(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            if not self.done.is_set():
                self.futures.append((loop, fut))
                return fut
        _set_future(fut, self.outcome)
        return fut


def _wake(loop: asyncio.AbstractEventLoop, pairs: list[Any]) -> None:
    """Set ``(future, outcome)`` pairs on their loop, with one thread-safe call."""
    try:
        loop.call_soon_threadsafe(_set_futures, pairs)
    except RuntimeError:  # the loop was closed meanwhile
        pass


def _set_futures(pairs: list[Any]) -> None:
    for fut, outcome in pairs:
        _set_future(fut, outcome)


def _set_future(fut: asyncio.Future[Any], outcome: Any) -> None:
    if fut.done():
        return
    if isinstance(outcome, BaseException):
        fut.set_exception(outcome)
    else:
        fut.set_result(outcome)


def _outcome_of_rows(payload: Any, rows: list[tuple[Any, ...]]) -> Any:
    """A submission's outcome from its ``results`` rows ``(pos, id, code, dup, error)``."""
    rows = sorted(rows)
    errors = [r[4] for r in rows if r[4] is not None]
    if errors:
        return ValidationError(str(errors[0]), code="rejected_by_leader")
    ids = np.array([r[1] for r in rows], dtype=np.int64)
    codes = np.array([r[2] for r in rows], dtype=np.uint8)
    dup = np.array([r[3] for r in rows], dtype=np.bool_)
    if not isinstance(payload, Events):
        return EventResult(int(ids[0]), CODES[int(codes[0])], bool(dup[0]))
    counts = np.bincount(codes, minlength=len(CODES))
    return ApplyResult(
        ids=_readonly(ids),
        codes=_readonly(codes),
        duplicate=_readonly(dup),
        counts={CODES[c]: int(k) for c, k in enumerate(counts.tolist()) if k},
        shortfalls=NO_SHORTFALLS,
    )


def _inbox_columns(payload: Any) -> list[tuple[int, ...]]:
    """Rows ``(id, kind, sku, location, channel, qty, ref, expires_at, link)``."""
    if isinstance(payload, Events):
        cols = [np.asarray(getattr(payload, name)).tolist() for name in Events.FIELDS]
        return list(zip(*cols, strict=True))
    return [(*payload, False)]


_INBOX_TYPES = ("bigint", "int", "bigint", "smallint", *["bigint"] * 6, "boolean")


def _insert_sql(schema: str, cols: list[list[Any]]) -> tuple[str, tuple[Any, ...]]:
    """The statement inserting a group's inbox rows (columns ``sub, pos,
    INBOX_COLUMNS``) and notifying the leader. A column whose rows all hold one value
    (``pos``, ``kind``, ``qty``, ... of single reserves) is sent as that value, the
    others as arrays: fewer values for the driver to adapt."""
    names = ["sub", "pos", *_pgstore.INBOX_COLUMNS.split(", ")]
    select: list[str] = []
    scalars: list[Any] = []
    arrays: list[Any] = []
    for k, (col, typ) in enumerate(zip(cols, _INBOX_TYPES, strict=True)):
        if col.count(col[0]) == len(col):
            select.append(f"%s::{typ}")
            scalars.append(col[0])
        else:
            select.append(f"t.c{k}")
            arrays.append((k, typ, col))
    source = ""
    if arrays:
        unnest = ", ".join(f"%s::{typ}[]" for _, typ, _ in arrays)
        source = f" FROM unnest({unnest}) AS t({', '.join(f'c{k}' for k, _, _ in arrays)})"
    query = (
        f"WITH ins AS (INSERT INTO {schema}.inbox ({', '.join(names)})"
        f" SELECT {', '.join(select)}{source} RETURNING 1)"
        " SELECT pg_notify(%s, '') FROM (SELECT count(*) FROM ins) c"
    )
    return query, (*scalars, *(col for _, _, col in arrays), _pgstore.channel_name(schema, "inbox"))


# --------------------------------------------------------------------------- the client
class SharedLedger(BaseLedger):
    """A ledger shared through PostgreSQL; open one with :func:`open_shared`.

    Writes go to the journal's inbox and return once applied and durable; reads are
    answered by a local replica of the journal (see the module docstring).

    Attributes
    ----------
    url
        The journal (connection URL, without its password).
    role
        ``"client"``, ``"leader"`` (a client that is also a candidate for
        leadership) or ``"follower"`` (reads only).
    timeout
        Seconds a write waits for its outcome before :class:`LedgerBusyError`.
    max_staleness
        Seconds after which a read first catches up with the journal (None: never).
    """

    url: str
    role: str
    timeout: float
    poll: float
    max_staleness: float | None
    _url: str
    _schema: str
    _closed: bool
    _reader: Any  # PgStore
    _genesis: bytes
    _replica: Replica
    _rep_lock: Any  # threading.RLock
    _confirmed: float
    _lags: collections.deque[float]
    _waiters: dict[int, _Waiter]
    _wlock: threading.Lock
    _wake: threading.Event
    _need_full: bool
    _need_results: bool
    _inbox: Any
    _listen: Any
    _base: int
    _counter: int
    _committer: GroupCommitter | None
    _leader: Leader | None
    _thread: threading.Thread

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("open a SharedLedger with allocator.open_ledger(url, network, role=...)")

    @classmethod
    def _create(
        cls,
        url: str,
        network_data: NetworkData | None,
        *,
        role: str,
        timeout: float,
        poll: float,
        max_staleness: float | None,
        max_queue_events: int,
        max_group_events: int,
        leader_options: dict[str, Any],
    ) -> SharedLedger:
        self = cls.__new__(cls)
        self.role = role
        self.timeout = timeout
        self.poll = poll
        self.max_staleness = max_staleness
        self._closed = False
        self._reader = open_pg_store(
            url, network_data, readonly=False, lead=False, application="allocator follower"
        )
        self.url = self._reader.label
        self._url = url
        self._schema = self._reader.schema
        try:
            network, digest = open_network(self._reader, network_data)
            self.network = network
            self._genesis = genesis_hash(digest)
            self._replica = self._load_replica()
        except BaseException:
            self._reader.close()
            raise
        self._rep_lock = threading.RLock()
        self._confirmed = time.monotonic()
        self._lags = collections.deque(maxlen=100_000)
        self._waiters = {}
        self._wlock = threading.Lock()
        self._wake = threading.Event()
        self._need_full = False
        self._need_results = False
        self._inbox = None
        self._base = 0
        self._counter = 0
        self._committer = None
        self._leader = None
        if role != "follower":
            self._committer = GroupCommitter(
                self._insert_group,
                name="allocator-inbox",
                max_queue_events=max_queue_events,
                max_group_events=max_group_events,
                timeout=timeout,
            )
        self._listen = self._connect_listener()
        self._thread = threading.Thread(
            target=self._follow_loop, name="allocator-follower", daemon=True
        )
        self._thread.start()
        if role == "leader":
            self._leader = Leader(url, network, **leader_options)
            self._leader.start()
        return self

    # ------------------------------------------------------------ the view
    def _view(self) -> Ledger:
        if self.max_staleness is not None and self.staleness > self.max_staleness:
            try:
                self.refresh()
            except StorageError as exc:
                logger.warning("shared ledger %s: cannot catch up: %s", self.url, exc)
        return self._replica.ledger

    @property
    def seq(self) -> int:
        """The last batch the local replica applied."""
        return self._replica.seq

    @property
    def num_events(self) -> int:
        return self._replica.num_events

    @property
    def staleness(self) -> float:
        """Seconds since the replica was last known to be current (0 just after)."""
        return max(0.0, time.monotonic() - self._confirmed)

    def lags(self) -> np.ndarray:
        """Seconds from each followed batch's commit stamp (leader's clock) until the
        replica applied it, for the batches followed so far (newest 100,000)."""
        return np.array(self._lags, dtype=np.float64)

    def lease(self) -> tuple[int, str, float]:
        """The journal's leadership now: ``(epoch, holder, seconds)``, the current
        epoch, the ``host:pid`` of the leader ('' before the first) and the seconds
        since it last wrote a batch or renewed its lease."""
        try:
            with self._rep_lock:
                epoch, holder, _, age = self._reader.lease()
        except self._reader.errors as exc:
            raise StorageError(f"shared ledger {self.url}: cannot read the lease ({exc})") from exc
        return epoch, holder, age

    @property
    def leader(self) -> Leader | None:
        """This process's candidate (``role="leader"``), else None."""
        return self._leader

    # ------------------------------------------------------------ following
    def _load_replica(self) -> Replica:
        store = self._reader
        replica = Replica(self.network, self._genesis, store.stored_events())
        replica.load(store, verify="tail")
        return replica

    def _connect_listener(self) -> Any:
        conn = _pgstore.connect(self._reader.conninfo, application="allocator listener")
        conn.execute(f"LISTEN {_pgstore.channel_name(self._schema, 'batch')}")
        return conn

    def _follow_loop(self) -> None:
        backoff = 0.05
        while not self._closed:
            try:
                if self._listen is None or self._listen.closed or self._listen.broken:
                    self._listen = self._connect_listener()
                    self._need_full = self._need_results = True
                got = False
                for note in self._listen.notifies(timeout=self.poll, stop_after=1):
                    got = True
                    self._note(note.payload)
                if got:  # drain what else queued
                    for note in self._listen.notifies(timeout=0.0):
                        self._note(note.payload)
                if self._closed:
                    return
                self._catch_up(full=self._need_full or not got)
                backoff = 0.05
            except Exception as exc:  # connection lost, server restarting
                if self._closed:
                    return
                logger.warning("shared ledger %s: following paused: %s", self.url, exc)
                time.sleep(backoff)
                backoff = min(1.0, backoff * 2)

    def _note(self, payload: str) -> None:
        if payload == "s":
            self._need_full = True
        elif payload == "e":
            self._need_results = True

    def _catch_up(self, *, full: bool = False) -> int:
        """Apply the batches committed since; resolve the waiters they answer."""
        with self._rep_lock:
            rep = self._replica
            before = rep.seq
            if full:
                self._need_full = False
                moved = rep.follow(self._reader)
                if moved is None:  # compacted or pruned behind us
                    rep = self._load_replica()
                    self._replica = rep
                if moved != 0:
                    # the batches applied here (a new one may have committed since the
                    # last notification) did not resolve their waiters: the results
                    # table, written in each batch's transaction, does
                    self._resolve_by_results(list(self._waiters))
            store = self._reader
            snaps: dict[int, Any] = {}
            for row in store.rows(rep.seq + 1, parts=True):
                if not row.check(rep.hash):
                    raise JournalError(f"batch {row.seq}: hash chain broken")
                result = rep.replay_row(row, snaps)
                self._lags.append(max(0.0, (time.time_ns() - row.recorded_at) / 1e9))
                self._resolve_by_row(row, result)
            self._confirmed = time.monotonic()
            if self._need_results:
                self._need_results = False
                self._resolve_by_results(list(self._waiters))
            return rep.seq - before

    def _resolve_by_row(self, row: Row, result: ApplyResult) -> None:
        parts = _decode_parts(row.extra)
        if not parts.shape[0] or not self._waiters:
            return
        mine = parts[(parts[:, 0] >> 32) == (self._base >> 32)] if self._base else parts[:0]
        if not mine.shape[0]:
            return
        wake: dict[Any, list[Any]] = {}
        lists: tuple[list[Any], list[Any], list[Any]] | None = None
        plain = not result.shortfalls  # single events need no shortfall slicing
        try:
            for sub, start, closed, _size, error in mine.tolist():
                with self._wlock:
                    waiter = self._waiters.pop(int(sub), None)
                if waiter is None:
                    continue
                if error:
                    self._need_results = True
                    with self._wlock:
                        self._waiters[int(sub)] = waiter
                    continue
                if plain and not isinstance(waiter.payload, Events):
                    if lists is None:  # made once per batch, not once per waiter
                        lists = (
                            result.ids.tolist(),
                            result.codes.tolist(),
                            result.duplicate.tolist(),
                        )
                    ids, codes, dups = lists
                    outcome: Any = EventResult(ids[start], CODES[codes[start]], dups[start])
                else:
                    prepared = Prepared(
                        events=None,  # type: ignore[arg-type]
                        ids=result.ids,
                        auto_id=0,
                        assigned=0,
                        version=0,
                        parts=[(int(start), int(closed), waiter.payload)],
                        errors={},
                    )
                    outcome = prepared.split(result)[0]
                waiter.resolve(outcome, wake)
        finally:
            for loop, pairs in wake.items():
                _wake(loop, pairs)

    def _resolve_by_results(self, subs: list[int]) -> None:
        """Resolve waiters from the ``results`` table (errors, rebuilt replicas)."""
        if not subs:
            return
        rows = (
            self._reader._c()
            .execute(
                f"SELECT sub, pos, id, code, duplicate, error FROM {self._reader.q('results')}"
                " WHERE sub = ANY(%s)",
                (subs,),
            )
            .fetchall()
        )
        by_sub: dict[int, list[tuple[Any, ...]]] = {}
        for sub, pos, ident, code, dup, error in rows:
            by_sub.setdefault(int(sub), []).append((int(pos), int(ident), code, bool(dup), error))
        for sub, got in by_sub.items():
            with self._wlock:
                waiter = self._waiters.get(sub)
                if waiter is None or len(got) < waiter.size:
                    continue
                del self._waiters[sub]
            waiter.resolve(_outcome_of_rows(waiter.payload, got))

    def refresh(self) -> int:
        """Catch up with the journal now; returns the batches applied."""
        try:
            return self._catch_up(full=True)
        except self._reader.errors as exc:
            raise StorageError(
                f"shared ledger {self.url}: cannot read the journal ({exc})"
            ) from exc

    def sync(self, seq: int | None = None, timeout: float | None = None) -> int:
        """Wait until the replica has applied batch ``seq`` (default: the journal's
        newest batch now); returns the replica's batch."""
        if seq is None:
            seq = self._reader.last_seq()
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while self._replica.seq < seq:
            if time.monotonic() > deadline:
                raise LedgerBusyError(f"replica at batch {self._replica.seq}, not yet {seq}")
            self.refresh()
            if self._replica.seq < seq:
                time.sleep(0.005)
        return self._replica.seq

    # ------------------------------------------------------------ writing
    def _writable(self) -> GroupCommitter:
        if self._closed:
            raise JournalError(f"shared ledger {self.url} is closed")
        if self._committer is None:
            raise JournalError(f"shared ledger {self.url} is open as a follower (read-only)")
        return self._committer

    def _insert_group(self, parts: list[Any]) -> list[Any]:
        """The inbox thread: insert every submission of the group in one statement."""
        if self._inbox is None or self._inbox.closed or self._inbox.broken:
            try:
                self._inbox = _pgstore.connect(
                    self._reader.conninfo, application="allocator inbox", synchronous_commit="off"
                )
                if not self._base:
                    self._base = _pgstore.submission_base(self._inbox, self._schema)
            except self._reader.errors as exc:
                self._inbox = None
                err = StorageError(
                    f"shared ledger {self.url}: inbox unreachable ({exc}); nothing was "
                    "submitted, retry with the same ids"
                )
                return [err] * len(parts)
        waiters = []
        cols: list[list[Any]] = [[] for _ in range(11)]
        for payload in parts:
            self._counter = (self._counter + 1) & 0xFFFFFFFF
            sub = self._base | self._counter
            rows = _inbox_columns(payload)
            waiter = _Waiter(sub, payload, len(rows))
            waiters.append(waiter)
            for pos, row in enumerate(rows):
                cols[0].append(sub)
                cols[1].append(pos)
                for k, v in enumerate(row):
                    cols[2 + k].append(v)
        with self._wlock:
            for w in waiters:
                self._waiters[w.sub] = w
        s = self._schema
        query, args = _insert_sql(s, cols)
        try:
            self._inbox.execute(query, args)
        except self._reader.errors as exc:
            with self._wlock:
                for w in waiters:
                    self._waiters.pop(w.sub, None)
            err = StorageError(
                f"shared ledger {self.url}: submission failed ({exc}); it may or may not "
                "have been queued: retry with the same ids"
            )
            return [err] * len(parts)
        return waiters

    def _withdraw(self, waiter: _Waiter) -> Any:
        """After a time-out: take the submission back out of the inbox if it is still
        there (then it was never applied), else read its outcome."""
        with self._wlock:
            self._waiters.pop(waiter.sub, None)
        if waiter.done.is_set():
            return waiter.outcome
        try:
            conn = _pgstore.connect(self._reader.conninfo, application="allocator withdraw")
            try:
                deleted = conn.execute(
                    f"DELETE FROM {self._schema}.inbox WHERE sub = %s", (waiter.sub,)
                ).rowcount
                rows = conn.execute(
                    f"SELECT pos, id, code, duplicate, error FROM {self._schema}.results"
                    " WHERE sub = %s",
                    (waiter.sub,),
                ).fetchall()
            finally:
                conn.close()
        except self._reader.errors as exc:
            return StorageError(
                f"shared ledger {self.url}: no outcome within {self.timeout:g} s and the "
                f"journal is unreachable ({exc}); retry with the same ids"
            )
        if waiter.done.is_set():
            return waiter.outcome
        if len(rows) >= waiter.size:
            return _outcome_of_rows(waiter.payload, [tuple(r) for r in rows])
        state = "withdrawn from the inbox" if deleted else "lost before a leader took it"
        return LedgerBusyError(
            f"not applied within {self.timeout:g} s (no leader applied it; {state}); nothing "
            "was applied, retry with the same ids"
        )

    def _wait(self, waiter: Any, deadline: float) -> Any:
        if isinstance(waiter, BaseException):
            raise waiter
        if not waiter.done.wait(max(0.0, deadline - time.monotonic())):
            outcome = self._withdraw(waiter)
        else:
            outcome = waiter.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def _wait_async(self, waiter: Any, deadline: float) -> Any:
        if isinstance(waiter, BaseException):
            raise waiter
        fut = waiter.future(asyncio.get_running_loop())
        try:
            outcome = await asyncio.wait_for(fut, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            loop = asyncio.get_running_loop()
            outcome = await loop.run_in_executor(None, self._withdraw, waiter)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def apply(self, events: Events) -> ApplyResult:
        """Submit a batch; returns its results once applied by the leader and durable.

        The batch is one submission: its linked groups stay together, and its
        results are exactly those it would get applied alone. After ``timeout``
        seconds without an outcome the submission is withdrawn from the inbox if no
        leader took it (:class:`LedgerBusyError`, nothing applied); retrying with
        the same ids is always safe.
        """
        committer = self._writable()
        if not isinstance(events, Events):
            raise TypeError(f"apply() takes Events, got {type(events).__name__}")
        events.check_network(self.network)
        deadline = time.monotonic() + self.timeout
        waiter = committer.submit(events, max(1, len(events)))
        return self._wait(waiter, deadline)  # type: ignore[no-any-return]

    async def apply_async(self, events: Events) -> ApplyResult:
        """:meth:`apply` for asyncio code: never blocks the event loop."""
        committer = self._writable()
        if not isinstance(events, Events):
            raise TypeError(f"apply_async() takes Events, got {type(events).__name__}")
        events.check_network(self.network)
        deadline = time.monotonic() + self.timeout
        waiter = await committer.submit_async(events, max(1, len(events)))
        return await self._wait_async(waiter, deadline)  # type: ignore[no-any-return]

    def _submit_one(self, event: tuple[int, ...]) -> EventResult:
        committer = self._writable()
        self._replica.ledger.check_one(event)  # type: ignore[arg-type]
        deadline = time.monotonic() + self.timeout
        return self._wait(committer.submit(event, 1), deadline)  # type: ignore[no-any-return]

    async def _submit_one_async(self, event: tuple[int, ...]) -> EventResult:
        committer = self._writable()
        self._replica.ledger.check_one(event)  # type: ignore[arg-type]
        deadline = time.monotonic() + self.timeout
        waiter = await committer.submit_async(event, 1)
        return await self._wait_async(waiter, deadline)  # type: ignore[no-any-return]

    # ------------------------------------------------------------ audit
    def read(self, first: int = 1, last: int | None = None) -> Any:
        """Batches ``first..last`` of the journal read back (see ``DurableLedger.read``)."""
        from allocator.journal.audit import read_slice

        with self._rep_lock:
            return read_slice(self._reader, first, last)

    def verify(self) -> Any:
        """A full scrub of the journal (see :func:`~allocator.journal.verify_journal`)."""
        from allocator.journal.audit import verify_journal

        return verify_journal(self._url)

    # ------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Stop following, stop the candidate (a standby takes over), close the
        connections (idempotent)."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        if self._leader is not None:
            self._leader.stop()
        committer, self._committer = self._committer, None
        if committer is not None:
            committer.close()
        self._thread.join(timeout=self.poll + 5)
        for conn in (self._listen, self._inbox):
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass
        with self._wlock:
            waiters, self._waiters = list(self._waiters.values()), {}
        for w in waiters:
            w.resolve(JournalError(f"shared ledger {self.url} was closed"))
        self._reader.close()

    def __enter__(self) -> SharedLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        rep = getattr(self, "_replica", None)
        seq = rep.seq if rep is not None else 0
        return (
            f"SharedLedger({getattr(self, 'url', '?')}, {getattr(self, 'role', '?')}, batch {seq})"
        )


# --------------------------------------------------------------------------- the leader
class Leader:
    """A candidate for leadership of a shared journal, on its own thread.

    While another process leads, it follows the journal (a standby). When it takes
    the lease (the advisory lock is free: the leader closed or died; or the
    leader's lease lapsed and its sessions were ended), it increments the epoch,
    catches up, and applies the inbox until it is deposed or closed.

    Attributes
    ----------
    epoch
        The epoch while leading, else None.
    batches
        Batches this candidate wrote while leading.
    """

    def __init__(
        self,
        url: str,
        network: NetworkData,
        *,
        lease: float = DEFAULT_LEASE,
        poll: float = DEFAULT_POLL,
        take: int = DEFAULT_TAKE,
        snapshot_every: int | None = DEFAULT_SNAPSHOT_EVERY,
        horizon: int | None = None,
    ) -> None:
        self.url = url
        self.network = network
        self.lease = lease
        self.poll = poll
        self.take = take
        self.snapshot_every = snapshot_every
        self.horizon = horizon
        self.epoch: int | None = None
        self.batches = 0
        self.leading = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="allocator-leader", daemon=True)
        self._durable: DurableLedger | None = None
        self._store: Any = None
        self._replica: Replica | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop leading (or campaigning) and release the lease."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)

    # ------------------------------------------------------------ the thread
    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            try:
                if self._campaign():
                    self._lead()
                backoff = 0.05
            except Exception as exc:
                logger.warning("leader %s: %s", self.url, exc)
                self._stop.wait(backoff)
                backoff = min(1.0, backoff * 2)
            finally:
                self._step_down()

    def _open_store(self) -> Any:
        store = self._store
        if store is None:
            store = open_pg_store(
                self.url, self.network, readonly=False, lead=False, application="allocator leader"
            )
            self._store = store
        return store

    def _campaign(self) -> bool:
        """Follow the journal until the lease is ours; False when stopped."""
        store = self._open_store()
        if self._replica is None:
            _, digest = open_network(store, self.network)
            replica = Replica(self.network, genesis_hash(digest), store.stored_events())
            replica.load(store, verify="tail")
            self._replica = replica
        while not self._stop.is_set():
            self._follow(store)
            try:
                self.epoch = store.acquire(_pgstore.holder_name(), wait=min(self.poll, 0.25))
                break
            except JournalLockedError:
                epoch, holder, pids, age = store.lease()
                if age > self.lease and pids:
                    logger.warning(
                        "leader %s: the lease of %s (epoch %d) lapsed %.1f s ago; ending its "
                        "sessions",
                        self.url,
                        holder,
                        epoch,
                        age - self.lease,
                    )
                    store.terminate(pids)
        else:
            return False
        self._follow(store)  # nobody else can write now: this reaches the end
        assert self._replica is not None
        self._durable = DurableLedger._create(
            store,
            self._replica,
            snapshot_every=self.snapshot_every,
            horizon=self.horizon,
            timeout=DEFAULT_TIMEOUT,
            max_queue_events=DEFAULT_MAX_QUEUE_EVENTS,
            max_group_events=DEFAULT_MAX_GROUP_EVENTS,
        )
        logger.info(
            "leader %s: leading at epoch %d from batch %d", self.url, self.epoch, self._replica.seq
        )
        self.leading.set()
        return True

    def _follow(self, store: Any) -> None:
        assert self._replica is not None
        moved = self._replica.follow(store)
        if moved is None:
            replica = Replica(self.network, self._replica.genesis, store.stored_events())
            replica.load(store, verify="tail")
            self._replica = replica

    def _step_down(self) -> None:
        self.leading.clear()
        self.epoch = None
        durable, self._durable = self._durable, None
        if durable is not None:
            self._replica = durable._replica  # the state it reached (restored if need be)
            if durable._failed is not None:
                self._replica = None
        store = self._store
        if store is not None:
            store.rollback()
            store.release()
            if self._stop.is_set() or store.conn is None or store.conn.broken:
                store.close()
                self._store = None

    def _lead(self) -> None:
        durable = self._durable
        assert durable is not None
        store = durable.store
        listen = _pgstore.connect(store.conninfo, application="allocator leader inbox")
        try:
            listen.execute(f"LISTEN {_pgstore.channel_name(store.schema, 'inbox')}")
            renewed = time.monotonic()
            while not self._stop.is_set():
                took = self._cycle(durable, store)
                now = time.monotonic()
                if took:
                    renewed = now  # the batch transaction renewed the lease
                    continue
                if now - renewed > self.lease / 3:
                    if not store.renew():
                        raise JournalLockedError(f"{self.url}: deposed while idle")
                    renewed = now
                for _ in listen.notifies(timeout=self.poll, stop_after=1):
                    pass
                for _ in listen.notifies(timeout=0.0):  # drain: one cycle takes them all
                    pass
        finally:
            listen.close()

    def _cycle(self, durable: DurableLedger, store: Any) -> int:
        """Take the pending inbox, apply and journal it; returns the events taken."""
        rows = store.take(  # an empty inbox costs no write
            f"DELETE FROM {store.q('inbox')} WHERE sub IN (SELECT sub FROM "
            f"{store.q('inbox')} ORDER BY arrival LIMIT %s) RETURNING sub, pos, arrival, "
            f"{_pgstore.INBOX_COLUMNS}",
            (self.take,),
        )
        conn = store.conn
        if not rows:
            store.rollback()
            return 0
        subs, parts, rejected = self._parts(durable, rows)
        seq_now = [durable.seq]

        def attach(prepared: Prepared, outcomes: list[Any], row: Row) -> Any:
            seq_now[0] = row.seq
            blob = []
            for i, (start, closed, part) in enumerate(prepared.parts):
                size = len(part) if isinstance(part, Events) else 1
                blob.append((subs[i], start, closed, size, int(i in prepared.errors)))
            row.extra = _encode_parts(blob)
            return lambda c: self._write_results(store, c, subs, outcomes, rejected, row.seq)

        try:
            outcomes = durable.commit_group(parts, attach)
            if store.in_transaction():  # nothing was journaled: refusals and empty batches
                store.begin_write()  # still only under the current epoch
                self._write_results(store, conn, subs, outcomes, rejected, durable.seq)
                conn.execute("COMMIT")
        except BaseException:
            store.rollback()
            raise
        self.batches += 1
        if self.batches % 1000 == 0:
            conn.execute(
                f"DELETE FROM {store.q('results')} WHERE seq < %s", (durable.seq - RESULTS_KEPT,)
            )
        return len(rows)

    def _parts(
        self, durable: DurableLedger, rows: list[tuple[Any, ...]]
    ) -> tuple[list[int], list[Any], dict[int, tuple[list[Any], str]]]:
        """Inbox rows -> submissions in arrival order: ``(subs, payloads, rejected)``.

        A submission whose rows break the batch rules (anyone can INSERT) is left
        out and answered with its error.
        """
        groups: dict[int, list[tuple[Any, ...]]] = {}
        for r in rows:
            groups.setdefault(int(r[0]), []).append(r)
        order = sorted(groups, key=lambda s: min(r[2] for r in groups[s]))
        subs: list[int] = []
        parts: list[Any] = []
        rejected: dict[int, tuple[list[Any], str]] = {}
        led = durable._view()
        for sub in order:
            got = sorted(groups[sub], key=lambda r: r[1])
            try:
                if [r[1] for r in got] != list(range(len(got))):
                    raise ValidationError(
                        "positions of the submission are not 0, 1, 2, ...", field="pos"
                    )
                if len(got) == 1 and not got[0][11]:
                    r = got[0]
                    event = tuple(int(v) for v in r[3:11])
                    if not 0 <= event[1] < _NKINDS:
                        raise ValidationError(
                            f"unknown event kind {event[1]}",
                            field="kind",
                            code="unknown_event_type",
                        )
                    led.check_one(event)  # type: ignore[arg-type]
                    payload: Any = event
                else:
                    cols = list(zip(*[r[3:12] for r in got], strict=True))
                    payload = Events.from_arrays(
                        id=np.array(cols[0], dtype=np.int64),
                        kind=np.array(cols[1], dtype=np.int64),
                        sku=np.array(cols[2], dtype=np.int64),
                        location=np.array(cols[3], dtype=np.int64),
                        channel=np.array(cols[4], dtype=np.int64),
                        qty=np.array(cols[5], dtype=np.int64),
                        ref=np.array(cols[6], dtype=np.int64),
                        expires_at=np.array(cols[7], dtype=np.int64),
                        link=np.array(cols[8], dtype=np.bool_),
                        network=self.network,
                    )
            except ValidationError as exc:
                rejected[sub] = ([int(r[3]) for r in got], str(exc))
                continue
            subs.append(sub)
            parts.append(payload)
        return subs, parts, rejected

    def _write_results(
        self,
        store: Any,
        conn: Any,
        subs: list[int],
        outcomes: list[Any],
        rejected: dict[int, tuple[list[Any], str]],
        seq: int,
    ) -> None:
        """One ``results`` row per submitted event, in the batch's transaction."""
        c_sub: list[int] = []
        c_pos: list[int] = []
        c_id: list[int] = []
        c_code: list[int | None] = []
        c_dup: list[bool] = []
        c_err: list[str | None] = []
        for sub, outcome in zip(subs, outcomes, strict=True):
            if isinstance(outcome, EventResult):
                c_sub.append(sub)
                c_pos.append(0)
                c_id.append(outcome.id)
                c_code.append(int(outcome.code))
                c_dup.append(outcome.duplicate)
                c_err.append(None)
            elif isinstance(outcome, ApplyResult):
                n = len(outcome)
                c_sub.extend([sub] * n)
                c_pos.extend(range(n))
                c_id.extend(outcome.ids.tolist())
                c_code.extend(outcome.codes.tolist())
                c_dup.extend(outcome.duplicate.tolist())
                c_err.extend([None] * n)
            else:
                rejected[sub] = ([0], str(outcome))
        for sub, (ids, message) in rejected.items():
            n = len(ids)
            c_sub.extend([sub] * n)
            c_pos.extend(range(n))
            c_id.extend(ids)
            c_code.extend([None] * n)
            c_dup.extend([False] * n)
            c_err.extend([message] * n)
        if not c_sub:
            return
        conn.execute(
            f"INSERT INTO {store.q('results')} (sub, pos, id, code, duplicate, seq, error)"
            " SELECT s, p, i, c, d, %s, e FROM unnest(%s::bigint[], %s::int[], %s::bigint[],"
            " %s::smallint[], %s::boolean[], %s::text[]) AS t(s, p, i, c, d, e)"
            " ON CONFLICT (sub, pos) DO NOTHING",
            (seq, c_sub, c_pos, c_id, c_code, c_dup, c_err),
        )
        if rejected:
            conn.execute(
                "SELECT pg_notify(%s, 'e')", (_pgstore.channel_name(store.schema, "batch"),)
            )


# --------------------------------------------------------------------------- opening
def open_shared(
    url: str,
    network_data: NetworkData | None = None,
    *,
    role: str = "client",
    timeout: float = DEFAULT_TIMEOUT,
    poll: float = DEFAULT_POLL,
    max_staleness: float | None = None,
    lease: float = DEFAULT_LEASE,
    snapshot_every: int | None = DEFAULT_SNAPSHOT_EVERY,
    horizon: int | None = None,
    max_queue_events: int = DEFAULT_MAX_QUEUE_EVENTS,
    max_group_events: int = DEFAULT_MAX_GROUP_EVENTS,
) -> SharedLedger:
    """Open a journal shared through PostgreSQL as a :class:`SharedLedger`.

    Parameters
    ----------
    url
        ``postgresql://user@host:port/db?schema=NAME`` (``schema`` defaults to
        ``allocator``). The journal is created, with ``network_data``, when absent.
    network_data
        Required to create the journal; optional afterwards, where it must equal
        the stored one.
    role
        ``"client"`` (submit and read), ``"leader"`` (also a candidate: leads while
        it holds the lease, a standby otherwise) or ``"follower"`` (read only).
    timeout
        Seconds a write waits for its outcome. After it, the submission is withdrawn
        if no leader took it (:class:`~allocator.LedgerBusyError`).
    poll
        Seconds between polls of the journal when no notification arrives.
    max_staleness
        Seconds after which a read first catches up (None: reads never wait).
    lease
        Seconds a leader's lease lasts without renewal; a standby then ends the
        silent leader's sessions and takes over (a leader that exits or is killed
        frees its lock at once, so failover does not wait for the lease).
    snapshot_every, horizon
        The leader's snapshot interval and compaction horizon, as for
        :func:`~allocator.journal.durable.open_durable`.
    max_queue_events, max_group_events
        Bounds of this process's submission queue and of one group insert.
    """
    if role not in ("client", "leader", "follower"):
        raise ValidationError(
            f"expected 'client', 'leader' or 'follower', got {role!r}", field="role"
        )
    for name, value in (("timeout", timeout), ("poll", poll), ("lease", lease)):
        if not isinstance(value, int | float) or not value > 0:
            raise ValidationError(f"expected seconds > 0, got {value!r}", field=name)
    if network_data is not None and not isinstance(network_data, NetworkData):
        raise TypeError("network_data must be a NetworkData (Network().build())")
    return SharedLedger._create(
        url,
        network_data,
        role=role,
        timeout=float(timeout),
        poll=float(poll),
        max_staleness=max_staleness,
        max_queue_events=max_queue_events,
        max_group_events=max_group_events,
        leader_options={
            "lease": float(lease),
            "poll": float(poll),
            "snapshot_every": snapshot_every,
            "horizon": horizon,
        },
    )
