"""``allocator demo`` (``make demo``): the capacity-planning job on the default scenario.

Runs the default department-store scenario over three weeks that cross the 11.11
peak with every sourcing policy available ("greedy", and "optimal" when that method
is registered), sweeps order volume with greedy sourcing to show where service
breaks, prints the KPI tables and writes the HTML report, whose path it prints.
Sized to finish in well under three minutes on a two-core machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

__all__ = ["add_arguments", "run", "run_demo"]

#: Policies the demo compares, when registered.
POLICIES = ("greedy", "optimal")
DAYS = 21
SWEEP = (0.5, 1.0, 2.0, 3.0)
SWEEP_DAYS = 4


def _probe_options(network: Any, method: str) -> dict[str, Any]:
    """A per-wave time limit for ``method`` when it takes one (probed on one order)."""
    from allocator.ledger import Ledger
    from allocator.sourcing import Orders, source

    ledger = Ledger(network)
    ledger.receive(0, 0, 1)
    one = Orders.from_lines(
        order=[1],
        sku=[0],
        qty=[1],
        channel=[1],
        lat=float(network.lat[0]),
        lon=float(network.lon[0]),
    )
    candidates: list[dict[str, Any]] = [{"time_limit": 0.5}, {}]
    for options in candidates:
        try:
            source(network, ledger, one, method=method, **options)
        except TypeError:
            continue
        return options
    return {}  # pragma: no cover - the method rejects even no options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options: the demo is the same job every time."""


def run(args: argparse.Namespace) -> int:
    """``allocator demo``."""
    return run_demo(args)


def run_demo(args: argparse.Namespace | None = None) -> int:
    """Run the demo and print the report path; returns the exit code."""
    from allocator.commands.simulate import _Progress
    from allocator.scenarios import department_store
    from allocator.simulation import capacity_sweep, simulate, write_report
    from allocator.simulation.compare import Comparison
    from allocator.sourcing import methods

    t0 = time.perf_counter()
    scenario = department_store()
    data = scenario.build(0)
    policies = [p for p in POLICIES if p in methods()]
    print(data.summary())
    print(
        f"{DAYS} days from day {scenario.start_day_of_year} of the year (11.11 is day "
        f"{314 - scenario.start_day_of_year}); sourcing policies: {', '.join(policies)}"
    )
    if "optimal" not in policies:
        print("('optimal' sourcing is not registered in this installation; comparing greedy only)")
    bar = _Progress(len(policies) * DAYS + len(SWEEP) * SWEEP_DAYS, True)
    try:
        results = {}

        def tick(label: str) -> Any:
            return lambda done, total: bar(label, done, total)

        for policy in policies:
            options = _probe_options(data.network, policy) if policy != "greedy" else {}
            results[policy] = simulate(
                data,
                sourcing=policy,
                days=DAYS,
                sourcing_options=options,
                keep_log=False,
                progress=tick(policy),
            )
        sweep = capacity_sweep(
            data,
            SWEEP,
            kind="volume",
            sourcing="greedy",
            days=SWEEP_DAYS,
            keep_log=False,
            progress=lambda m, done, total: bar(f"volume x{m:g}", done, total),
        )
    finally:
        bar.close()
    comparison = Comparison(results)
    print(comparison.summary())
    print()
    print(sweep.summary())
    out = getattr(args, "report", None) or os.environ.get("ALLOCATOR_REPORT_DIR")
    if not out:
        out = tempfile.mkdtemp(prefix="allocator-report-")
    path = write_report(comparison, out, sweep=sweep, title="allocator demo: capacity planning")
    print(f"\nfinished in {time.perf_counter() - t0:.0f} s")
    print(f"report: {path}")
    return 0
