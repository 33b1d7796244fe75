"""``allocator bench startup``: how soon a fresh process is ready, warm and cold.

Every figure comes from a fresh Python process, in wall and CPU seconds:

* ``import_s``: ``import allocator``, beside ``import numpy`` (baseline);
* ``help_s``: the whole ``allocator --help`` process, beside ``python -c pass``;
* ``first_apply_s``, ``first_source_s``, ``first_replenish_s``: the first call of
  ``Ledger.apply`` (83,000 receives), ``source()`` and ``replenish()`` in a process
  whose numba cache is warm, each beside the second, identical call in the same
  process (the baseline: what the call costs once its kernels are loaded);
* ``warmup_cpu_s``: ``allocator warmup`` on an empty cache, i.e. compiling every
  kernel (skipped with ``--skip-cold``).

The cold run uses a new, empty ``NUMBA_CACHE_DIR``, and the warm figures are taken
on that cache afterwards; with ``--skip-cold`` they use the default cache, warmed
first.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

DESCRIPTION = "import, --help and first calls in fresh processes; cold compile of every kernel"

__all__ = ["DESCRIPTION", "add_arguments", "run"]

# Each snippet prints one JSON object: wall and CPU of the measured part, and of its
# baseline when it has one.
_TIMER = """
import json, time
def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c
"""

_IMPORT = (
    _TIMER
    + """
_, w, c = timed(lambda: __import__("allocator"))
_, bw, bc = timed(lambda: __import__("numpy"))  # allocator's import does not load numpy
print(json.dumps({"wall": w, "cpu": c, "base_wall": bw, "base_cpu": bc}))
"""
)

_NETWORK = """
from allocator import Network
net = Network()
for ch in ("store", "online"):
    net.add_channel(ch)
for i in range(NUM_LOCATIONS):
    net.add_location(f"L{i}", kind="store" if i else "warehouse", lat=31.0 + 0.01 * i,
                     lon=121.0 + 0.01 * i)
for k in range(NUM_SKUS):
    net.add_sku(f"K{k}", price=10.0, unit_cost=4.0)
data = net.build()
"""

_APPLY = (
    _TIMER
    + "NUM_LOCATIONS, NUM_SKUS = 83, 1000\n"
    + _NETWORK
    + """
import numpy as np
from allocator import Events, Ledger
sku, loc = np.meshgrid(np.arange(NUM_SKUS), np.arange(NUM_LOCATIONS))
sku, loc = sku.ravel(), loc.ravel()
def batch(first):
    return Events.receive(sku, loc, np.full(sku.size, 5), id=first + np.arange(sku.size))
ledger = Ledger(data)
first, b1 = batch(1), batch(1 + sku.size)
_, w, c = timed(lambda: ledger.apply(first))
_, bw, bc = timed(lambda: ledger.apply(b1))
print(json.dumps({"wall": w, "cpu": c, "base_wall": bw, "base_cpu": bc, "events": int(sku.size)}))
"""
)

_SOURCE = (
    _TIMER
    + "NUM_LOCATIONS, NUM_SKUS = 20, 200\n"
    + _NETWORK
    + """
import numpy as np
from allocator import Ledger, Orders, source
ledger = Ledger(data)
sku, loc = np.meshgrid(np.arange(NUM_SKUS), np.arange(NUM_LOCATIONS))
ledger.receive(sku.ravel(), loc.ravel(), 3)
rng = np.random.default_rng(0)
n = 200
orders = Orders.from_lines(order=1 + np.arange(n) // 2, sku=rng.integers(0, NUM_SKUS, n),
                           qty=np.ones(n, dtype=np.int64), channel="online",
                           lat=31.05, lon=121.05, network=data)
_, w, c = timed(lambda: source(data, ledger, orders))
_, bw, bc = timed(lambda: source(data, ledger, orders))
print(json.dumps({"wall": w, "cpu": c, "base_wall": bw, "base_cpu": bc}))
"""
)

_REPLENISH = (
    _TIMER
    + "NUM_LOCATIONS, NUM_SKUS = 10, 100\n"
    + _NETWORK
    + """
