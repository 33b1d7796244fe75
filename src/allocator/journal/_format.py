"""What a journal is, whatever stores it: batch rows, snapshots, the hash chain.

A journal is a sequence of *batches* (``seq`` 1, 2, ...), each holding the events it
applied with their ids as applied, chained by a BLAKE2b hash to the batch before;
the result codes of a batch are stored with the next transaction (a replay
reproduces them) and bound to the batch by their own check. *Snapshots* hold the
ledger state after a batch. A *high-water mark* kept apart from the batches records
the last acknowledged batch, so that a store which silently lost acknowledged
commits is caught. The SQLite and PostgreSQL stores keep exactly this format.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

import numpy as np

from allocator._kernels import ledger as K
from allocator.events import Events
from allocator.exceptions import JournalCorruptError, JournalError
from allocator.journal import _codec
from allocator.ledger import ApplyResult

__all__ = [
    "NO_DIGEST",
    "Ages",
    "HighWaterMark",
    "Row",
    "Snapshot",
    "chain_hash",
    "checksum",
    "codes_check",
    "compact",
    "corrupt",
    "genesis_hash",
    "kernel_probe",
    "ledger_arrays",
]

NO_DIGEST = bytes(32)  # a snapshot row whose digest was dropped (a rebased journal)
BATCH_HEAD = struct.Struct("<qqqqqq")


def chain_hash(
    prev: bytes,
    seq: int,
    first_event: int,
    num_events: int,
    auto_id: int,
    recorded_at: int,
    events: bytes,
) -> bytes:
    """BLAKE2b-256 of the previous hash, the batch header and the events blob."""
    h = hashlib.blake2b(prev, digest_size=32)
    h.update(BATCH_HEAD.pack(seq, first_event, num_events, auto_id, recorded_at, len(events)))
    h.update(events)
    return h.digest()


def codes_check(batch_hash: bytes, codes: bytes) -> bytes:
    """BLAKE2b-256 binding a batch's result codes to the batch's chain hash."""
    return hashlib.blake2b(batch_hash + codes, digest_size=32).digest()


def genesis_hash(network_digest: bytes) -> bytes:
    """The hash that batch 1 chains to."""
    return hashlib.blake2b(b"allocator journal\0" + network_digest, digest_size=32).digest()


def checksum(blob: bytes) -> bytes:
    return hashlib.blake2b(blob, digest_size=32).digest()


def corrupt(seq: int | None, message: str) -> JournalCorruptError:
    """A :class:`JournalCorruptError` naming batch ``seq`` (``exc.batch``)."""
    where = f"batch {seq}: " if seq is not None else ""
    exc = JournalCorruptError(f"{where}{message}")
    exc.batch = seq  # type: ignore[attr-defined]
    return exc


@dataclass(frozen=True)
class HighWaterMark:
    """Last acknowledged batch: its sequence number, event count and chain hash."""

    seq: int
    num_events: int
    hash: bytes


@dataclass
class Row:
    """One stored batch."""

    seq: int
    first_event: int
    num_events: int
    auto_id: int
    recorded_at: int
    events: bytes
    hash: bytes
    codes: bytes | None
    codes_check: bytes | None
    #: Store-specific data beside the batch, outside the chain (on PostgreSQL: which
    #: submission each part of the batch came from).
    extra: bytes | None = None

    def check(self, prev: bytes) -> bool:
        """True when the batch hashes into the chain after ``prev``."""
        return (
            chain_hash(
                prev,
                self.seq,
                self.first_event,
                self.num_events,
                self.auto_id,
                self.recorded_at,
                self.events,
            )
            == self.hash
        )

    def decode_events(self) -> Events:
        """The events as applied (ids included), checked like any batch."""
        try:
            cols = _codec.decode_events(self.events)
        except ValueError as exc:
            raise corrupt(self.seq, f"undecodable ({exc})") from None
        if cols["id"].shape[0] != self.num_events:
            raise corrupt(self.seq, "event count differs from the header")
        try:
            return Events(**{k: _readonly(v) for k, v in cols.items()})
        except (ValueError, TypeError) as exc:
            raise corrupt(self.seq, f"events break the batch rules ({exc})") from None

    def decode_codes(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(codes, duplicate)``, or None when not recorded yet; checks the binding."""
        if self.codes is None:
            return None
        if self.codes_check != codes_check(self.hash, self.codes):
            raise corrupt(self.seq, "result codes fail their check")
        try:
            return _codec.decode_codes(self.codes, self.num_events)
        except ValueError as exc:
            raise corrupt(self.seq, f"result codes undecodable ({exc})") from None


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(arr)
    arr.flags.writeable = False
    return arr


