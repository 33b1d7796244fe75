"""Durable ledgers: a journal of applied batches, snapshots, recovery and replay.

:func:`open_ledger` returns a :class:`DurableLedger`: an in-memory
:class:`~allocator.Ledger` whose every write, from any thread or coroutine, is
group-committed to a SQLite journal, in one transaction, before its results are
returned. Reopening the journal loads the latest snapshot and replays the later
batches through the same kernel, so the state is identical to the one before a
crash, and an event id applied before the crash returns its original result after it.

Integrity: every batch carries a BLAKE2b hash chained to the previous batch, and a
high-water mark kept outside the database (``PATH-hwm``) records the last
acknowledged batch, so a journal that silently lost acknowledged commits (a bit flip
in the WAL makes SQLite stop recovery early) is detected. See ``docs/journal.md``.

The package is split by job: ``durable`` (the ledger and :func:`open_ledger`),
``audit`` (read, verify, replay, repair), ``_store`` (SQLite), ``_codec`` (binary
encoding), ``_format`` (rows, snapshots, the chain) and ``_replica`` (following a
journal).
"""

from allocator.journal.audit import JournalInfo as JournalInfo
from allocator.journal.audit import JournalReport as JournalReport
from allocator.journal.audit import JournalSlice as JournalSlice
from allocator.journal.audit import repair_journal as repair_journal
from allocator.journal.audit import replay_journal as replay_journal
from allocator.journal.audit import verify_journal as verify_journal
from allocator.journal.durable import DEFAULT_SNAPSHOT_EVERY as DEFAULT_SNAPSHOT_EVERY
from allocator.journal.durable import DurableLedger as DurableLedger
from allocator.journal.opening import open_ledger as open_ledger

__all__ = [
    "DEFAULT_SNAPSHOT_EVERY",
    "DurableLedger",
    "JournalInfo",
    "JournalReport",
    "JournalSlice",
    "open_ledger",
    "repair_journal",
    "replay_journal",
    "verify_journal",
]
