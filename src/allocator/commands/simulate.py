"""``allocator simulate``: run sourcing policies over a seeded scenario, print the KPIs.

Examples::

    allocator simulate --days 28 --sourcing greedy
    allocator simulate --sourcing greedy,optimal --report out/
    allocator simulate --sweep volume --multipliers 0.5,1,2,3 --days 7
    allocator simulate --sourcing greedy,future --seeds 0,1,2,3,4 --report out/
    allocator simulate --promotion 3:5 --promotion 10:2.5 --days 14
    allocator simulate --scenario peak.toml --days 7

``--promotion DAY:FACTOR[:DAYS]`` replaces the scenario's promotions by one on
simulation day DAY (0 = first day) multiplying online and marketplace orders by
FACTOR for DAYS days (default 1); repeat it for several. ``--scenario FILE`` reads
the scenario's parameters from TOML or JSON (see ``allocator.scenarios.load_scenario``).
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


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas: {text!r}"
        ) from None


def _promotion(text: str) -> tuple[int, float, int]:
    """``DAY:FACTOR[:DAYS]`` as ``(day, factor, days)``."""
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        day, factor = int(parts[0]), float(parts[1])
        days = int(parts[2]) if len(parts) == 3 else 1
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected DAY:FACTOR or DAY:FACTOR:DAYS (e.g. 3:5 or 3:5:2), got {text!r}"
        ) from None
    if day < 0 or days < 1 or not factor >= 0:
        raise argparse.ArgumentTypeError(f"day >= 0, factor >= 0 and days >= 1: {text!r}")
    return day, factor, days


def scenario_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~allocator.scenarios.Scenario` the options describe."""
    from allocator.scenarios import department_store, load_scenario, promotion_on_day

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
    path = getattr(args, "scenario", None)
    scenario = load_scenario(path) if path else department_store()
    scenario = scenario.replace(**changes) if changes else scenario
    promos = getattr(args, "promotion", None)
    if promos:
        scenario = scenario.replace(
            promotions=tuple(promotion_on_day(scenario, d, f, n) for d, f, n in promos)
        )
    return scenario


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
        runs = len(policies) * args.days * max(1, len(args.seeds or ()))
        if args.sweep:
            runs += len(args.multipliers) * args.sweep_days
        bar = _Progress(runs, not args.no_progress and not args.json)
        try:
            comparison = compare(
                scenario,
                policies,
                days=args.days,
                seed=None if args.seeds else args.seed,
                seeds=args.seeds,
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
    except (ValidationError, OSError) as exc:
        print(f"error: {exc}")
        return 2
    if args.json:
        doc: dict[str, Any] = {
            "scenario": scenario.name,
            "days": args.days,
            "seed": args.seed,
            "kpis": comparison.table(),
            "seeds": list(comparison.seeds),
            "intervals": {
                key: {p: list(v) for p, v in comparison.interval(key).items()}
                for key in ("season_objective", "lost_value", "common_cost_per_order")
            },
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
        help="policies separated by commas: greedy, optimal, future (default greedy)",
    )
    p.add_argument("--days", type=int, default=28, help="days to simulate (default 28)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--seeds",
        type=_ints,
        help="several seeds separated by commas: means and 95 %% intervals (overrides --seed)",
    )
    p.add_argument(
        "--promotion",
        type=_promotion,
        action="append",
        metavar="DAY:FACTOR[:DAYS]",
        help="online volume x FACTOR on simulation day DAY (repeatable; replaces the "
        "scenario's promotions)",
    )
    p.add_argument("--scenario", metavar="FILE", help="scenario parameters from TOML or JSON")
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
