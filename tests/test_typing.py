"""The public surface is typed: mypy --strict accepts a checkout backend's code and
catches the mistakes newcomers make (a string quantity, a missing channel)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def test_checkout_code_type_checks_and_mistakes_are_caught() -> None:
    pytest.importorskip("mypy")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--warn-unused-ignores",
            "--no-error-summary",
            "--follow-imports=silent",
            str(HERE / "typing" / "checkout.py"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
