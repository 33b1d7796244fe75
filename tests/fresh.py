"""Fresh Python processes on one shared numba cache, and what each compiled.

:func:`warmed_cache` makes one cache directory per test session and fills it with
``allocator warmup`` (a cold compile of every kernel); :func:`run_fresh` runs a
script, module or code in a new process on that cache and returns the process and
the kernels it compiled (numba cache misses, read from the library's compile log).
:func:`warmed_signatures` gives every kernel's signatures as its dispatcher listed
them at the end of the warm-up (compiled on an empty cache, so every kernel that ran,
callees included, lists each signature it was compiled for). A crash such as a
segfault shows as a negative return code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# Runs its arguments like ``python ARGS`` and writes the kernels compiled to the
# file named by ALLOCATOR_TEST_COMPILED when the process exits.
_RUNNER = """
import atexit, json, os, runpy, sys
def _dump():
    from allocator import _kernels
    with open(os.environ["ALLOCATOR_TEST_COMPILED"], "w") as f:
        json.dump([[c.name, c.signature] for c in _kernels.COMPILE_LOG], f)
    with open(os.environ["ALLOCATOR_TEST_COMPILED"] + ".signatures", "w") as f:
        json.dump(
            {_kernels.kernel_name(k): [str(s) for s in k.signatures] for k in _kernels.KERNELS}, f
        )
atexit.register(_dump)
kind, target, *rest = sys.argv[1:]
sys.argv = [target, *rest]
if kind == "-m":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
elif kind == "-c":
    exec(compile(target, "<fresh>", "exec"), {"__name__": "__main__"})
else:
    sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
    runpy.run_path(target, run_name="__main__")
"""

_SESSION: dict[str, Any] = {}


def run_fresh(
    kind: str,
    target: str,
    *args: str,
    cache: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """Run ``python KIND TARGET ARGS`` (kind ``-m``, ``-c`` or ``script``) in a new process."""
    out = cwd / f"compiled-{len(list(cwd.glob('compiled-*')))}.json"
    full = {
        **{k: v for k, v in os.environ.items() if k != "ALLOCATOR_NUMBA_CACHE"},
        "NUMBA_CACHE_DIR": str(cache),
        "ALLOCATOR_TEST_COMPILED": str(out),
        "MPLBACKEND": "Agg",
        "ALLOCATOR_EXAMPLE_OUT": str(cwd),
        **(env or {}),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, kind, target, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full,
        cwd=cwd,
    )
    compiled = json.loads(out.read_text()) if out.exists() else []
    return proc, compiled


def warmed_cache(tmp_path_factory: Any) -> tuple[Path, dict[str, Any]]:
    """One numba cache for the session, filled by ``allocator warmup`` in a fresh process.

    Returns the directory and the warm-up's JSON report.
    """
    if "cache" not in _SESSION:
        root = tmp_path_factory.mktemp("numba-cache")
        cache = root / "cache"
        proc, _ = run_fresh("-m", "allocator", "warmup", "--json", cache=cache, cwd=root)
        assert proc.returncode == 0, proc.stderr[-4000:]
        _SESSION["cache"] = (cache, json.loads(proc.stdout))
        (dump,) = root.glob("compiled-*.json.signatures")
        _SESSION["signatures"] = json.loads(dump.read_text())
    return _SESSION["cache"]


def warmed_signatures(tmp_path_factory: Any) -> dict[str, list[str]]:
    """``{kernel: [signature, ...]}`` of every kernel after the warm-up of
    :func:`warmed_cache` (an empty list: the kernel did not run)."""
    warmed_cache(tmp_path_factory)
    return _SESSION["signatures"]
