"""Dask workers warmed before their first job.

``dask worker --preload allocator.workers`` runs :func:`dask_setup` in every worker
as it starts: the numba kernels of the batch jobs are loaded from the worker's cache
(or compiled and cached) before the first task arrives. :func:`warm_workers` does the
same on demand for a running cluster. See ``docs/distributed.md``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["BATCH_STEPS", "dask_setup", "warm", "warm_workers"]

logger = logging.getLogger("allocator")

#: The warm-up steps of the batch jobs that run on workers.
BATCH_STEPS = ("channels", "replenishment", "simulation")


def warm() -> str:
    """Load (or compile) the batch jobs' kernels in this process; the seconds taken."""
    from allocator.compilation import warmup

    t0 = time.perf_counter()
    warmup(BATCH_STEPS)
    return f"{time.perf_counter() - t0:.2f}s"


def warm_workers(client: Any) -> dict[str, str]:
    """Warm every worker of ``client`` (see :func:`warm`); the seconds each took."""
    return dict(client.run(warm))


def dask_setup(worker: Any) -> None:  # pragma: no cover - runs inside dask workers
    """``dask worker --preload allocator.workers``: warm the kernels at start-up."""
    logger.info("allocator: kernels warmed on %s in %s", getattr(worker, "address", "?"), warm())
