"""Scenario generator: validation, determinism, structure of the network and demand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator.exceptions import ValidationError
from allocator.network import LocationKind
from allocator.scenarios import (
    CHANNELS,
    MARKETPLACE,
    ONLINE,
    STORE,
    Promotion,
    Scenario,
    department_store,
)
from allocator.sourcing import Service


def tiny(**changes: Any) -> Scenario:
    base = dict(
        num_stores=4,
        num_dcs=1,
        num_skus=60,
        walk_in_units=40.0,
        online_orders=80.0,
        marketplace_orders=20.0,
        history_days=7,
    )
    return department_store(**{**base, **changes})


def test_default_scenario_builds() -> None:
    data = department_store().build(0)
    net = data.network
    assert net.channel_names == CHANNELS
    assert data.stores.shape[0] == 20 and data.dcs.shape[0] == 2
    assert (net.location_kind[data.stores] == LocationKind.STORE).all()
    assert (net.location_kind[data.dcs] == LocationKind.WAREHOUSE).all()
    # DCs do not sell on the shop floor and are no pick-up points
    assert not net.serves[data.dcs, STORE].any()
    assert not net.pickup[data.dcs].any()
    assert "department_store" in data.summary()


def test_positions_sorted_unique_and_cover_the_catalogue() -> None:
    data = tiny().build(1)
    nl = data.network.num_locations
    keys = data.position_sku * nl + data.position_location
    assert (np.diff(keys) > 0).all()
    assert np.unique(data.position_sku).shape[0] == data.network.num_skus
    assert (data.initial_stock >= 1).all()
    # DCs carry every SKU by default; stores carry the core range
    for dc in data.dcs.tolist():
        assert (data.position_of(np.arange(60), np.full(60, dc)) >= 0).all()
    core = round(0.05 * 60)
    for s in data.stores.tolist():
        assert (data.position_of(np.arange(core), np.full(core, s)) >= 0).all()
    carried = set(zip(data.position_sku.tolist(), data.position_location.tolist(), strict=True))
    sku, loc = np.meshgrid(np.arange(60), np.arange(nl), indexing="ij")
    found = data.position_of(sku.ravel(), loc.ravel()) >= 0
    pairs = zip(sku.ravel().tolist(), loc.ravel().tolist(), strict=True)
    expect = [pair in carried for pair in pairs]
    assert found.tolist() == expect
    assert not all(expect)  # stores do not carry everything


def test_zipf_popularity_known_answer() -> None:
    data = tiny(zipf_exponent=1.0).build(0)
    p = data.popularity
    assert p.sum() == pytest.approx(1.0)
    assert p[0] / p[1] == pytest.approx(2.0)
    assert p[0] / p[9] == pytest.approx(10.0)


def test_same_seed_same_data_other_seed_differs() -> None:
    a, b, c = tiny().build(5), tiny().build(5), tiny().build(6)
    for name in ("position_sku", "position_location", "initial_stock", "lead_time"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert np.array_equal(a.network.lat, b.network.lat)
    assert not np.array_equal(a.network.lat, c.network.lat)
    rows_a, units_a = a.walk_in(2, 1)
    rows_b, units_b = b.walk_in(2, 1)
    assert np.array_equal(rows_a, rows_b) and np.array_equal(units_a, units_b)
    oa, ob = a.online_orders(2, 1, 1), b.online_orders(2, 1, 1)
    assert np.array_equal(oa.orders.sku, ob.orders.sku)
    assert np.array_equal(oa.abandon, ob.abandon)


def test_calendar_weekly_and_promotions() -> None:
    sc = tiny(start_day_of_year=312, promotions=(Promotion(314, 1, 6.0, 1.5, "11.11"),))
    # day 2 is day 314 of the year, a Friday (day 0 of the year is a Monday)
    assert sc.day_of_year(2) == 314
    assert sc.weekday(2) == 314 % 7
    walk, online = sc.multipliers(2)
    w = sc.weekly[314 % 7]
    assert walk == pytest.approx(w * 1.5) and online == pytest.approx(w * 6.0)
    assert sc.multipliers(3) == (sc.weekly[315 % 7], sc.weekly[315 % 7])
    assert sc.promotion_on(2) == "11.11" and sc.promotion_on(3) == ""


def test_orders_structure() -> None:
    data = tiny(pickup_share=0.4, same_day_share=0.2).build(2)
    batch = data.online_orders(0, 0, 100, volume=5.0)
    orders = batch.orders
    assert orders.num_orders > 10
    assert orders.id[0] == 100 and (np.diff(orders.id) == 1).all()
    lines = np.diff(orders.indptr)
    assert lines.min() >= 1 and lines.max() <= 5
    market = orders.channel == MARKETPLACE
    assert (orders.service[market] == Service.SHIP).all()
    pick = orders.service == Service.PICKUP
    assert pick.any() and (orders.channel[pick] == ONLINE).all()
    assert np.array_equal(orders.pickup_location[pick], batch.home[pick])
    assert not batch.returned[pick].any()
    assert not batch.abandon[~pick].any()
    # no SKU twice in one order
    for i in range(orders.num_orders):
        skus = orders.sku[orders.indptr[i] : orders.indptr[i + 1]]
        assert np.unique(skus).shape[0] == skus.shape[0]


def test_volume_scales_demand() -> None:
    data = tiny().build(3)
    small = sum(int(data.walk_in(d, 0, 0.5)[1].sum()) for d in range(6))
    big = sum(int(data.walk_in(d, 0, 4.0)[1].sum()) for d in range(6))
    assert big > 4 * small


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"num_stores": -1}, "num_stores", "out_of_range"),
        ({"num_skus": 0}, "num_skus", "out_of_range"),
        ({"num_stores": 0, "num_dcs": 0}, "num_stores", "empty"),
        ({"pickup_share": 1.5}, "pickup_share", "out_of_range"),
        ({"return_share": -0.1}, "return_share", "out_of_range"),
        ({"online_orders": -5.0}, "online_orders", "out_of_range"),
        ({"num_stores": 0}, "walk_in_units", "no_location_for_channel"),
        (
            {"num_stores": 0, "walk_in_units": 0.0},
            "pickup_share",
            "no_location_for_channel",
        ),
        ({"same_day_radius_km": 0.0}, "same_day_radius_km", "no_location_for_channel"),
        ({"pickup_share": 0.7, "same_day_share": 0.5}, "same_day_share", "out_of_range"),
        ({"weekly": (1.0,) * 6}, "weekly", "length_mismatch"),
        ({"lines_per_order": (0.5, 0.2)}, "lines_per_order", "out_of_range"),
        ({"lead_time_days": (0, 3)}, "lead_time_days", "invalid_input"),
        ({"cost_share": (0.7, 0.4)}, "cost_share", "invalid_input"),
        ({"service_level": 1.0}, "service_level", "out_of_range"),
        ({"waves_per_day": 0}, "waves_per_day", "out_of_range"),
        ({"num_dcs": 2.5}, "num_dcs", "wrong_dtype"),
        ({"radius_km": float("nan")}, "radius_km", "not_finite"),
        ({"promotions": (Promotion(400),)}, "promotions.day_of_year", "out_of_range"),
        ({"promotions": ("11.11",)}, "promotions", "wrong_dtype"),
    ],
)
def test_bad_parameters_raise_typed_errors(changes: dict, field: str, code: str) -> None:
    with pytest.raises(ValidationError) as info:
        department_store(**changes)
    assert info.value.field == field
    assert info.value.code == code


def test_bad_seed() -> None:
    with pytest.raises(ValidationError):
        tiny().build(-1)


def test_dc_only_scenario_serves_online() -> None:
    sc = department_store(
        num_stores=0, walk_in_units=0.0, pickup_share=0.0, same_day_share=0.0, num_skus=30
    )
    data = sc.build(0)
    batch = data.online_orders(0, 0, 1, volume=4.0)
    assert (batch.home == -1).all()
    assert (batch.orders.service == Service.SHIP).all()
    assert data.walk_in(0, 0)[0].shape[0] == 0


@settings(max_examples=15, deadline=None)
@given(
    stores=st.integers(1, 6),
    dcs=st.integers(0, 2),
    skus=st.integers(1, 80),
    assortment=st.floats(0.05, 1.0),
    seed=st.integers(0, 2**16),
)
def test_random_scenarios_are_consistent(
    stores: int, dcs: int, skus: int, assortment: float, seed: int
) -> None:
    data = department_store(
        num_stores=stores, num_dcs=dcs, num_skus=skus, store_assortment=assortment
    ).build(seed)
    assert np.unique(data.position_sku).shape[0] == skus
    rate = data.channel_rate
    assert (rate >= 0).all()
    # only stores have walk-in demand, only locations that serve a channel get its rate
    assert (rate[:, STORE][np.isin(data.position_location, data.dcs)] == 0).all()
    rows = data.position_of(data.position_sku, data.position_location)
    assert np.array_equal(rows, np.arange(data.num_positions))
