"""Network builder and NetworkData."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allocator import Network, NetworkData, ValidationError
from allocator.exceptions import DuplicateNameError, UnknownNameError
from allocator.network import LocationKind


def test_builder_lookups(small_network):
    d = small_network
    assert d.num_channels == 3 and d.num_locations == 3 and d.num_skus == 4
    assert d.location_index("DC") == 2 and d.location_names[2] == "DC"
    assert d.sku_index(["SKU-3", "SKU-0"]).tolist() == [3, 0]
    assert d.channel_index(1) == 1
    assert d.location_kind.tolist() == [0, 0, 1]
    assert d.pickup.tolist() == [True, True, False]
    assert d.pick_capacity.tolist() == [-1, -1, -1]
    assert not d.lat.flags.writeable
    assert "3 channels" in d.summary()


def test_duplicates_and_bad_values():
    net = Network()
    net.add_channel("store")
    with pytest.raises(DuplicateNameError):
        net.add_channel("store")
    with pytest.raises(ValidationError) as info:
        net.add_location("X", kind="store", lat=91.0, lon=0.0)
    assert info.value.field == "lat"
    with pytest.raises(ValidationError):
        net.add_location("X", kind="shed", lat=0.0, lon=0.0)
    with pytest.raises(ValidationError):
        net.add_location(" X", kind="store", lat=0.0, lon=0.0)
    with pytest.raises(ValidationError):
        net.add_location("X", kind="store", lat=0.0, lon=0.0, pick_capacity=-3)
    net.add_location("X", kind="store", lat=0.0, lon=0.0, channels=["nope"])
    with pytest.raises(UnknownNameError):
        net.build()


def test_from_arrays_and_frame():
    d = NetworkData.from_arrays(
        channels=["store", "online"],
        location_name=["A", "B", "C"],
        location_kind=["store", "warehouse", "dark_store"],
        lat=[1.0, 2.0, 3.0],
        lon=[4.0, 5.0, 6.0],
        sku_name=["x", "y"],
        sku_price=[1.0, 2.0],
        pick_capacity=[10, -1, 5],
    )
    assert d.location_kind.tolist() == [
        LocationKind.STORE,
        LocationKind.WAREHOUSE,
        LocationKind.DARK_STORE,
    ]
    with pytest.raises(ValidationError) as info:
        NetworkData.from_arrays(
            channels=["s"],
            location_name=["A", "A"],
            location_kind="store",
            lat=[0.0, 0.0],
            lon=[0.0, 0.0],
            sku_name=["x"],
        )
    assert info.value.row == 1
    with pytest.raises(ValidationError) as info:
        NetworkData.from_arrays(
            channels=["s"],
            location_name=["A", "B"],
            location_kind="store",
            lat=[0.0, np.nan],
            lon=[0.0, 0.0],
            sku_name=["x"],
        )
    assert (info.value.field, info.value.row) == ("lat", 1)
    locs = pd.DataFrame(
        {
            "name": ["A", "B"],
            "kind": ["store", "warehouse"],
            "lat": [0.0, 1.0],
            "lon": [0.0, 1.0],
            "pick_capacity": [5, -1],
        }
    )
    skus = pd.DataFrame({"name": ["x"], "price": [9.5]})
    f = NetworkData.from_frame(locs, skus, ["store", "online"])
    assert f.pick_capacity.tolist() == [5, -1] and f.sku_price.tolist() == [9.5]
    with pytest.raises(ValidationError):
        NetworkData.from_frame(locs.drop(columns=["lat"]), skus, ["store"])
