"""``allocator journal verify PATH``: scrub a journal and print what was checked."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def _verify(args: argparse.Namespace) -> int:
    import json

    from allocator.exceptions import JournalError
    from allocator.journal import verify_journal

    try:
        report = verify_journal(args.path)
    except JournalError as exc:
        if args.json:
            print(json.dumps({"path": str(args.path), "ok": False, "error": str(exc)}))
        else:
            print(f"ERROR: {exc}")
        return 2
    print(json.dumps(report.to_dict()) if args.json else report.summary())
    return 0 if report.ok else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``journal verify``."""
    sub = parser.add_subparsers(dest="journal_command", required=True)
    verify = sub.add_parser(
        "verify",
        help="check the hash chain, the high-water mark and every snapshot, and replay "
        "every batch; exit 0 when all agree, 1 when corrupt, 2 when not a journal",
    )
    verify.add_argument("path", help="the journal: a SQLite file or a postgresql:// URL")
    verify.add_argument("--json", action="store_true", help="print one JSON document")
    verify.set_defaults(journal_run=_verify)


def run(args: argparse.Namespace) -> int:
    return int(args.journal_run(args))
