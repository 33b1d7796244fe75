"""``allocator bench ledger --quick`` runs and reports its figures beside its baselines."""

from __future__ import annotations

import json

import numpy as np

from allocator._kernels.baselines import bare_checked
from allocator._kernels.ledger import K_COMMIT, K_RECEIVE, K_RELEASE, K_RESERVE, K_SALE
from allocator.cli import main


def test_bench_ledger_quick_json(capsys):
    assert (
        main(
            [
                "bench",
                "ledger",
                "--quick",
                "--json",
                "--events",
                "50000",
                "--positions",
                "5000",
                "--memory-positions",
                "20000",
                "--reference-events",
                "5000",
            ]
        )
        == 0
    )
    figures = json.loads(capsys.readouterr().out)
    for key in (
        "events_per_s",
        "ceiling_events_per_s",
        "reference_events_per_s",
        "compile_s",
        "bytes_per_position",
        "bare_kernel_events_per_s",
        "kernel_events_per_s",
    ):
        assert figures[key] > 0, key
    assert 0.0 <= figures["validation_share"] < 1.0
    assert figures["share_of_bare"] == figures["events_per_s"] / figures["bare_kernel_events_per_s"]
    assert 0.05 < figures["rejected_share"] < 0.5
    assert figures["events"] == 50_000


def test_bare_checked_kernel_matches_a_python_loop():
    """The baseline the ledger is measured against does what its docstring says."""
    kinds = [K_RECEIVE, K_SALE, K_RESERVE, K_COMMIT, K_RELEASE]
    rng = np.random.default_rng(3)
    n, slots = 2_000, 7
    kind = rng.choice(np.array(kinds, dtype=np.int64), n)
    pos = rng.integers(0, slots, n)
    qty = rng.integers(1, 5, n)
    on_hand = np.zeros(slots, np.int64)
    reserved = np.zeros(slots, np.int64)
    out = np.zeros(n, np.uint8)
    rejected = bare_checked(kind, pos, qty, on_hand, reserved, out)
    oh, rs, want = [0] * slots, [0] * slots, []
    for k, p, q in zip(kind.tolist(), pos.tolist(), qty.tolist(), strict=True):
        if k == K_RECEIVE:
            oh[p] += q
            ok = True
        elif k in (K_SALE, K_RESERVE):
            ok = oh[p] - rs[p] >= q
            if ok and k == K_SALE:
                oh[p] -= q
            elif ok:
                rs[p] += q
        else:
            ok = rs[p] >= q
            if ok:
                rs[p] -= q
                oh[p] -= q if k == K_COMMIT else 0
        want.append(0 if ok else 1)
    assert out.tolist() == want
    assert rejected == sum(want) > 0
    assert on_hand.tolist() == oh and reserved.tolist() == rs
