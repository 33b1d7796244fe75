"""``allocator warmup``: compile every kernel into numba's cache, and say what compiled.

Run it once where the service will run (or while building its container image, with
``NUMBA_CACHE_DIR`` pointing into the image): later processes load the kernels from
the cache and compile nothing. A second run reports 0 kernels compiled. See
``docs/deployment.md``.
"""

from __future__ import annotations

import argparse
import json

__all__ = ["add_arguments", "run"]


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--steps`` and ``--json``."""
    parser.add_argument(
        "--steps",
        type=_names,
        default=None,
        help="warm-up steps separated by commas (default all: ledger, journal, sourcing, "
        "optimal, channels, replenishment, simulation)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    from allocator.cli import json_default
    from allocator.compilation import warmup
    from allocator.exceptions import ValidationError

    def progress(step: str, done: int, total: int) -> None:
        if not args.json:
            print(f"[{done + 1}/{total}] {step} ...", flush=True)

    try:
        report = warmup(args.steps, progress=progress)
    except ValidationError as exc:
        print(f"ERROR: {exc}")
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), default=json_default))
    else:
        print(report.summary())
    return 0
