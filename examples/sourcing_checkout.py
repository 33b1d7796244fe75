"""Real-time sourcing at checkout: one city, three stores and a DC.

Shows a ship order filled from one store, an order that has to be split, a pick-up
order completed by a transfer, a same-day order outside every store's radius, the
"in stock near you" answer for a product page, and reserving the plan on the ledger.
"""

from __future__ import annotations

import numpy as np

from allocator import Events, Ledger, Network
from allocator.sourcing import CostModel, Orders, Sourcer, nearby, reserve_plan

net = Network()
for channel in ("store", "online"):
    net.add_channel(channel)
net.add_location(
    "Store-001",
    kind="store",
    lat=31.230,
    lon=121.470,
    same_day_radius_km=6.0,
    cost_multiplier=1.4,
    pick_capacity=50,
)
net.add_location(
    "Store-017",
    kind="store",
    lat=31.250,
    lon=121.490,
    same_day_radius_km=6.0,
    cost_multiplier=1.4,
    pick_capacity=50,
)
net.add_location("Store-032", kind="store", lat=31.300, lon=121.520, cost_multiplier=1.4)
net.add_location("DC-East", kind="warehouse", lat=31.100, lon=121.800)
for sku, price in (("TSHIRT-M", 19.9), ("JEANS-32", 49.0), ("SOCKS", 4.5), ("JACKET-L", 129.0)):
    net.add_sku(sku, price=price)
network = net.build()

ledger = Ledger(network)
stock = [
    ("TSHIRT-M", "Store-001", 3),
    ("JEANS-32", "Store-001", 2),
    ("SOCKS", "Store-017", 10),
    ("TSHIRT-M", "Store-017", 4),
    ("JEANS-32", "Store-017", 1),
    ("JACKET-L", "DC-East", 20),
    ("TSHIRT-M", "DC-East", 50),
    ("JEANS-32", "DC-East", 30),
    ("SOCKS", "Store-032", 5),
]
ledger.apply(Events.receive(*map(list, zip(*stock, strict=True)), network=network))

lines = [
    # order, sku, qty, service, pickup store, lat, lon
    (1001, "TSHIRT-M", 1, "ship", None, 31.255, 121.495),
    (1001, "SOCKS", 2, "ship", None, 31.255, 121.495),
    (1002, "JACKET-L", 1, "ship", None, 31.232, 121.472),
    (1002, "JEANS-32", 1, "ship", None, 31.232, 121.472),
    (1002, "SOCKS", 1, "ship", None, 31.232, 121.472),
    (1003, "JEANS-32", 1, "pickup", "Store-001", np.nan, np.nan),
    (1003, "JACKET-L", 1, "pickup", "Store-001", np.nan, np.nan),
    (1004, "SOCKS", 1, "same_day", None, 31.600, 121.100),
]
order, sku, qty, service, pickup, lat, lon = map(list, zip(*lines, strict=True))
orders = Orders.from_lines(
    order=order,
    sku=sku,
    qty=qty,
    channel="online",
    service=service,
    pickup_location=pickup,
    lat=lat,
    lon=lon,
    network=network,
)
print(orders.summary())

sourcer = Sourcer(network, CostModel(split_penalty=2.0))
plan = sourcer.source(ledger, orders, max_splits=2)
print(plan.summary())
print()
for i, text in enumerate(plan.explanations):
    print(f"order {int(orders.id[i])}: {text}")
print()
print(plan.to_frame()[["order", "sku", "location", "qty", "transfer", "km"]].to_string(index=False))
print()
print(plan.unfilled_frame().to_string(index=False))

print("\nIn stock near you (online, 2 nearest):")
print(
    nearby(
        network, ledger, ["TSHIRT-M", "JEANS-32"], 31.24, 121.48, channel="online", k=2
    ).summary()
)

reserved = reserve_plan(ledger, plan, expires_at=3_600)
print("\n" + reserved.summary())
print(
    "TSHIRT-M online availability at Store-017 after reserving:",
    ledger.available("TSHIRT-M", "Store-017", "online"),
)

# The rest of the checkout cycle, order by order: payment taken -> commit (ship or
# pick), payment failed -> release; holds never resolved lapse at their expiry.
paid, failed = reserved.accepted_orders[:1], reserved.accepted_orders[1:2]
for order_id in paid.tolist():
    print(f"order {order_id} paid: commit ->", reserved.commit(order_id).summary())
for order_id in failed.tolist():
    print(f"order {order_id} payment failed: release ->", reserved.release(order_id).summary())
print("holds lapsing at t=3600:", ledger.expire(3_600).summary())
if len(reserved.resource):
    print("re-sourcing", len(reserved.resource), "orders whose stock moved")
    print(sourcer.source(ledger, reserved.resource).summary())
