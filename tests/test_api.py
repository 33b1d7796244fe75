"""The public surface: a curated, sorted ``__all__``, and the installed-package checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import allocator
from allocator import exceptions

EXPECTED = [
    "AllocatorError",
    "Events",
    "Ledger",
    "LedgerBusyError",
    "Network",
    "NetworkData",
    "Orders",
    "ResultCode",
    "ValidationError",
    "allocate_channels",
    "open_ledger",
    "replenish",
    "simulate",
    "source",
    "warmup",
]

#: Modules ``import allocator`` must not load (each costs from 0.1 s to seconds).
HEAVY = ("numba", "scipy.stats", "ortools", "matplotlib", "pandas", "sqlite3")


def test_all_is_pinned_and_sorted():
    assert allocator.__all__ == EXPECTED
    # constants first, then classes, then functions, each group alphabetical
    assert allocator.__all__ == sorted(
        allocator.__all__, key=lambda s: (not s.isupper(), not s[0].isupper(), s)
    )
    for name in allocator.__all__:
        assert hasattr(allocator, name)
        assert name in dir(allocator)


def test_moved_names_warn_and_still_work():
    with pytest.warns(DeprecationWarning, match="allocator.events"):
        from allocator import EventKind
    from allocator.events import EventKind as home

    assert EventKind is home
    with pytest.raises(AttributeError, match="no_such_name"):
        allocator.no_such_name  # noqa: B018


def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )


def test_import_loads_no_heavy_module():
    code = f"import sys, allocator; print([m for m in {HEAVY!r} if m in sys.modules])"
    assert _fresh(code).stdout.strip() == "[]"


def test_building_a_network_needs_no_numba():
    code = (
        "import sys; from allocator import Network;"
        "n = Network(); n.add_channel('c'); n.add_location('L', kind='store', lat=0, lon=0);"
        "n.add_sku('s'); n.build();"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    assert _fresh(code).stdout.strip() == "[]"


def test_exception_tree():
    assert issubclass(exceptions.ValidationError, ValueError)
    assert issubclass(exceptions.DTypeError, TypeError)
    for name in exceptions.__all__:
        assert issubclass(getattr(exceptions, name), exceptions.AllocatorError)


def test_read_only_install_works(tmp_path: Path):
    """A copy of the package where no numba cache location is writable still runs.

    Permission bits do not bind root, so every location numba tries is blocked by a
    file standing where it needs a directory: each package ``__pycache__``, the
    user-wide cache (``XDG_CACHE_HOME``) and ``NUMBA_CACHE_DIR``.
    """
    src = Path(allocator.__file__).parent
    site = tmp_path / "site"
    shutil.copytree(src, site / "allocator", ignore=shutil.ignore_patterns("__pycache__"))
    for pkg in [site / "allocator", *(p for p in (site / "allocator").rglob("*") if p.is_dir())]:
        (pkg / "__pycache__").write_text("not a directory")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(
        HOME=str(blocker),
        PYTHONPATH=str(site),
        XDG_CACHE_HOME=str(blocker / "cache"),
        NUMBA_CACHE_DIR=str(blocker / "numba"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO);"
        "import allocator; assert allocator.__file__.startswith(sys.argv[1]);"
        "from allocator import Network, Ledger;"
        "n = Network(); n.add_channel('c'); n.add_location('L', kind='store', lat=0, lon=0);"
        "n.add_sku('s'); led = Ledger(n.build()); led.receive('s', 'L', 3);"
        "print(led.available('s', 'L', 'c'))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(site)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "3"
    assert "numba cache unavailable" in proc.stderr
