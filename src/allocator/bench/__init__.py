"""Benchmark harness behind ``allocator bench NAME``.

Each module in this package is one benchmark target. It defines

* ``DESCRIPTION``: one line for ``--help``;
* ``add_arguments(parser)``: its options (``--json`` is added for every target);
* ``run(args) -> dict``: runs the benchmark and returns the figures, each beside
  its baseline measured in the same run, with JIT compile time reported apart.

``allocator bench NAME`` prints a table, or one JSON object with ``--json``.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable
from typing import Any

__all__ = ["median_time", "targets"]


def targets() -> dict[str, Any]:
    """Benchmark modules by name."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            found[info.name] = importlib.import_module(f"{__name__}.{info.name}")
    return found


def median_time(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]
