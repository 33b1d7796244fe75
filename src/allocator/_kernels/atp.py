"""Available-to-promise: the one home of the ATP formula.

For channel ``c`` at one position::

    free         = on_hand - reserved - safety_stock
    unused[c']   = max(0, fence[c'] - reserved[c'])
    cap_room[c]  = cap[c] - reserved[c]
    available(c) = max(0, min(free - sum_{c' != c} unused[c'], cap_room[c]))

Every kernel that needs availability computes the parts from its own layout and
calls :func:`atp`; nothing else restates the formula.
"""

from __future__ import annotations

from typing import Any

from allocator._kernels import jit


@jit
def unused_fence(fence: int, reserved: int) -> Any:
    """The part of a channel's fence it has not reserved yet (never negative)."""
    u = fence - reserved
    return u if u > 0 else 0


@jit
def shared_room(free: int, unused_total: int, unused_c: int) -> Any:
    """What the shared pool leaves channel ``c``, before its cap: ``free - Σ_{c'≠c} unused``.

    ``unused_total`` is the sum of every channel's unused fence, ``unused_c`` the
    unused fence of ``c`` itself (its own fence is available to it).
    """
    return free - (unused_total - unused_c)


@jit
def atp(free: int, unused_total: int, unused_c: int, cap_room: int) -> Any:
    """``available(c)`` from its parts (see the module docstring and :func:`shared_room`)."""
    a = shared_room(free, unused_total, unused_c)
    if cap_room < a:
        a = cap_room
    return a if a > 0 else 0
