"""The same plans against packs whose BMS talks Modbus (RTU on F1, TCP on F2): only the station
config differs (station/sim_station_modbus.yaml). The reference plan catches the same
BMS-visible faults at the same steps as on CAN, proven by `station test`'s own case runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from station.proof.cases import plan_cases
from station.proof.execute import run_case
from station.results.store import ResultStore

ROOT = Path(__file__).resolve().parents[2]
MODBUS_STATION = ROOT / "station" / "sim_station_modbus.yaml"
PLAN = ROOT / "test_plans" / "pack_eol.yaml"


@pytest.mark.parametrize("fixture,serial", [("F1", "SN-RTU-1"), ("F2", "SN-TCP-1")])
def test_smoke_plan_passes_over_modbus_rtu_and_tcp(fixture, serial, tmp_path):
    variant = "car-400" if fixture == "F1" else "bus-700"
    proc = subprocess.run(
        [sys.executable, "-m", "station.cli", "run", "test_plans/smoke.yaml", "--sim", "--station", str(MODBUS_STATION),
         "--fixture", fixture, "--variant", variant, "--serial", serial, "--db", str(tmp_path / "r.db")],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


# BMS-visible faults that the reference plan catches before its long SOC adjustment
BMS_FAULTS = ["dtc_present", "wrong_sw_version", "open_cell_tap", "hot_cell", "hvil_stuck_closed", "slow_precharge"]
CASES = [c for c in plan_cases(PLAN, variants=["bus-700"], station=str(MODBUS_STATION), fixture="F2")
         if c.fault in BMS_FAULTS]


def test_every_bms_fault_has_its_declared_catch():
    assert sorted(c.fault for c in CASES) == sorted(BMS_FAULTS)


@pytest.mark.parametrize("case", CASES, ids=[c.fault for c in CASES])
def test_reference_plan_catches_bms_faults_over_modbus_tcp(case, tmp_path):
    result = run_case(case, str(tmp_path / "r.db"))
    assert result.verdict == case.expect, result.problem or result.reason
    assert case.step in result.at.split("/"), f"caught at {result.at}, expected at step '{case.step}'"
    assert result.safe is True and result.ok is True, result.problem
    with ResultStore(tmp_path / "r.db", readonly=True) as store:
        record = store.record(result.run_id)
    assert record["fixture_id"] == "F2"
    assert any(i["driver"] == "modbus_bms" for i in record["instruments"])
