"""A second safety-tester dialect (Kikusui TOS9300) runs the reference plan unchanged: the
station config differs from station/sim_station.yaml in the safety tester's ``driver:`` line
only, and the simulated bench serves the matching dialect on the safety endpoint."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

import pytest

from station import clock
from station.runner import RunRequest, Session, prepare, sim_preset

ROOT = Path(__file__).resolve().parents[2]
CHROMA_STATION = ROOT / "station" / "sim_station.yaml"
KIKUSUI_STATION = ROOT / "station" / "sim_station_kikusui.yaml"
PLAN = ROOT / "test_plans" / "pack_eol.yaml"


def test_the_station_configs_differ_by_the_safety_driver_line_only():
    diff = [line for line in difflib.unified_diff(CHROMA_STATION.read_text().splitlines(),
                                                  KIKUSUI_STATION.read_text().splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert diff == ["-    driver: chroma_19032", "+    driver: kikusui_tos9300"]


def _run(tmp_path, faults=(), stop_on_failure=False):
    req = RunRequest(plan=str(PLAN), variant="car-400", fixture="F1", station=str(KIKUSUI_STATION), sim=True,
                     serial="CAR-K-1", faults=list(faults), db=str(tmp_path / "r.db"), stop_on_failure=stop_on_failure)
    prep = prepare(req)

    async def run():
        async with Session(prep.config, sim=True, presets={prep.fixture: sim_preset(prep)}, db=req.db) as session:
            received = session.bench.safety.received
            verdict, _run_id, record = await session.run(req, prep, signals=False)
            return verdict, record, type(session.bench.safety).__name__, list(received)

    return clock.run(run(), virtual=True)


def test_pack_eol_car_400_passes_with_the_kikusui_dialect(tmp_path):
    verdict, record, peer, received = _run(tmp_path)
    assert verdict == "PASS", record["reason"]
    assert peer == "SimKikusuiTos9300"
    assert any(i["driver"] == "kikusui_tos9300" for i in record["instruments"])
    # The Kikusui's own grammar went over the wire, not the Chroma's step programming.
    assert "FUNC IR" in received and "FUNC DCW" in received and "FUNC EC" in received
    assert not any(line.startswith("SAFE:") for line in received)
    steps = {s["path"]: s for s in record["steps"]}
    assert steps["main/isolation/iso_plus/ir"]["outcome"] == "passed"


def test_isolation_low_is_caught_at_the_same_step_as_with_the_chroma(tmp_path):
    verdict, record, _, _ = _run(tmp_path, faults=["isolation_low:pole=HV+"], stop_on_failure=True)
    assert verdict == "FAIL", record["reason"]
    first = next(s["path"] for s in record["steps"] if s["outcome"] in ("failed", "error", "aborted"))
    assert first == "main/isolation/iso_plus/ir"


@pytest.mark.parametrize("fault,step", [("bond_high:point=BP2", "main/bond/bond[BP2]/bond_r"),
                                        ("hipot_breakdown", "main/isolation/withstand")])
def test_other_safety_catches_hold_with_the_kikusui_dialect(fault, step, tmp_path):
    verdict, record, _, _ = _run(tmp_path, faults=[fault], stop_on_failure=True)
    assert verdict == "FAIL", record["reason"]
    first = next(s["path"] for s in record["steps"] if s["outcome"] in ("failed", "error", "aborted"))
    assert first == step


def test_cli_exit_code_pass_with_the_kikusui_station(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "station.cli", "run", "test_plans/smoke.yaml", "--sim", "--station", str(KIKUSUI_STATION),
         "--fixture", "F1", "--variant", "car-400", "--serial", "SN-K-1", "--db", str(tmp_path / "r.db")],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