@dataclass
class Snapshot:
    """A stored snapshot's row (its data is loaded on demand)."""

    seq: int
    num_events: int
    horizon: int | None
    batch_hash: bytes
    digest: bytes
    checksum: bytes
    pruned: bool = False  # data dropped by retention; the row still marks the point
    data: bytes | None = None


class Ages:
    """When each idempotency entry was first applied (global event number).

    Needed to compact entries older than the horizon. The base holds the entries of
    the last snapshot in first-applied order; batches since then are appended.
    """

    def __init__(self) -> None:
        self.base_id = np.zeros(0, dtype=np.int64)
        self.base_event = np.zeros(0, dtype=np.int64)
        self.tail_id: list[np.ndarray] = []
        self.tail_event: list[np.ndarray] = []

    def add(self, result: ApplyResult, first_event: int) -> None:
        """Record the new ids of one journaled batch (closed groups only)."""
        rows = np.flatnonzero(~result.duplicate)
        self.tail_id.append(result.ids[rows])
        self.tail_event.append(rows + first_event)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        ids = np.concatenate([self.base_id, *self.tail_id])
        ev = np.concatenate([self.base_event, *self.tail_event])
        return ids, ev

    def reset(self, ids: np.ndarray, ev: np.ndarray) -> None:
        self.base_id, self.base_event = ids, ev
        self.tail_id, self.tail_event = [], []


def compact(
    arrays: dict[str, np.ndarray], ages: Ages, total: int, horizon: int | None
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Drop closed reservations and id entries first applied before ``total - horizon``.

    Returns the snapshot arrays (id entries in first-applied order, with their
    ``age_event``) and the kept ``(ids, events)`` ages. Open reservations and the ids
    naming them are always kept. Slots of kept reservations are renumbered in order,
    which keeps the expiry order ``(expires_at, slot)``.
    """
    age_id, age_event = ages.arrays()
    sorted_ids = arrays["id"]
    if age_id.shape[0] != sorted_ids.shape[0]:
        raise JournalError(
            f"id tracking out of step with the ledger ({age_id.shape[0]} tracked, "
            f"{sorted_ids.shape[0]} in the index)"
        )
    where = np.searchsorted(sorted_ids, age_id)
    where = np.minimum(where, max(0, sorted_ids.shape[0] - 1))
    if sorted_ids.shape[0] and not np.array_equal(sorted_ids[where], age_id):
        raise JournalError("id tracking out of step with the ledger index")
    value = arrays["id_value"][where]
    out = {k: v for k, v in arrays.items() if k not in ("id", "id_value")}
    if horizon is not None:
        cutoff = total - horizon
        nres = arrays["res_id"].shape[0]
        slot = (value >> 32) - 1
        has_slot = slot >= 0
        res_event = np.full(nres, np.iinfo(np.int64).max, dtype=np.int64)
        res_event[slot[has_slot]] = age_event[has_slot]
        keep_res = (arrays["res_state"] == K.RS_OPEN) | (res_event >= cutoff)
        keep_id = age_event >= cutoff
        keep_id[has_slot] |= keep_res[slot[has_slot]]
        if not keep_res.all() or not keep_id.all():
            new_slot = np.cumsum(keep_res) - 1
            for name in [k for k in out if k.startswith("res_")]:
                out[name] = out[name][keep_res]
            age_id, age_event, value, slot = (
                age_id[keep_id],
                age_event[keep_id],
                value[keep_id],
                slot[keep_id],
            )
            moved = slot >= 0
            value = value.copy()
            value[moved] = (value[moved] & 0xFFFFFFFF) | ((new_slot[slot[moved]] + 1) << 32)
    out["age_id"], out["age_value"], out["age_event"] = age_id, value, age_event
    return out, age_id, age_event


def ledger_arrays(snap: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Snapshot arrays -> the form of ``Ledger.export_state`` (ids sorted)."""
    order = np.argsort(snap["age_id"], kind="stable")
    out = {k: v for k, v in snap.items() if not k.startswith("age_")}
    out["id"] = snap["age_id"][order]
    out["id_value"] = snap["age_value"][order]
    return out


def kernel_probe() -> bytes:
    """Digest of the kernel's payload fingerprints of fixed payloads.

    Snapshots store the idempotency index, whose values embed these fingerprints: a
    library whose kernel fingerprints payloads differently cannot use them.
    """
    h = hashlib.blake2b(digest_size=16)
    for args in ((0, 1, 2, 3, 4, 5, 6), (2, 7, 1, 0, 3, 0, 2**62), (10, 0, 0, -1, 0, 0, 0)):
        h.update(int(K.fingerprint(*args)).to_bytes(8, "little", signed=True))
    return h.digest()
