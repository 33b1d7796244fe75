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
        net.add_location("X\x00", kind="store", lat=0.0, lon=0.0)
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


# -- canonical names (NFC, stripped), rejected identifiers, did-you-mean -----------

NFC, NFD = "\u00c5", "A\u030a"


def _two_skus(*names: str) -> NetworkData:
    net = Network()
    net.add_channel("store")
    net.add_location("S1", kind="store", lat=0.0, lon=0.0)
    for name in names:
        net.add_sku(name)
    return net.build()


def test_nfc_and_nfd_spellings_are_one_sku():
    data = _two_skus(NFD)
    assert data.sku_names == (NFC,)
    assert data.sku_index(NFC) == data.sku_index(NFD) == 0
    np.testing.assert_array_equal(data.sku_index([NFD, NFC]), [0, 0])
    from allocator.exceptions import DuplicateNameError

    with pytest.raises(DuplicateNameError):
        _two_skus(NFC, NFD)


def test_surrounding_whitespace_is_stripped_everywhere():
    data = _two_skus("  A1 ")
    assert data.sku_names == ("A1",)
    assert data.sku_index(" A1\t") == 0
    arrays = NetworkData.from_arrays(
        channels=[" store "],
        location_name=["S1 "],
        location_kind="store",
        lat=[0.0],
        lon=[0.0],
        sku_name=[NFD],
    )
    assert arrays.channel_names == ("store",)
    assert arrays.location_names == ("S1",)
    assert arrays.sku_names == (NFC,)


@pytest.mark.parametrize(
    "name",
    ["", "   ", "a\x00b", "tab\tinside", "line\nbreak", "zero\u200bwidth", "x" * 257, "\x7f"],
)
def test_bad_identifiers_are_rejected(name: str):
    with pytest.raises(ValidationError) as exc:
        _two_skus(name)
    assert exc.value.code == "invalid_identifier"
    with pytest.raises(ValidationError) as exc:
        NetworkData.from_arrays(
            channels=["c"], location_name=["L"], location_kind="store", lat=0.0, lon=0.0,
            sku_name=[name],
        )  # fmt: skip
    assert exc.value.code == "invalid_identifier"


def test_non_str_names_are_typed_errors():
    from allocator.exceptions import DTypeError

    with pytest.raises(DTypeError) as exc:
        _two_skus(5)  # type: ignore[arg-type]
    assert exc.value.code == "invalid_identifier"


def test_longest_name_is_accepted():
    assert _two_skus("x" * 256).num_skus == 1


def test_unknown_names_suggest_the_closest():
    from allocator.exceptions import UnknownNameError

    data = _two_skus("SKU-00001", "SKU-00002")
    with pytest.raises(UnknownNameError, match=r"did you mean 'SKU-00001'\?") as exc:
        data.sku_index("sku-00001")
    assert exc.value.code == "sku_not_found"
    with pytest.raises(UnknownNameError, match="row 1") as exc:
        data.sku_index(["SKU-00002", "nothing-like-it"])
    assert "did you mean" not in str(exc.value)
    with pytest.raises(UnknownNameError, match="did you mean 'store'"):
        data.channel_index("Store")


def test_repr_is_short():
    data = NetworkData.from_arrays(
        channels=["store", "online"],
        location_name=[f"L{i}" for i in range(500)],
        location_kind="store",
        lat=np.zeros(500),
        lon=np.zeros(500),
        sku_name=[f"S{i}" for i in range(5000)],
    )
    text = repr(data)
    assert len(text) < 160 and "\n" not in text
    assert text == "NetworkData(channels=['store', 'online'], num_locations=500, num_skus=5000)"


def test_from_frame_rejects_unknown_columns_and_names_the_frame():
    pd = pytest.importorskip("pandas")
    locations = pd.DataFrame(
        {"name": ["S1"], "kind": ["store"], "lat": [0.0], "lon": [0.0], "same_day_radius": [5]}
    )
    skus = pd.DataFrame({"name": ["A"]})
    with pytest.raises(ValidationError, match="same_day_radius") as exc:
        NetworkData.from_frame(locations, skus, ["store"])
    assert exc.value.code == "field_not_allowed"
    assert "'locations'" in str(exc.value)
    with pytest.raises(ValidationError, match="frame 'skus' has no column 'name'") as exc:
        NetworkData.from_frame(locations.drop(columns="same_day_radius"), pd.DataFrame(), ["c"])
    assert exc.value.code == "missing_field"
    good = NetworkData.from_frame(
        locations.rename(columns={"same_day_radius": "same_day_radius_km"}),
        pd.DataFrame({"name": [" A "], "price": [3.0]}),
        ["store"],
    )
    assert good.same_day_radius_km[0] == 5.0 and good.sku_names == ("A",)
