"""Kernels load correctly from a cache other processes wrote, and warm-up fills it.

Every process here is fresh and all share one numba cache, first filled by
``allocator warmup`` on an empty directory (see ``tests/fresh.py``). Then every public
entry point runs with two sets of argument types and options, each twice: kernels
compile in one process and load in the next, including a cached caller of a
``parallel=True`` kernel compiled in a process that had loaded the kernel itself (the
shape that used to crash with a segfault). The examples run the same way, in
``tests/test_examples.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.fresh import run_fresh, warmed_cache, warmed_signatures

ENTRY_POINTS = str(Path(__file__).parent / "entry_points.py")

#: Kernel modules whose kernels each compile for exactly one signature: the public
#: functions normalise dtypes, layouts and read-only flags, and kernels pass one
#: another typed values rather than literals (numba compiles ``f(x, 0)`` and
#: ``f(x, n)`` apart). The sourcing kernels (and the ATP rule they call) keep their
#: literal flags on purpose: specialised on them, greedy sourcing runs about 1.4x
#: as fast as with one version each.
ONE_SIGNATURE = (
    "ledger.",
    "optimal.",
    "channels.",
    "replenish.",
    "forecast.",
    "geo.",
)


def _stable(text: str) -> str:
    return re.sub(r"[\d.]+ ms", "_ ms", text)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: Any) -> Path:
    return warmed_cache(tmp_path_factory)[0]


def test_warmup_compiles_every_kernel_and_says_how_long(tmp_path_factory: Any):
    _, report = warmed_cache(tmp_path_factory)
    names = {c["kernel"] for s in report["steps"] for c in s["compiled"]}
    assert report["num_compiled"] == sum(len(s["compiled"]) for s in report["steps"]) > 0
    for family in ("ledger.", "sourcing.", "channels.", "replenish.", "forecast."):
        assert any(n.startswith(family) for n in names), family
    for step in report["steps"]:
        for c in step["compiled"]:
            assert c["seconds"] >= 0 and c["signature"]


def test_each_kernel_compiles_for_one_signature(tmp_path_factory: Any):
    signatures = warmed_signatures(tmp_path_factory)
    mine = {k: s for k, s in signatures.items() if k.startswith(ONE_SIGNATURE)}
    assert {k: s for k, s in mine.items() if len(s) > 1} == {}
    ran = {k for k, s in signatures.items() if s}
    for kernel in ("sourcing.greedy", "sourcing.cover_lists", "sourcing.take_from", "atp.atp"):
        assert kernel in ran, kernel
    assert len(ran) >= 60


def test_a_fresh_process_after_warmup_compiles_nothing(cache: Path, tmp_path: Path):
    proc, compiled = run_fresh("-m", "allocator", "warmup", "--json", cache=cache, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert compiled == []
    assert '"num_compiled": 0' in proc.stdout
    assert "compiling kernels" not in proc.stderr


@pytest.mark.parametrize("variant", ["a", "b"])
def test_entry_points_load_from_a_shared_cache(cache: Path, tmp_path: Path, variant: str):
    # b runs with one thread: a parallel kernel cached by a two-thread process must load
    env = {"NUMBA_NUM_THREADS": "1"} if variant == "b" else {}
    first, compiled = run_fresh("script", ENTRY_POINTS, variant, cache=cache, cwd=tmp_path, env=env)
    assert first.returncode == 0, (first.returncode, first.stderr[-3000:])
    # other argument types and options than the warm-up's reach the same signatures
    assert [c for c in compiled if c[0].startswith(ONE_SIGNATURE)] == []
    second, compiled = run_fresh("script", ENTRY_POINTS, variant, cache=cache, cwd=tmp_path)
    assert second.returncode == 0, (second.returncode, second.stderr[-3000:])
    assert compiled == [], "the second run should load every kernel from the cache"
    assert _stable(second.stdout) == _stable(first.stdout)
    assert len(first.stdout.splitlines()) >= 15


def test_first_compile_logs_one_line(tmp_path: Path):
    code = (
        "import logging, numpy as np\n"
        "from allocator.replenishment import moving_average, croston\n"
        "moving_average(np.ones((2, 9), dtype=np.int64), 3)\n"
        "croston(np.ones((2, 9), dtype=np.int64))\n"
    )
    proc, compiled = run_fresh("-c", code, cache=tmp_path / "empty", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(compiled) >= 2
    assert proc.stderr.count("compiling kernels, first use only") == 1
