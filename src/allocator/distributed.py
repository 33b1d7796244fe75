"""Batch jobs on a Dask cluster: partitions, columnar hand-offs, retries.

The nightly jobs (:func:`~allocator.replenishment.replenish`,
:func:`~allocator.channels.allocate_channels`) and the planners' studies
(:func:`~allocator.simulation.compare`, :func:`~allocator.simulation.capacity_sweep`)
take ``client=`` (a ``distributed.Client``) or ``scheduler=`` (the scheduler's
address, or the path of a scheduler file). This module holds what they share:

* :func:`connect`: the client to use, opened and closed here for ``scheduler=``;
* :func:`sku_partitions` and :func:`block_partitions`: which positions go together;
* :func:`run_tasks`: one task per partition, inputs scattered straight to the
  workers as numpy arrays (no pickled ledger, no copy through the scheduler),
  results gathered in partition order, and a partition whose worker died
  resubmitted;
* the numba kernels are loaded on every worker before the first job by
  :mod:`allocator.workers` (``dask worker --preload allocator.workers``).

Dask is an optional extra (``pip install 'allocator[distributed]'``). Nothing here
imports it before it is needed, so the single-process path never does. See
``docs/distributed.md``.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from allocator.exceptions import DTypeError, MissingDependencyError, ValidationError

__all__ = [
    "EXTRA",
    "TaskStats",
    "block_partitions",
    "connect",
    "default_partitions",
    "run_tasks",
    "sku_partitions",
]

logger = logging.getLogger("allocator")

#: How to install what this module needs.
EXTRA = "pip install 'allocator[distributed]'"

_RUN = itertools.count()


def _distributed() -> Any:
    """The ``distributed`` package, or a :class:`MissingDependencyError` naming the extra."""
    try:
        import distributed
    except ImportError as exc:
        raise MissingDependencyError(
            f"running on a Dask cluster needs Dask distributed, which is not installed: {EXTRA}"
        ) from exc
    return distributed


@contextmanager
def connect(client: Any = None, scheduler: Any = None) -> Iterator[Any]:
    """The ``distributed.Client`` to run on.

    ``client`` is used as it is (and left open). ``scheduler`` is an address such as
    ``"tcp://10.0.0.5:8786"`` or the path of a scheduler file (``*.json``, as written
    by ``dask scheduler --scheduler-file``); a client to it is opened for the call
    and closed after it.
    """
    if client is not None and scheduler is not None:
        raise ValidationError(
            "give client= or scheduler=, not both", field="scheduler", code="invalid_choice"
        )
    dist = _distributed()
    if client is not None:
        if not isinstance(client, dist.Client):
            raise DTypeError(
                f"expected a distributed.Client, got {type(client).__name__}", field="client"
            )
        yield client
        return
    if not isinstance(scheduler, str | os.PathLike) or not str(scheduler):
        raise DTypeError(
            "expected a scheduler address or scheduler-file path (str)", field="scheduler"
        )
    text = str(scheduler)
    if text.endswith(".json"):
        opened = dist.Client(scheduler_file=text)
    else:
        opened = dist.Client(text)
    try:
        yield opened
    finally:
        opened.close()


def default_partitions(client: Any) -> int:
    """One partition per worker thread of the cluster (at least 1)."""
    return max(1, int(sum(client.nthreads().values())))


def check_partitions(value: Any) -> int | None:
    """Validate a ``partitions=`` argument (``None`` or an int >= 1)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise DTypeError(
            f"expected an int, got {type(value).__name__}", field="partitions", code="wrong_dtype"
        )
    if int(value) < 1:
        raise ValidationError("expected partitions >= 1", field="partitions", code="out_of_range")
    return int(value)


