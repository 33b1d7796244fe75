"""A walkthrough of the stock ledger: stock, channels, reservations, idempotency, shortfalls.

Run: python examples/ledger_walkthrough.py
"""

from __future__ import annotations

from allocator import Events, Ledger, Network

net = Network()
for channel in ("store", "online", "marketplace"):
    net.add_channel(channel)
net.add_location("Store-001", kind="store", lat=31.2304, lon=121.4737)
net.add_location("DC-East", kind="warehouse", lat=31.1100, lon=121.8000)
net.add_sku("JACKET-M", price=399.0)
network = net.build()
ledger = Ledger(network)

# Goods arrive; the store keeps 4 on the shop floor for walk-in customers, the
# marketplace may hold at most 3, and 1 unit is safety stock.
ledger.receive("JACKET-M", "Store-001", 12, id=1)
ledger.apply(
    Events.concat(
        [
            Events.set_fence("JACKET-M", "Store-001", "store", 4, id=2, network=network),
            Events.set_cap("JACKET-M", "Store-001", "marketplace", 3, id=3, network=network),
            Events.set_safety("JACKET-M", "Store-001", 1, id=4, network=network),
        ]
    ).linked()
)
atp = ledger.available("JACKET-M", "Store-001", ["store", "online", "marketplace"])
print("available per channel (store, online, marketplace):", atp.tolist())

# An online order reserves 2 units for 15 minutes (times are the caller's epoch ms).
now = 1_700_000_000_000
hold = ledger.reserve(
    "JACKET-M", "Store-001", 2, channel="online", id=10, expires_at=now + 15 * 60_000
)
print("reserve:", hold.code.slug, "reservation id", hold.id)

# The queue redelivers the same event: same result, nothing changes.
again = ledger.reserve(
    "JACKET-M", "Store-001", 2, channel="online", id=10, expires_at=now + 15 * 60_000
)
print("redelivered reserve:", again.code.slug, "duplicate =", again.duplicate)

# The marketplace tries to take 4 but its cap is 3.
print(
    "marketplace reserve 4:",
    ledger.reserve("JACKET-M", "Store-001", 4, channel="marketplace", id=11).code.slug,
)

# Picked and shipped: commit 2 units.
print("commit:", ledger.commit(10, id=12).code.slug)

# A cycle count finds only 3 jackets while a new online hold of 2 is open:
ledger.reserve("JACKET-M", "Store-001", 2, channel="online", id=13)
count = ledger.adjust("JACKET-M", "Store-001", 1, id=14)
sf = count.shortfalls
print(
    f"cycle count: on_hand {sf.on_hand[0]}, reserved {sf.reserved[0]}, "
    f"shortage {sf.shortage[0]}, reservations to re-source {sf.at_risk(0).tolist()}"
)

# Stock moves from the DC through in_transit.
ledger.receive("JACKET-M", "DC-East", 20, id=20)
ledger.transfer("JACKET-M", "DC-East", "Store-001", 5, id=21)
print("in transit to the store:", ledger.position("JACKET-M", "Store-001")["in_transit"])
ledger.transfer_in("JACKET-M", "Store-001", 5, id=22)
print("store position:", ledger.position("JACKET-M", "Store-001"))
print("total on hand across locations:", int(ledger.totals()[0]))
