""" "In stock near you": the nearest locations holding a SKU for a channel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from allocator._kernels import sourcing as K
from allocator._validate import readonly
from allocator.exceptions import ValidationError
from allocator.network import NetworkData
from allocator.sourcing.indexes import LocationIndex, PositionIndex
from allocator.sourcing.orders import Service
from allocator.sourcing.problem import ledger_views

if TYPE_CHECKING:
    from allocator.ledger import BaseLedger

__all__ = ["NearbyResult", "nearby", "nearby_with"]


@dataclass(frozen=True, eq=False)
class NearbyResult:
    """The ``k`` nearest in-stock locations per SKU, nearest first.

    ``location[i, :count[i]]`` are the locations found for ``sku[i]`` (-1 pads the
    rest), with their ``available`` quantity for the channel and ``distance_km``.
    """

    network: NetworkData
    sku: np.ndarray
    location: np.ndarray
    available: np.ndarray
    distance_km: np.ndarray
    count: np.ndarray

    def __len__(self) -> int:
        return int(self.sku.shape[0])

    def summary(self) -> str:
        net = self.network
        lines = []
        for i, s in enumerate(self.sku.tolist()):
            found = [
                f"{net.location_names[loc]} ({int(a)} at {d:.1f} km)"
                for loc, a, d in zip(
                    self.location[i, : self.count[i]].tolist(),
                    self.available[i, : self.count[i]].tolist(),
                    self.distance_km[i, : self.count[i]].tolist(),
                    strict=True,
                )
            ]
            lines.append(f"{net.sku_names[s]}: " + (", ".join(found) if found else "none nearby"))
        return "\n".join(lines)

    def to_frame(self) -> Any:
        """One row per (SKU, location found)."""
        import pandas as pd

        rows = np.flatnonzero((self.location >= 0).ravel())
        i, r = np.divmod(rows, self.location.shape[1])
        net = self.network
        return pd.DataFrame(
            {
                "sku": [net.sku_names[s] for s in self.sku[i].tolist()],
                "rank": r,
                "location": [net.location_names[loc] for loc in self.location.ravel()[rows]],
                "available": self.available.ravel()[rows],
                "distance_km": self.distance_km.ravel()[rows],
            }
        )


def nearby(
    network_data: NetworkData,
    ledger: BaseLedger,
    sku: Any,
    lat: float,
    lon: float,
    *,
    channel: Any,
    k: int = 3,
    radius_km: float | None = None,
    service: Any = None,
) -> NearbyResult:
    """The ``k`` nearest locations that can serve ``channel`` (and ``service``) and have
    the SKU available, for one point and one or many SKUs.

    Parameters
    ----------
    sku
        A SKU or an array of SKUs (names or indices).
    lat, lon
        The customer's position in degrees.
    channel
        The channel whose availability counts.
    k
        How many locations per SKU.
    radius_km
        Only locations within this great-circle distance.
    service
        ``"ship"``, ``"pickup"`` or ``"same_day"``: only locations offering it (for
        same-day, only those whose own radius reaches the point). None: any.

    Notes
    -----
    Each SKU's positions come from the ledger's per-SKU position lists, so a query
    touches only the locations that hold the SKU, never all locations. This function
    builds those lists (O(positions)) for its one call; for repeated queries use
    :meth:`Sourcer.nearby <allocator.sourcing.Sourcer.nearby>`, which keeps them while
    the ledger gains no positions. They are ranked by squared chord length between
    unit vectors, which orders points exactly as great-circle distance does but needs
    no trigonometry; haversine km is computed for radius checks and the answers.
    Availability is the ledger's ``available(c)``, read from its per-position arrays.
    """
    from allocator.sourcing.sourcer import Sourcer

    return Sourcer(network_data).nearby(
        ledger, sku, lat, lon, channel=channel, k=k, radius_km=radius_km, service=service
    )


def nearby_with(
    ix: LocationIndex,
    positions: PositionIndex,
    ledger: BaseLedger,
    sku: Any,
    lat: float,
    lon: float,
    *,
    channel: Any,
    k: int = 3,
    radius_km: float | None = None,
    service: Any = None,
) -> NearbyResult:
    """:func:`nearby` with the indexes given (the ledger already checked)."""
    network_data = ix.network
    skus = np.atleast_1d(np.asarray(network_data.sku_index(sku), dtype=np.int64))
    c = int(network_data.channel_index(channel))
    for name, v, lo, hi in (("lat", lat, -90.0, 90.0), ("lon", lon, -180.0, 180.0)):
        if (
            isinstance(v, bool)
            or not isinstance(v, int | float | np.number)
            or not lo <= float(v) <= hi
        ):
            raise ValidationError(f"{v!r} outside [{lo}, {hi}]", field=name, code="bad_coordinate")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValidationError(f"expected an int >= 1, got {k!r}", field="k", code="out_of_range")
    if radius_km is not None and not (float(radius_km) >= 0 and np.isfinite(radius_km)):
        raise ValidationError(
            f"expected a finite radius >= 0, got {radius_km!r}",
            field="radius_km",
            code="out_of_range",
        )
    svc = None
    if service is not None:
        if isinstance(service, str) and service.upper() in Service.__members__:
            svc = Service[service.upper()]
        elif isinstance(service, int) and service in set(Service):
            svc = Service(service)
        else:
            raise ValidationError(
                f"unknown service {service!r}", field="service", code="unknown_service"
            )
    n = skus.shape[0]
    out_loc = np.full((n, k), -1, dtype=np.int64)
    out_av = np.zeros((n, k), dtype=np.int64)
    out_km = np.full((n, k), np.nan)
    count = np.zeros(n, dtype=np.int64)
    K.nearby(
        skus,
        positions.lists,
        ledger_views(ledger),
        c,
        ix.eligible(c, svc),
        float(lat),
        float(lon),
        -1.0 if radius_km is None else float(radius_km),
        svc == Service.SAME_DAY,
        ix.sites,
        out_loc,
        out_av,
        out_km,
        count,
    )
    return NearbyResult(
        network_data,
        readonly(skus),
        readonly(out_loc),
        readonly(out_av),
        readonly(out_km),
        readonly(count),
    )