def sku_partitions(sku: np.ndarray, num_skus: int, num_partitions: int) -> list[np.ndarray]:
    """Rows of each partition: contiguous SKU ranges holding about equal numbers of
    positions. Every SKU lies in one partition; rows stay ascending within each;
    empty partitions are dropped.

    Examples
    --------
    >>> [p.tolist() for p in sku_partitions(np.array([0, 1, 0, 2, 3, 3]), 4, 2)]
    [[0, 1, 2], [3, 4, 5]]
    """
    sku = np.asarray(sku, dtype=np.int64)
    n = sku.shape[0]
    if n == 0:
        return []
    counts = np.bincount(sku, minlength=num_skus)
    cum = np.cumsum(counts)
    # SKU s goes to the partition its first position falls in by cumulative count
    start = cum - counts
    part_of_sku = np.minimum(start * num_partitions // n, num_partitions - 1)
    part = part_of_sku[sku]
    order = np.argsort(part, kind="stable")
    sizes = np.bincount(part, minlength=num_partitions)
    return [rows for rows in np.split(order, np.cumsum(sizes)[:-1]) if rows.size]


def block_partitions(n: int, num_partitions: int, align: int = 1) -> list[np.ndarray]:
    """Rows of each partition: consecutive blocks whose boundaries are multiples of
    ``align`` (empty blocks dropped)."""
    if n == 0:
        return []
    blocks = -(-n // align)
    cuts = [min(n, (blocks * k // num_partitions) * align) for k in range(num_partitions + 1)]
    return [np.arange(a, b, dtype=np.int64) for a, b in itertools.pairwise(cuts) if b > a]


@dataclass
class TaskStats:
    """Where the time of a distributed call went (seconds).

    ``scatter_s``: handing the inputs to the workers; ``wall_s``: from the first
    submission to the last result on the driver (includes ``scatter_s`` of
    resubmissions); ``task_s``: the compute time each partition reported from its
    worker (of its last, successful attempt), and ``task_cpu_s`` the CPU seconds of
    the worker process over the same span; ``retries``: partitions submitted
    again after their worker or their input was lost.
    """

    scatter_s: float = 0.0
    wall_s: float = 0.0
    task_s: list[float] = field(default_factory=list)
    task_cpu_s: list[float] = field(default_factory=list)
    retries: int = 0

    @property
    def overhead_s(self) -> float:
        """Wall time not explained by the slowest partition's compute."""
        return max(0.0, self.wall_s - (max(self.task_s) if self.task_s else 0.0))


def _timed(func: Callable[..., Any], part: Any, common: Any) -> tuple[Any, float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = func(part, common)
    return out, time.perf_counter() - t0, time.process_time() - c0


def run_tasks(
    client: Any,
    func: Callable[[Any, Any], Any],
    parts: Sequence[Any],
    common: Any = None,
    *,
    retries: int = 3,
    name: str = "allocator",
    progress: Callable[[int, int], None] | None = None,
    on_result: Callable[[int, Any], None] | None = None,
) -> tuple[list[Any], TaskStats]:
    """``[func(part, common) for part in parts]`` on the cluster, in order.

    ``parts`` is any sequence; ``parts[i]`` is read when part ``i`` is sent (and
    again if it must be resent), so a lazy sequence lets the driver prepare the
    next part while the workers compute. With ``on_result``, each result is handed
    to ``on_result(i, result)`` as it arrives (in completion order) instead of
    being kept, and the returned list holds ``None``.

    Each part is scattered to one worker (straight from the driver, not through the
    scheduler) and its task runs there; ``common`` is sent once to every worker.
    ``func`` must be deterministic: when a worker dies, Dask moves its running tasks
    elsewhere, and a task whose scattered input died with the worker is scattered
    again and resubmitted here (at most ``retries`` times per part), so the results
    are those of an uninterrupted run. Exceptions raised by ``func`` propagate as
    they are.
    """
    dist = _distributed()
    from concurrent.futures import CancelledError

    run = next(_RUN)
    stats = TaskStats(task_s=[0.0] * len(parts), task_cpu_s=[0.0] * len(parts))
    t_start = time.perf_counter()
    common_f: list[Any] = []

    def common_future() -> Any:
        if not common_f or common_f[0].status != "finished":
            t0 = time.perf_counter()
            # a one-element list: scatter would split a tuple or dict into many keys
            common_f[:] = client.scatter([common], broadcast=True, hash=False)
            stats.scatter_s += time.perf_counter() - t0
        return common_f[0]

    attempt = [0] * len(parts)

    def scatter(part: Any) -> Any:
        # Straight to a worker; after a worker died, the client may still try it
        # for a moment, so a refused connection falls back to the scheduler's route.
        for tries in range(5):
            try:
                (data,) = client.scatter([part], hash=False, direct=tries == 0)
                return data
            except OSError as exc:  # distributed's CommClosedError is an OSError
                logger.warning("%s: scatter failed (%s); trying again", name, exc)
                time.sleep(0.2 * (tries + 1))
        (data,) = client.scatter([part], hash=False, direct=False)
        return data

    def submit(i: int) -> Any:
        shared = common_future()
        t0 = time.perf_counter()
        data = scatter(parts[i])
        stats.scatter_s += time.perf_counter() - t0
        key = f"{name}-{os.getpid()}-{run}-{i}-{attempt[i]}"
        return client.submit(_timed, func, data, shared, key=key, pure=False)

    first = [submit(i) for i in range(len(parts))]
    futures = {f.key: i for i, f in enumerate(first)}
    results: list[Any] = [None] * len(parts)
    done = 0
    pending = dist.as_completed(first, with_results=False)
    for fut in pending:
        i = futures[fut.key]
        try:
            out, seconds, cpu = fut.result()
        except (CancelledError, dist.KilledWorker) as exc:
            attempt[i] += 1
            if attempt[i] > retries:
                raise
            logger.warning("%s: partition %d lost (%s); submitting it again", name, i, exc)
            stats.retries += 1
            nf = submit(i)
            futures[nf.key] = i
            pending.add(nf)
            continue
        if on_result is not None:
            on_result(i, out)
        else:
            results[i] = out
        stats.task_s[i] = float(seconds)
        stats.task_cpu_s[i] = float(cpu)
        done += 1
        if progress is not None:
            progress(done, len(parts))
        fut.release()
    stats.wall_s = time.perf_counter() - t_start
    for f in common_f:
        f.release()
    return results, stats