import numpy as np
from allocator import Ledger, replenish
ledger = Ledger(data)
sku, loc = np.meshgrid(np.arange(NUM_SKUS), np.arange(NUM_LOCATIONS))
ledger.receive(sku.ravel(), loc.ravel(), 4)
history = np.random.default_rng(0).poisson(1.0, (ledger.num_positions, 28))
_, w, c = timed(lambda: replenish(data, ledger, history))
_, bw, bc = timed(lambda: replenish(data, ledger, history))
print(json.dumps({"wall": w, "cpu": c, "base_wall": bw, "base_cpu": bc}))
"""
)


def _child(
    argv: list[str], env: dict[str, str], timeout: float
) -> tuple[dict[str, Any], float, float]:
    """Run one fresh process; its JSON line, and its whole wall and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed:\n{proc.stderr[-2000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return (json.loads(lines[-1]) if lines else {}), wall, cpu


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--skip-cold",
        action="store_true",
        help="skip the cold compile (minutes); warm figures use the default cache",
    )
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per figure")


def _best(code: str, env: dict[str, str], repeat: int) -> tuple[dict[str, Any], float, float]:
    """The run with the least wall time of ``repeat`` fresh processes."""
    runs = [_child([sys.executable, "-c", code], env, 600) for _ in range(repeat)]
    return min(runs, key=lambda r: r[0].get("wall", r[1]))


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "ALLOCATOR_NUMBA_CACHE"}
    out: dict[str, Any] = {}
    repeat = max(1, int(args.repeat))
    with tempfile.TemporaryDirectory(prefix="allocator-startup-") as tmp:
        warm = [sys.executable, "-m", "allocator", "warmup", "--json"]
        if not args.skip_cold:
            env["NUMBA_CACHE_DIR"] = tmp
            report, wall, cpu = _child(warm, env, 3600)
            out["warmup_cpu_s"] = cpu
            out["warmup_wall_s"] = wall
            out["warmup_kernels_compiled"] = int(report.get("num_compiled", 0))
            per_kernel: dict[str, float] = {}
            for step in report.get("steps", []):
                for c in step["compiled"]:
                    per_kernel[c["kernel"]] = per_kernel.get(c["kernel"], 0.0) + c["cpu_seconds"]
            # CPU seconds per kernel (all its signatures, this kernel alone), slowest first
            out["warmup_compile_s_by_kernel"] = dict(
                sorted(per_kernel.items(), key=lambda kv: -kv[1])
            )
        else:
            _child(warm, env, 3600)

        doc, _, _ = _best(_IMPORT, env, repeat)
        out["import_s"] = doc["wall"]
        out["import_cpu_s"] = doc["cpu"]
        out["import_numpy_s"] = doc["base_wall"]

        best_help: tuple[float, float] | None = None
        best_pass: tuple[float, float] | None = None
        for _ in range(repeat):
            _, wall, cpu = _child([sys.executable, "-m", "allocator", "--help"], env, 120)
            best_help = min(best_help or (wall, cpu), (wall, cpu))
            _, wall, cpu = _child([sys.executable, "-c", "pass"], env, 120)
            best_pass = min(best_pass or (wall, cpu), (wall, cpu))
        assert best_help is not None and best_pass is not None
        out["help_s"], out["help_cpu_s"] = best_help
        out["python_startup_s"] = best_pass[0]

        for key, code in (
            ("first_apply", _APPLY),
            ("first_source", _SOURCE),
            ("first_replenish", _REPLENISH),
        ):
            doc, _, _ = _best(code, env, repeat)
            out[f"{key}_s"] = doc["wall"]
            out[f"{key}_cpu_s"] = doc["cpu"]
            out[f"{key}_second_call_s"] = doc["base_wall"]
    out["load_average_1min"] = os.getloadavg()[0]
    return out
