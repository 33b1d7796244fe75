"""pytest-benchmark figures for the replenishment kernels (small sizes)."""

from __future__ import annotations

import numpy as np

from allocator.replenishment import exponential_smoothing, optimal_ss, plan_transfers


def test_forecast_ses(benchmark) -> None:
    hist = np.random.default_rng(0).poisson(3.0, (100_000, 28))
    benchmark(exponential_smoothing, hist, 0.2)


def test_optimal_ss(benchmark) -> None:
    lam = np.random.default_rng(0).gamma(1.0, 2.0, 2_000) + 0.05
    benchmark(optimal_ss, lam, 2, 20.0, 0.1, 2.0)


def test_transfers(benchmark) -> None:
    rng = np.random.default_rng(0)
    n_loc, n_sku = 100, 500
    sku, loc = np.divmod(np.arange(n_loc * n_sku), n_loc)
    ip = rng.integers(-10, 40, sku.size)
    need = np.where(ip < 5, 20 - ip, 0)
    surplus = np.maximum(ip - 25, 0)
    cost = rng.uniform(0.5, 3.0, (n_loc, n_loc))
    benchmark(plan_transfers, sku, loc, surplus, need, np.full(sku.size, 5.0), cost)


def test_replenish_plan_50k(benchmark) -> None:
    from allocator.bench.distributed import _replenish_kwargs, replenish_case
    from allocator.replenishment import replenish

    network, ledger, history, on_order = replenish_case(0, 100, 2_500, 0.2, 28)
    kwargs = _replenish_kwargs(on_order)
    replenish(network, ledger, history, **kwargs)
    benchmark(replenish, network, ledger, history, **kwargs)
