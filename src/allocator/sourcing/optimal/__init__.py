"""The ``optimal`` sourcing method: a batch of orders sourced jointly, with a proven
lower bound (see ``docs/optimal.md``).

* :mod:`~allocator.sourcing.optimal.model`: the batch as flat, kernel-ready arrays;
* :mod:`~allocator.sourcing.optimal.bounds`: the LP relaxation (HiGHS) bound;
* :mod:`~allocator.sourcing.optimal.mip`: the exact MIP of a set of orders (OR-Tools);
* :mod:`~allocator.sourcing.optimal.solver`: the schedule that ties them together.
"""

from allocator.sourcing.optimal.solver import solve_optimal as solve_optimal

__all__ = ["solve_optimal"]
