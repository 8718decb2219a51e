"""The same plans against packs whose BMS talks Modbus (RTU on F1, TCP on F2): only the station
config differs (station/sim_station_modbus.yaml). The reference plan catches the same
BMS-visible faults at the same steps as on CAN."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from station import clock
from station.runner import RunRequest, Session, prepare, sim_preset

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
BMS_FAULTS = [("dtc_present", "dtcs"), ("wrong_sw_version", "identity"), ("open_cell_tap", "cells"),
              ("hot_cell", "cells"), ("hvil_stuck_closed", "hvil"), ("slow_precharge", "contactors")]


@pytest.mark.parametrize("fault,step", BMS_FAULTS, ids=[f for f, _ in BMS_FAULTS])
def test_reference_plan_catches_bms_faults_over_modbus_tcp(fault, step, tmp_path):
    req = RunRequest(plan=str(PLAN), variant="bus-700", fixture="F2", station=str(MODBUS_STATION), sim=True,
                     serial="SN-MB-F", faults=[fault], db=str(tmp_path / "r.db"), stop_on_failure=True)
    prep = prepare(req)

    async def run():
        async with Session(prep.config, sim=True, presets={prep.fixture: sim_preset(prep)}, db=req.db) as session:
            return await session.run(req, prep, signals=False)

    verdict, _run_id, record = clock.run(run(), virtual=True)
    assert verdict == "FAIL", record["reason"]
    first = [s["path"] for s in record["steps"] if s["outcome"] in ("failed", "error", "aborted")][0]
    assert step in first.split("/")
    assert any(i["driver"] == "modbus_bms" for i in record["instruments"])
