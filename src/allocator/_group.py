"""Group commit: concurrent submissions queue and are served as one group.

A :class:`GroupCommitter` owns one daemon thread. Callers (threads or coroutines)
put a :class:`Submission` in a bounded FIFO queue and wait; the thread takes
everything queued (up to ``max_group_events``) as one group and hands it to the
owner's ``commit`` function, which applies the group with one kernel call (and, for
a durable ledger, one journal transaction with one fsync) and returns one outcome
per submission: its result, or the exception meant for that caller alone.

Guarantees:

* groups are served one at a time, submissions in queue (FIFO) order;
* a submission is never split across groups, so a caller's linked group is never
  interleaved with anyone else's events;
* a caller that is not taken into a group within ``timeout`` seconds gets
  :class:`~allocator.exceptions.LedgerBusyError` and its submission is withdrawn
  (never applied), so retrying it, with the same ids, is safe;
* an asyncio caller never blocks its event loop: it awaits a future that the thread
  resolves with ``loop.call_soon_threadsafe`` (one call per loop per group).

Deadlines are checked where it is cheap: by the thread as it takes a group, by a
synchronous caller's own timed wait, and, for coroutines, by one sweeper per event
loop that runs while that loop has submissions queued (no timer per call).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from allocator.exceptions import LedgerBusyError

__all__ = ["GroupCommitter", "Submission"]

logger = logging.getLogger("allocator")

_monotonic = time.monotonic


class Submission:
    """One caller's work: ``payload`` (opaque to the committer) of ``size`` events."""

    __slots__ = (
        "_done",
        "cancelled",
        "deadline",
        "error",
        "fut",
        "loop",
        "payload",
        "result",
        "size",
        "taken",
    )

    def __init__(self, payload: Any, size: int, deadline: float) -> None:
        self.payload = payload
        self.size = size
        self.deadline = deadline
        self.taken = False
        self.cancelled = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.fut: asyncio.Future[Any] | None = None
        self._done: threading.Lock | None = None


def _deliver(subs: Sequence[Submission]) -> None:
    """Resolve the asyncio futures of ``subs`` (runs on their event loop)."""
    for sub in subs:
        fut = sub.fut
        if fut is None or fut.done():
            continue
        if sub.error is not None:
            fut.set_exception(sub.error)
        else:
            fut.set_result(sub.result)


def _busy(timeout: float, queued: int) -> LedgerBusyError:
    return LedgerBusyError(
        f"not served within {timeout:g} s ({queued} submissions queued); nothing was "
        "applied, retry with the same ids"
    )


