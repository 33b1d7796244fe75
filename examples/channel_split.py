"""Split store stock between the shop floor, the online mall and a marketplace.

Two stores and a warehouse hold three SKUs. Demand over the next week comes per
channel as a normal forecast (mean, variance). We keep two display units on the
shop floor, let the marketplace take at most 30 % of on_hand, hold safety stock for
a 90 % cycle service level, and fence the rest where it earns the most expected
margin. Then we apply the fences to the ledger and read each channel's availability.
"""

from __future__ import annotations

import numpy as np

from allocator import Ledger, Network
from allocator.channels import ChannelForecast, allocate_channels

net = Network()
for channel in ("store", "online", "marketplace"):
    net.add_channel(channel)
net.add_location("Store-Nanjing-Rd", kind="store", lat=31.235, lon=121.475)
net.add_location("Store-Xujiahui", kind="store", lat=31.195, lon=121.437)
# The warehouse ships online orders only: no shop floor there.
net.add_location(
    "DC-Pudong", kind="warehouse", lat=31.220, lon=121.650, channels=("online", "marketplace")
)
for sku, price in (("Scarf", 59.0), ("Sneaker", 499.0), ("Mug", 19.0)):
    net.add_sku(sku, price=price)
data = net.build()

ledger = Ledger(data)
stock = {
    ("Scarf", "Store-Nanjing-Rd"): 24,
    ("Scarf", "Store-Xujiahui"): 9,
    ("Sneaker", "Store-Nanjing-Rd"): 12,
    ("Sneaker", "DC-Pudong"): 140,
    ("Mug", "Store-Xujiahui"): 30,
    ("Mug", "DC-Pudong"): 400,
}
for (sku, location), qty in stock.items():
    ledger.receive(sku, location, qty)
ledger.reserve("Sneaker", "DC-Pudong", 5, channel="online")  # an open online order

# Weekly demand per (position, channel): store, online, marketplace.
weekly = {
    ("Scarf", "Store-Nanjing-Rd"): (8.0, 6.0, 4.0),
    ("Scarf", "Store-Xujiahui"): (5.0, 3.0, 2.0),
    ("Sneaker", "Store-Nanjing-Rd"): (4.0, 3.0, 3.0),
    ("Sneaker", "DC-Pudong"): (0.0, 60.0, 45.0),
    ("Mug", "Store-Xujiahui"): (10.0, 4.0, 6.0),
    ("Mug", "DC-Pudong"): (0.0, 120.0, 150.0),
}
mean = np.zeros((ledger.num_positions, 3))
for (sku, location), row in weekly.items():
    mean[ledger.position_index(sku, location)] = row
forecast = ChannelForecast.normal(mean, 1.8 * mean)  # over-dispersed demand

# Margin per unit sold by SKU and channel (marketplace pays a commission).
margin = np.array([[25.0, 22.0, 15.0], [180.0, 170.0, 120.0], [8.0, 7.0, 4.0]])
allocation = allocate_channels(
    data,
    ledger,
    forecast,
    margin=margin,
    unsold_cost=0.15 * margin,  # markdown and lost flexibility of a unit left fenced
    floors={"store": 2},
    caps={"marketplace": 0.30},
    service_level=0.90,
    detail=True,  # keep expected sales per (position, channel) for the table below
)
print(allocation.summary())
print()
frame = allocation.to_frame()
print(
    frame[["sku", "location", "channel", "fence", "cap", "expected_sales"]]
    .round(2)
    .to_string(index=False)
)

result = ledger.apply(allocation.to_events())
print()
print(f"applied as one linked batch: {result.summary()}")
print()
print("available to promise per channel after the split:")
for sku, location in stock:
    avail = [ledger.available(sku, location, ch) for ch in data.channel_names]
    print(
        f"  {sku:<8} {location:<17} "
        + "  ".join(f"{ch}={a:<4}" for ch, a in zip(data.channel_names, avail, strict=True))
    )
