"""The ``allocator`` command: one explicit table of commands, imported on use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import allocator
from allocator import bench, cli


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "allocator", *argv], capture_output=True, text=True, timeout=300
    )


def test_every_command_module_has_the_interface():
    import importlib

    for command in cli.COMMANDS:
        module = importlib.import_module(command.module)
        assert callable(module.add_arguments) and callable(module.run), command.name


def test_bench_table_lists_every_target_module_with_its_description():
    import importlib

    here = Path(bench.__file__).parent
    files = {p.stem for p in here.glob("*.py") if not p.stem.startswith("_")}
    assert set(bench.TARGETS) == files
    for name, text in bench.TARGETS.items():
        module = importlib.import_module(f"allocator.bench.{name}")
        assert getattr(module, "DESCRIPTION", text) == text, name


def test_help_and_version_load_no_heavy_module():
    code = (
        "import sys, contextlib, io\n"
        "from allocator.cli import main\n"
        "for argv in (['--help'], ['--version'], ['bench', '--help'], ['warmup', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "print([m for m in ('numba', 'scipy', 'ortools', 'pandas', 'matplotlib', 'sqlite3')"
        " if m in sys.modules])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip() == "[]"


def test_python_m_allocator_and_version():
    proc = _run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"allocator {allocator.__version__}"
    proc = _run("--help")
    assert proc.returncode == 0
    for command in cli.COMMANDS:
        assert command.name in proc.stdout


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exc:
        cli.main(["nope"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_json_counts_are_integers():
    import numpy as np

    doc = json.dumps(
        {"orders": np.int64(3380), "share": np.float64(0.5), "ok": np.bool_(True)},
        default=cli.json_default,
    )
    assert json.loads(doc) == {"orders": 3380, "share": 0.5, "ok": True}
    assert '"orders": 3380,' in doc
    with pytest.raises(TypeError):
        json.dumps({"x": object()}, default=cli.json_default)


def test_warmup_command_json(capsys: pytest.CaptureFixture[str]):
    assert cli.main(["warmup", "--steps", "ledger", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in doc["steps"]] == ["ledger"]
    assert isinstance(doc["num_compiled"], int)
    assert cli.main(["warmup", "--steps", "nope"]) == 2
    assert "unknown warm-up steps" in capsys.readouterr().out


def test_bench_startup_reports_the_documented_keys(capsys: pytest.CaptureFixture[str]):
    assert cli.main(["bench", "startup", "--skip-cold", "--repeat", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    for key in ("import_s", "help_s", "first_apply_s", "first_source_s", "first_replenish_s"):
        assert doc[key] > 0, key
        assert doc[key[:-2] + "_cpu_s"] >= 0, key
    assert "warmup_cpu_s" not in doc  # --skip-cold
