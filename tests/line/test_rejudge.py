"""`station rejudge`: stored measurements re-judged against new limits (a limits file, or a new
plan version), by the plan language's own judge; verdict changes, yield before/after, Cpk."""

from __future__ import annotations

import argparse
import io
import json
import math
from pathlib import Path

import pytest

from station.events import MeasurementTaken, RunFinished, RunStarted, StepFinished, StepStarted
from station.line import rejudge_cmd
from station.results import ResultStore
from tests.line.test_stats import RUNS, _seed

ROOT = Path(__file__).resolve().parents[2]


def _args(store, **kw):
    base = dict(store=str(store), limits=None, plan=None, format="json", output=None)
    return argparse.Namespace(**{**base, **kw})


def _run(args):
    out, err = io.StringIO(), io.StringIO()
    code = rejudge_cmd.rejudge_command(args, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "results.db"
    _seed(path)
    with ResultStore(path) as s:
        # r6: its measurement fails, and another step errored: never turned into a PASS.
        utc = "2026-11-25T09:00:00.000+00:00"
        s.handle(RunStarted("r6", utc, 0.0, "SN-E", "pack-eol", "3.2.0", "t", "p.yaml", "ab" * 32,
                            "car-400", {}, "EOL-1", "F1", "op", "0.1", False, [],
                            station_mode="production"))
        s.handle(StepStarted("r6", utc, 0.1, "main/cells", "cells", "cells", "bms.cells", "main"))
        s.handle(MeasurementTaken("r6", utc, 0.2, "main/cells", "cell_v", 3.18, "V",
                                  {"unit": "V", "min": 3.2, "max": 3.4}, "fail"))
        s.handle(StepFinished("r6", utc, 0.3, "main/cells", "cells", "failed", 0.2))
        s.handle(StepStarted("r6", utc, 0.4, "main/hv", "hv", "hv", "dmm.read", "main"))
        s.handle(StepFinished("r6", utc, 0.5, "main/hv", "hv", "error", 0.1, "dmm timeout"))
        s.handle(RunFinished("r6", utc, 0.6, "FAIL", None, 0.6))
    return path


def test_limits_file_flips_runs_both_ways_and_reports_yield_and_cpk(store, tmp_path):
    limits = tmp_path / "new.yaml"
    limits.write_text("limits:\n  cells.cell_v: {min: 3.15 V, max: 3.33 V}\n")
    code, out, err = _run(_args(store, limits=str(limits)))
    assert code == 0, err
    data = json.loads(out)
    changed = {c["run_id"]: (c["before"], c["after"], c["last_run_of_pack"]) for c in data["changed_runs"]}
    # r1 (3.19 V) now passes; r5 (3.35 V) now fails; r6 passes the new limits on cell_v but its
    # other step errored, so it stays FAIL.
    assert changed == {"r1": ("FAIL", "PASS", False), "r5": ("PASS", "FAIL", True)}
    assert data["packs_changed"] == ["SN-D"]  # SN-A's last run (r3) passed before and after
    (y,) = data["yield"]
    assert (y["runs"], y["passed_before"], y["passed_after"]) == (6, 4, 4)
    (m,) = data["measurements"]
    values = [r[3] for r in RUNS] + [3.18]
    mean = sum(values) / len(values)
    sigma = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    assert (m["n"], m["lsl_after"], m["usl_after"]) == (6, 3.15, 3.33)
    assert m["cpk_after"] == pytest.approx(min(3.33 - mean, mean - 3.15) / (3 * sigma), rel=1e-12)
    assert m["cpk_before"] == pytest.approx(min(3.4 - mean, mean - 3.2) / (3 * sigma), rel=1e-12)
    assert (m["fails_before"], m["fails_after"]) == (2, 1)
    code, text, _ = _run(_args(store, limits=str(limits), format="text"))
    assert code == 0 and "2 change verdict (1 PASS→FAIL, 1 FAIL→PASS)" in text
    assert "66.7%" in text  # 4 of 6 before and after


def test_unchanged_limits_change_nothing(store, tmp_path):
    limits = tmp_path / "same.yaml"
    limits.write_text("limits:\n  main/cells.cell_v: {min: 3.2 V, max: 3.4 V}\n")
    code, out, _ = _run(_args(store, limits=str(limits)))
    data = json.loads(out)
    assert code == 0 and data["changed_runs"] == [] and data["measurements"][0]["fails_after"] == 2


@pytest.mark.parametrize("text,where", [
    ("limits:\n  cells.cell_v: {min: 3.5 V, max: 3.4 V}\n", ":2:"),
    ("limits:\n  cells.cell_v: {min: 3.2 Vx}\n", ":2:"),
    ("limits:\n  cells.cell_v: {minimum: 3 V}\n", ":2:"),
    ("limits:\n  cellsXcell_v: {min: 3 V}\n", ":2:"),
    ("limitz: {}\n", ":1:"),
])
def test_bad_limits_file_exits_2_with_file_line_col(store, tmp_path, text, where):
    limits = tmp_path / "bad.yaml"
    limits.write_text(text)
    code, out, err = _run(_args(store, limits=str(limits)))
    assert code == 2 and out == "" and f"bad.yaml{where}" in err and "Traceback" not in err


def test_new_plan_version_rejudges_simulator_runs(tmp_path):
    """Real runs of the smoke plan on the simulator, re-judged against an edited copy of it."""
    from station import clock
    from station.runner import RunRequest, execute, prepare

    db = tmp_path / "sim.db"
    for serial in ("SIM-1", "SIM-2"):
        req = RunRequest(plan=str(ROOT / "test_plans" / "smoke.yaml"), sim=True, serial=serial,
                         db=str(db), variant="car-400")
        verdict, _, _ = clock.run(execute(req, prepare(req)), virtual=True)
        assert verdict == "PASS"
    plan = (ROOT / "test_plans" / "smoke.yaml").read_text()
    new = tmp_path / "smoke_v2.yaml"
    new.write_text(plan.replace('version: 1.0.0', 'version: 1.1.0').replace(
        'expect: {voltage: {min: 250 V, max: "${v_max}"}}',
        'expect: {voltage: {min: 250 V, max: "${v_max * 0.85}"}}'))  # 342.6 V: below the car pack's ~355 V
    args = _args(db, plan=str(new), include_simulated=True, include_development=True)
    code, out, err = _run(args)
    assert code == 0, err
    data = json.loads(out)
    assert {c["serial"] for c in data["changed_runs"]} == {"SIM-1", "SIM-2"}
    assert all("main/pack_v_bms voltage" in c["because"][0] for c in data["changed_runs"])
    pack_v = next(m for m in data["measurements"] if m["step"] == "main/pack_v_bms")
    assert pack_v["usl_after"] == pytest.approx(403 * 0.85) and pack_v["usl_before"] == 403
    iso = next(m for m in data["measurements"] if m["step"] == "main/isolation/iso_plus")
    assert iso["fails_after"] == 0 and iso["lsl_after"] == iso["lsl_before"]  # expression, same
    (y,) = data["yield"]
    assert (y["yield_before_pct"], y["yield_after_pct"]) == (100.0, 0.0)
    # Production runs only by default: the simulator's runs are not counted.
    code, out, _ = _run(_args(db, plan=str(new)))
    assert code == 0 and json.loads(out)["runs_rejudged"] == 0
