"""The real-time ledger as checkouts call it: scalar calls, group commit, threads,
coroutines, timeouts and crashes during group commit."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator import Events, Ledger, ResultCode
from allocator.events import NO_EXPIRY, EventKind
from allocator.exceptions import AllocatorError, LedgerBusyError, ValidationError
from allocator.journal import open_ledger, replay_journal, verify_journal
from tests.conftest import make_small_network
from tests.strategies import event_rows

NET = make_small_network()
R = ResultCode


def _rows_to_events(rows: list[tuple[int, ...]]) -> Events:
    cols = np.array(rows, dtype=np.int64).reshape(len(rows), 9).T
    names = ("id", "kind", "sku", "location", "channel", "qty", "ref", "expires_at", "link")
    data = dict(zip(names, cols, strict=True))
    data["link"] = data["link"].astype(bool)
    return Events.from_arrays(**data)


# --------------------------------------------------------------------------- scalar ≡ batch
def _scalar_call(led: Ledger, row: tuple[int, ...]) -> object:
    """The single-event method a checkout would call for ``row``."""
    ident, kind, sku, loc, chan, qty, ref, exp, _ = row
    ident = None if ident == 0 else ident
    k = EventKind(kind)
    if k == EventKind.RECEIVE:
        return led.receive(sku, loc, qty, id=ident)
    if k == EventKind.SALE:
        return led.sale(sku, loc, qty, channel=chan, id=ident)
    if k == EventKind.RESERVE:
        return led.reserve(
            sku, loc, qty, channel=chan, id=ident, expires_at=None if exp == NO_EXPIRY else exp
        )
    if k == EventKind.COMMIT:
        if sku >= 0:  # a commit naming its position goes through apply, like the batch
            return led.apply(_rows_to_events([row]))
        return led.commit(ref, None if qty == -1 else qty, id=ident)
    if k == EventKind.RELEASE:
        if sku >= 0:
            return led.apply(_rows_to_events([row]))
        return led.release(ref, id=ident)
    if k == EventKind.EXPIRE:
        return led.expire(exp, id=ident)
    if k == EventKind.TRANSFER_OUT:
        return led.transfer(sku, loc, ref, qty, id=ident)
    if k == EventKind.TRANSFER_IN:
        return led.transfer_in(sku, loc, qty, id=ident)
    if k in (EventKind.RETURN, EventKind.RETURN_NONSELLABLE):
        return led.return_(sku, loc, qty, sellable=k == EventKind.RETURN, id=ident)
    if k == EventKind.ADJUST:
        return led.adjust(sku, loc, qty, id=ident)
    if k == EventKind.SET_FENCE:
        return led.set_fence(sku, loc, chan, qty, id=ident)
    if k == EventKind.SET_CAP:
        return led.set_cap(sku, loc, chan, qty, id=ident)
    return led.set_safety(sku, loc, qty, id=ident)


@st.composite
def _unlinked_histories(draw: st.DrawFn) -> list[tuple[int, ...]]:
    fresh, old, res = [0], [], []
    rows: list[tuple[int, ...]] = []
    for _ in range(draw(st.integers(1, 8))):
        batch = draw(
            event_rows(
                num_skus=NET.num_skus,
                num_locations=NET.num_locations,
                num_channels=NET.num_channels,
                fresh_ids=fresh,
                old_ids=old,
                reservation_ids=res,
            )
        )
        for r in batch:
            r = (*r[:8], 0)
            rows.append(r)
            if r[0]:
                old.append(r[0])
            if r[1] == EventKind.RESERVE and r[0]:
                res.append(r[0])
    return rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_unlinked_histories())
def test_scalar_path_equals_batch_path(rows: list[tuple[int, ...]]) -> None:
    """The single-event calls and apply() give the same results and the same state."""
    scalar, batch, one_batch = Ledger(NET), Ledger(NET), Ledger(NET)
    whole = one_batch.apply(_rows_to_events(rows))
    for k, row in enumerate(rows):
        got = _scalar_call(scalar, row)
        want = batch.apply(_rows_to_events([row]))
        assert (int(got.ids[0]), int(got.codes[0])) == (want.id, int(want.code))  # type: ignore[attr-defined]
        assert bool(np.asarray(got.duplicate).reshape(-1)[0]) == bool(want.duplicate[0])  # type: ignore[attr-defined]
        assert (want.id, want.code) == (int(whole.ids[k]), R(int(whole.codes[k])))
    assert scalar.state_digest() == batch.state_digest() == one_batch.state_digest()


BAD_SCALARS = [1.5, float("nan"), float("inf"), "5", None, True, 2**70, -(2**70), b"1"]


@pytest.mark.parametrize("bad", BAD_SCALARS, ids=repr)
def test_bad_scalars_are_typed_errors_and_change_nothing(bad: object) -> None:
    """Every single-event call rejects a bad value with a library error, nothing applied."""
    led = Ledger(NET)
    led.receive("SKU-0", "S1", 10, id=1)
    hold = led.reserve("SKU-0", "S1", 2, channel="online", id=2)
    before = led.state_digest()
    calls = [
        lambda: led.receive("SKU-0", "S1", bad),
        lambda: led.sale("SKU-0", "S1", bad, channel="store"),
        lambda: led.reserve("SKU-0", "S1", bad, channel="online"),
        lambda: led.reserve("SKU-0", "S1", 1, channel="online", id=bad),
        lambda: led.reserve("SKU-0", "S1", 1, channel="online", expires_at=bad),
        lambda: led.commit(hold, bad),
        lambda: led.commit(bad),
        lambda: led.release(bad),
        lambda: led.adjust("SKU-0", "S1", bad),
        lambda: led.set_cap("SKU-0", "S1", "online", bad),
        lambda: led.transfer("SKU-0", "S1", "S2", bad),
        lambda: led.reservation(bad),
        lambda: led.expire(bad),
    ]
    for call in calls:
        try:
            result = call()
        except AllocatorError as exc:
            assert isinstance(exc, ValidationError), exc
            assert exc.code and exc.field, exc
        else:
            # only "None means default" arguments may succeed
            assert bad is None, (call, result)
    assert led.state_digest() == before or bad is None


# --------------------------------------------------------------------------- group ≡ alone
@st.composite
def _submissions(draw: st.DrawFn) -> list[object]:
    fresh, old, res = [0], [], []
    parts: list[object] = []
    for _ in range(draw(st.integers(1, 7))):
        rows = draw(
            event_rows(
                num_skus=NET.num_skus,
                num_locations=NET.num_locations,
                num_channels=NET.num_channels,
                fresh_ids=fresh,
                old_ids=old,
                reservation_ids=res,
            )
        )
        for r in rows:
            if r[0]:
                old.append(r[0])
            if r[1] == EventKind.RESERVE and r[0]:
                res.append(r[0])
        if len(rows) == 1 and not rows[0][8] and draw(st.booleans()):
            parts.append(tuple(rows[0][:8]))  # a single event, as the scalar path sends it
        else:
            parts.append(_rows_to_events(rows))
    return parts


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=_submissions())
def test_group_commit_equals_each_submission_alone(parts: list[object]) -> None:
    """One group of submissions gives each the results it gets applied alone, in order."""
    alone, grouped = Ledger(NET), Ledger(NET)
    want = []
    for part in parts:
        if isinstance(part, Events):
            want.append(alone.apply(part))
        else:
            want.append(alone._submit_one(part))  # type: ignore[arg-type]
    prepared = grouped.prepare(parts)  # type: ignore[arg-type]
    got = prepared.split(grouped.apply_prepared(prepared))
    for w, g in zip(want, got, strict=True):
        assert np.array_equal(w.ids, g.ids)
        assert np.array_equal(w.codes, g.codes)
        assert np.array_equal(np.asarray(w.duplicate), np.asarray(g.duplicate))
    assert alone.state_digest() == grouped.state_digest()


def test_open_chain_in_a_group_does_not_link_to_the_next_submission() -> None:
    led = Ledger(NET)
    led.receive(0, 0, 5, id=1)
    open_chain = Events.receive([0, 0], [0, 0], [1, 1], id=[10, 11], link=[True, True])
    after = Events.receive(0, 0, 1, id=12)
    prepared = led.prepare([open_chain, after])
    first, second = prepared.split(led.apply_prepared(prepared))
    assert first.codes.tolist() == [R.LINKED_EVENT_FAILED, R.LINKED_EVENT_CHAIN_OPEN]
    assert second.code == R.OK
    assert led.position(0, 0)["on_hand"] == 6
    assert led.result_of([10, 11, 12]).tolist() == [-1, -1, 0]


# --------------------------------------------------------------------------- threads
def _stress(led: object, tmp: Path, threads: int, ops: int, use_async: bool) -> None:
    """Random reserves/commits/releases on scarce stock from many callers, with a
    reader checking for oversell; returns nothing, asserts the contract."""
    ledger = led  # DurableLedger
    ledger.apply(Events.receive([0, 1, 2, 0], [0, 0, 1, 2], [6, 4, 5, 3], id=[1, 2, 3, 4]))  # type: ignore[attr-defined]
    seen: dict[int, tuple[int, int]] = {}  # id -> (code, duplicate)
    lock = threading.Lock()
    stop = threading.Event()
    bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            snap = ledger.stock_snapshot()  # type: ignore[attr-defined]
            if (snap.available < 0).any() or (snap.reserved > snap.on_hand).any():
                bad.append(f"oversell seen at version {snap.version}")
            if ledger.available(0, 0, "online") < 0:  # type: ignore[attr-defined]
                bad.append("negative available")

    def plan(k: int) -> list[tuple[str, int, int, int, int]]:
        rng = np.random.default_rng(k)
        out = []
        for i in range(ops):
            ident = 1000 + k * 10_000 + i
            op = rng.choice(["reserve", "reserve", "commit", "release"])
            sku, loc = [(0, 0), (1, 0), (2, 1), (0, 2)][rng.integers(0, 4)]
            out.append((str(op), ident, sku, loc, int(rng.integers(1, 3))))
        return out

    def record(ident: int, res: object) -> None:
        with lock:
            seen[ident] = (int(res.code), bool(res.duplicate))  # type: ignore[attr-defined]

    def worker(k: int) -> None:
        holds: list[int] = []
        for op, ident, sku, loc, q in plan(k):
            if op == "reserve" or not holds:
                res = ledger.reserve(sku, loc, q, channel=k % 3, id=ident)  # type: ignore[attr-defined]
                if res.ok:
                    holds.append(ident)
            elif op == "commit":
                res = ledger.commit(holds.pop(0), id=ident)  # type: ignore[attr-defined]
            else:
                res = ledger.release(holds.pop(), id=ident)  # type: ignore[attr-defined]
            record(ident, res)

    async def coroutine(k: int) -> None:
        holds: list[int] = []
        for op, ident, sku, loc, q in plan(k):
            if op == "reserve" or not holds:
                res = await ledger.reserve_async(sku, loc, q, channel=k % 3, id=ident)  # type: ignore[attr-defined]
                if res.ok:
                    holds.append(ident)
            elif op == "commit":
                res = await ledger.commit_async(holds.pop(0), id=ident)  # type: ignore[attr-defined]
            else:
                res = await ledger.release_async(holds.pop(), id=ident)  # type: ignore[attr-defined]
            record(ident, res)

    watcher = threading.Thread(target=reader)
    watcher.start()
    try:
        if use_async:

            async def main() -> None:
                await asyncio.gather(*(coroutine(k) for k in range(threads)))

            asyncio.run(main())
        else:
            pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
    finally:
        stop.set()
        watcher.join()
    assert not bad, bad[:3]
    assert len(seen) == threads * ops
    path = ledger.path  # type: ignore[attr-defined]
    journal = ledger.read()  # type: ignore[attr-defined]
    ids = np.asarray(journal.events.id)
    assert np.unique(ids).shape[0] == ids.shape[0]  # every event exactly once
    where = {int(i): k for k, i in enumerate(ids.tolist())}
    for ident, (code, dup) in seen.items():
        assert ident in where, ident  # every acknowledged event is journaled
        k = where[ident]
        if journal.recorded[k]:
            assert (int(journal.codes[k]), bool(journal.duplicate[k])) == (code, dup)
    digest = ledger.state_digest()  # type: ignore[attr-defined]
    assert ledger.groups_committed < threads * ops  # callers did share transactions  # type: ignore[attr-defined]
    ledger.close()  # type: ignore[attr-defined]
    assert replay_journal(path).state_digest() == digest
    assert verify_journal(path).ok
    with open_ledger(path) as again:  # recorded results after the reopen equal the callers'
        for ident, (code, _) in seen.items():
            assert int(again.result_of(ident)[0]) == code


def test_many_threads_on_scarce_stock(tmp_path: Path) -> None:
    led = open_ledger(tmp_path / "threads.db", NET, snapshot_every=500)
    _stress(led, tmp_path, threads=24, ops=40, use_async=False)


def test_many_coroutines_on_scarce_stock(tmp_path: Path) -> None:
    led = open_ledger(tmp_path / "async.db", NET, snapshot_every=500)
    _stress(led, tmp_path, threads=64, ops=15, use_async=True)


def test_in_memory_ledger_from_threads_never_loses_an_update() -> None:
    """Concurrent receipts on one position: every acknowledged unit is counted."""
    led = Ledger(NET)
    n, per = 16, 300

    def worker(k: int) -> None:
        for i in range(per):
            assert led.receive(0, 0, 1, id=1 + k * per + i).ok
            if i % 50 == 0:
                led.apply(
                    Events.receive(
                        [1, 2], [0, 0], [1, 1], id=[10**6 + k * per + i, 2 * 10**6 + k * per + i]
                    )
                )

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert led.position(0, 0)["on_hand"] == n * per
    assert led.position(1, 0)["on_hand"] == n * (per // 50)


def test_asyncio_calls_run_the_kernel_off_the_event_loop(tmp_path: Path) -> None:
    """Kernel calls and journal writes never run on the event loop's thread."""
    threads_used: set[int] = set()
    original = Ledger._apply_prepared

    def spy(self: Ledger, prepared: object) -> object:
        threads_used.add(threading.get_ident())
        return original(self, prepared)  # type: ignore[arg-type]

    Ledger._apply_prepared = spy  # type: ignore[method-assign]
    try:
        for led in (Ledger(NET), open_ledger(tmp_path / "loop.db", NET)):

            async def main(led: object = led) -> int:
                await led.apply_async(Events.receive(0, 0, 50, id=1))  # type: ignore[attr-defined]
                results = await asyncio.gather(
                    *(led.reserve_async(0, 0, 1, channel="online", id=10 + i) for i in range(60))  # type: ignore[attr-defined]
                )
                assert sum(r.ok for r in results) == 50
                return threading.get_ident()

            loop_thread = asyncio.run(main())
            assert loop_thread not in threads_used
            led.close()  # type: ignore[attr-defined]
            threads_used.clear()
    finally:
        Ledger._apply_prepared = original  # type: ignore[method-assign]


