"""``allocator bench TARGET``: one benchmark, each figure beside its same-run baseline.

Prints a table, or one JSON document with ``--json`` (counts as integers).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from allocator.bench import TARGETS
from allocator.cli import Command, json_default

__all__ = ["COMMANDS", "add_arguments", "add_common_arguments", "run"]

#: One sub-command per benchmark target (modules ``allocator.bench.<name>``).
COMMANDS = tuple(Command(name, f"allocator.bench.{name}", text) for name, text in TARGETS.items())


def _print_table(figures: dict[str, Any]) -> None:
    width = max((len(k) for k in figures), default=0)
    for key, value in figures.items():
        if isinstance(value, float):
            text = f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
        else:
            text = str(value)
        print(f"{key:<{width}}  {text}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own: each target has its options."""


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--json``, for every target."""
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    result = args.bench_run(args)
    if args.json:
        print(json.dumps(result, default=json_default))
    elif isinstance(result, list):
        for row in result:
            _print_table(row)
            print()
    else:
        _print_table(result)
    return 0