class GroupCommitter:
    """Serve submissions in groups on one thread; see the module docstring.

    Parameters
    ----------
    commit
        ``commit(payloads) -> outcomes``: applies the group and returns, per payload,
        a result or an exception instance (raised to that caller alone). An
        exception escaping ``commit`` is raised to every caller of the group.
    name
        Thread name.
    max_queue_events
        The most events that may wait in the queue; beyond it callers wait for room.
    max_group_events
        The most events taken into one group (a larger single submission is taken
        alone).
    timeout
        Seconds a caller waits for room and for its turn before
        :class:`~allocator.exceptions.LedgerBusyError`.
    """

    def __init__(
        self,
        commit: Callable[[list[Any]], list[Any]],
        *,
        name: str,
        max_queue_events: int,
        max_group_events: int,
        timeout: float,
    ) -> None:
        self._commit = commit
        self._name = name
        self.max_queue_events = max_queue_events
        self.max_group_events = max_group_events
        self.timeout = timeout
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Submission] = deque()
        self._queued_events = 0
        self._room_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._waiting: dict[asyncio.AbstractEventLoop, set[Submission]] = {}
        self._thread: threading.Thread | None = None
        self._closed = False
        self.groups = 0  # groups served (a figure for benchmarks and tests)
        self.submissions = 0

    # ------------------------------------------------------------------ callers
    def submit(self, payload: Any, size: int) -> Any:
        """Queue ``payload`` and wait for its outcome (raises the caller's exception)."""
        deadline = _monotonic() + self.timeout
        sub = Submission(payload, size, deadline)
        done = threading.Lock()
        done.acquire()
        sub._done = done
        with self._cond:
            self._wait_room(size, deadline)
            self._enqueue(sub)
        if not done.acquire(timeout=max(deadline - _monotonic(), 0.0)):
            with self._cond:
                if not (sub.taken or sub.cancelled):
                    self._withdraw(sub)
                    raise _busy(self.timeout, len(self._queue))
            done.acquire()  # taken (its group finishes in bounded time) or expired
        if sub.error is not None:
            raise sub.error
        return sub.result

    async def submit_async(self, payload: Any, size: int) -> Any:
        """Queue ``payload`` and await its outcome without blocking the event loop."""
        loop = asyncio.get_running_loop()
        deadline = _monotonic() + self.timeout
        sub = Submission(payload, size, deadline)
        sub.loop = loop
        fut: asyncio.Future[Any] = loop.create_future()
        sub.fut = fut
        while True:
            with self._cond:
                if self._closed:
                    raise RuntimeError(f"{self._name} is closed")
                if self._has_room(size):
                    self._enqueue(sub)
                    waiting = self._waiting.get(loop)
                    if waiting is None:
                        waiting = self._waiting[loop] = set()
                        loop.call_later(self._sweep_every(), self._sweep, loop)
                    waiting.add(sub)
                    break
                room: asyncio.Future[None] = loop.create_future()
                self._room_waiters.append((loop, room))
            try:
                await asyncio.wait_for(room, timeout=max(deadline - _monotonic(), 0.0))
            except TimeoutError:
                raise LedgerBusyError(
                    f"no room in the queue within {self.timeout:g} s; nothing was applied, "
                    "retry with the same ids"
                ) from None
        return await fut

    def _sweep_every(self) -> float:
        return min(max(self.timeout / 4, 0.01), 1.0)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """On ``loop``: fail its submissions that outlived their deadline untaken."""
        now = _monotonic()
        expired = []
        with self._cond:
            waiting = self._waiting.get(loop, set())
            for sub in list(waiting):
                if sub.taken or sub.cancelled or (sub.fut is not None and sub.fut.done()):
                    waiting.discard(sub)
                elif sub.deadline <= now:
                    self._withdraw(sub)
                    waiting.discard(sub)
                    expired.append(sub)
            if not waiting:
                self._waiting.pop(loop, None)
            else:
                loop.call_later(self._sweep_every(), self._sweep, loop)
            queued = len(self._queue)
        for sub in expired:
            if sub.fut is not None and not sub.fut.done():
                sub.fut.set_exception(_busy(self.timeout, queued))

    def _withdraw(self, sub: Submission) -> None:
        """Mark an untaken submission cancelled (call with ``_cond`` held)."""
        sub.cancelled = True
        self._queued_events -= sub.size
        self._cond.notify_all()

    def _has_room(self, size: int) -> bool:
        return self._queued_events == 0 or self._queued_events + size <= self.max_queue_events

    def _wait_room(self, size: int, deadline: float) -> None:
        while not self._has_room(size):
            if self._closed:
                raise RuntimeError(f"{self._name} is closed")
            remaining = deadline - _monotonic()
            if remaining <= 0 or not self._cond.wait(remaining):
                if not self._has_room(size):
                    raise LedgerBusyError(
                        f"queue full ({self._queued_events} events waiting) for "
                        f"{self.timeout:g} s; nothing was applied, retry with the same ids"
                    )

    def _enqueue(self, sub: Submission) -> None:
        if self._closed:
            raise RuntimeError(f"{self._name} is closed")
        self._queue.append(sub)
        self._queued_events += sub.size
        self.submissions += 1
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self._cond.notify_all()

    # ------------------------------------------------------------------ the thread
    def _take(self) -> tuple[list[Submission], list[Submission]] | None:
        """The next group, and the submissions that expired before it took them."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            now = _monotonic()
            group: list[Submission] = []
            expired: list[Submission] = []
            events = 0
            while self._queue:
                sub = self._queue[0]
                if sub.cancelled:
                    self._queue.popleft()
                    continue
                if sub.deadline <= now:
                    self._queue.popleft()
                    self._withdraw(sub)
                    sub.error = _busy(self.timeout, len(self._queue))
                    expired.append(sub)
                    continue
                if group and events + sub.size > self.max_group_events:
                    break
                self._queue.popleft()
                sub.taken = True
                group.append(sub)
                events += sub.size
            self._queued_events -= events
            self._cond.notify_all()
            waiters, self._room_waiters = self._room_waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_set_none, fut)
        return group, expired

    def _run(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            group, expired = taken
            if group:
                try:
                    outcomes = self._commit([s.payload for s in group])
                except BaseException as exc:  # every caller of the group learns of it
                    logger.debug("%s: group failed: %r", self._name, exc)
                    outcomes = [exc] * len(group)
                self.groups += 1
                for sub, outcome in zip(group, outcomes, strict=True):
                    if isinstance(outcome, BaseException):
                        sub.error = outcome
                    else:
                        sub.result = outcome
            self._wake([*expired, *group])

    @staticmethod
    def _wake(subs: list[Submission]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Submission]] = {}
        for sub in subs:
            if sub.loop is not None:
                by_loop.setdefault(sub.loop, []).append(sub)
            elif sub._done is not None:
                sub._done.release()
        for loop, batch in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, batch)
            except RuntimeError:  # the loop was closed meanwhile
                pass

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Serve what is queued, then stop the thread (idempotent)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    @property
    def closed(self) -> bool:
        return self._closed

    def on_thread(self) -> bool:
        """True when called from the committer's own thread (inside ``commit``)."""
        return threading.current_thread() is self._thread


def _set_none(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
