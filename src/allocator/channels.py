"""Channel-split reservation: fences, caps and safety stock from demand forecasts.

:func:`allocate_channels` decides, for every position of a :class:`~allocator.Ledger`,
how many of its sellable units each channel (shop floor, own online mall,
marketplace, ...) gets ring-fenced, so that the expected margin of what the channels
sell over the forecast horizon is as large as possible. The answer is a frozen
:class:`ChannelAllocation`; :meth:`ChannelAllocation.to_events` turns it into one
linked batch of ``set_safety`` / ``set_cap`` / ``set_fence`` events for the ledger.

Demand per (position, channel) comes as a :class:`ChannelForecast` (normal: mean and
variance; Poisson: mean) over the horizon. See ``docs/channels.md``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from allocator._kernels import channels as K
from allocator._validate import QTY_MAX, as_float64, first_true, readonly
from allocator.events import NO_CAP, STOCK_MAX, Events
from allocator.exceptions import DTypeError, UnknownNameError, ValidationError
from allocator.ledger import BaseLedger
from allocator.network import NetworkData

__all__ = ["STOCK_MAX", "ChannelAllocation", "ChannelForecast", "allocate_channels"]


logger = logging.getLogger("allocator")

Distribution = Literal["normal", "poisson"]
_DISTRIBUTIONS = {"normal": K.DIST_NORMAL, "poisson": K.DIST_POISSON}


def _matrix(value: Any, field: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """``value`` as a finite, non-negative ``(P, C)`` float64 array (a fresh copy)."""
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "iuf" or arr.dtype.kind == "b":
        raise DTypeError(f"expected numbers, got dtype {arr.dtype}", field=field)
    if arr.ndim != 2:
        raise ValidationError(
            f"expected a 2-D (positions, channels) array, got shape {arr.shape}",
            field=field,
            code="length_mismatch",
        )
    if shape is not None and arr.shape != shape:
        raise ValidationError(
            f"expected shape {shape}, got {arr.shape}", field=field, code="length_mismatch"
        )
    out = np.array(arr, dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        raise ValidationError(
            f"non-finite value in row {row}", field=field, row=row, code="not_finite"
        )
    bad = out < 0
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        raise ValidationError(
            f"negative value {out[row][bad[row]][0]}", field=field, row=row, code="out_of_range"
        )
    return out


@dataclass(frozen=True, eq=False)
class ChannelForecast:
    """Demand per (position, channel) over the allocation horizon.

    Build with :meth:`normal`, :meth:`poisson` or :meth:`from_frame`. Row ``p`` is
    ledger position ``p`` (the order of ``ledger.position_sku``); column ``c`` is
    channel ``c`` of the network.

    Attributes
    ----------
    distribution
        ``"normal"`` or ``"poisson"``.
    mean
        ``(num_positions, num_channels)`` expected demand (units), read-only.
    var
        Variance of demand, same shape (equal to ``mean`` for Poisson), read-only.
    """

    distribution: Distribution
    mean: np.ndarray
    var: np.ndarray

    def __post_init__(self) -> None:
        if self.distribution not in _DISTRIBUTIONS:
            raise ValidationError(
                f"expected 'normal' or 'poisson', got {self.distribution!r}",
                field="distribution",
                code="invalid_choice",
            )
        mean = _matrix(self.mean, "forecast.mean")
        var = _matrix(self.var, "forecast.var", mean.shape)
        if self.distribution == "poisson" and not np.array_equal(mean, var):
            row = int(np.argmax((mean != var).any(axis=1)))
            raise ValidationError(
                "a Poisson forecast has variance equal to its mean",
                field="forecast.var",
                row=row,
                code="invalid_choice",
            )
        object.__setattr__(self, "mean", readonly(mean))
        object.__setattr__(self, "var", readonly(var))

    @classmethod
    def normal(cls, mean: Any, var: Any) -> ChannelForecast:
        """Normal demand with the given mean and variance per (position, channel).

        Demand is counted in whole units: the forecast ``D ~ N(mean, var)`` is rounded
        to the nearest unit, so ``P(D' > q) = 1 - Φ((q + 0.5 - mean) / sqrt(var))``.
        """
        return cls("normal", mean, var)

    @classmethod
    def poisson(cls, mean: Any) -> ChannelForecast:
        """Poisson demand with the given mean per (position, channel)."""
        arr = np.asarray(mean)
        return cls("poisson", arr, arr)

    @classmethod
    def from_frame(
        cls, frame: Any, ledger: BaseLedger, *, distribution: Distribution = "normal"
    ) -> ChannelForecast:
        """Build from a long DataFrame, one row per (sku, location, channel).

        Columns ``sku, location, channel, mean`` and, for normal demand, ``var``
        (names or indices). Positions or channels without a row get zero demand. A
        row naming a position the ledger does not hold, an unknown name, or a
        repeated (position, channel) raises :class:`~allocator.ValidationError`
        naming the row.
        """
        needed = ["sku", "location", "channel", "mean"]
        if distribution == "normal":
            needed.append("var")
        for col in needed:
            if col not in frame.columns:
                raise ValidationError("missing column", field=col, code="missing_field")
        net = ledger.network
        sku = np.atleast_1d(net.sku_index(frame["sku"].to_numpy(), "sku"))
        loc = np.atleast_1d(net.location_index(frame["location"].to_numpy(), "location"))
        chan = np.atleast_1d(net.channel_index(frame["channel"].to_numpy(), "channel"))
        pos = np.atleast_1d(ledger.position_index(sku, loc))
        bad = pos < 0
        if bad.any():
            row = first_true(bad)
            raise ValidationError(
                f"the ledger holds no position ({net.sku_names[sku[row]]}, "
                f"{net.location_names[loc[row]]})",
                field="location",
                row=row,
                code="position_not_found",
            )
        shape = (ledger.num_positions, net.num_channels)
        cell = pos * net.num_channels + chan
        order = np.argsort(cell, kind="stable")
        dup = np.flatnonzero(np.diff(cell[order]) == 0)
        if dup.size:
            row = int(order[dup + 1].min())
            raise ValidationError(
                "(position, channel) given twice", field="channel", row=row, code="duplicate_row"
            )
        values = {}
        for col in needed[3:]:
            column = _matrix(np.asarray(frame[col].to_numpy()).reshape(-1, 1), col)
            out = np.zeros(shape)
            out.reshape(-1)[cell] = column[:, 0]
            values[col] = out
        if distribution == "normal":
            return cls.normal(values["mean"], values["var"])
        if distribution == "poisson":
            return cls.poisson(values["mean"])
        raise ValidationError(
            f"expected 'normal' or 'poisson', got {distribution!r}",
            field="distribution",
            code="invalid_choice",
        )

    @property
    def num_positions(self) -> int:
        return int(self.mean.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self.mean.shape[1])


def _channel_row(
    value: Mapping[Any, Any], field: str, network: NetworkData, default: Any
) -> list[Any]:
    row = [default] * network.num_channels
    for key, item in value.items():
        if isinstance(key, str):
            if key not in network.channel_names:
                raise UnknownNameError(
                    f"unknown channel {key!r}", field=field, code="channel_not_found"
                )
            c = network.channel_names.index(key)
        else:
            c = int(network.channel_index(key, field))
        row[c] = item
    return row


def _value_table(
    value: Any, field: str, network: NetworkData, position_sku: np.ndarray, missing: Any
) -> tuple[np.ndarray, np.ndarray]:
    """A float ``(R, C)`` table and the row of each position (per channel or sku x channel)."""
    nc, npos = network.num_channels, position_sku.shape[0]
    if isinstance(value, Mapping):
        row = _channel_row(value, field, network, missing)
        if any(item is None for item in row):
            c = row.index(None)
            raise ValidationError(
                f"no value for channel {network.channel_names[c]!r}",
                field=field,
                code="missing_field",
            )
        value = row
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "iuf" or arr.dtype.kind == "b":
        raise DTypeError(f"expected numbers, got dtype {arr.dtype}", field=field)
    if arr.ndim == 0:
        arr = np.full((1, nc), float(arr))
    elif arr.ndim == 1:
        if arr.shape[0] != nc:
            raise ValidationError(
                f"expected {nc} values (one per channel), got {arr.shape[0]}",
                field=field,
                code="length_mismatch",
            )
        arr = arr.reshape(1, nc)
    elif arr.ndim != 2 or arr.shape != (network.num_skus, nc):
        raise ValidationError(
            f"expected a scalar, {nc} values or shape {(network.num_skus, nc)}, "
            f"got shape {arr.shape}",
            field=field,
            code="length_mismatch",
        )
    table = _matrix(arr, field)
    if table.shape[0] == 1:
        rows = np.broadcast_to(np.zeros(1, dtype=np.int64), (npos,))
    else:
        rows = position_sku
    return table, rows


def _int_limits(
    value: Any, field: str, network: NetworkData, npos: int, default: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse floors or caps into (int values (P,C) view, share values or None, given mask).

    Integers are units; floats (caps only) are shares of on_hand. ``-1`` / ``None``
    means "none" (no cap); in a mapping, channels left out take ``default`` and are
    marked not given.
    """
    nc = network.num_channels
    given = np.ones(nc, dtype=np.bool_)
    if isinstance(value, Mapping):
        row = _channel_row(value, field, network, _MISSING)
        given = np.array([item is not _MISSING for item in row], dtype=np.bool_)
        units = np.full(nc, default, dtype=np.int64)
        share = np.full(nc, np.nan)
        for c, item in enumerate(row):
            if item is _MISSING or item is None:
                continue
            if isinstance(item, bool | np.bool_) or not isinstance(
                item, int | float | np.integer | np.floating
            ):
                raise DTypeError(
                    f"expected an int (units) or float (share) for channel "
                    f"{network.channel_names[c]!r}, got {type(item).__name__}",
                    field=field,
                    code="wrong_dtype",
                )
            if isinstance(item, float | np.floating):
                if math.isnan(float(item)):
                    raise ValidationError(
                        f"NaN for channel {network.channel_names[c]!r}; give a share in "
                        "[0, 1], units, or -1 / None for no cap",
                        field=field,
                        code="not_finite",
                    )
                share[c] = float(item)
            else:
                _check_units(int(item), field, network.channel_names[c])
                units[c] = int(item)
        return _finish_limits(units.reshape(1, nc), share.reshape(1, nc), field, npos, given)
    arr = np.asarray(value)
    if arr.dtype == object and all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) for v in arr.ravel()
    ):
        for v in arr.ravel():  # Python ints beyond int64
            _check_units(int(v), field, None)
    if arr.dtype == object or arr.dtype.kind not in "iuf" or arr.dtype.kind == "b":
        raise DTypeError(f"expected numbers, got dtype {arr.dtype}", field=field)
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > QTY_MAX:
        _check_units(int(arr.max()), field, None)
    if arr.ndim == 0:
        arr = np.full((1, nc), arr.item(), dtype=arr.dtype)
    elif arr.ndim == 1:
        if arr.shape[0] != nc:
            raise ValidationError(
                f"expected {nc} values (one per channel), got {arr.shape[0]}",
                field=field,
                code="length_mismatch",
            )
        arr = arr.reshape(1, nc)
    elif arr.shape != (npos, nc):
        raise ValidationError(
            f"expected {nc} values or shape {(npos, nc)}, got shape {arr.shape}",
            field=field,
            code="length_mismatch",
        )
    if arr.dtype.kind == "f":
        return _finish_limits(
            np.full(arr.shape, default, dtype=np.int64), arr.astype(np.float64), field, npos, given
        )
    return _finish_limits(arr.astype(np.int64), None, field, npos, given)


