"""``allocator bench simulate --quick`` runs and reports the documented keys."""

from __future__ import annotations

import argparse

from allocator.bench import simulate as bench


def test_quick_bench_reports_keys() -> None:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    figures = bench.run(parser.parse_args(["--quick"]))
    for key in ("seconds", "days", "orders", "events", "compile_seconds"):
        assert key in figures
    for part in ("ledger", "sourcing", "replenishment"):
        assert figures[f"{part}_seconds"] >= 0.0
    assert figures["days"] == 3
    assert figures["orders"] > 0 and figures["events"] > figures["orders"]
    assert figures["oversells"] == 0
    shares = sum(
        figures[f"{p}_share"]
        for p in ("ledger", "sourcing", "replenishment", "channels", "demand", "other")
    )
    assert abs(shares - 1.0) < 1e-6
