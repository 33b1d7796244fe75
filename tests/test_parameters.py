"""Every parameter of ``replenish`` and ``allocate_channels`` is checked up front.

Each bad value raises the library's typed error naming the parameter, before
anything is planned, even where the parameter would not be read (``transfer_cost``
with no transfer candidate, ``lead_time`` without a service target). The tables
below must cover every parameter of both signatures, so a new parameter without a
check fails here.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest

from allocator import Ledger, Network, NetworkData
from allocator._kernels import ledger as KL
from allocator.channels import STOCK_MAX, ChannelForecast, allocate_channels
from allocator.exceptions import AllocatorError, ValidationError
from allocator.replenishment import (
    OptimalPoissonPolicy,
    OrderUpToPolicy,
    ReorderPointPolicy,
    replenish,
)


def _network() -> NetworkData:
    net = Network()
    for ch in ("store", "online", "marketplace"):
        net.add_channel(ch)
    for i in range(3):
        net.add_location(f"L{i}", kind="store", lat=31.0 + 0.1 * i, lon=121.0)
    for k in range(2):
        net.add_sku(f"A{k}", price=10.0, unit_cost=4.0)
    return net.build()


@pytest.fixture(scope="module")
def stocked() -> tuple[NetworkData, Ledger, np.ndarray]:
    net = _network()
    led = Ledger(net)
    # every position above what it needs: no transfer is ever a candidate
    led.receive([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], [900] * 6)
    hist = np.random.default_rng(0).poisson(3.0, (6, 28))
    return net, led, hist


NaN = float("nan")

# (parameter, bad value, field named by the error)
REPLENISH_BAD: list[tuple[str, Any, str]] = [
    ("network", "net", "network"),
    ("ledger", None, "ledger"),
    ("demand", np.ones((5, 7)), "demand"),
    ("demand", np.full((6, 7), NaN), "demand"),
    ("policy", "order_up_to", "policy"),
    ("policy", OrderUpToPolicy(service_level=NaN), "service_level"),
    ("policy", OrderUpToPolicy(service_level=1.5), "service_level"),
    ("policy", OrderUpToPolicy(distribution="gamma"), "distribution"),  # type: ignore[arg-type]
    ("policy", ReorderPointPolicy(order_quantity=np.ones(4, np.int64)), "order_quantity"),
    ("policy", ReorderPointPolicy(order_cost=5.0, holding_cost=0.0), "holding_cost"),
    ("policy", OptimalPoissonPolicy(order_cost=-1.0), "order_cost"),
    ("lead_time", NaN, "lead_time"),
    ("lead_time", np.ones((6, 2)), "lead_time"),
    ("review_period", -1, "review_period"),
    ("transfers", "yes", "transfers"),
    ("budget", NaN, "budget"),
    ("budget", "100", "budget"),
    ("on_order", [1] * 5, "on_order"),
    ("backorders", -1, "backorders"),
    ("moq", 1.5, "moq"),
    ("pack", 0, "pack"),
    ("shelf_max", -2, "shelf_max"),
    ("unit_cost", NaN, "unit_cost"),
    ("stockout_cost", -1.0, "stockout_cost"),
    ("transfer_cost", -1.0, "transfer_cost"),
    ("transfer_cost", NaN, "transfer_cost"),
    ("transfer_cost", np.ones((2, 2)), "transfer_cost"),
    ("transfer_cost", "cheap", "transfer_cost"),
    ("transfer_cost_per_km", NaN, "transfer_cost_per_km"),
    ("transfer_buffer", 0.5, "transfer_buffer"),
    ("max_sources", -1, "max_sources"),
    ("max_sources", 1.5, "max_sources"),
    ("transfer_threads", 0, "transfer_threads"),
    ("cover_threshold", NaN, "cover_threshold"),
    ("cover_threshold", -1.0, "cover_threshold"),
    ("forecast_method", "arima", "forecast_method"),
    ("alpha", 0.0, "alpha"),
    ("freq", "fortnight", "freq"),
    ("progress", 5, "progress"),
    ("client", object(), "client"),
    ("scheduler", 8786, "scheduler"),
    ("partitions", 0, "partitions"),
]


def test_the_replenish_table_covers_every_parameter() -> None:
    params = set(inspect.signature(replenish).parameters)
    assert params == {p for p, _, _ in REPLENISH_BAD}


@pytest.mark.parametrize(("param", "value", "field"), REPLENISH_BAD)
def test_replenish_names_the_bad_parameter(
    stocked: tuple[NetworkData, Ledger, np.ndarray], param: str, value: Any, field: str
) -> None:
    if param in ("client", "scheduler"):
        pytest.importorskip("distributed")
    net, led, hist = stocked
    args: dict[str, Any] = {"network": net, "ledger": led, "demand": hist, param: value}
    if param == "freq":
        import pandas as pd

        args["demand"] = pd.DataFrame(
            {"sku": ["A0"], "location": ["L0"], "date": ["2024-05-01"], "qty": [1]}
        )
    with pytest.raises(ValidationError) as info:
        replenish(args.pop("network"), args.pop("ledger"), args.pop("demand"), **args)
    assert info.value.field == field, str(info.value)


def test_transfer_cost_is_checked_without_any_candidate(
    stocked: tuple[NetworkData, Ledger, np.ndarray],
) -> None:
    net, led, hist = stocked
    plan = replenish(net, led, hist)
    assert plan.num_transfers == 0  # nobody needs anything: no candidate
    for bad in (-1.0, NaN, np.ones((2, 2)), np.full((3, 3), -0.5)):
        with pytest.raises(ValidationError) as info:
            replenish(net, led, hist, transfer_cost=bad)
        assert info.value.field == "transfer_cost"
    with pytest.raises(ValidationError) as info:
        replenish(net, led, hist, transfer_cost=np.eye(3) - 2.0)
    assert info.value.row == 0


def _forecast(n: int) -> ChannelForecast:
    return ChannelForecast.poisson(np.full((n, 3), 2.0))


CHANNELS_BAD: list[tuple[str, Any, str]] = [
    ("network_data", "net", "network_data"),
    ("ledger", None, "ledger"),
    ("forecast", np.ones((6, 3)), "forecast"),
    ("margin", NaN, "margin"),
    ("margin", {"store": 1.0}, "margin"),
    ("unsold_cost", -1.0, "unsold_cost"),
    ("floors", 1.5, "floors"),
    ("floors", {"store": 2**70}, "floors"),
    ("floors", 2**70, "floors"),
    ("caps", {"marketplace": 2**70}, "caps"),
    ("caps", 2**70, "caps"),
    ("caps", np.array([1, 2, 2**63 + 5], dtype=np.uint64), "caps"),
    ("caps", {"marketplace": NaN}, "caps"),
    ("caps", -2, "caps"),
    ("caps", 1.5, "caps"),
    ("service_level", 1.5, "service_level"),
    ("service_level", NaN, "service_level"),
    ("fill_rate", 0.0, "fill_rate"),
    ("lead_time", NaN, "lead_time"),
    ("lead_time", -1.0, "lead_time"),
    ("detail", "yes", "detail"),
    ("client", object(), "client"),
    ("scheduler", 8786, "scheduler"),
    ("partitions", 1.5, "partitions"),
]


def test_the_channels_table_covers_every_parameter() -> None:
    params = set(inspect.signature(allocate_channels).parameters)
    assert params == {p for p, _, _ in CHANNELS_BAD}


@pytest.mark.parametrize(("param", "value", "field"), CHANNELS_BAD)
def test_allocate_channels_names_the_bad_parameter(
    stocked: tuple[NetworkData, Ledger, np.ndarray], param: str, value: Any, field: str
) -> None:
    if param in ("client", "scheduler"):
        pytest.importorskip("distributed")
    net, led, _ = stocked
    args: dict[str, Any] = {
        "network_data": net,
        "ledger": led,
        "forecast": _forecast(led.num_positions),
        "margin": 1.0,
        param: value,
    }
    before = led.state_digest()
    with pytest.raises(ValidationError) as info:
        allocate_channels(
            args.pop("network_data"), args.pop("ledger"), args.pop("forecast"), **args
        )
    assert info.value.field == field, str(info.value)
    assert led.state_digest() == before


def test_huge_caps_are_a_typed_error_not_an_overflow(
    stocked: tuple[NetworkData, Ledger, np.ndarray],
) -> None:
    net, led, _ = stocked
    for caps in ({"marketplace": 2**70}, [0, 0, 2**70], 2**64):
        with pytest.raises(ValidationError) as info:
            allocate_channels(net, led, _forecast(led.num_positions), margin=1.0, caps=caps)
        assert info.value.field == "caps"
        assert info.value.code == "out_of_range"
        assert isinstance(info.value, AllocatorError)


def test_public_stock_max_is_the_ledgers() -> None:
    assert STOCK_MAX == KL.STOCK_MAX
