"""How a checkout backend uses the ledger, checked by ``mypy --strict``.

Lines marked ``# type: ignore[...]`` are mistakes that mypy must catch; mypy runs
with ``--warn-unused-ignores``, so one that it stopped catching fails the check.
"""

from __future__ import annotations

import asyncio

import numpy as np

from allocator import Events, Ledger, LedgerBusyError, Network, open_ledger
from allocator.ledger import ApplyResult, EventResult, Reservation


def build() -> Ledger:
    net = Network()
    for channel in ("store", "online"):
        net.add_channel(channel)
    net.add_location("S1", kind="store", lat=31.2, lon=121.5)
    net.add_sku("A", price=10.0)
    return Ledger(net.build())


def checkout(ledger: Ledger) -> int:
    ledger.receive("A", "S1", 5, id=1)
    hold = ledger.reserve("A", "S1", 2, channel="online", id=2, expires_at=900)
    if not hold:
        return 0
    ledger.commit(hold)  # the reserve's result names the reservation
    ledger.release(hold.id)
    res: Reservation | None = ledger.reservation(hold)
    batch: ApplyResult = ledger.apply(Events.receive(0, 0, 3, id=3))
    assert batch.ok and res is not None
    one = ledger.receive(np.int64(0), np.int64(0), np.int64(1))
    if isinstance(one, EventResult):
        assert one.duplicate in (True, False)
    many = ledger.receive(["A", "A"], ["S1", "S1"], [1, 2])
    assert len(many) == 2
    return int(ledger.available("A", "S1", "online"))


def mistakes(ledger: Ledger) -> None:
    ledger.receive("A", "S1", "5")  # type: ignore[arg-type]
    ledger.receive("A", "S1", 1.5)  # type: ignore[arg-type]
    ledger.reserve("A", "S1", 1)  # type: ignore[call-arg]
    ledger.commit("hold-2")  # type: ignore[arg-type]
    ledger.apply([1, 2, 3])  # type: ignore[arg-type]


async def coroutines(path: str) -> bool:
    ledger = build()
    with open_ledger(path, ledger.network) as durable:
        try:
            hold = await durable.reserve_async("A", "S1", 1, channel="online")
        except LedgerBusyError:
            return False
        await durable.commit_async(hold)
        return bool(hold)


if __name__ == "__main__":
    print(checkout(build()), asyncio.run(coroutines("/tmp/typing-check.db")))
