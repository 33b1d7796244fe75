"""Every script in examples/ runs to completion, twice, on a cache other processes wrote.

The cache is the session's warmed one (``tests/fresh.py``): after ``allocator warmup``
an example compiles nothing, and on its second run it loads everything again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fresh import run_fresh, warmed_cache

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path, tmp_path: Path, tmp_path_factory: Any) -> None:
    cache, _ = warmed_cache(tmp_path_factory)
    outputs = []
    for run in range(2):
        proc, compiled = run_fresh("script", str(script), cache=cache, cwd=tmp_path)
        assert proc.returncode == 0, (run, proc.returncode, proc.stderr[-4000:])
        assert proc.stdout.strip(), "an example should print what it shows"
        assert compiled == [], f"run {run} compiled {compiled} after the warm-up"
        outputs.append(proc.stdout)
