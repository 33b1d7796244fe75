"""allocator: an omnichannel inventory allocation engine.

The top level holds the names most programs need; everything else lives in
subpackages: ``allocator.events``, ``allocator.ledger``, ``allocator.network``,
``allocator.journal``, ``allocator.sourcing``, ``allocator.channels``,
``allocator.safety``, ``allocator.replenishment``, ``allocator.scenarios`` and
``allocator.simulation``.

``import allocator`` is cheap: each name is imported from its module on first use,
so numba, SciPy, OR-Tools, pandas, matplotlib and sqlite3 load only when the code
that needs them runs. Call :func:`warmup` (or run ``allocator warmup``) to compile
every kernel ahead of time.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from allocator.channels import allocate_channels as allocate_channels
    from allocator.compilation import warmup as warmup
    from allocator.events import Events as Events
    from allocator.events import ResultCode as ResultCode
    from allocator.exceptions import AllocatorError as AllocatorError
    from allocator.exceptions import LedgerBusyError as LedgerBusyError
    from allocator.exceptions import ValidationError as ValidationError
    from allocator.journal import open_ledger as open_ledger
    from allocator.ledger import Ledger as Ledger
    from allocator.network import Network as Network
    from allocator.network import NetworkData as NetworkData
    from allocator.replenishment import replenish as replenish
    from allocator.simulation import simulate as simulate
    from allocator.sourcing import Orders as Orders
    from allocator.sourcing import source as source

from allocator._version import __version__ as __version__

__all__ = [
    "AllocatorError",
    "Events",
    "Ledger",
    "LedgerBusyError",
    "Network",
    "NetworkData",
    "Orders",
    "ResultCode",
    "ValidationError",
    "allocate_channels",
    "open_ledger",
    "replenish",
    "simulate",
    "source",
    "warmup",
]

#: Where each public name lives (imported on first access).
_HOMES = {
    "AllocatorError": "allocator.exceptions",
    "Events": "allocator.events",
    "Ledger": "allocator.ledger",
    "LedgerBusyError": "allocator.exceptions",
    "Network": "allocator.network",
    "NetworkData": "allocator.network",
    "Orders": "allocator.sourcing",
    "ResultCode": "allocator.events",
    "ValidationError": "allocator.exceptions",
    "allocate_channels": "allocator.channels",
    "open_ledger": "allocator.journal",
    "replenish": "allocator.replenishment",
    "simulate": "allocator.simulation",
    "source": "allocator.sourcing",
    "warmup": "allocator.compilation",
}

#: Names the top level used to carry, served with a DeprecationWarning.
_MOVED = {
    "NO_EXPIRY": "allocator.events",
    "ApplyResult": "allocator.ledger",
    "ChannelForecast": "allocator.channels",
    "CostModel": "allocator.sourcing",
    "EventKind": "allocator.events",
    "LocationKind": "allocator.network",
    "SourcingPlan": "allocator.sourcing",
    "compare": "allocator.simulation",
    "department_store": "allocator.scenarios",
    "nearby": "allocator.sourcing",
    "safety_stock": "allocator.safety",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        home = _MOVED.get(name)
        if home is None:
            raise AttributeError(f"module 'allocator' has no attribute {name!r}")
        warnings.warn(
            f"allocator.{name} moved: import it from {home}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(home), name)
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