def test_busy_ledger_raises_and_the_retry_converges(tmp_path: Path) -> None:
    """A call that cannot get its turn in time is withdrawn: never applied."""
    led = open_ledger(tmp_path / "busy.db", NET, timeout=0.3)
    led.apply(Events.receive(0, 0, 5, id=1))
    gate = threading.Event()
    blocker = threading.Thread(target=lambda: led._control(lambda: gate.wait(5)))
    blocker.start()
    try:
        import time

        time.sleep(0.1)  # the commit thread is now busy with the blocker
        with pytest.raises(LedgerBusyError) as info:
            led.reserve(0, 0, 1, channel="online", id=7)
        assert info.value.code == "ledger_busy"
    finally:
        gate.set()
        blocker.join()
    assert int(led.result_of(7)[0]) == -1  # not applied
    assert led.reserve(0, 0, 1, channel="online", id=7).code == R.OK
    led.close()


def test_bounded_queue_refuses_beyond_its_room(tmp_path: Path) -> None:
    led = open_ledger(tmp_path / "room.db", NET, timeout=0.3, max_queue_events=10)
    gate = threading.Event()
    blocker = threading.Thread(target=lambda: led._control(lambda: gate.wait(5)))
    blocker.start()
    try:
        import time

        time.sleep(0.1)
        with pytest.raises(LedgerBusyError):
            led.apply(Events.receive(np.zeros(20, np.int64), 0, 1, id=np.arange(100, 120)))
    finally:
        gate.set()
        blocker.join()
    assert (led.result_of(np.arange(100, 120)) == -1).all()
    led.close()


