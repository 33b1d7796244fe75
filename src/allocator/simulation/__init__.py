"""Capacity-planning simulation: drive the real ledger and models over synthetic days.

* :func:`simulate`: one policy on one seeded scenario → :class:`SimulationResult`
  (:class:`KPIs`, :class:`DailySeries`, :class:`EventLog`, :class:`DemandLog`).
* :func:`compare`: several sourcing policies on the same seeded scenario.
* :func:`capacity_sweep`: order-volume or pick-capacity multipliers, to find where
  service breaks.
* :func:`write_report`: an HTML report with matplotlib plots.

See ``docs/simulation.md``.
"""

from allocator.simulation.compare import CapacitySweep, Comparison, capacity_sweep, compare
from allocator.simulation.engine import COMPONENTS, POLICIES, SimulationResult, simulate
from allocator.simulation.kpis import LOST_CAUSES, TARGETS, DailySeries, KPIs, OrderOutcomes
from allocator.simulation.log import DemandLog, EventLog
from allocator.simulation.report import write_report

__all__ = [
    "COMPONENTS",
    "LOST_CAUSES",
    "POLICIES",
    "TARGETS",
    "CapacitySweep",
    "Comparison",
    "DailySeries",
    "DemandLog",
    "EventLog",
    "KPIs",
    "OrderOutcomes",
    "SimulationResult",
    "capacity_sweep",
    "compare",
    "simulate",
    "write_report",
]