_MISSING = object()


def _check_units(value: int, field: str, channel: str | None) -> None:
    """A limit in units must lie in [-1, QTY_MAX] (before it is stored as int64)."""
    lo = -1 if field == "caps" else 0
    if not lo <= value <= QTY_MAX:
        where = f" for channel {channel!r}" if channel is not None else ""
        raise ValidationError(
            f"value {value}{where} not in [{lo}, {QTY_MAX}]", field=field, code="out_of_range"
        )


def _finish_limits(
    units: np.ndarray, share: np.ndarray | None, field: str, npos: int, given: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    none_ok = field == "caps"
    lo = -1 if none_ok else 0
    bad = (units < lo) | (units > QTY_MAX)
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        raise ValidationError(
            f"value {units[row][bad[row]][0]} not in [{lo}, {QTY_MAX}]",
            field=field,
            row=row if units.shape[0] > 1 else None,
            code="out_of_range",
        )
    if share is not None:
        if not none_ok and np.isfinite(share).any():
            raise DTypeError(
                "floors are whole units (integers)", field=field, code="quantity_must_be_integer"
            )
        has = ~np.isnan(share)
        bad = has & ~((share >= 0) & (share <= 1))
        if bad.any():
            row = int(np.argmax(bad.any(axis=1)))
            raise ValidationError(
                "a share must lie in [0, 1]",
                field=field,
                row=row if share.shape[0] > 1 else None,
                code="out_of_range",
            )
    return units, (share if share is not None else np.full((1, 1), np.nan)), given


def _caps_matrix(
    units: np.ndarray, share: np.ndarray, on_hand: np.ndarray, current: np.ndarray
) -> np.ndarray:
    """Absolute caps (P, C): units, ``floor(share * on_hand)``, or the ledger's cap (-1).

    Caps the same for every position come back as a read-only broadcast of one row.
    """
    npos, nc = current.shape
    if units.shape[0] == 1 and share.shape[0] == 1 and np.isnan(share).all():
        if (units >= 0).all():
            return readonly(np.broadcast_to(np.minimum(units, STOCK_MAX), (npos, nc)))
    out = np.empty((npos, nc), dtype=np.int64)
    share = np.broadcast_to(share, (share.shape[0], nc))
    K.share_caps(units, share, on_hand, current, STOCK_MAX, out)
    return out


def _snapshot(values: np.ndarray, varies: bool) -> np.ndarray:
    """A read-only copy of a ledger column (or block of columns) for the result.

    When every row is the same (``varies`` false: no caps, no safety stock, the common
    case) the copy is a broadcast of the first row and takes no memory per position.
    """
    if values.shape[0] > 0 and not varies:
        return readonly(np.broadcast_to(values[:1].copy(), values.shape))
    return readonly(np.array(values))


@dataclass(frozen=True, eq=False)
class ChannelAllocation:
    """The split of each position's sellable stock over the channels.

    All per-(position, channel) arrays have shape ``(num_positions, num_channels)``;
    rows follow the ledger's positions. Arrays are read-only; values the same for
    every position (a cap or safety stock nobody set) are stored as one broadcast row.

    Attributes
    ----------
    network
        The network (for names).
    distribution
        The forecast distribution used.
    position_sku
        SKU of each position.
    position_location
        Location of each position.
    safety_stock
        Units withheld from every channel (computed from the service target, or the
        ledger's current value when none was given).
    fence
        The fence to set per (position, channel): ``reserved_by_channel + allocated``
        (a fence covers the channel's open reservations too, so its *unused* part is
        ``allocated``).
    allocated
        New units fenced per (position, channel), out of the sellable stock (the
        ``fence`` array itself when no position holds reservations).
    cap
        The cap per channel used (``STOCK_MAX`` = none).
    demand
        Forecast mean demand per channel, summed over positions.
    channel_allocated
        ``allocated`` summed per channel.
    channel_expected_sales
        Expected sales ``E[min(D, allocated)]`` per channel, summed over positions.
    fill_rate
        ``channel_expected_sales / demand`` per channel (NaN without demand).
    channel_margin
        Expected margin per channel: margin times expected sales, summed.
    expected_margin
        Total expected margin.
    expected_unsold_cost
        Unsold cost of fenced units expected to remain unsold, summed.
    total_sellable
        Sellable units ``max(0, on_hand - reserved - safety_stock)`` summed over
        positions: the units that were split.
    num_floor_short
        Positions where the stock could not cover every floor.
    channel_floor_shortfall
        Floor units the stock could not cover, summed per channel.
    safety_set, cap_set
        Whether :meth:`to_events` emits ``set_safety`` events, and for which
        channels ``set_cap`` events.
    runtime
        Seconds spent in :func:`allocate_channels`.
    detail
        Whether the per-position detail (:attr:`sellable`, :attr:`expected_sales`,
        :attr:`floor_shortfall`) was kept (``allocate_channels(..., detail=True)``).
    """

    network: NetworkData
    distribution: Distribution
    position_sku: np.ndarray
    position_location: np.ndarray
    safety_stock: np.ndarray
    fence: np.ndarray
    allocated: np.ndarray
    cap: np.ndarray
    demand: np.ndarray
    channel_allocated: np.ndarray
    channel_expected_sales: np.ndarray
    fill_rate: np.ndarray
    channel_margin: np.ndarray
    expected_margin: float
    expected_unsold_cost: float
    total_sellable: int
    num_floor_short: int
    channel_floor_shortfall: np.ndarray
    safety_set: bool
    cap_set: np.ndarray
    runtime: float
    detail_arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = dataclasses.field(
        default=None, repr=False
    )

    @property
    def detail(self) -> bool:
        return self.detail_arrays is not None

    def _detail(self, index: int, name: str) -> np.ndarray:
        if self.detail_arrays is None:
            raise ValidationError(
                f"{name} is per-position detail; call allocate_channels(..., detail=True) "
                "to keep it",
                field=name,
                code="detail_not_kept",
            )
        return self.detail_arrays[index]

    @property
    def sellable(self) -> np.ndarray:
        """``(num_positions,)`` sellable units per position (needs ``detail=True``)."""
        return self._detail(0, "sellable")

    @property
    def expected_sales(self) -> np.ndarray:
        """``E[min(D, allocated)]`` per (position, channel): units the fence is expected
        to sell over the horizon (needs ``detail=True``)."""
        return self._detail(1, "expected_sales")

    @property
    def floor_shortfall(self) -> np.ndarray:
        """Floor units per (position, channel) the sellable stock could not cover
        (floors are filled in channel order; needs ``detail=True``)."""
        return self._detail(2, "floor_shortfall")

    @property
    def num_positions(self) -> int:
        return int(self.fence.shape[0])

    @property
    def channel_names(self) -> tuple[str, ...]:
        return self.network.channel_names

    @property
    def objective(self) -> float:
        """``expected_margin - expected_unsold_cost``: the quantity maximised."""
        return self.expected_margin - self.expected_unsold_cost

    def summary(self) -> str:
        """A few lines: totals per channel and the objective."""
        fenced = self.channel_allocated
        lines = [
            f"ChannelAllocation: {self.num_positions} positions, "
            f"{self.total_sellable} sellable units, {int(fenced.sum())} fenced, "
            f"{int(self.safety_stock.sum())} safety stock ({self.distribution} demand)"
        ]
        width = max(len(n) for n in self.channel_names)
        for c, name in enumerate(self.channel_names):
            lines.append(
                f"  {name:<{width}}  fenced {int(fenced[c]):>10}  expected sales "
                f"{self.channel_expected_sales[c]:>12.1f}  fill rate {self.fill_rate[c]:6.1%}"
                f"  margin {self.channel_margin[c]:>12.1f}"
            )
        lines.append(
            f"  expected margin {self.expected_margin:.1f}, unsold cost "
            f"{self.expected_unsold_cost:.1f}, objective {self.objective:.1f}; "
            f"{self.num_floor_short} positions short of their floors "
            f"({int(self.channel_floor_shortfall.sum())} units); {self.runtime:.3f} s"
        )
        return "\n".join(lines)

    def to_frame(self) -> Any:
        """One row per (position, channel) with names, fence and cap, and with
        ``detail=True`` also expected sales and floor shortfall."""
        import pandas as pd

        npos, nc = self.fence.shape
        net = self.network
        sku = np.repeat(self.position_sku, nc)
        loc = np.repeat(self.position_location, nc)
        chan = np.tile(np.arange(nc), npos)
        cap = self.cap.reshape(-1)
        columns = {
            "sku": np.asarray(net.sku_names, dtype=object)[sku],
            "location": np.asarray(net.location_names, dtype=object)[loc],
            "channel": np.asarray(net.channel_names, dtype=object)[chan],
            "allocated": self.allocated.reshape(-1),
            "fence": self.fence.reshape(-1),
            "cap": pd.Series(np.minimum(cap, QTY_MAX), dtype="Int64").mask(cap >= STOCK_MAX),
        }
        if self.detail_arrays is not None:
            columns["expected_sales"] = self.expected_sales.reshape(-1)
            columns["floor_shortfall"] = self.floor_shortfall.reshape(-1)
        return pd.DataFrame(columns)

    def to_events(self, *, first_id: int = 0, link: Literal["all", "position"] = "all") -> Events:
        """The allocation as ledger events: set_safety, set_cap, set_fence.

        Parameters
        ----------
        first_id
            ``0`` lets the ledger assign ids; otherwise events get the consecutive
            ids ``first_id, first_id + 1, ...`` (so a retried batch is idempotent).
        link
            ``"all"``: one linked batch, applied all-or-nothing. ``"position"``: one
            linked group per position (for batches too large to roll back as one).

        Returns
        -------
        Events
            Per position: its ``set_safety`` (when a service target was given), then
            ``set_cap`` for the channels whose caps were given, then ``set_fence`` for
            every channel.
        """
        if link not in ("all", "position"):
            raise ValidationError(
                "expected 'all' or 'position'", field="link", code="invalid_choice"
            )
        npos, nc = self.allocated.shape
        cap_channels = np.flatnonzero(self.cap_set)
        per = (1 if self.safety_set else 0) + cap_channels.size + nc
        n = npos * per
        kind = np.empty((npos, per), dtype=np.int64)
        chan = np.full((npos, per), -1, dtype=np.int64)
        qty = np.empty((npos, per), dtype=np.int64)
        j = 0
        from allocator.events import EventKind

        if self.safety_set:
            kind[:, 0] = EventKind.SET_SAFETY
            qty[:, 0] = self.safety_stock
            j = 1
        for c in cap_channels:
            kind[:, j] = EventKind.SET_CAP
            chan[:, j] = c
            cap = self.cap[:, c]
            qty[:, j] = np.where(cap >= STOCK_MAX, NO_CAP, cap)
            j += 1
        kind[:, j:] = EventKind.SET_FENCE
        chan[:, j:] = np.arange(nc)
        qty[:, j:] = self.fence
        link_arr = np.ones((npos, per), dtype=np.bool_)
        if link == "position":
            link_arr[:, -1] = False
        link_flat = link_arr.reshape(-1)
        if n:
            link_flat[-1] = False
        ids = np.zeros(n, dtype=np.int64) if first_id == 0 else first_id + np.arange(n)
        return Events.from_arrays(
            id=ids,
            kind=kind.reshape(-1),
            sku=np.repeat(self.position_sku, per),
            location=np.repeat(self.position_location, per),
            channel=chan.reshape(-1),
            qty=qty.reshape(-1),
            link=link_flat,
            network=self.network,
        )


def _safety(
    forecast: ChannelForecast, service_level: Any, fill_rate: Any, lead_time: Any
) -> np.ndarray:
    from allocator.safety import safety_stock

    mean = forecast.mean.sum(axis=1)
    if forecast.distribution == "normal":
        ss = safety_stock(
            mean,
            np.sqrt(forecast.var.sum(axis=1)),
            lead_time=lead_time,
            service_level=service_level,
            fill_rate=fill_rate,
        )
    else:
        ss = safety_stock(
            mean,
            lead_time=lead_time,
            service_level=service_level,
            fill_rate=fill_rate,
            distribution="poisson",
        )
    ss = np.broadcast_to(ss, mean.shape)
    return np.ceil(np.maximum(ss, 0.0) - 1e-9).astype(np.int64)


def _allocate_block(columns: dict[str, np.ndarray], common: tuple[Any, ...]) -> dict[str, Any]:
    """The kernel over one block of positions (all of them, or one partition)."""
    dist, margin_t, unsold_t, detail = common
    cols = {k: _unpack(v) for k, v in columns.items()}
    npos, nc = cols["mean"].shape
    nd = npos if detail else 0
    out = {
        "fence": np.empty((npos, nc), dtype=np.int64),
        "sellable": np.empty(nd, dtype=np.int64),
        "alloc": np.empty((nd, nc), dtype=np.int64),
        "sales": np.empty((nd, nc), dtype=np.float64),
        "short": np.empty((nd, nc), dtype=np.int64),
        "totals": np.empty((K.num_chunks(npos), K.NUM_TOTALS, nc), dtype=np.float64),
        "counts": np.empty((K.num_chunks(npos), K.NUM_COUNTS), dtype=np.int64),
    }
    K.allocate(
        dist,
        cols["mean"],
        cols["var"],
        cols["on_hand"],
        cols["safety"],
        cols["reserved"],
        cols["floor"],
        cols["cap"],
        margin_t,
        unsold_t,
        cols["rows"],
        out["fence"],
        out["sellable"],
        out["alloc"],
        out["sales"],
        out["short"],
        out["totals"],
        out["counts"],
    )
    return out


def _unpack(value: Any) -> np.ndarray:
    """A column as the kernel reads it, with the layout it had on the driver."""
    if not isinstance(value, tuple):
        return value  # type: ignore[no-any-return]
    how, arr, npos = value
    if how == "broadcast":
        return np.broadcast_to(arr, (npos, *arr.shape[1:]))
    # strided, as the ledger's columns are: the kernel then runs the variant the
    # single-process call compiled (and cached), not a new one per layout
    wide = np.empty((npos, 2 * (arr.shape[1] if arr.ndim == 2 else 1)), dtype=arr.dtype)
    view = wide[:, : arr.shape[1]] if arr.ndim == 2 else wide[:, 0]
    view[...] = arr
    return view


def _cut_block(columns: dict[str, np.ndarray], a: int, b: int) -> dict[str, Any]:
    """Rows ``a:b`` of every column, as arrays that travel: a column that is one row
    broadcast (no caps, no floors) travels as that row; a strided one (a view of the
    ledger) as a contiguous copy, strided again on the worker."""
    out: dict[str, Any] = {}
    for key, arr in columns.items():
        if arr.ndim and arr.shape[0] > 1 and arr.strides[0] == 0:
            out[key] = ("broadcast", np.ascontiguousarray(arr[:1]), b - a)
        elif not arr.flags.c_contiguous:
            out[key] = ("strided", np.ascontiguousarray(arr[a:b]), b - a)
        else:
            out[key] = np.ascontiguousarray(arr[a:b])
    return out


def _join_blocks(outs: list[dict[str, Any]], blocks: list[np.ndarray], nc: int) -> dict[str, Any]:
    """Block results in ledger order. Blocks are whole kernel chunks, so the chunk
    totals are those of one run over every position."""
    joined = {k: np.concatenate([o[k] for o in outs]) for k in outs[0] if k != "counts"}
    counts = [o["counts"].copy() for o in outs]
    for cnt, b in zip(counts, blocks, strict=True):
        bad = cnt[:, K.N_FLOOR_ABOVE_CAP]
        cnt[:, K.N_FLOOR_ABOVE_CAP] = np.where(bad >= 0, bad + int(b[0]) * nc, bad)
    joined["counts"] = np.concatenate(counts)
    return joined


def allocate_channels(
    network_data: NetworkData,
    ledger: BaseLedger,
    forecast: ChannelForecast,
    *,
    margin: Any,
    unsold_cost: Any = 0.0,
    floors: Any = None,
    caps: Any = None,
    service_level: Any = None,
    fill_rate: Any = None,
    lead_time: Any = 1.0,
    detail: bool = False,
    client: Any = None,
    scheduler: Any = None,
    partitions: int | None = None,
) -> ChannelAllocation:
    """Split each position's sellable stock over the channels to maximise expected margin.

    Parameters
    ----------
    network_data
        The network of ``ledger``.
    ledger
        Source of the positions and their ``on_hand``, ``reserved`` (by channel),
        ``safety_stock`` and ``cap``. Not changed.
    forecast
        Demand per (position, channel) over the horizon, one row per ledger position.
    margin
        Value of a unit sold, per channel: a scalar, one value per channel (array or
        ``{channel: value}``), or a ``(num_skus, num_channels)`` array.
    unsold_cost
        Cost of a fenced unit that does not sell over the horizon (holding, markdown,
        the flexibility lost by fencing it), in the same forms as ``margin``.
    floors
        Minimum fence per channel (e.g. display stock in a store): an int, one int per
        channel (array or mapping), or an int ``(num_positions, num_channels)`` array.
    caps
        The most units a channel may take (its fence, and the cap set on the ledger):
        ints are units, floats in [0, 1] a share of ``on_hand``; ``-1`` or ``None``
        keeps the ledger's cap (and so does NaN in a float array; a mapping takes
        ``None`` for that and rejects NaN). Same forms as ``floors``. ``None``: the ledger's caps
        bound the fences and are left as they are. A channel that a location does
        not serve (``network_data.serves``) gets no fence and no floor there.
    service_level, fill_rate
        A cycle service level or fill-rate target for the position's pooled demand
        (all channels) over ``lead_time`` horizons; the safety stock is computed with
        :func:`allocator.safety.safety_stock`, rounded up, and withheld from every
        channel. ``None`` (both): keep the ledger's safety stock.
    lead_time
        Protection interval in units of the forecast horizon (default 1).
    detail
        Also keep the per-position detail: sellable units, and expected sales and
        floor shortfall per (position, channel). Off by default: the fences and the
        per-channel totals are what the allocation is for, and at millions of
        positions the detail arrays cost more memory (and time to fill fresh memory)
        than the rest of the result.
    client, scheduler
        Run on a Dask cluster: a ``distributed.Client``, or the scheduler's address
        or scheduler file. Fences are per position, so any partition of the
        positions is independent; the positions are cut into consecutive blocks of
        whole kernel chunks, each worker gets only its block's columns, and the
        result (fences and every per-channel total, to the last bit) is identical to
        the single-process one. Needs ``pip install 'allocator[distributed]'``.
    partitions
        Number of blocks on a cluster (default: one per worker thread).

    Returns
    -------
    ChannelAllocation

    Raises
    ------
    ValidationError
        Shapes that do not match the positions or channels, negative or non-finite
        forecasts, margins or costs, unknown channel names, floors above caps,
        shares outside [0, 1]. Nothing is changed (floors are checked against caps
        on the kernel's pass over the positions, whose results are then dropped).

    Notes
    -----
    With ``S`` the sellable units, floors ``f_c``, caps ``u_c`` (both counted with
    the channel's open reservations ``r_c``), margins ``m_c`` and unsold costs
    ``h_c``, the new fences ``q_c`` solve

    .. math::
        \\max_q \\sum_c m_c\\,E[\\min(D_c, q_c)] - h_c\\,E[(q_c - D_c)^+]
        \\quad\\text{s.t.}\\quad \\sum_c q_c \\le S,\\;
        (f_c - r_c)^+ \\le q_c \\le u_c - r_c.

    The ``(q+1)``-th unit of channel ``c`` is worth
    :math:`v_c(q) = (m_c + h_c) P(D_c > q) - h_c`, which does not increase with
    ``q``, so handing out units one by one to the largest positive ``v`` (ties: lowest
    channel index) is optimal. With one channel and ample stock this stops at the
    newsvendor quantity, the smallest ``q`` with
    :math:`P(D \\le q) \\ge m / (m + h)`.

    Examples
    --------
    >>> import numpy as np
    >>> from allocator import Ledger, Network
    >>> net = Network()
    >>> for ch in ("store", "online"):
    ...     _ = net.add_channel(ch)
    >>> _ = net.add_location("S1", kind="store", lat=0.0, lon=0.0)
    >>> _ = net.add_sku("A")
    >>> data = net.build()
    >>> ledger = Ledger(data)
    >>> _ = ledger.receive("A", "S1", 10)
    >>> fc = ChannelForecast.poisson(np.array([[4.0, 4.0]]))
    >>> alloc = allocate_channels(data, ledger, fc, margin=1.0)
    >>> alloc.allocated.tolist()
    [[5, 5]]
    """
    t0 = time.perf_counter()
    if not isinstance(network_data, NetworkData):
        raise DTypeError(
            f"expected a NetworkData, got {type(network_data).__name__}", field="network_data"
        )
    if not isinstance(ledger, BaseLedger):
        raise DTypeError(f"expected a Ledger, got {type(ledger).__name__}", field="ledger")
    network_data.require_same(ledger.network, "ledger", "the ledger")
    if not isinstance(forecast, ChannelForecast):
        raise DTypeError("expected a ChannelForecast", field="forecast")
    if not isinstance(detail, bool | np.bool_):
        raise DTypeError(f"expected True or False, got {type(detail).__name__}", field="detail")
    from allocator.distributed import check_partitions

    num_parts = check_partitions(partitions)
    net = ledger.network
    if network_data is not net and network_data.channel_names != net.channel_names:
        raise ValidationError(
            "network_data is not the ledger's network",
            field="network_data",
            code="invalid_choice",
        )
    npos, nc = ledger.num_positions, net.num_channels
    if forecast.mean.shape != (npos, nc):
        raise ValidationError(
            f"expected one row per ledger position and one column per channel "
            f"{(npos, nc)}, got {forecast.mean.shape}",
            field="forecast",
            code="length_mismatch",
        )
    # Fresh arrays (the ledger computes them from its keys); the result keeps them.
    position_sku = ledger.position_sku
    position_location = ledger.position_location
    margin_t, rows = _value_table(margin, "margin", net, position_sku, None)
    unsold_t, unsold_rows = _value_table(unsold_cost, "unsold_cost", net, position_sku, 0.0)
    if margin_t.shape[0] != unsold_t.shape[0]:  # one per sku, the other per channel
        if margin_t.shape[0] == 1:
            margin_t = np.repeat(margin_t, unsold_t.shape[0], axis=0)
            rows = unsold_rows
        else:
            unsold_t = np.repeat(unsold_t, margin_t.shape[0], axis=0)

    # Live read-only views of the ledger: the kernel reads them in place, and what the
    # result keeps of them is snapshotted below.
    on_hand = ledger.on_hand
    reserved = ledger.reserved_by_channel

    if floors is None:
        floor = np.zeros((1, nc), dtype=np.int64)
    else:
        floor, _, _ = _int_limits(floors, "floors", net, npos, 0)
    floor_m = np.broadcast_to(floor, (npos, nc))
    live_cap = caps is None  # the ledger's own caps: snapshot what the result keeps
    if caps is None:
        cap_m = ledger.cap
        cap_set = np.zeros(nc, dtype=np.bool_)
    else:
        units, share, cap_set = _int_limits(caps, "caps", net, npos, -1)
        cap_m = _caps_matrix(units, share, on_hand, ledger.cap)
    if not net.serves.all():
        # A channel a location does not sell to gets nothing there (cap 0, no floor).
        served = net.serves[position_location]
        floor_m = np.where(served, floor_m, 0)
        cap_m = np.where(served, cap_m, 0)
        live_cap = False
    lead = as_float64(lead_time, "lead_time", lo=0.0)
    if lead.shape[0] not in (1, npos):
        raise ValidationError(
            f"expected a scalar or {npos} values, got {lead.shape[0]}",
            field="lead_time",
            code="length_mismatch",
        )
    if service_level is None and fill_rate is None:
        safety = ledger.safety_stock
        safety_set = False
    else:
        safety = _safety(forecast, service_level, fill_rate, lead_time)
        safety_set = True

    columns = {
        "mean": forecast.mean,
        "var": forecast.var,
        "on_hand": on_hand,
        "safety": safety,
        "reserved": reserved,
        "floor": floor_m,
        "cap": cap_m,
        "rows": rows,
    }
    common = (_DISTRIBUTIONS[forecast.distribution], margin_t, unsold_t, bool(detail))
    if client is None and scheduler is None:
        out = _allocate_block(columns, common)
        safety_varies = bool(out["counts"][:, K.N_SAFETY_VARIES].sum())
        cap_varies = bool(out["counts"][:, K.N_CAP_VARIES].sum())
    else:
        from allocator import distributed as D

        with D.connect(client, scheduler) as c:
            count = num_parts if num_parts is not None else D.default_partitions(c)
            blocks = D.block_partitions(npos, count, align=K.CHUNK)
            parts = [_cut_block(columns, int(b[0]), int(b[-1]) + 1) for b in blocks]
            outs, _ = D.run_tasks(c, _allocate_block, parts, common, name="allocate_channels")
        out = _join_blocks(outs, blocks, nc) if outs else _allocate_block(columns, common)
        # the kernel counts against each block's first position: compare globally
        safety_varies = bool(npos) and bool(np.any(safety != safety[0]))
        cap_varies = bool(npos) and bool(np.any(cap_m != cap_m[0]))
    fence, totals, counts = out["fence"], out["totals"], out["counts"]
    sellable, alloc, sales, short = out["sellable"], out["alloc"], out["sales"], out["short"]
    bad = counts[:, K.N_FLOOR_ABOVE_CAP]
    if (bad >= 0).any():  # the kernel checked floors against caps on its way
        row, c = divmod(int(bad[bad >= 0][0]), nc)
        raise ValidationError(
            f"floor {int(floor_m[row, c])} above cap {int(cap_m[row, c])} for channel "
            f"{net.channel_names[c]!r}",
            field="floors",
            row=row,
            code="floor_above_cap",
        )
    # Chunk sums added in chunk order: the same for any number of threads.
    chunk_sums = totals.sum(axis=0)
    channel_alloc = chunk_sums[K.T_ALLOCATED]
    channel_sales = chunk_sums[K.T_SALES]
    demand = chunk_sums[K.T_DEMAND]
    count_sums = counts.sum(axis=0)
    fence = readonly(fence)
    if detail:
        allocated = readonly(alloc)
    elif count_sums[K.N_RESERVED_POSITIONS] == 0:
        allocated = fence  # fence = reserved + allocated, and nothing is reserved
    else:
        allocated = readonly(np.subtract(fence, reserved))

    with np.errstate(invalid="ignore", divide="ignore"):
        fill = np.where(demand > 0, channel_sales / np.where(demand > 0, demand, 1.0), np.nan)
    if margin_t.shape[0] == 1:
        channel_margin = channel_sales * margin_t[0]
        unsold = float(((channel_alloc - channel_sales) * unsold_t[0]).sum())
    else:
        channel_margin = chunk_sums[K.T_MARGIN]
        unsold = float(chunk_sums[K.T_UNSOLD].sum())
    runtime = time.perf_counter() - t0
    logger.info("allocate_channels: %d positions x %d channels in %.3f s", npos, nc, runtime)
    return ChannelAllocation(
        network=net,
        distribution=forecast.distribution,
        position_sku=readonly(position_sku),
        position_location=readonly(position_location),
        safety_stock=(readonly(safety) if safety_set else _snapshot(safety, safety_varies)),
        fence=fence,
        allocated=allocated,
        cap=_snapshot(cap_m, cap_varies) if live_cap else readonly(cap_m),
        demand=readonly(demand),
        channel_allocated=readonly(channel_alloc.astype(np.int64)),
        channel_expected_sales=readonly(channel_sales),
        fill_rate=readonly(fill),
        channel_margin=readonly(np.asarray(channel_margin, dtype=np.float64)),
        expected_margin=float(np.sum(channel_margin)),
        expected_unsold_cost=unsold,
        total_sellable=int(count_sums[K.N_SELLABLE]),
        num_floor_short=int(count_sums[K.N_SHORT_POSITIONS]),
        channel_floor_shortfall=readonly(chunk_sums[K.T_SHORT].astype(np.int64)),
        safety_set=safety_set,
        cap_set=readonly(cap_set),
        runtime=runtime,
        detail_arrays=(readonly(sellable), readonly(sales), readonly(short)) if detail else None,
    )
