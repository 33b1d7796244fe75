""":func:`open_ledger`: one entry point for every durable ledger.

A path opens the embedded SQLite journal (:class:`~allocator.journal.DurableLedger`).
A ``postgresql://`` URL opens a journal that several processes and hosts share,
in the role asked for (see ``docs/shared.md``):

* ``"writer"`` (the default for a URL): a :class:`~allocator.journal.DurableLedger`
  that holds the journal's leadership alone, like the SQLite writer;
* ``"reader"``: a :class:`~allocator.journal.DurableLedger` that only reads;
* ``"client"``: a :class:`~allocator.journal.shared.SharedLedger`; writes go to the
  inbox and are applied by the leader, reads come from a local replica;
* ``"leader"``: a client that is also a candidate: it applies the inbox while it
  holds the lease, and waits as a standby while another process does;
* ``"follower"``: a read-only :class:`~allocator.journal.shared.SharedLedger`.
"""

from __future__ import annotations

from typing import Any

from allocator.exceptions import ValidationError
from allocator.journal import _pgstore
from allocator.journal.durable import open_durable
from allocator.network import NetworkData

__all__ = ["ROLES", "open_ledger"]

#: The roles a process may take on a PostgreSQL journal.
ROLES = ("writer", "reader", "client", "leader", "follower")


def open_ledger(
    path: Any,
    network_data: NetworkData | None = None,
    *,
    role: str | None = None,
    readonly: bool = False,
    **options: Any,
) -> Any:
    """Open a durable ledger: a SQLite journal at ``path``, or a shared one on
    PostgreSQL at a ``postgresql://`` URL.

    Parameters
    ----------
    path
        A file path (SQLite; see :func:`~allocator.journal.durable.open_durable`
        for its options) or a ``postgresql://user@host:port/db?schema=NAME`` URL.
    network_data
        Required to create a journal; optional on reopen, where it must equal the
        stored one.
    role
        For a URL: ``"writer"`` (default), ``"reader"``, ``"client"``, ``"leader"``
        or ``"follower"`` (see the module docstring). For a path only ``None``,
        ``"writer"`` or ``"reader"``.
    readonly
        The same as ``role="reader"``.
    options
        Passed on: :func:`~allocator.journal.durable.open_durable` for writers and
        readers, :func:`~allocator.journal.shared.open_shared` for the shared roles.
    """
    if role is None:
        role = "reader" if readonly else "writer"
    if role not in ROLES:
        raise ValidationError(f"expected one of {ROLES}, got {role!r}", field="role")
    if readonly and role != "reader":
        raise ValidationError(f"readonly=True contradicts role={role!r}", field="role")
    if role in ("writer", "reader"):
        return open_durable(path, network_data, readonly=role == "reader", **options)
    if not _pgstore.is_url(path):
        raise ValidationError(
            f"role={role!r} needs a postgresql:// URL (a shared journal), got {path!r}",
            field="role",
        )
    from allocator.journal.shared import open_shared

    return open_shared(path, network_data, role=role, **options)
