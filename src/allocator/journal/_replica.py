"""An in-memory ledger kept equal to a journal: a snapshot plus the batches after it.

:class:`Replica` holds a :class:`~allocator.Ledger` and where it stands in the
journal (batch, event count, chain hash, id ages for compaction). The durable
ledger, its readers, the followers of a shared ledger and the audit functions all
rebuild and follow a journal through it, with the same checks.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np

from allocator.journal import _codec
from allocator.journal._format import (
    Ages,
    HighWaterMark,
    Row,
    Snapshot,
    compact,
    corrupt,
    ledger_arrays,
)
from allocator.ledger import ApplyResult, Ledger
from allocator.network import NetworkData

__all__ = ["Replica", "StoreReader"]

logger = logging.getLogger("allocator")


class StoreReader(Protocol):
    """What a replica reads from a journal store (SQLite or PostgreSQL)."""

    @property
    def label(self) -> str: ...

    def rows(self, first: int, last: int | None = None) -> Any: ...

    def snapshot_index(self, since: int = -1) -> dict[int, Snapshot]: ...

    def snapshot_data(self, snap: Snapshot) -> bytes | None: ...

    def first_seq(self) -> int | None: ...

    def batch_hash(self, seq: int) -> bytes | None: ...

    def read_mark(self) -> tuple[HighWaterMark | None, bool]: ...


class Replica:
    """A ledger at batch ``seq`` of a journal; see the module docstring."""

    def __init__(self, network: NetworkData, genesis: bytes, num_events: int = 0) -> None:
        self.network = network
        self.genesis = genesis
        self._size_hint = num_events
        self.reset()

    def reset(self) -> None:
        """Back to the empty ledger before batch 1."""
        n = self._size_hint
        positions = min(n, self.network.num_skus * self.network.num_locations)
        self.ledger = Ledger(
            self.network,
            capacity=max(1024, positions),
            reservation_capacity=max(1024, n),
            event_capacity=max(1024, n),
        )
        self.seq = 0
        self.num_events = 0
        self.hash = self.genesis
        self.ages = Ages()
        self.snap_seq: int | None = None
        self.snap_events = 0

    # ------------------------------------------------------------ applying
    def replay_row(self, row: Row, snaps: dict[int, Snapshot]) -> ApplyResult:
        """Apply one journaled batch and check its ids and recorded results.

        Returns the result (the caller stores the codes of a batch whose codes were
        not recorded yet).
        """
        events = row.decode_events()
        recorded = row.decode_codes()
        applied = np.asarray(events.id)
        given = applied.copy()
        given[given <= row.auto_id] = 0  # ids the ledger assigned in this batch
        led = self.ledger
        if led.next_id != row.auto_id:
            raise corrupt(
                row.seq, f"expected next ledger id {row.auto_id}, replay is at {led.next_id}"
            )
        given.flags.writeable = False
        cols = {name: getattr(events, name) for name in events.FIELDS}
        cols["id"] = given
        try:
            result = led.apply(type(events)(**cols))
        except Exception as exc:
            raise corrupt(row.seq, f"cannot be replayed ({exc})") from exc
        if not np.array_equal(result.ids, applied):
            raise corrupt(row.seq, "replay assigned different event ids")
        if recorded is not None:
            codes, dup = recorded
            if not (np.array_equal(result.codes, codes) and np.array_equal(result.duplicate, dup)):
                bad = int(np.flatnonzero((result.codes != codes) | (result.duplicate != dup))[0])
                raise corrupt(
                    row.seq,
                    f"replay gave a different result at event {bad}: the journal or the "
                    "kernel changed",
                )
        self.advance(row, result)
        snap = snaps.get(row.seq)
        if snap is not None and snap.horizon is not None:
            self.compact(snap.horizon)
            self.snap_seq = row.seq
        return result

    def advance(self, row: Row, result: ApplyResult) -> None:
        """Record that batch ``row`` was applied with ``result``."""
        self.ages.add(result, row.first_event)
        self.seq, self.hash = row.seq, row.hash
        self.num_events = row.first_event + row.num_events

    def compaction(
        self, horizon: int | None
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """What a snapshot here holds: ``(snapshot arrays, kept ids, their ages)``.

        Nothing changes until :meth:`apply_compaction` (a snapshot that fails to be
        written leaves the live ledger as it was).
        """
        return compact(self.ledger.export_state(), self.ages, self.num_events, horizon)

    def apply_compaction(
        self, snap: dict[str, np.ndarray], ids: np.ndarray, ev: np.ndarray
    ) -> None:
        if ids.shape[0] != self.ledger.num_ids_tracked:
            self.ledger.import_state(ledger_arrays(snap), version=self.ledger.version)
        self.ages.reset(ids, ev)

    def compact(self, horizon: int | None) -> None:
        """Compact the live ledger as a snapshot at this point does."""
        self.apply_compaction(*self.compaction(horizon))

    def load_snapshot(self, snap: Snapshot) -> None:
        assert snap.data is not None
        try:
            arrays = _codec.decode_arrays(snap.data)
        except ValueError as exc:
            raise corrupt(snap.seq, f"snapshot undecodable ({exc})") from None
        self.ledger.import_state(ledger_arrays(arrays))
        self.ages.reset(arrays["age_id"], arrays["age_event"])
        self.seq, self.num_events, self.hash = snap.seq, snap.num_events, snap.batch_hash
        self.snap_seq, self.snap_events = snap.seq, snap.num_events

    # ------------------------------------------------------------ loading
    def anchor_seq(self, store: StoreReader, snaps: dict[int, Snapshot]) -> int:
        """The batch the stored chain starts after: 0, or the prune point of an archive."""
        first = store.first_seq()
        if first is None:
            return max(snaps, default=0)
        return first - 1

    def start_from_anchor(
        self, store: StoreReader, snaps: dict[int, Snapshot], anchor_seq: int
    ) -> bytes:
        """Load the anchor snapshot of a pruned journal; returns the hash to chain from."""
        if anchor_seq == 0:
            return self.genesis
        anchor = snaps.get(anchor_seq)
        data = None if anchor is None else store.snapshot_data(anchor)
        if anchor is None or data is None:
            raise corrupt(anchor_seq + 1, "pruned journal without a usable anchor snapshot")
        anchor.data = data
        self.load_snapshot(anchor)
        return anchor.batch_hash

    def load(
        self, store: StoreReader, *, verify: str, snapshots: bool = True
    ) -> list[tuple[int, bytes, ApplyResult]]:
        """Latest good snapshot + replay of the later batches (from an empty replica).

        ``verify="full"`` checks the hash chain of every stored batch; ``"tail"`` only
        of the batches after the snapshot (the snapshot's own checksum covers the
        rest). ``snapshots=False`` replays from batch 1, using snapshot rows only as
        compaction points. Returns ``(seq, hash, result)`` of the replayed batches
        whose result codes were not recorded yet (a writer stores them).
        """
        mark, present = store.read_mark()
        snaps = store.snapshot_index()
        anchor_seq = self.anchor_seq(store, snaps)
        base: Snapshot | None = None
        for snap in sorted(snaps.values(), key=lambda s: -s.seq):
            if snap.pruned or not snapshots:
                continue
            data = store.snapshot_data(snap)
            if data is not None:
                snap.data = data
                base = snap
                break
            logger.warning(
                "journal %s: snapshot at batch %d fails its checksum; using an older one "
                "and replaying",
                store.label,
                snap.seq,
            )
        if base is None and anchor_seq > 0:
            raise corrupt(
                None,
                "no usable snapshot, and the batches up to "
                f"{anchor_seq} were pruned: the state cannot be rebuilt",
            )
        if base is not None and base.seq < anchor_seq:
            raise corrupt(
                None,
                f"the usable snapshot (batch {base.seq}) is older than the "
                f"first stored batch {anchor_seq + 1}",
            )
        prev = self.genesis
        if anchor_seq > 0:
            anchor = snaps.get(anchor_seq)
            if anchor is None:
                raise corrupt(anchor_seq + 1, "no snapshot anchors the pruned journal")
            prev = anchor.batch_hash
        if base is not None:
            self.load_snapshot(base)
        start = anchor_seq + 1 if verify == "full" or base is None else base.seq + 1
        if base is not None and verify != "full":
            prev = base.batch_hash
        unrecorded: list[tuple[int, bytes, ApplyResult]] = []
        for row in store.rows(start):
            if not row.check(prev):
                raise corrupt(row.seq, "hash chain broken (the batch was altered or torn)")
            prev = row.hash
            if base is not None and row.seq <= base.seq:
                if row.seq == base.seq and row.hash != base.batch_hash:
                    raise corrupt(row.seq, "differs from the snapshot taken after it")
                continue
            result = self.replay_row(row, snaps)
            if row.codes is None:
                unrecorded.append((row.seq, row.hash, result))
        if base is not None and self.seq < base.seq:
            raise corrupt(self.seq + 1, f"missing: the snapshot follows batch {base.seq}")
        self.check_mark(store, mark, present)
        return unrecorded

    def follow(self, store: StoreReader) -> int | None:
        """Apply the batches committed after this replica's batch; returns how many.

        Returns None, changing nothing, when the writer compacted at a batch this
        replica already passed or pruned batches it has not read (an archive): the
        caller then rebuilds a replica from the snapshots, which stays equal to the
        writer.
        """
        mark, present = store.read_mark()  # read the mark before the data
        snaps = store.snapshot_index(-1 if self.snap_seq is None else self.snap_seq)
        before = self.seq
        first = store.first_seq()
        behind = [
            s
            for s in snaps.values()
            if s.horizon is not None and (self.snap_seq or 0) < s.seq <= self.seq
        ]
        if behind or (first is not None and first > self.seq + 1):
            return None
        for row in store.rows(self.seq + 1):
            if not row.check(self.hash):
                raise corrupt(row.seq, "hash chain broken")
            self.replay_row(row, snaps)
        self.check_mark(store, mark, present)
        return self.seq - before

    def check_mark(self, store: StoreReader, mark: HighWaterMark | None, present: bool) -> None:
        """Compare the high-water mark with the journal as replayed."""
        if mark is None:
            if present and self.seq > 0:
                raise corrupt(
                    None,
                    f"the high-water mark of {store.label} is empty or unreadable while the "
                    f"journal holds {self.seq} batches: acknowledged batches may be missing",
                )
            return
        if mark.seq == 0:
            return
        if mark.seq > self.seq:
            raise corrupt(
                self.seq + 1,
                f"missing: the high-water mark records batch {mark.seq} as acknowledged but "
                f"the journal ends at batch {self.seq}",
            )
        stored = store.batch_hash(mark.seq)
        if stored is not None and stored != mark.hash:
            raise corrupt(mark.seq, "differs from the acknowledged batch (high-water mark hash)")
