"""Private numba kernels. Kernels take arrays, scalars and named tuples of them
(bundles such as :class:`allocator._kernels.sourcing.Stock`), never objects.

Every kernel is compiled through :func:`jit`, which holds the numba flags in one
place: ``nogil`` so batch jobs can run kernels on threads, and ``cache`` so a
process does not pay the compile time again. Caching is switched off, with a log
message, when no writable cache location exists (a read-only install with a
read-only home directory); set ``ALLOCATOR_NUMBA_CACHE=0`` to disable it outright.

:func:`jit` also keeps the book of what compiled: every kernel it made is listed in
:data:`KERNELS`, and each compile (a cache miss, not a cache load) is recorded in
:data:`COMPILE_LOG` with its own time, excluding the kernels it compiled in turn. The
first compile in a process logs one line, ``compiling kernels, first use only``, on
the ``allocator`` logger, so a long first call does not stay silent.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba
from numba.core import event

logger = logging.getLogger("allocator")

_CACHE = os.environ.get("ALLOCATOR_NUMBA_CACHE", "1") != "0"

#: Kernels compiled without the cache because no cache location was writable.
_UNCACHED: list[str] = []

#: Every kernel made by :func:`jit`, in definition order (numba dispatchers).
KERNELS: list[Any] = []


@dataclass(frozen=True)
class Compiled:
    """One compile of one kernel for one signature."""

    #: ``module.function`` below ``allocator._kernels`` (for example ``ledger.apply_batch``).
    name: str
    #: The argument types, as numba spells them.
    signature: str
    #: Seconds spent on this kernel alone (typing, optimising and code generation),
    #: excluding other library kernels it compiled as callees.
    seconds: float
    #: Seconds including those callees.
    inclusive_seconds: float
    #: CPU seconds of the process spent on this kernel alone (steadier than wall
    #: seconds on a busy machine).
    cpu_seconds: float = 0.0


def kernel_name(dispatcher: Any) -> str:
    """``module.function`` of a kernel, relative to ``allocator._kernels``."""
    module = dispatcher.py_func.__module__.removeprefix(f"{__name__}.")
    return f"{module}.{dispatcher.py_func.__qualname__}"


class _CompileLog(event.Listener):
    """Listens to numba's ``numba:compile`` events (fired on cache misses only)."""

    def __init__(self) -> None:
        self.records: list[Compiled] = []
        self.announced = False
        self._local = threading.local()

    def _stack(self) -> list[list[Any]]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def on_start(self, event: Any) -> None:
        dispatcher = event.data["dispatcher"]
        mine = getattr(dispatcher, "py_func", None) is not None and (
            dispatcher.py_func.__module__.startswith(f"{__name__}.")
        )
        if mine and not self.announced:
            self.announced = True
            if _CACHE and not _UNCACHED:
                logger.warning(
                    "compiling kernels, first use only (later processes load them from "
                    "numba's cache; `allocator warmup` compiles them ahead of time)"
                )
            else:
                logger.warning(
                    "compiling kernels, first use only in this process (without numba's "
                    "cache every process compiles them again)"
                )
        self._stack().append(
            [
                time.perf_counter(),
                0.0,
                dispatcher,
                mine,
                event.data["args"],
                time.process_time(),
                0.0,
            ]
        )

    def on_end(self, event: Any) -> None:
        stack = self._stack()
        if not stack:  # pragma: no cover - a listener installed mid-compile
            return
        start, callees, dispatcher, mine, args, cpu_start, cpu_callees = stack.pop()
        total = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        if not mine:
            return
        if stack:
            stack[-1][1] += total
            stack[-1][6] += cpu
        # (no check of event.is_failed: numba reports every compile as failed; a
        # compile that really fails raises to the caller anyway)
        self.records.append(
            Compiled(
                name=kernel_name(dispatcher),
                signature=", ".join(str(a) for a in args),
                seconds=total - callees,
                inclusive_seconds=total,
                cpu_seconds=cpu - cpu_callees,
            )
        )


_LOG = _CompileLog()
event.register("numba:compile", _LOG)

#: Every compile in this process, in the order they finished.
COMPILE_LOG: list[Compiled] = _LOG.records


def cache_misses() -> int:
    """Signatures compiled (not loaded from the cache) so far in this process."""
    return sum(sum(k.stats.cache_misses.values()) for k in KERNELS)


def jit(func: Callable[..., Any] | None = None, **flags: Any) -> Any:
    """Compile ``func`` with the library's numba flags (``nopython``, ``nogil``, ``cache``).

    Notes
    -----
    A ``parallel=True`` kernel starts numba's thread pool when it is defined. Numba
    starts the pool when it compiles or loads a parallel function through its own
    dispatcher, but not when a cached *caller* is loaded from the cache and calls the
    parallel function's code directly; that caller would then jump into a pool that
    was never started (a segfault, calling address 0). Starting the pool at
    definition covers every caller: any code that calls the kernel imports its module.
    """

    def wrap(f: Callable[..., Any]) -> Any:
        options = {"nogil": True, "cache": _CACHE, "error_model": "numpy", **flags}
        if options.get("parallel"):
            numba.get_num_threads()  # starts the thread pool (see Notes)
        try:
            dispatcher = numba.njit(**options)(f)
        except RuntimeError as exc:  # no cache locator: read-only install
            if not options.get("cache"):
                raise
            logger.info(
                "numba cache unavailable for %s (%s); compiling without it", f.__qualname__, exc
            )
            options["cache"] = False
            _UNCACHED.append(f.__qualname__)
            dispatcher = numba.njit(**options)(f)
        KERNELS.append(dispatcher)
        return dispatcher

    return wrap(func) if func is not None else wrap
