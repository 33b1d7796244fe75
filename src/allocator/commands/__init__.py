"""CLI sub-commands beyond ``bench`` and ``demo``.

Each module in this package defines ``register(subparsers)`` adding its own
sub-command (for example ``journal`` or ``simulate``); :func:`register` calls them all.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Let every command module add its sub-parser."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(subparsers)
