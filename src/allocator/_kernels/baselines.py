"""Baseline kernels that benchmarks measure the ledger against (never used by it).

* :func:`scatter_add`: raw unchecked ``on_hand[pos] += qty``, the memory-bound
  ceiling of touching one random position per event;
* :func:`bare_checked`: the least a checked ledger must do per event: on_hand and
  reserved per slot (the slot resolved beforehand), oversell rejected, no
  idempotency index, channels, linked groups or expiry.
"""

from __future__ import annotations

import numpy as np

from allocator._kernels import jit
from allocator._kernels.ledger import K_COMMIT, K_RECEIVE, K_RELEASE, K_RESERVE, K_SALE


@jit
def scatter_add(on_hand: np.ndarray, pos: np.ndarray, qty: np.ndarray) -> int:
    """Raw unchecked ``on_hand[pos] += qty``: the memory-bound ceiling for benchmarks."""
    for i in range(pos.shape[0]):
        on_hand[pos[i]] += qty[i]
    return pos.shape[0]


@jit
def bare_checked(
    kind: np.ndarray,
    pos: np.ndarray,
    qty: np.ndarray,
    on_hand: np.ndarray,
    reserved: np.ndarray,
    out: np.ndarray,
) -> int:
    """Apply receive/sale/reserve/commit/release to per-slot counters; returns rejections.

    ``pos`` is each event's slot (a commit or release names the slot of the units it
    resolves, with their quantity in ``qty``). A sale needs ``on_hand - reserved``,
    a reserve ``on_hand - reserved``, a commit or release ``reserved``.
    """
    rejected = 0
    for i in range(kind.shape[0]):
        p = pos[i]
        q = qty[i]
        k = kind[i]
        ok = True
        if k == K_RECEIVE:
            on_hand[p] += q
        elif k == K_SALE or k == K_RESERVE:
            if on_hand[p] - reserved[p] < q:
                ok = False
            elif k == K_SALE:
                on_hand[p] -= q
            else:
                reserved[p] += q
        elif k == K_COMMIT or k == K_RELEASE:
            if reserved[p] < q:
                ok = False
            else:
                reserved[p] -= q
                if k == K_COMMIT:
                    on_hand[p] -= q
        out[i] = 0 if ok else 1
        rejected += 0 if ok else 1
    return rejected
