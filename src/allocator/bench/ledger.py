"""``allocator bench ledger``: apply throughput against its ceiling and its reference.

Figures, all measured in the same run on the same events:

* ``events_per_s``: :meth:`Ledger.apply` end to end (validation, kernel, result) on a
  mixed stream of receive, sale, reserve, commit and release over ``--positions``
  positions with three channels, with the full semantics (idempotency index, channels,
  linked-group support, expiry heap);
* ``ceiling_events_per_s``: a raw unchecked numba ``on_hand[pos] += qty`` over the
  same positions, the memory-bound hardware ceiling;
* ``bare_kernel_events_per_s``: the bare checked kernel on the same stream (on_hand
  and reserved per slot, slots resolved beforehand, oversell rejected; no idempotency,
  channels, linked groups or expiry), and ``share_of_bare`` = ``events_per_s`` over it;
* ``validation_share``: the share of :meth:`Ledger.apply` spent outside the apply
  kernel (validation, id assignment and result building);
* ``reference_events_per_s``: the pure-Python reference ledger on a prefix of the
  stream;
* ``bytes_per_position``: state plus position index per position for
  ``--memory-positions`` positions with three channels (sized with a capacity hint),
  and ``bytes_per_position_grown`` when the ledger grew on its own.

JIT compile (or cache load) time is reported apart as ``compile_s``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from allocator._kernels import baselines as B
from allocator._reference.ledger import NaiveLedger
from allocator.bench import median_time
from allocator.events import ALL, NO_EXPIRY, EventKind, Events
from allocator.ledger import Ledger
from allocator.network import NetworkData

DESCRIPTION = "ledger events/s vs a raw scatter-add ceiling and the pure-Python reference"

#: Share of each kind in the mixed stream.
MIX = {
    EventKind.RECEIVE: 0.15,
    EventKind.SALE: 0.20,
    EventKind.RESERVE: 0.35,
    EventKind.COMMIT: 0.15,
    EventKind.RELEASE: 0.15,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=10_000_000, help="mixed events")
    parser.add_argument("--positions", type=int, default=1_000_000, help="positions touched")
    parser.add_argument(
        "--memory-positions",
        type=int,
        default=20_000_000,
        help="positions for the bytes-per-position figure (0 to skip)",
    )
    parser.add_argument(
        "--reference-events",
        type=int,
        default=300_000,
        help="prefix of the stream run through the pure-Python reference",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke test")


def make_network(num_locations: int, num_skus: int, num_channels: int = 3) -> NetworkData:
    """A synthetic network of ``num_locations`` x ``num_skus`` with generated names."""
    rng = np.random.default_rng(0)
    return NetworkData.from_arrays(
        channels=[f"channel-{c}" for c in range(num_channels)],
        location_name=[f"L{i:05d}" for i in range(num_locations)],
        location_kind="store",
        lat=rng.uniform(30.0, 32.0, num_locations),
        lon=rng.uniform(120.0, 122.0, num_locations),
        sku_name=[f"S{i:07d}" for i in range(num_skus)],
    )


def mixed_stream(
    network: NetworkData, num_positions: int, num_events: int, seed: int
) -> tuple[Events, Events]:
    """``(setup, stream)``: receipts creating the positions, then the mixed stream."""
    rng = np.random.default_rng(seed)
    nl = network.num_locations
    keys = rng.choice(network.num_skus * nl, size=num_positions, replace=False)
    p_sku, p_loc = keys // nl, keys % nl
    setup = Events.receive(
        p_sku, p_loc, rng.integers(2, 12, num_positions), id=np.arange(1, num_positions + 1)
    )
    kinds = np.array(list(MIX), dtype=np.int64)
    kind = rng.choice(kinds, size=num_events, p=np.array(list(MIX.values())))
    which = rng.integers(0, num_positions, num_events)
    ids = np.arange(num_positions + 1, num_positions + 1 + num_events, dtype=np.int64)
    qty = np.where(
        kind == EventKind.RECEIVE,
        rng.integers(1, 8, num_events),
        np.where(
            kind == EventKind.SALE, rng.integers(1, 4, num_events), rng.integers(1, 3, num_events)
        ),
    )
    resolve = (kind == EventKind.COMMIT) | (kind == EventKind.RELEASE)
    reserves = np.flatnonzero(kind == EventKind.RESERVE)
    rank = np.searchsorted(reserves, np.arange(num_events)) - 1 - rng.integers(0, 64, num_events)
    has = resolve & (rank >= 0)
    ref = np.zeros(num_events, dtype=np.int64)
    ref[has] = ids[reserves[rank[has]]]
    ref[resolve & ~has] = rng.integers(1, num_positions, int((resolve & ~has).sum()))
    sku = np.where(resolve, -1, p_sku[which])
    loc = np.where(resolve, -1, p_loc[which])
    qty = np.where(resolve, np.where(kind == EventKind.COMMIT, ALL, 0), qty)
    channel = np.where(resolve, -1, rng.integers(0, network.num_channels, num_events))
    stream = Events.from_arrays(
        kind=kind,
        id=ids,
        sku=sku,
        location=loc,
        channel=channel,
        qty=qty,
        ref=ref,
        expires_at=NO_EXPIRY,
    )
    return setup, stream


def _rows(events: Events) -> list[tuple[int, ...]]:
    cols = [getattr(events, f).tolist() for f in Events.FIELDS]
    cols[-1] = [int(x) for x in cols[-1]]
    return list(zip(*cols, strict=True))


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.events, args.positions = min(args.events, 200_000), min(args.positions, 20_000)
        args.memory_positions = min(args.memory_positions, 200_000)
        args.reference_events = min(args.reference_events, 20_000)
        args.repeat = 1
    network = make_network(1_000, max(100, 4 * args.positions // 1_000))

    t0 = time.perf_counter()
    warm = Ledger(network)
    warm.apply(
        Events.concat(
            [
                Events.receive(0, 0, 5, id=1),
                Events.reserve(0, 0, 1, channel=0, id=2, expires_at=5),
                Events.commit(2, id=3),
                Events.expire(10, id=4),
            ]
        )
    )
    B.scatter_add(np.zeros(1, np.int64), np.zeros(1, np.int64), np.ones(1, np.int64))
    compile_s = time.perf_counter() - t0

    setup, stream = mixed_stream(network, args.positions, args.events, args.seed)
    results: list[Any] = []

    kernel_times: list[float] = []

    def apply_stream() -> None:
        led = ledger_box[0]
        results.append(led.apply(stream))
        kernel_times.append(led.last_kernel_seconds)

    ledger_box: list[Ledger] = []
    times = []
    for _ in range(args.repeat):
        led = Ledger(
            network,
            capacity=args.positions,
            reservation_capacity=int(args.events * MIX[EventKind.RESERVE]) + 1,
        )
        led.apply(setup)
        ledger_box[:] = [led]
        times.append(median_time(apply_stream, repeat=1))
    seconds = float(np.median(times))
    last = results[-1]
    rejected = float((last.codes != 0).mean())

    led = ledger_box[0]
    pos = led.position_index(stream.sku.clip(0), stream.location.clip(0))
    on_hand = np.zeros(led.num_positions, dtype=np.int64)
    qty = stream.qty.copy()
    ceiling_s = median_time(lambda: B.scatter_add(on_hand, pos, qty), repeat=max(3, args.repeat))
    bare_s = _bare_seconds(stream, setup, pos, led, max(3, args.repeat))

    prefix = stream.take(slice(0, args.reference_events))
    naive = NaiveLedger(network.num_locations, network.num_channels)
    naive.apply(_rows(setup))
    rows = _rows(prefix)
    t0 = time.perf_counter()
    naive.apply(rows)
    reference_s = time.perf_counter() - t0

    figures: dict[str, Any] = {
        "events": args.events,
        "positions": args.positions,
        "rejected_share": rejected,
        "seconds": seconds,
        "events_per_s": args.events / seconds,
        "ceiling_events_per_s": args.events / ceiling_s,
        "bare_kernel_events_per_s": args.events / bare_s,
        "kernel_events_per_s": args.events / float(np.median(kernel_times)),
        "validation_share": float(
            np.median([1.0 - k / t for k, t in zip(kernel_times, times, strict=True)])
        ),
        "reference_events_per_s": len(rows) / reference_s,
        "compile_s": compile_s,
    }
    figures["speedup_vs_reference"] = figures["events_per_s"] / figures["reference_events_per_s"]
    figures["share_of_ceiling"] = figures["events_per_s"] / figures["ceiling_events_per_s"]
    figures["share_of_bare"] = figures["events_per_s"] / figures["bare_kernel_events_per_s"]
    if args.memory_positions:
        figures.update(_memory(args.memory_positions))
    return figures


def _bare_seconds(
    stream: Events, setup: Events, pos: np.ndarray, led: Ledger, repeat: int
) -> float:
    """Median seconds of :func:`~allocator._kernels.baselines.bare_checked` on ``stream``.

    A commit or release gets the slot and quantity of the reserve it names (an unknown
    reservation gets a quantity no slot can cover, so it is rejected as the ledger
    rejects it)."""
    kind = stream.kind.astype(np.int64)
    qty = stream.qty.astype(np.int64)
    slot = pos.astype(np.int64)
    resolve = (kind == EventKind.COMMIT) | (kind == EventKind.RELEASE)
    first_id = int(stream.id[0])
    at = stream.ref - first_id
    known = resolve & (at >= 0) & (at < len(stream))
    known[known] = kind[at[known]] == EventKind.RESERVE
    slot[known] = slot[at[known]]
    qty[known] = qty[at[known]]
    slot[resolve & ~known] = 0
    qty[resolve & ~known] = np.iinfo(np.int64).max // 4
    base = led.position_index(setup.sku, setup.location)
    out = np.zeros(len(stream), dtype=np.uint8)

    def once() -> None:
        on_hand = np.zeros(led.num_positions, dtype=np.int64)
        on_hand[base] = setup.qty
        reserved = np.zeros_like(on_hand)
        t = time.perf_counter()
        B.bare_checked(kind, slot, qty, on_hand, reserved, out)
        seconds.append(time.perf_counter() - t)

    seconds: list[float] = []
    for _ in range(repeat + 1):  # the first call compiles or loads the kernel
        once()
    return float(np.median(seconds[1:]))


def _memory(num_positions: int) -> dict[str, Any]:
    """Bytes per position at ``num_positions`` positions, 3 channels."""
    nl = 1_000
    network = make_network(nl, -(-num_positions // nl))
    keys = np.arange(num_positions, dtype=np.int64)
    batch = 5_000_000
    out: dict[str, Any] = {"memory_positions": num_positions}
    for name, capacity in (
        ("bytes_per_position", num_positions),
        ("bytes_per_position_grown", 1024),
    ):
        led = Ledger(network, capacity=capacity)
        for start in range(0, num_positions, batch):
            k = keys[start : start + batch]
            led.apply(Events.receive(k // nl, k % nl, 1, id=k + 1))
        out[name] = led.bytes_per_position()
        del led
    return out
