"""The numba ledger against the pure-Python reference, step by step (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from allocator import Events, Ledger, ResultCode
from allocator._reference.ledger import NaiveLedger
from allocator.events import EventKind
from tests.conftest import make_small_network
from tests.strategies import event_rows

NETWORK = make_small_network()


def to_events(rows: list[tuple[int, ...]]) -> Events:
    cols = np.array(rows, dtype=np.int64).T
    names = ("id", "kind", "sku", "location", "channel", "qty", "ref", "expires_at", "link")
    data = dict(zip(names, cols, strict=True))
    data["link"] = data["link"].astype(bool)
    return Events.from_arrays(**data)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger(NETWORK, capacity=2, reservation_capacity=2)
        self.naive = NaiveLedger(NETWORK.num_locations, NETWORK.num_channels)
        self.fresh = [0]
        self.old_ids: list[int] = []
        self.reservation_ids: list[int] = []
        self.ever_short: set[tuple[int, int]] = set()

    @rule(data=st.data())
    def apply_batch(self, data: st.DataObject) -> None:
        rows = data.draw(
            event_rows(
                num_skus=2,
                num_locations=NETWORK.num_locations,
                num_channels=NETWORK.num_channels,
                fresh_ids=self.fresh,
                old_ids=self.old_ids,
                reservation_ids=self.reservation_ids,
            )
        )
        result = self.ledger.apply(to_events(rows))
        expected = self.naive.apply(rows)
        assert result.ids.tolist() == [e[0] for e in expected]
        assert result.codes.tolist() == [int(e[1]) for e in expected]
        assert result.duplicate.tolist() == [e[2] for e in expected]
        # the shortfall report lists exactly the flagged positions that are still short
        flagged = {(rows[k][2], rows[k][3]) for k, e in enumerate(expected) if e[3]}
        self.ever_short |= flagged
        still_short = {
            key
            for key in flagged
            if self.naive.positions[key].on_hand < self.naive.positions[key].reserved
        }
        got = set(
            zip(result.shortfalls.sku.tolist(), result.shortfalls.location.tolist(), strict=True)
        )
        assert got == still_short
        for i in range(len(result.shortfalls)):
            at_risk = result.shortfalls.at_risk(i)
            assert (
                sum(self.naive.reservations[r].open for r in at_risk.tolist())
                >= result.shortfalls.shortage[i]
            )
        for ident, kind in zip(result.ids.tolist(), (r[1] for r in rows), strict=True):
            if ident == 0:  # an event of an open chain: never applied, no id
                continue
            self.old_ids.append(ident)
            if kind == EventKind.RESERVE:
                self.reservation_ids.append(ident)

    @invariant()
    def same_state(self) -> None:
        seen = set()
        for (sku, loc), p in self.naive.positions.items():
            got = self.ledger.position(sku, loc)
            assert got["on_hand"] == p.on_hand
            assert got["in_transit"] == p.in_transit
            assert got["safety_stock"] == p.safety
            assert got["nonsellable"] == p.nonsellable
            assert got["fence"] == p.fence
            assert [2**62 if c is None else c for c in got["cap"]] == p.cap
            assert got["reserved_by_channel"] == p.res
            for c in range(NETWORK.num_channels):
                assert self.ledger.available(sku, loc, c) == p.available(c)
            seen.add((sku, loc))
        # positions created inside rolled-back groups hold nothing
        for sku, loc in zip(
            self.ledger.position_sku.tolist(), self.ledger.position_location.tolist(), strict=True
        ):
            if (sku, loc) not in seen:
                assert self.ledger.position(sku, loc)["on_hand"] == 0
        for ident, res in self.naive.reservations.items():
            got = self.ledger.reservation(ident)
            assert got is not None
            assert got.state.name.lower() == res.state
            assert got.open_qty == res.open
        ids = list(self.naive.results)
        if ids:
            assert self.ledger.result_of(ids).tolist() == [
                int(self.naive.results[i][0]) for i in ids
            ]

    @invariant()
    def no_oversell(self) -> None:
        for key, p in self.naive.positions.items():
            if key not in self.ever_short:
                assert 0 <= p.reserved <= p.on_hand
        assert (self.ledger.on_hand >= 0).all()
        assert (self.ledger.in_transit >= 0).all()
        assert (self.ledger.reserved_by_channel >= 0).all()


LedgerMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestLedgerAgainstReference = LedgerMachine.TestCase


def test_result_codes_cover_every_outcome_in_reference() -> None:
    """The reference and the enum agree on the code space (a guard for new codes)."""
    assert max(ResultCode) < 64  # codes share a byte with the duplicate/shortfall bits
