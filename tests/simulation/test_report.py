"""The simulation report as a planner reads it: rendered in headless Chromium.

Chromium comes from Debian's ``chromium`` package. When it is missing the test
installs it with apt-get (root, network to the package mirror); it skips only when
that installation is impossible.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from allocator.cli import main
from allocator.scenarios import department_store, load_scenario
from allocator.simulation import capacity_sweep, compare, write_report

TINY = dict(
    num_stores=3,
    num_dcs=1,
    num_skus=40,
    walk_in_units=30.0,
    online_orders=60.0,
    marketplace_orders=20.0,
    history_days=7,
    start_day_of_year=312,
)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"],
            env=env,
            capture_output=True,
            timeout=1200,
        )
        found = shutil.which("chromium")
        if found:
            return found
    pytest.skip("headless Chromium is not installed and could not be installed")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("matplotlib")
    scenario = department_store(**TINY)
    comp = compare(scenario, ["greedy", "future"], days=3, seeds=[0, 1], keep_log=False)
    # the sweep's window (3 days from day 300) misses the 11.11 peak the main runs hold
    sweep = capacity_sweep(
        scenario.replace(start_day_of_year=300), (0.5, 1.0), days=2, keep_log=False
    )
    return write_report(comp, tmp_path_factory.mktemp("report"), sweep=sweep)


def test_report_leads_with_the_answer_and_keeps_speed_apart(report: Path) -> None:
    text = report.read_text()
    assert text.index("The answer") < text.index("Business KPIs") < text.index("Engine speed")
    assert "is best on season objective" in text and "95 % interval" in text
    # engine speed figures only in their own section
    speed = text.index("Engine speed")
    assert text.index("data-kpi='ledger_events_per_s'") > speed
    assert "Fill rate, own online (%)" in text and "Turnover (days)" in text
    assert "Order error rate" in text and "Why units were lost" in text
    assert "Warning:</b> the sweep ran" in text


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    browser = _chromium()
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    dom = subprocess.run(
        [*base, "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    for element in (
        "<h1>",
        'id="answer"',
        'class="answer"',
        'class="targets"',
        'class="kpis"',
        'class="causes"',
        'class="warning"',
        "fill_rate.png",
        "Engine speed",
    ):
        assert element in html, element
    shot = tmp_path / "page.png"
    done = subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1200,2400", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.stat().st_size > 20_000


def test_cli_promotion_and_scenario_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    toml = tmp_path / "peak.toml"
    lines = [f"{k} = {json.dumps(v)}" for k, v in TINY.items()]
    lines += ['name = "peak"', "[[promotions]]", "day_of_year = 313", "online_multiplier = 3.0"]
    toml.write_text("\n".join(lines))
    sc = load_scenario(toml)
    assert sc.name == "peak" and sc.promotions[0].online_multiplier == 3.0
    js = tmp_path / "s.json"
    js.write_text(json.dumps({**TINY, "weekly": [1, 1, 1, 1, 1, 1, 1]}))
    assert load_scenario(js).weekly == (1.0,) * 7
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"online_order": 5}))
    with pytest.raises(Exception) as e:
        load_scenario(bad)
    assert "did you mean 'online_orders'" in str(e.value)
    code = main(
        [
            "simulate",
            "--scenario",
            str(toml),
            "--promotion",
            "1:5",
            "--promotion",
            "2:2:1",
            "--days",
            "3",
            "--json",
            "--no-progress",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["scenario"] == "peak"
    with pytest.raises(SystemExit):
        main(["simulate", "--promotion", "x:5"])
