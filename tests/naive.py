"""Slow, obvious twins of the kernels, used as oracles by the tests.

The reference ledger lives in the package (``allocator.bench._naive_ledger``) because
``allocator bench ledger`` measures it as its baseline; it is re-exported here.
"""

from allocator.bench._naive_ledger import NaiveLedger, NaivePosition

__all__ = ["NaiveLedger", "NaivePosition"]
