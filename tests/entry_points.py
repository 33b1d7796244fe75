"""Every public entry point, called with one of two sets of argument types and options.

``python tests/entry_points.py a`` or ``... b`` prints one line per call, the same
on every run. ``tests/test_compilation.py`` runs both in fresh processes sharing one
numba cache, twice, so that each kernel is loaded from a cache other processes
wrote, including callers compiled in a process that loaded their callees.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from allocator import Events, Ledger, Network, Orders, allocate_channels, replenish, source
from allocator.channels import ChannelForecast
from allocator.journal import open_ledger, verify_journal
from allocator.replenishment import (
    MinMaxPolicy,
    OptimalPoissonPolicy,
    ReorderPointPolicy,
    croston,
    exponential_smoothing,
    moving_average,
)
from allocator.sourcing import CostModel, Sourcer, methods, nearby, reserve_plan


def network(variant: str):
    net = Network()
    for channel in ("store", "online", "marketplace"):
        net.add_channel(channel)
    net.add_location("S1", kind="store", lat=31.23, lon=121.47, same_day_radius_km=9.0)
    net.add_location("S2", kind="store", lat=31.26, lon=121.52)
    net.add_location("S3", kind="store", lat=31.20, lon=121.40, pick_capacity=5)
    if variant == "b":
        net.add_location("DC", kind="warehouse", lat=31.1, lon=121.8, channels=("online",))
    for k in range(5):
        net.add_sku(f"K{k}", price=12.0 + k, unit_cost=4.0)
    return net.build()


def main(variant: str) -> None:
    data = network(variant)
    ledger = Ledger(data)
    nl, nk = data.num_locations, data.num_skus
    # stock: names and Python ints (a) or int32 / Fortran-ordered numpy arrays (b)
    if variant == "a":
        for k in range(nk):
            for loc in data.location_names:
                ledger.receive(f"K{k}", loc, 10 + k)
    else:
        grid = np.asfortranarray(np.indices((nk, nl), dtype=np.int32))
        ledger.apply(
            Events.receive(grid[0].ravel(), grid[1].ravel(), np.full(nk * nl, 12, dtype=np.int32))
        )
    hold = ledger.reserve("K1", "S1", 2, channel="online", expires_at=50)
    print("reserve", hold.summary())
    print("commit", ledger.commit(hold.id, 1 if variant == "a" else None).summary())
    print("expire", ledger.expire(100 if variant == "a" else 10**6).summary())
    print("available", ledger.available(["K0", "K2"], ["S1", "S2"], "store"))
    print("digest", ledger.state_digest())

    # durable ledger
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.db"
        durable = open_ledger(path, data)
        durable.receive("K0", "S1", 3 if variant == "a" else np.int64(4))
        durable.close()
        print("journal", verify_journal(path).ok)

    # sourcing
    qty = [1, 2, 1, 1] if variant == "a" else np.array([1, 2, 1, 1], dtype=np.int32)
    orders = Orders.from_lines(
        order=[1, 1, 2, 3],
        sku=["K0", "K1", "K2", "K3"] if variant == "a" else np.array([0, 1, 2, 3]),
        qty=qty,
        channel="online" if variant == "a" else "marketplace",
        service=["ship", "ship", "pickup", "same_day"] if variant == "a" else "ship",
        pickup_location=[None, None, "S1", None] if variant == "a" else None,
        lat=[31.24, 31.24, np.nan, 31.23] if variant == "a" else 31.25,
        lon=[121.48, 121.48, np.nan, 121.47] if variant == "a" else 121.5,
        network=data,
    )
    plan = source(data, ledger, orders, max_splits=1 if variant == "a" else None)
    print("source", plan.summary().splitlines()[0])
    costs = CostModel(split_penalty=3.0) if variant == "b" else CostModel()
    print("sourcer", Sourcer(data, costs).source(ledger, orders).summary().splitlines()[0])
    print("nearby", nearby(data, ledger, ["K0"], 31.24, 121.48, channel="online", k=2).summary())
    if "optimal" in methods():
        opt = source(data, ledger, orders, method="optimal", time_limit=5.0)
        print("optimal", opt.summary().splitlines()[0])
    print("reserve_plan", reserve_plan(ledger, plan).summary().splitlines()[0])

    # channel split
    npos, nc = ledger.num_positions, data.num_channels
    mean = np.linspace(0.5, 4.0, npos * nc).reshape(npos, nc)
    if variant == "a":
        fc = ChannelForecast.poisson(mean.tolist())
        split = allocate_channels(data, ledger, fc, margin=2.0, caps={"marketplace": 1})
    else:
        fc = ChannelForecast.normal(np.asfortranarray(mean), mean[:, ::-1].copy())
        split = allocate_channels(
            data,
            ledger,
            fc,
            margin=[3.0, 2.0, 1.0],
            floors={"store": 1},
            fill_rate=0.9,
            detail=True,
        )
    print("channels", split.summary().splitlines()[0])

    # replenishment
    rng = np.random.default_rng(1)
    history = rng.poisson(1.0, (npos, 21))
    if variant == "b":
        history = history.astype(np.int32)
    print("moving_average", moving_average(history, 7).summary())
    print("exponential_smoothing", exponential_smoothing(history, 0.3).summary())
    print("croston", croston(history).summary())
    policy = (
        ReorderPointPolicy(order_quantity=6, fill_rate=0.9)
        if variant == "a"
        else MinMaxPolicy(order_cost=5.0, holding_cost=0.1, service_level=0.9)
    )
    plan_r = replenish(data, ledger, history, policy=policy, lead_time=2, budget=200.0)
    print("replenish", plan_r.summary().splitlines()[0])
    plan_p = replenish(data, ledger, history, policy=OptimalPoissonPolicy(), transfers=False)
    print("replenish_poisson", plan_p.summary().splitlines()[0])


if __name__ == "__main__":
    main(sys.argv[1])
