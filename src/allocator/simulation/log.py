"""What a simulation run did, event by event: :class:`EventLog` and :class:`DemandLog`.

The event log holds every event the run applied to the ledger, with its result code,
the wave it was applied in and the order it belongs to; the demand log holds every
unit customers asked for. Together they are enough to recompute the run's KPIs
without the simulator (the tests do exactly that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from allocator._validate import readonly
from allocator.events import EventKind, Events, ResultCode

__all__ = ["DemandLog", "EventLog", "Recorder"]


@dataclass(frozen=True, eq=False)
class EventLog:
    """Every event applied during a run, in application order (read-only arrays).

    Attributes
    ----------
    wave
        Global wave index (``day * waves_per_day + wave``) at which the event was
        applied; start-of-day arrivals and nightly events carry the day's first and
        last wave.
    id, kind, sku, location, channel, qty, ref, expires_at, link
        The event's fields (see :class:`~allocator.Events`); commits carry their
        quantity explicitly, never ``ALL``.
    code
        The ledger's :class:`~allocator.ResultCode`.
    order
        The online order the event serves (0 for none).
    """

    wave: np.ndarray
    id: np.ndarray
    kind: np.ndarray
    sku: np.ndarray
    location: np.ndarray
    channel: np.ndarray
    qty: np.ndarray
    ref: np.ndarray
    expires_at: np.ndarray
    link: np.ndarray
    code: np.ndarray
    order: np.ndarray

    FIELDS = (
        "wave",
        "id",
        "kind",
        "sku",
        "location",
        "channel",
        "qty",
        "ref",
        "expires_at",
        "link",
        "code",
        "order",
    )

    def __len__(self) -> int:
        return int(self.id.shape[0])

    def to_events(self) -> Events:
        """The logged events as one :class:`~allocator.Events` batch (to replay them)."""
        return Events.from_arrays(
            **{name: getattr(self, name) for name in Events.FIELDS}  # type: ignore[arg-type]
        )

    def ok(self, kind: EventKind) -> np.ndarray:
        """Mask of the events of ``kind`` that the ledger accepted."""
        return (self.kind == kind) & (self.code == ResultCode.OK)

    def counts(self) -> dict[str, int]:
        """Number of events per kind."""
        found = np.bincount(self.kind, minlength=len(EventKind))
        return {k.name.lower(): int(found[k]) for k in EventKind if found[k]}

    def to_frame(self) -> Any:
        """One row per event (kinds and codes as strings)."""
        import pandas as pd

        data: dict[str, Any] = {name: np.asarray(getattr(self, name)) for name in self.FIELDS}
        data["kind"] = [EventKind(k).name.lower() for k in self.kind.tolist()]
        data["code"] = [ResultCode(c).slug for c in self.code.tolist()]
        return pd.DataFrame(data)


@dataclass(frozen=True, eq=False)
class DemandLog:
    """Every unit customers asked for (read-only arrays, one row per demand line).

    Walk-in rows have ``order == 0`` and the store's ``location``; online rows carry
    the order id, its ``service``, ``pickup_location`` (-1 unless pick-up) and
    destination ``lat``/``lon`` (NaN for pick-up), with ``location == -1``.
    """

    wave: np.ndarray
    channel: np.ndarray
    sku: np.ndarray
    location: np.ndarray
    qty: np.ndarray
    order: np.ndarray
    service: np.ndarray
    pickup_location: np.ndarray
    lat: np.ndarray
    lon: np.ndarray

    FIELDS = (
        "wave",
        "channel",
        "sku",
        "location",
        "qty",
        "order",
        "service",
        "pickup_location",
        "lat",
        "lon",
    )

    def __len__(self) -> int:
        return int(self.qty.shape[0])

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame({name: np.asarray(getattr(self, name)) for name in self.FIELDS})


class Recorder:
    """Collects chunks during a run; :meth:`freeze` builds the logs."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._events: list[tuple[np.ndarray, ...]] = []
        self._demand: list[tuple[np.ndarray, ...]] = []

    def events(self, events: Events, codes: np.ndarray, wave: int, order: Any = 0) -> None:
        if not self.enabled or len(events) == 0:
            return
        n = len(events)
        self._events.append(
            (
                np.full(n, wave, dtype=np.int64),
                events.id,
                events.kind,
                events.sku,
                events.location,
                events.channel,
                events.qty,
                events.ref,
                events.expires_at,
                events.link,
                np.asarray(codes, dtype=np.int64),
                np.broadcast_to(np.asarray(order, dtype=np.int64), (n,)),
            )
        )

    def demand(
        self,
        wave: int,
        channel: Any,
        sku: np.ndarray,
        location: Any,
        qty: np.ndarray,
        order: Any = 0,
        service: Any = -1,
        pickup_location: Any = -1,
        lat: Any = np.nan,
        lon: Any = np.nan,
    ) -> None:
        if not self.enabled or sku.shape[0] == 0:
            return
        n = sku.shape[0]

        def col(v: Any, dtype: Any) -> np.ndarray:
            return np.broadcast_to(np.asarray(v, dtype=dtype), (n,))

        self._demand.append(
            (
                col(wave, np.int64),
                col(channel, np.int64),
                col(sku, np.int64),
                col(location, np.int64),
                col(qty, np.int64),
                col(order, np.int64),
                col(service, np.int64),
                col(pickup_location, np.int64),
                col(lat, np.float64),
                col(lon, np.float64),
            )
        )

    @staticmethod
    def _join(chunks: list[tuple[np.ndarray, ...]], fields: tuple[str, ...]) -> dict[str, Any]:
        out = {}
        for i, name in enumerate(fields):
            parts = [c[i] for c in chunks]
            if parts:
                out[name] = readonly(np.concatenate(parts))
            else:
                dtype: Any = np.float64 if name in ("lat", "lon") else np.int64
                dtype = np.bool_ if name == "link" else dtype
                out[name] = readonly(np.zeros(0, dtype=dtype))
        return out

    def freeze(self) -> tuple[EventLog, DemandLog] | tuple[None, None]:
        if not self.enabled:
            return None, None
        return (
            EventLog(**self._join(self._events, EventLog.FIELDS)),
            DemandLog(**self._join(self._demand, DemandLog.FIELDS)),
        )
