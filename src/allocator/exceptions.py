"""The exception tree of ``allocator``.

Every exception the library raises on purpose derives from :class:`AllocatorError`.
Business rejections (not enough stock, an unknown reservation) are *result codes*,
never exceptions; exceptions are for misuse and corrupt input.

::

    AllocatorError
    ├── ValidationError (also ValueError)      bad input; names field and row
    │   ├── DTypeError (also TypeError)         wrong dtype, e.g. float quantities
    │   ├── UnknownNameError                     unknown sku / location / channel
    │   ├── DuplicateNameError                   a name added twice
    │   └── BatchTooLargeError                   a batch over the documented limit
    ├── CapacityError                            an internal limit (key space) exceeded
    ├── MissingDependencyError (also ImportError) an optional extra is not installed
    ├── QuantityOverflowError (also OverflowError) a total beyond int64
    ├── LedgerBusyError                          not served within the timeout; retry
    ├── JournalError                             durable journal problems
    │   ├── JournalCorruptError                  broken hash chain, torn tail
    │   ├── JournalLockedError                   another writer holds the journal
    │   └── StorageError                         disk full / I/O error during a write
    └── SolverError                              an optimiser failed unexpectedly

Every :class:`ValidationError` carries a stable string ``code``, the offending
``field`` and the first bad ``row`` (or ``None`` when the problem is not
row-specific).
"""

from __future__ import annotations

__all__ = [
    "AllocatorError",
    "BatchTooLargeError",
    "CapacityError",
    "DTypeError",
    "DuplicateNameError",
    "JournalCorruptError",
    "JournalError",
    "JournalLockedError",
    "LedgerBusyError",
    "MissingDependencyError",
    "QuantityOverflowError",
    "SolverError",
    "StorageError",
    "UnknownNameError",
    "ValidationError",
]


class AllocatorError(Exception):
    """Base class of every error raised by ``allocator``."""


class ValidationError(AllocatorError, ValueError):
    """Input that cannot be accepted; nothing was applied.

    Parameters
    ----------
    message
        Human-readable explanation.
    field
        The offending field (argument, column or attribute name).
    row
        The first offending row, or ``None``.
    code
        A stable machine-readable code such as ``"quantity_must_be_positive"``.
    """

    default_code = "invalid_input"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        row: int | None = None,
        code: str | None = None,
    ) -> None:
        self.field = field
        self.row = row
        self.code = code or self.default_code
        where = []
        if field is not None:
            where.append(f"field {field!r}")
        if row is not None:
            where.append(f"row {row}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(f"{prefix}{message} [{self.code}]")


class DTypeError(ValidationError, TypeError):
    """An array or value of the wrong type (e.g. float where int64 is required)."""

    default_code = "wrong_dtype"


class UnknownNameError(ValidationError):
    """A name or index that the network does not know."""

    default_code = "not_found"


class DuplicateNameError(ValidationError):
    """A name that was already added."""

    default_code = "duplicate_name"


class BatchTooLargeError(ValidationError):
    """A batch larger than the documented maximum."""

    default_code = "batch_too_large"


class CapacityError(AllocatorError):
    """An internal limit of the data structures would be exceeded."""


class MissingDependencyError(AllocatorError, ImportError):
    """An optional dependency is missing; the message names the extra to install
    (for example ``pip install 'allocator[distributed]'``)."""


class QuantityOverflowError(AllocatorError, OverflowError):
    """A sum of quantities that int64 cannot hold (it is never silently wrapped)."""


class LedgerBusyError(AllocatorError):
    """A ledger call could not be served within its timeout; nothing was applied.

    The queue of concurrent submissions was full, or the submission waited longer
    than the ledger's ``timeout`` before its turn came. The events were not applied:
    retrying with the same ids is always safe. ``code`` is ``"ledger_busy"``.
    """

    code = "ledger_busy"


class JournalError(AllocatorError):
    """A problem with the durable journal."""


class JournalCorruptError(JournalError):
    """The journal failed an integrity check (broken chain, torn or altered batch)."""


class JournalLockedError(JournalError):
    """Another writer already holds the journal."""


class StorageError(JournalError):
    """The storage layer failed during a write (disk full, I/O error, lost connection).

    ``code`` is ``"storage_unavailable"``. Nothing of the failed call was
    acknowledged; where the failure may have hit after the commit point the batch is
    wholly present or wholly absent, and retrying with the same ids converges.
    """

    code = "storage_unavailable"


class SolverError(AllocatorError):
    """An optimisation backend failed in an unexpected way."""
