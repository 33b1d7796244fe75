"""``allocator bench cluster --quick`` runs on the test server and reports every key.

No timing is asserted here (figures live in ``docs/benchmarks.md``); what is checked
is that the run completed: the keys are there, nothing was oversold by either path,
a standby took over after the leader was killed, and the journal verifies.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from allocator.cli import main

KEYS = (
    "reserves_per_s",
    "p99_ms",
    "baseline_per_s",
    "baseline_oversold",
    "oversold",
    "staleness_p99_ms",
    "failover_s",
)


def test_bench_cluster_quick_json(pg_server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    url = pg_server.url("bench_smoke")
    assert main(["bench", "cluster", "--quick", "--json", "--url", url]) == 0
    figures = json.loads(capsys.readouterr().out)
    for key in KEYS:
        assert key in figures, key
        assert isinstance(figures[key], int | float) and not math.isnan(figures[key]), key
    assert figures["oversold"] == 0 and figures["baseline_oversold"] == 0
    assert figures["reserves_per_s"] > 0 and figures["baseline_per_s"] > 0
    assert figures["failover_s"] > 0  # a standby committed a batch after the kill
    assert figures["journal_ok"] is True
    assert figures["granted"] > 0
