"""A durable ledger: journal, crash-safe reopen, idempotent retries, audit and verify.

Opens a ledger journaled in SQLite, applies a few batches, "restarts" by reopening
from the path alone, shows that a retried event id returns its original result,
reads the journal back as events, and scrubs it with ``verify_journal``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from allocator import Events, Network
from allocator.journal import open_ledger, verify_journal


def build_network():
    net = Network()
    for channel in ("store", "online"):
        net.add_channel(channel)
    net.add_location("Store-1", kind="store", lat=31.23, lon=121.47)
    net.add_location("DC", kind="warehouse", lat=31.10, lon=121.80)
    for sku in ("TSHIRT", "JEANS"):
        net.add_sku(sku)
    return net.build()


def main() -> None:
    out = Path(os.environ.get("ALLOCATOR_EXAMPLE_OUT") or tempfile.mkdtemp())
    path = out / "ledger.db"
    for side in ("", "-wal", "-shm", "-hwm"):
        Path(str(path) + side).unlink(missing_ok=True)

    network = build_network()
    with open_ledger(path, network) as ledger:
        ledger.apply(
            Events.receive(
                ["TSHIRT", "JEANS"], ["Store-1", "DC"], [10, 4], id=[1, 2], network=network
            )
        )
        hold = ledger.reserve("TSHIRT", "Store-1", 3, channel="online", id=3)
        ledger.commit(hold.id, 2, id=4)
        print("before restart:", ledger.position("TSHIRT", "Store-1"))
        print(ledger.info().summary())

    # A new process would do exactly this: the network comes from the journal.
    with open_ledger(path) as ledger:
        print("after restart: ", ledger.position("TSHIRT", "Store-1"))
        retry = ledger.apply(
            Events.reserve("TSHIRT", "Store-1", 3, channel="online", id=3, network=ledger.network)
        )
        print(f"retry of id 3: code={retry.code.slug}, duplicate={bool(retry.duplicate[0])}")
        ledger.snapshot()
        history = ledger.read()
        print(history.summary())
        print(
            history.to_frame(ledger.network)[
                ["batch", "id", "kind", "sku_name", "qty", "code", "duplicate"]
            ].to_string(index=False)
        )

    report = verify_journal(path)
    print(report.summary())


if __name__ == "__main__":
    main()
