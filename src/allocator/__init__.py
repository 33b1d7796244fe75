"""allocator: an omnichannel inventory allocation engine.

The public API is the curated set of names below; everything else lives in
subpackages: ``allocator.events``, ``allocator.ledger``, ``allocator.network``,
``allocator.journal``, ``allocator.sourcing``, ``allocator.channels``,
``allocator.safety``, ``allocator.replenishment``, ``allocator.scenarios`` and
``allocator.simulation``.
"""

from allocator.channels import ChannelForecast, allocate_channels
from allocator.events import NO_EXPIRY, EventKind, Events, ResultCode
from allocator.exceptions import AllocatorError, ValidationError
from allocator.ledger import ApplyResult, Ledger
from allocator.network import LocationKind, Network, NetworkData
from allocator.replenishment import replenish
from allocator.safety import safety_stock
from allocator.scenarios import department_store
from allocator.simulation import compare, simulate
from allocator.sourcing import CostModel, Orders, SourcingPlan, nearby, source

__version__ = "0.1.0"

__all__ = [
    "NO_EXPIRY",
    "AllocatorError",
    "ApplyResult",
    "ChannelForecast",
    "CostModel",
    "EventKind",
    "Events",
    "Ledger",
    "LocationKind",
    "Network",
    "NetworkData",
    "Orders",
    "ResultCode",
    "SourcingPlan",
    "ValidationError",
    "allocate_channels",
    "compare",
    "department_store",
    "nearby",
    "replenish",
    "safety_stock",
    "simulate",
    "source",
]
