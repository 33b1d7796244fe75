"""Slow, obvious twins of the kernels: the oracles of the tests, the baselines of
the benchmarks.

Each module restates one kernel's rules in plain Python (dicts, loops, no numba),
written to be read, not to be fast: ``ledger`` (the stock ledger), ``sourcing``
(greedy sourcing), ``optimal`` (brute-force optimal sourcing on tiny waves),
``channels`` (the channel split) and ``replenish`` (policies and transfers). The
tests compare every kernel with its twin; ``allocator bench`` measures the fast path
beside them in the same run.
"""
