""" "In stock near you": the nearest locations holding a SKU for a channel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from allocator._kernels.sourcing import EARTH_RADIUS_KM
from allocator._validate import readonly
from allocator.exceptions import ValidationError
from allocator.network import NetworkData
from allocator.sourcing.costs import haversine_km
from allocator.sourcing.orders import Service
from allocator.sourcing.problem import check_ledger, location_index

__all__ = ["NearbyResult", "nearby"]


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
    ledger: Any,
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
    Locations are visited nearest first through a k-d tree on unit vectors (chord
    order equals great-circle order), ``4k`` at a time, growing until ``k`` in-stock
    locations are found per SKU or the eligible locations (within the radius) run out.
    """
    check_ledger(network_data, ledger)
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
    ix = location_index(network_data)
    tree, ids = ix.tree(c, svc)
    n = skus.shape[0]
    out_loc = np.full((n, k), -1, dtype=np.int64)
    out_av = np.zeros((n, k), dtype=np.int64)
    out_km = np.full((n, k), np.nan)
    count = np.zeros(n, dtype=np.int64)
    if tree is not None:
        rlat, rlon = np.radians(float(lat)), np.radians(float(lon))
        point = np.array([np.cos(rlat) * np.cos(rlon), np.cos(rlat) * np.sin(rlon), np.sin(rlat)])
        bound = np.inf
        if radius_km is not None:
            bound = (
                2.0 * np.sin(min(float(radius_km) / EARTH_RADIUS_KM, np.pi) / 2.0) * (1 + 1e-9)
                + 1e-12
            )
        want = min(ids.shape[0], 4 * k)
        while True:
            _chord, idx = tree.query(point, k=want, distance_upper_bound=bound)
            idx = np.atleast_1d(idx)
            valid = idx < ids.shape[0]
            locs = ids[idx[valid]]
            km = haversine_km(
                network_data.lat[locs], network_data.lon[locs], float(lat), float(lon)
            )
            keep = np.ones(locs.shape[0], dtype=np.bool_)
            if radius_km is not None:
                keep &= km <= float(radius_km)
            if svc == Service.SAME_DAY:
                keep &= km <= network_data.same_day_radius_km[locs]
            locs, km = locs[keep], km[keep]
            avail = np.asarray(
                ledger.available(np.repeat(skus, locs.shape[0]), np.tile(locs, n), c)
            ).reshape(n, locs.shape[0])
            stocked = avail > 0
            rank = np.cumsum(stocked, axis=1)
            take = stocked & (rank <= k)
            count = take.sum(axis=1)
            exhausted = want >= ids.shape[0] or not valid.all()
            if exhausted or (count >= k).all():
                rows, cols = np.nonzero(take)
                slot = rank[rows, cols] - 1
                out_loc[rows, slot] = locs[cols]
                out_av[rows, slot] = avail[rows, cols]
                out_km[rows, slot] = km[cols]
                break
            want = min(ids.shape[0], want * 4)
    return NearbyResult(
        network_data,
        readonly(skus),
        readonly(out_loc),
        readonly(out_av),
        readonly(out_km),
        readonly(count.astype(np.int64)),
    )
