"""``allocator simulate``: run sourcing policies over a seeded scenario, print the KPIs.

Examples::

    allocator simulate --days 28 --sourcing greedy
    allocator simulate --sourcing greedy,optimal --report out/
    allocator simulate --sweep volume --multipliers 0.5,1,2,3 --days 7
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from allocator.cli import json_default

__all__ = ["add_arguments", "run"]


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas: {text!r}"
        ) from None


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def scenario_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~allocator.scenarios.Scenario` the options describe."""
    from allocator.scenarios import department_store

    changes: dict[str, Any] = {}
    for option, name in (
        ("stores", "num_stores"),
        ("dcs", "num_dcs"),
        ("skus", "num_skus"),
        ("online_orders", "online_orders"),
        ("marketplace_orders", "marketplace_orders"),
        ("walk_in", "walk_in_units"),
        ("start_day", "start_day_of_year"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            changes[name] = value
    return department_store(**changes)


class _Progress:
    """A tqdm bar over every simulated day of every run."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="day", desc="simulating")
        self.done = 0

    def __call__(self, label: Any, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(str(label))
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    from allocator.exceptions import ValidationError
    from allocator.simulation import capacity_sweep, compare, write_report

    try:
        scenario = scenario_from_args(args)
        policies = args.sourcing
        runs = len(policies) * args.days
        if args.sweep:
            runs += len(args.multipliers) * args.sweep_days
        bar = _Progress(runs, not args.no_progress and not args.json)
        try:
            comparison = compare(
                scenario,
                policies,
                days=args.days,
                seed=args.seed,
                volume=args.volume,
                capacity=args.capacity,
                keep_log=False,
                progress=bar,
            )
            sweep = None
            if args.sweep:
                sweep = capacity_sweep(
                    scenario,
                    args.multipliers,
                    kind=args.sweep,
                    sourcing=policies[0],
                    days=args.sweep_days,
                    seed=args.seed,
                    keep_log=False,
                    progress=lambda m, done, total: bar(f"{args.sweep} x{m:g}", done, total),
                )
        finally:
            bar.close()
    except ValidationError as exc:
        print(f"error: {exc}")
        return 2
    if args.json:
        doc: dict[str, Any] = {
            "scenario": scenario.name,
            "days": args.days,
            "seed": args.seed,
            "kpis": comparison.table(),
            "seconds": {p: r.timings for p, r in comparison.results.items()},
        }
        if sweep is not None:
            doc["sweep"] = {
                "kind": sweep.kind,
                "multipliers": list(sweep.multipliers),
                "breaking_point": sweep.breaking_point,
                "kpis": sweep.table(),
            }
        print(json.dumps(doc, default=json_default))
    else:
        first = next(iter(comparison.results.values()))
        print(first.data.summary())
        print(comparison.summary())
        if sweep is not None:
            print()
            print(sweep.summary())
    if args.report:
        path = write_report(comparison, args.report, sweep=sweep)
        if not args.json:
            print(f"report: {path}")
    return 0


def add_scenario_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that resize the default scenario (shared with the benchmark)."""
    parser.add_argument("--stores", type=int, help="number of stores (default 20)")
    parser.add_argument("--dcs", type=int, help="number of DCs (default 2)")
    parser.add_argument("--skus", type=int, help="catalogue size (default 2,000)")
    parser.add_argument("--online-orders", type=float, help="own online orders per day")
    parser.add_argument("--marketplace-orders", type=float, help="marketplace orders per day")
    parser.add_argument("--walk-in", type=float, help="walk-in units per store and day")
    parser.add_argument("--start-day", type=int, help="day of the year of day 0 (default 300)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``simulate``."""
    p.add_argument(
        "--sourcing",
        type=_names,
        default=["greedy"],
        help="sourcing methods separated by commas (default greedy)",
    )
    p.add_argument("--days", type=int, default=28, help="days to simulate (default 28)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--volume", type=float, default=1.0, help="demand multiplier")
    p.add_argument("--capacity", type=float, default=1.0, help="pick-capacity multiplier")
    p.add_argument("--sweep", choices=("volume", "capacity"), help="also run a capacity sweep")
    p.add_argument(
        "--multipliers",
        type=_floats,
        default=[0.5, 1.0, 1.5, 2.0, 3.0],
        help="sweep multipliers separated by commas",
    )
    p.add_argument("--sweep-days", type=int, default=7, help="days per sweep run (default 7)")
    p.add_argument("--report", metavar="DIR", help="write an HTML report with plots into DIR")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_scenario_arguments(p)
