"""Command-line interface: ``allocator bench|demo ...``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _print_table(figures: dict[str, Any]) -> None:
    width = max((len(k) for k in figures), default=0)
    for key, value in figures.items():
        if isinstance(value, float):
            text = f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
        else:
            text = str(value)
        print(f"{key:<{width}}  {text}")


def _bench(args: argparse.Namespace) -> int:
    result = args.bench_module.run(args)
    if args.json:
        print(json.dumps(result, default=float))
    elif isinstance(result, list):
        for row in result:
            _print_table(row)
            print()
    else:
        _print_table(result)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from allocator.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    from allocator.bench import targets

    parser = argparse.ArgumentParser(prog="allocator", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="run a benchmark against its same-run baseline")
    bench_sub = bench.add_subparsers(dest="target", required=True)
    for name, module in sorted(targets().items()):
        p = bench_sub.add_parser(name, help=module.DESCRIPTION)
        p.add_argument("--json", action="store_true", help="print one JSON document")
        module.add_arguments(p)
        p.set_defaults(func=_bench, bench_module=module)

    demo = sub.add_parser("demo", help="the main job: a walkthrough of the library")
    demo.set_defaults(func=_demo)

    from allocator import commands

    commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
