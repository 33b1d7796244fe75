"""``allocator bench ledger --quick`` runs and reports its figures beside its baselines."""

from __future__ import annotations

import json

from allocator.cli import main


def test_bench_ledger_quick_json(capsys):
    assert (
        main(
            [
                "bench",
                "ledger",
                "--quick",
                "--json",
                "--events",
                "50000",
                "--positions",
                "5000",
                "--memory-positions",
                "20000",
                "--reference-events",
                "5000",
            ]
        )
        == 0
    )
    figures = json.loads(capsys.readouterr().out)
    for key in (
        "events_per_s",
        "ceiling_events_per_s",
        "reference_events_per_s",
        "compile_s",
        "bytes_per_position",
    ):
        assert figures[key] > 0, key
    assert 0.05 < figures["rejected_share"] < 0.5
    assert figures["events"] == 50_000
