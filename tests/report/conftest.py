"""Report fixtures: the reference plan run once per session (~40 s wall), a failing run, smoke."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.report.helpers import HAVE_CHROMIUM, NO_CHROMIUM, station

OPERATOR = "eng1"  # a test engineer in station/sim_station.yaml


@pytest.fixture(scope="session")
def reports(tmp_path_factory) -> dict[str, Path]:
    """pack_eol car-400 with --report and --json; the same run exported with --html; smoke with --report."""
    if not HAVE_CHROMIUM:
        pytest.skip(NO_CHROMIUM)
    tmp = tmp_path_factory.mktemp("report")
    db = tmp / "runs.db"
    run = station("run", "test_plans/pack_eol.yaml", "--sim", "--variant", "car-400", "--serial", "CAR001",
                  "--operator", OPERATOR, "--db", str(db), "--report", str(tmp / "run.html"),
                  "--json", str(tmp / "run.json"), "--plain")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    run_id = json.loads((tmp / "run.json").read_text())["run_id"]
    export = station("results", "--db", str(db), "export", run_id, "--html", str(tmp / "export.html"))
    assert export.returncode == 0, export.stderr
    smoke = station("run", "test_plans/smoke.yaml", "--sim", "--serial", "SN7", "--db", str(db),
                    "--report", str(tmp / "smoke.html"), "--plain")
    assert smoke.returncode == 0, smoke.stdout[-2000:] + smoke.stderr[-2000:]
    return {"run": tmp / "run.html", "export": tmp / "export.html", "smoke": tmp / "smoke.html",
            "json": tmp / "run.json", "tmp": tmp}


@pytest.fixture(scope="session")
def failed_report(tmp_path_factory) -> dict[str, Path]:
    """pack_eol car-400 with one cell group at a lower SOC: FAIL at main/cells (spread), stopped there."""
    if not HAVE_CHROMIUM:
        pytest.skip(NO_CHROMIUM)
    tmp = tmp_path_factory.mktemp("report-fail")
    run = station("run", "test_plans/pack_eol.yaml", "--sim", "--variant", "car-400", "--serial", "CAR002",
                  "--fault", "cell_imbalance", "--stop-on-failure", "--db", str(tmp / "runs.db"),
                  "--report", str(tmp / "fail.html"), "--json", str(tmp / "fail.json"), "--plain")
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    return {"html": tmp / "fail.html", "json": tmp / "fail.json", "tmp": tmp}