# --------------------------------------------------------------------------- crashes
CHILD = r"""
import sys, threading
import numpy as np
from allocator.journal import open_ledger

path, threads, trial = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
led = open_ledger(path, snapshot_every=400)
out = threading.Lock()

def worker(k):
    i = 0
    while True:
        base = 10**9 * trial + 10_000_000 * (k + 1) + 10 * i
        if i % 3 == 0:  # a linked order of two lines
            ev = __import__("allocator").Events.reserve(
                [k % 4, (k + 1) % 4], [0, 1], [1, 1], channel=1, id=[base, base + 1]
            ).linked()
            res = led.apply(ev)
            line = f"ack {base} {base + 1}"
        else:
            led.receive(k % 4, k % 3, 2, id=base)
            line = f"ack {base}"
        with out:
            print(line, flush=True)
        i += 1

print("open", flush=True)
for k in range(threads):
    threading.Thread(target=worker, args=(k,), daemon=True).start()
threading.Event().wait()
"""


def test_sigkill_during_group_commit_with_concurrent_writers(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    with open_ledger(path, NET) as led:
        led.apply(Events.receive([0, 1, 2, 3], [0, 1, 2, 0], 1000, id=[1, 2, 3, 4]))
    rng = np.random.default_rng(5)
    for trial in range(1, 7):
        with subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), "8", str(trial)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            if proc.stdout.readline().strip() != "open":
                proc.kill()
                raise AssertionError(proc.stderr.read())
            timer = threading.Timer(float(rng.uniform(0.05, 0.4)), proc.kill)
            timer.start()
            acked: list[int] = []
            for line in proc.stdout:
                if line.startswith("ack"):
                    acked.extend(int(x) for x in line.split()[1:])
            proc.wait()
            timer.join()
            assert proc.returncode == -9
        with open_ledger(path) as led:
            journal = led.read()
            assert journal.recorded.all()
            ids = np.asarray(journal.events.id)[~np.asarray(journal.duplicate)]
            assert np.unique(ids).shape[0] == ids.shape[0]  # each event exactly once
            assert set(acked) <= set(ids.tolist())  # nothing acknowledged is lost
            # retrying acknowledged receipts with the same ids and payloads converges
            for base in [b for b in acked if (b % 10_000_000 // 10) % 3][-10:]:
                k = base % 10**9 // 10_000_000 - 1
                again = led.receive(k % 4, k % 3, 2, id=base)
                assert again.ok and again.duplicate
        assert verify_journal(path).ok


def test_busy_ledger_raises_to_a_coroutine_and_the_retry_converges(tmp_path: Path) -> None:
    led = open_ledger(tmp_path / "busy-async.db", NET, timeout=0.3)
    led.apply(Events.receive(0, 0, 5, id=1))
    gate = threading.Event()
    blocker = threading.Thread(target=lambda: led._control(lambda: gate.wait(5)))
    blocker.start()

    async def main() -> None:
        await asyncio.sleep(0.1)  # the commit thread is busy with the blocker
        with pytest.raises(LedgerBusyError):
            await led.reserve_async(0, 0, 1, channel="online", id=8)

    try:
        asyncio.run(main())
    finally:
        gate.set()
        blocker.join()
    assert int(led.result_of(8)[0]) == -1  # withdrawn, never applied
    assert asyncio.run(led.reserve_async(0, 0, 1, channel="online", id=8)).ok
    led.close()
