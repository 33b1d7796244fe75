"""Command-line interface: ``allocator COMMAND ...`` (also ``python -m allocator``).

Every sub-command is one module listed in :data:`COMMANDS`, and every benchmark one
module listed in :data:`allocator.bench.TARGETS`: the same explicit table at both
levels, read by :func:`add_commands`. A module defines

* ``add_arguments(parser)``: its options;
* ``run(args)``: does the work and returns the exit code (a benchmark returns its
  figures instead, and ``allocator bench`` prints them).

A module is imported only when its command runs, so ``allocator --help`` and the
parser itself load neither numba nor any other heavy dependency.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["COMMANDS", "Command", "add_commands", "build_parser", "json_default", "main"]


@dataclass(frozen=True)
class Command:
    """One sub-command: its name, the module that implements it and its help line."""

    name: str
    module: str
    help: str


#: The sub-commands of ``allocator``, in the order ``--help`` lists them.
COMMANDS: tuple[Command, ...] = (
    Command("demo", "allocator.commands.demo", "the main job: a capacity-planning walkthrough"),
    Command(
        "simulate",
        "allocator.commands.simulate",
        "simulate days of omnichannel demand and compare sourcing policies",
    ),
    Command("journal", "allocator.commands.journal", "inspect a durable ledger journal"),
    Command(
        "warmup",
        "allocator.commands.warmup",
        "compile every kernel into numba's cache ahead of time, and say what compiled",
    ),
    Command("bench", "allocator.commands.bench", "run a benchmark beside its same-run baseline"),
)


def add_commands(
    subparsers: Any, commands: Iterable[Command], argv: Sequence[str], dest: str = "run"
) -> None:
    """Add one sub-parser per command; only the command named in ``argv`` is imported.

    The first token of ``argv`` that names a command selects it: its module's
    ``add_arguments`` fills its parser and its ``run`` is stored as ``args.<dest>``.
    A module with a ``COMMANDS`` table of its own has sub-commands, added the same
    way (their ``run`` stored as ``args.<name>_run``); when it also defines
    ``add_common_arguments(parser)``, that adds options to each of them.
    """
    commands = tuple(commands)
    names = [c.name for c in commands]
    selected = next((token for token in argv if token in names), None)
    for command in commands:
        parser = subparsers.add_parser(command.name, help=command.help, description=command.help)
        if command.name != selected:
            continue
        module = importlib.import_module(command.module)
        if module.__doc__:
            parser.description = module.__doc__
            parser.formatter_class = argparse.RawDescriptionHelpFormatter
        module.add_arguments(parser)
        parser.set_defaults(**{dest: module.run})
        children = getattr(module, "COMMANDS", None)
        if children is not None:
            sub = parser.add_subparsers(
                dest=f"{command.name}_command", required=True, metavar="NAME"
            )
            rest = list(argv)[list(argv).index(selected) + 1 :]
            add_commands(sub, children, rest, dest=f"{command.name}_run")
            common = getattr(module, "add_common_arguments", None)
            if common is not None:
                for child in sub.choices.values():
                    common(child)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``allocator`` parser, with the arguments of the command ``argv`` names."""
    from allocator._version import __version__

    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="allocator",
        description="allocator: omnichannel inventory allocation engine. "
        "`allocator COMMAND --help` shows a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"allocator {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_commands(sub, COMMANDS, argv)
    return parser


def json_default(value: Any) -> Any:
    """``json.dumps(..., default=json_default)``: numpy integers stay integers."""
    import numpy as np

    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``allocator`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    return int(args.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
