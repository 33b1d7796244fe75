"""allocator: an omnichannel inventory allocation engine.

The public API is the curated set of names below; everything else lives in
subpackages (``allocator.events``, ``allocator.ledger``, ``allocator.network``, ...).
"""

from allocator.events import NO_EXPIRY, EventKind, Events, ResultCode
from allocator.exceptions import AllocatorError, ValidationError
from allocator.ledger import ApplyResult, Ledger
from allocator.network import LocationKind, Network, NetworkData

__version__ = "0.1.0"

__all__ = [
    "NO_EXPIRY",
    "AllocatorError",
    "ApplyResult",
    "EventKind",
    "Events",
    "Ledger",
    "LocationKind",
    "Network",
    "NetworkData",
    "ResultCode",
    "ValidationError",
]
