"""The fulfilment network: channels, locations and SKUs.

Build with the mutable :class:`Network` builder (or :meth:`NetworkData.from_arrays` /
:meth:`NetworkData.from_frame`), then freeze with :meth:`Network.build`. Everything
downstream works on the frozen, index-based :class:`NetworkData`.

Names
-----
Channel, location and SKU names are canonicalised once, wherever they enter (the
builder, :class:`NetworkData`, frames, and every lookup by name): Unicode NFC, then
surrounding whitespace stripped (:func:`canonical_name`). So ``"Å"`` typed as one
code point or as ``A`` plus a combining ring is one SKU, and ``" A1 "`` finds
``"A1"``. A name that is empty after that, holds a control character, or is longer
than :data:`MAX_NAME_LENGTH` characters is rejected with ``invalid_identifier``; two
names that canonicalise alike are duplicates. An unknown name is rejected with
``<field>_not_found`` and the closest known names, when there are any.
"""

from __future__ import annotations

import difflib
import enum
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from allocator._validate import as_bool, as_float64, as_int64, readonly
from allocator.exceptions import DTypeError, DuplicateNameError, UnknownNameError, ValidationError

__all__ = [
    "MAX_CHANNELS",
    "MAX_NAME_LENGTH",
    "LocationKind",
    "Network",
    "NetworkData",
    "canonical_name",
]

#: The most channels one network may have.
MAX_CHANNELS = 16
#: The longest name, in characters after canonicalisation.
MAX_NAME_LENGTH = 256

#: Unicode categories a name may not contain: controls, format characters (zero-width
#: and direction marks), line and paragraph separators, surrogates and unassigned.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def canonical_name(name: Any, field: str = "name", row: int | None = None) -> str:
    """The canonical spelling of one channel, location or SKU name.

    Unicode NFC, surrounding whitespace stripped. Raises
    :class:`~allocator.exceptions.ValidationError` (``invalid_identifier``) when the
    result is empty, longer than :data:`MAX_NAME_LENGTH`, or holds a control or
    format character, and :class:`~allocator.exceptions.DTypeError` when ``name`` is
    not a ``str``.

    Examples
    --------
    >>> canonical_name(" A\u030a ") == "\u00c5"
    True
    """
    if not isinstance(name, str):
        raise DTypeError(
            f"expected a str name, got {type(name).__name__}",
            field=field,
            row=row,
            code="invalid_identifier",
        )
    text = unicodedata.normalize("NFC", name).strip()
    if not text:
        raise ValidationError(
            f"invalid name {name[:40]!r}: empty", field=field, row=row, code="invalid_identifier"
        )
    if len(text) > MAX_NAME_LENGTH:
        raise ValidationError(
            f"invalid name {text[:40]!r}...: {len(text)} characters, the most is {MAX_NAME_LENGTH}",
            field=field,
            row=row,
            code="invalid_identifier",
        )
    for ch in text:
        if unicodedata.category(ch) in _BAD_CATEGORIES:
            raise ValidationError(
                f"invalid name {text[:40]!r}: contains the control or format character "
                f"U+{ord(ch):04X}",
                field=field,
                row=row,
                code="invalid_identifier",
            )
    return text


