"""Private numba kernels. Kernels take arrays and scalars, never objects.

Every kernel is compiled through :func:`jit`, which holds the numba flags in one
place: ``nogil`` so batch jobs can run kernels on threads, and ``cache`` so a
process does not pay the compile time again. Caching is switched off, with a log
message, when no writable cache location exists (a read-only install with a
read-only home directory); set ``ALLOCATOR_NUMBA_CACHE=0`` to disable it outright.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import numba

logger = logging.getLogger("allocator")

_CACHE = os.environ.get("ALLOCATOR_NUMBA_CACHE", "1") != "0"


def jit(func: Callable[..., Any] | None = None, **flags: Any) -> Any:
    """Compile ``func`` with the library's numba flags (``nopython``, ``nogil``, ``cache``)."""

    def wrap(f: Callable[..., Any]) -> Any:
        options = {"nogil": True, "cache": _CACHE, "error_model": "numpy", **flags}
        try:
            return numba.njit(**options)(f)
        except RuntimeError as exc:  # no cache locator: read-only install
            if not options.get("cache"):
                raise
            logger.info(
                "numba cache unavailable for %s (%s); compiling without it", f.__qualname__, exc
            )
            options["cache"] = False
            return numba.njit(**options)(f)

    return wrap(func) if func is not None else wrap
