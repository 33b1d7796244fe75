"""The library's coded enums: an int code for arrays and kernels, a stable slug for
frames, messages and JSON."""

from __future__ import annotations

import enum

__all__ = ["CodedEnum"]


class CodedEnum(enum.IntEnum):
    """An :class:`enum.IntEnum` whose members also have a lowercase ``slug``."""

    @property
    def slug(self) -> str:
        """The stable string form, e.g. ``"insufficient_available"``."""
        return self.name.lower()
