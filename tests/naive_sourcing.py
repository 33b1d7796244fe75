"""Slow, obvious twin of the greedy sourcing kernel.

The pure-Python implementation lives in the package
(``allocator.sourcing._reference``) because ``allocator bench sourcing`` measures it as
its same-run baseline; it is re-exported here for the tests.
"""

from allocator.sourcing._reference import haversine, reference_plan, reference_source

__all__ = ["haversine", "reference_plan", "reference_source"]