def _suggest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'X'?)`` for the closest known names, or ``""``."""
    folded = {k.casefold(): k for k in known}
    exact = folded.get(name.casefold())
    close = [exact] if exact is not None else []
    if not close and len(folded) <= 100_000:
        close = [folded[k] for k in difflib.get_close_matches(name.casefold(), folded, n=3)]
    if not close:
        return ""
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)"


class LocationKind(enum.IntEnum):
    """What a location is."""

    STORE = 0
    WAREHOUSE = 1
    DARK_STORE = 2


_KIND_BY_NAME = {k.name.lower(): k for k in LocationKind}


def _parse_kind(kind: Any, row: int | None = None) -> int:
    if isinstance(kind, LocationKind):
        return int(kind)
    if isinstance(kind, str) and kind.lower() in _KIND_BY_NAME:
        return int(_KIND_BY_NAME[kind.lower()])
    raise ValidationError(
        f"unknown location kind {kind!r}; expected one of {sorted(_KIND_BY_NAME)}",
        field="kind",
        row=row,
        code="unknown_location_kind",
    )


def _canonical_names(names: Iterable[Any], field: str) -> tuple[str, ...]:
    return tuple(canonical_name(n, field, i) for i, n in enumerate(names))


def _index_names(names: Sequence[str], field: str) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in index:
            raise DuplicateNameError(
                f"name {name!r} already used by row {index[name]}", field=field, row=i
            )
        index[name] = i
    return index


@dataclass(frozen=True, eq=False)
class NetworkData:
    """Frozen, index-based description of channels, locations and SKUs.

    All per-location arrays have length ``num_locations``, per-SKU arrays length
    ``num_skus``. Arrays are read-only.

    Attributes
    ----------
    channel_names, location_names, sku_names
        Names by index.
    location_kind
        :class:`LocationKind` code per location (int8).
    lat, lon
        Coordinates in degrees.
    serves
        ``(num_locations, num_channels)`` bool: which channels a location sells to.
    ships
        Whether the location ships online orders.
    pickup
        Whether the location is a pick-up point.
    same_day_radius_km
        Same-day delivery radius (0 = no same-day service).
    excluded
        Locations excluded from sourcing (e.g. closed for stock-take).
    pick_capacity
        Units the location can pick per period; ``-1`` means unlimited.
    cost_multiplier
        Multiplier on the handling part of the shipping cost (stores pick dearer than DCs).
    sku_price, sku_unit_cost
        Selling price and unit cost per SKU (NaN when unknown).
    """

    channel_names: tuple[str, ...]
    location_names: tuple[str, ...]
    location_kind: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    serves: np.ndarray
    ships: np.ndarray
    pickup: np.ndarray
    same_day_radius_km: np.ndarray
    excluded: np.ndarray
    pick_capacity: np.ndarray
    cost_multiplier: np.ndarray
    sku_names: tuple[str, ...]
    sku_price: np.ndarray
    sku_unit_cost: np.ndarray
    _frozen: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        for table in ("channel", "location", "sku"):
            names = _canonical_names(getattr(self, f"{table}_names"), table)
            object.__setattr__(self, f"{table}_names", names)
        nc, nl, nk = len(self.channel_names), len(self.location_names), len(self.sku_names)
        if nc == 0:
            raise ValidationError("a network needs at least one channel", field="channels")
        if nc > MAX_CHANNELS:
            raise ValidationError(
                f"at most {MAX_CHANNELS} channels are supported, got {nc}", field="channels"
            )
        _index_names(self.channel_names, "channel")
        lat = as_float64(self.lat, "lat", size=nl, lo=-90.0, hi=90.0, code="bad_coordinate")
        lon = as_float64(self.lon, "lon", size=nl, lo=-180.0, hi=180.0, code="bad_coordinate")
        kind = as_int64(self.location_kind, "kind", size=nl, lo=0, hi=len(LocationKind) - 1)
        serves = np.asarray(self.serves)
        if serves.dtype != np.bool_ or serves.shape != (nl, nc):
            raise ValidationError(
                f"expected a bool array of shape {(nl, nc)}, got {serves.dtype} {serves.shape}",
                field="serves",
            )
        arrays = {
            "location_kind": kind.astype(np.int8),
            "lat": lat,
            "lon": lon,
            "serves": serves.copy(),
            "ships": as_bool(self.ships, "ships", size=nl),
            "pickup": as_bool(self.pickup, "pickup", size=nl),
            "same_day_radius_km": as_float64(
                self.same_day_radius_km, "same_day_radius_km", size=nl, lo=0.0
            ),
            "excluded": as_bool(self.excluded, "excluded", size=nl),
            "pick_capacity": as_int64(self.pick_capacity, "pick_capacity", size=nl, lo=-1),
            "cost_multiplier": as_float64(self.cost_multiplier, "cost_multiplier", size=nl, lo=0.0),
            "sku_price": as_float64(self.sku_price, "sku_price", size=nk, lo=0.0, allow_nan=True),
            "sku_unit_cost": as_float64(
                self.sku_unit_cost, "sku_unit_cost", size=nk, lo=0.0, allow_nan=True
            ),
        }
        for name, arr in arrays.items():
            object.__setattr__(self, name, readonly(arr))
        # Build the name indexes now so duplicate names fail at construction.
        _ = self._location_index, self._sku_index
        object.__setattr__(self, "_frozen", True)

    # -- sizes -------------------------------------------------------------
    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def num_locations(self) -> int:
        return len(self.location_names)

    @property
    def num_skus(self) -> int:
        return len(self.sku_names)

    # -- name <-> index ----------------------------------------------------
    @cached_property
    def _channel_index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.channel_names)}

    @cached_property
    def _location_index(self) -> dict[str, int]:
        return _index_names(self.location_names, "location")

    @cached_property
    def _sku_index(self) -> dict[str, int]:
        return _index_names(self.sku_names, "sku")

    def same_names(self, other: NetworkData) -> bool:
        """True when ``other`` has the same channels, locations and SKUs, in order (so
        indices mean the same in both)."""
        return other is self or (
            other.channel_names == self.channel_names
            and other.location_names == self.location_names
            and other.sku_names == self.sku_names
        )

    def require_same(self, other: NetworkData, field: str, what: str) -> None:
        """Raise ``network_mismatch`` (naming ``field``) unless :meth:`same_names`."""
        if not self.same_names(other):
            raise ValidationError(
                f"{what} belongs to a different network (other channels, locations or SKUs)",
                field=field,
                code="network_mismatch",
            )

    def channel_index(self, channel: Any, field: str = "channel") -> np.ndarray | int:
        """Index of one channel (name or index) or an array of them."""
        return self._lookup(channel, self._channel_index, self.num_channels, field)

    def location_index(self, location: Any, field: str = "location") -> np.ndarray | int:
        """Index of one location (name or index) or an array of them."""
        return self._lookup(location, self._location_index, self.num_locations, field)

    def sku_index(self, sku: Any, field: str = "sku") -> np.ndarray | int:
        """Index of one SKU (name or index) or an array of them."""
        return self._lookup(sku, self._sku_index, self.num_skus, field)

    @staticmethod
    def _find(name: str, index: dict[str, int], field: str, row: int | None = None) -> int:
        got = index.get(name)
        if got is None:
            got = index.get(canonical_name(name, field, row))
        if got is None:
            raise UnknownNameError(
                f"unknown {field} {name!r}{_suggest(name.strip(), index)}",
                field=field,
                row=row,
                code=f"{field}_not_found",
            )
        return got

    @staticmethod
    def _lookup(value: Any, index: dict[str, int], n: int, field: str) -> np.ndarray | int:
        if isinstance(value, str):
            return NetworkData._find(value, index, field)
        if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
            if not 0 <= int(value) < n:
                raise UnknownNameError(
                    f"index {int(value)} outside [0, {n})", field=field, code=f"{field}_not_found"
                )
            return int(value)
        arr = np.asarray(value)
        if arr.ndim == 0:
            return NetworkData._lookup(arr.item(), index, n, field)
        if arr.dtype.kind in "UO":
            out = np.empty(arr.shape[0], dtype=np.int64)
            for row, item in enumerate(arr.tolist()):
                if isinstance(item, str):
                    out[row] = NetworkData._find(item, index, field, row)
                elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item < n:
                    out[row] = item
                else:
                    raise UnknownNameError(
                        f"expected a name or an index in [0, {n}), got {item!r}",
                        field=field,
                        row=row,
                        code=f"{field}_not_found",
                    )
            return out
        out = as_int64(arr, field)
        bad = (out < 0) | (out >= n)
        if bad.any():
            row = int(np.argmax(bad))
            raise UnknownNameError(
                f"index {out[row]} outside [0, {n})",
                field=field,
                row=row,
                code=f"{field}_not_found",
            )
        return out

    # -- constructors ----------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        *,
        channels: Sequence[str],
        location_name: Sequence[str],
        location_kind: Any,
        lat: Any,
        lon: Any,
        sku_name: Sequence[str],
        sku_price: Any = np.nan,
        sku_unit_cost: Any = np.nan,
        serves: Any = None,
        ships: Any = True,
        pickup: Any = None,
        same_day_radius_km: Any = 0.0,
        excluded: Any = False,
        pick_capacity: Any = -1,
        cost_multiplier: Any = 1.0,
    ) -> NetworkData:
        """Build from column arrays (one row per location / SKU).

        ``location_kind`` holds kind names (``"store"``, ``"warehouse"``,
        ``"dark_store"``) or :class:`LocationKind` codes. ``serves`` defaults to
        every channel; ``pickup`` defaults to True for stores.
        """
        names = tuple(location_name)
        nl = len(names)
        kinds_in = np.asarray(location_kind)
        if kinds_in.ndim == 0:
            kinds_in = np.full(nl, kinds_in.item(), dtype=object)
        if kinds_in.dtype.kind in "iu":
            kinds = as_int64(kinds_in, "kind", size=nl, lo=0, hi=len(LocationKind) - 1)
        else:
            if kinds_in.shape[0] != nl:
                raise ValidationError(
                    f"expected {nl} rows, got {kinds_in.shape[0]}",
                    field="kind",
                    code="length_mismatch",
                )
            kinds = np.array([_parse_kind(k, i) for i, k in enumerate(kinds_in.tolist())])
        nc = len(channels)
        if serves is None:
            serves_arr = np.ones((nl, nc), dtype=np.bool_)
        else:
            serves_arr = np.asarray(serves, dtype=np.bool_)
        if pickup is None:
            pickup = kinds == LocationKind.STORE
        return cls(
            channel_names=tuple(channels),
            location_names=names,
            location_kind=kinds,
            lat=lat,
            lon=lon,
            serves=serves_arr,
            ships=ships,
            pickup=pickup,
            same_day_radius_km=same_day_radius_km,
            excluded=excluded,
            pick_capacity=pick_capacity,
            cost_multiplier=cost_multiplier,
            sku_names=tuple(sku_name),
            sku_price=sku_price,
            sku_unit_cost=sku_unit_cost,
        )

    @classmethod
    def from_frame(cls, locations: Any, skus: Any, channels: Sequence[str]) -> NetworkData:
        """Build from two DataFrames.

        ``locations`` needs columns ``name, kind, lat, lon`` and may have ``ships,
        pickup, same_day_radius_km, excluded, pick_capacity, cost_multiplier``;
        ``skus`` needs ``name`` and may have ``price, unit_cost``.
        """
        required = {"locations": ("name", "kind", "lat", "lon"), "skus": ("name",)}
        optional = {
            "locations": (
                "ships",
                "pickup",
                "same_day_radius_km",
                "excluded",
                "pick_capacity",
                "cost_multiplier",
            ),
            "skus": ("price", "unit_cost"),
        }
        for frame_name, frame in (("locations", locations), ("skus", skus)):
            columns = [str(c) for c in frame.columns]
            for col in required[frame_name]:
                if col not in columns:
                    raise ValidationError(
                        f"frame {frame_name!r} has no column {col!r} (it has {columns})",
                        field=f"{frame_name}.{col}",
                        code="missing_field",
                    )
            allowed = (*required[frame_name], *optional[frame_name])
            unknown = [c for c in columns if c not in allowed]
            if unknown:
                raise ValidationError(
                    f"frame {frame_name!r} has unknown columns {unknown}; the columns are "
                    f"{list(allowed)}",
                    field=f"{frame_name}.{unknown[0]}",
                    code="field_not_allowed",
                )
        opt = {
            key: locations[key].to_numpy()
            for key in optional["locations"]
            if key in locations.columns
        }
        return cls.from_arrays(
            channels=channels,
            location_name=[str(x) for x in locations["name"].tolist()],
            location_kind=locations["kind"].to_numpy(),
            lat=locations["lat"].to_numpy(dtype=np.float64),
            lon=locations["lon"].to_numpy(dtype=np.float64),
            sku_name=[str(x) for x in skus["name"].tolist()],
            sku_price=skus["price"].to_numpy(dtype=np.float64) if "price" in skus else np.nan,
            sku_unit_cost=(
                skus["unit_cost"].to_numpy(dtype=np.float64) if "unit_cost" in skus else np.nan
            ),
            **opt,
        )

    def __repr__(self) -> str:
        return (
            f"NetworkData(channels={list(self.channel_names)!r}, "
            f"num_locations={self.num_locations}, num_skus={self.num_skus})"
        )

    def summary(self) -> str:
        """One line per kind of entity."""
        kinds = np.bincount(self.location_kind, minlength=len(LocationKind))
        parts = ", ".join(f"{int(kinds[k])} {k.name.lower()}" for k in LocationKind)
        return (
            f"NetworkData: {self.num_channels} channels ({', '.join(self.channel_names)}), "
            f"{self.num_locations} locations ({parts}), {self.num_skus} SKUs"
        )


class Network:
    """Mutable builder for :class:`NetworkData`.

    Examples
    --------
    >>> net = Network()
    >>> net.add_channel("store"); net.add_channel("online")
    0
    1
    >>> net.add_location("Store-001", kind="store", lat=31.23, lon=121.47)
    0
    >>> net.add_sku("SKU-1", price=19.9)
    0
    >>> data = net.build()
    >>> data.location_index("Store-001"), data.location_names[0]
    (0, 'Store-001')
    """

    def __init__(self) -> None:
        self._channels: list[str] = []
        self._locations: list[dict[str, Any]] = []
        self._skus: list[tuple[str, float, float]] = []
        self._names: dict[str, dict[str, int]] = {"channel": {}, "location": {}, "sku": {}}

    def _register(self, table: str, name: str) -> str:
        name = canonical_name(name, table)
        names = self._names[table]
        if name in names:
            raise DuplicateNameError(f"{table} {name!r} already added", field=table)
        names[name] = len(names)
        return name

    def add_channel(self, name: str) -> int:
        """Add a sales channel and return its index."""
        if len(self._channels) >= MAX_CHANNELS:
            raise ValidationError(f"at most {MAX_CHANNELS} channels", field="channel")
        name = self._register("channel", name)
        self._channels.append(name)
        return len(self._channels) - 1

    def add_location(
        self,
        name: str,
        *,
        kind: str | LocationKind,
        lat: float,
        lon: float,
        channels: Iterable[str] | None = None,
        ships: bool = True,
        pickup: bool | None = None,
        same_day_radius_km: float = 0.0,
        excluded: bool = False,
        pick_capacity: int | None = None,
        cost_multiplier: float = 1.0,
    ) -> int:
        """Add a store, warehouse or dark store and return its index.

        Parameters
        ----------
        kind
            ``"store"``, ``"warehouse"`` or ``"dark_store"``.
        lat, lon
            Coordinates in degrees (checked against [-90, 90] and [-180, 180]).
        channels
            Channel names this location serves (default: every channel, including
            channels added later).
        pickup
            Whether online customers may pick up here (default: stores only).
        pick_capacity
            Units pickable per period; ``None`` for unlimited.
        """
        code = _parse_kind(kind)
        for fname, v, lo, hi in (("lat", lat, -90.0, 90.0), ("lon", lon, -180.0, 180.0)):
            if not isinstance(v, int | float | np.floating | np.integer) or not lo <= v <= hi:
                raise ValidationError(
                    f"{v!r} outside [{lo}, {hi}]", field=fname, code="bad_coordinate"
                )
        if pick_capacity is not None and (
            not isinstance(pick_capacity, int | np.integer) or pick_capacity < 0
        ):
            raise ValidationError(
                f"expected a non-negative int or None, got {pick_capacity!r}",
                field="pick_capacity",
            )
        name = self._register("location", name)
        self._locations.append(
            dict(
                name=name,
                kind=code,
                lat=float(lat),
                lon=float(lon),
                channels=None
                if channels is None
                else [canonical_name(ch, "channels") for ch in channels],
                ships=bool(ships),
                pickup=(code == LocationKind.STORE) if pickup is None else bool(pickup),
                same_day_radius_km=float(same_day_radius_km),
                excluded=bool(excluded),
                pick_capacity=-1 if pick_capacity is None else int(pick_capacity),
                cost_multiplier=float(cost_multiplier),
            )
        )
        return len(self._locations) - 1

    def add_sku(
        self, name: str, *, price: float | None = None, unit_cost: float | None = None
    ) -> int:
        """Add a SKU and return its index."""
        name = self._register("sku", name)
        self._skus.append(
            (
                name,
                np.nan if price is None else float(price),
                np.nan if unit_cost is None else float(unit_cost),
            )
        )
        return len(self._skus) - 1

    def build(self) -> NetworkData:
        """Validate and freeze into :class:`NetworkData`."""
        locs = self._locations
        nl, nc = len(locs), len(self._channels)
        serves = np.ones((nl, nc), dtype=np.bool_)
        for i, loc in enumerate(locs):
            if loc["channels"] is not None:
                serves[i] = False
                for ch in loc["channels"]:
                    if ch not in self._names["channel"]:
                        raise UnknownNameError(
                            f"location {loc['name']!r} serves unknown channel {ch!r}"
                            f"{_suggest(ch, self._names['channel'])}",
                            field="channels",
                            row=i,
                            code="channel_not_found",
                        )
                    serves[i, self._names["channel"][ch]] = True

        def col(key: str, dtype: Any) -> np.ndarray:
            return np.array([loc[key] for loc in locs], dtype=dtype)

        return NetworkData(
            channel_names=tuple(self._channels),
            location_names=tuple(loc["name"] for loc in locs),
            location_kind=col("kind", np.int64),
            lat=col("lat", np.float64),
            lon=col("lon", np.float64),
            serves=serves,
            ships=col("ships", np.bool_),
            pickup=col("pickup", np.bool_),
            same_day_radius_km=col("same_day_radius_km", np.float64),
            excluded=col("excluded", np.bool_),
            pick_capacity=col("pick_capacity", np.int64),
            cost_multiplier=col("cost_multiplier", np.float64),
            sku_names=tuple(s[0] for s in self._skus),
            sku_price=np.array([s[1] for s in self._skus], dtype=np.float64),
            sku_unit_cost=np.array([s[2] for s in self._skus], dtype=np.float64),
        )
