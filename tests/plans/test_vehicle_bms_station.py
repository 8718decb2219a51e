"""The reference plan against packs whose BMS is vehicle-style (drivers/maps/vehicle/): its own
DBC (bricks numbered from 1 on multiplexed pages, contactor state as an enum, no cycle times, no
station request message) and commands over UDS. Only config, map and description files describe
it (station/sim_station_vehicle.yaml): the golden pack passes through the CLI, and every fault
the plan declares is caught at its step with the pack left safe, as with the project's own BMS."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import cantools
import pytest

from station import clock
from station.plan.loader import load_plan
from station.runner import RunRequest, Session, prepare, sim_preset

ROOT = Path(__file__).resolve().parents[2]
VEHICLE_STATION = ROOT / "station" / "sim_station_vehicle.yaml"
VEHICLE_DBC = ROOT / "drivers" / "maps" / "vehicle" / "vehicle_bms.dbc"
PLAN = ROOT / "test_plans" / "pack_eol.yaml"
VARIANT = "car-400"
CATCHES = [(i, c) for i, c in enumerate(load_plan(PLAN).plan.catches) if not c.variants or VARIANT in c.variants]


def test_the_vehicle_dbc_is_vehicle_style():
    """What makes it a production-vehicle DBC for this test: nothing of the station's own."""
    db = cantools.database.load_file(str(VEHICLE_DBC))
    assert all(m.cycle_time is None for m in db.messages), "no cycle times in the DBC"
    assert all(m.senders == ["BMS"] for m in db.messages), "no station -> BMS request message"
    bricks = db.get_message_by_name("BMS_brickVoltages")
    names = {s.name for s in bricks.signals}
    assert "BMS_brickVoltage1" in names and "BMS_brickVoltage0" not in names, "cells numbered from 1"
    assert len({s.multiplexer_ids[0] for s in bricks.signals if s.multiplexer_ids}) > 1, "on multiplexed pages"
    extremes = db.get_message_by_name("BMS_minMax")  # min/max voltages and temperatures on two pages
    assert {tuple(s.multiplexer_ids) for s in extremes.signals if s.multiplexer_ids} == {(0,), (1,)}
    contactors = db.get_message_by_name("BMS_status").get_signal_by_name("BMS_contactorState")
    assert {str(v) for v in contactors.choices.values()} >= {"OPEN", "PRECHARGE", "CLOSED"}


@pytest.mark.parametrize("fixture,variant,cells,temps", [("F1", "car-400", 96, 24), ("F2", "bus-700", 216, 48)])
def test_golden_pack_passes_through_the_cli(fixture, variant, cells, temps, tmp_path):
    record_file = tmp_path / "run.json"
    proc = subprocess.run(
        [sys.executable, "-m", "station.cli", "run", str(PLAN), "--sim", "--station", str(VEHICLE_STATION),
         "--fixture", fixture, "--variant", variant, "--serial", "VEH1", "--json", str(record_file),
         "--db", str(tmp_path / "r.db")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)  # another folder: paths resolve from the config
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads(record_file.read_text())
    bms = next(i for i in record["instruments"] if i["role"] == "bms")
    assert bms["model"] == "VEHICLE-BMS"
    step = next(s for s in record["steps"] if s["path"] == "main/cells")
    got = {m["name"]: m["value"] for m in step["measurements"]}
    assert got["count"] == cells and got["t_count"] == temps  # bricks and thermistors numbered from 1
    assert all(a["confirmed"] for a in record["safe_state"] if a.get("instrument") == "bms")


@pytest.mark.parametrize("index,catch", CATCHES, ids=[f"{c.fault}-{i}" for i, c in CATCHES])
def test_declared_fault_is_caught_with_the_vehicle_bms(index, catch, tmp_path):
    params = ",".join(f"{k}={v}" for k, v in catch.params.items())
    req = RunRequest(plan=str(PLAN), variant=VARIANT, station=str(VEHICLE_STATION), sim=True, serial="CARVEHF",
                     faults=[catch.fault + (f":{params}" if params else "")], db=str(tmp_path / "r.db"),
                     stop_on_failure=True)
    prep = prepare(req)

    async def run():
        async with Session(prep.config, sim=True, presets={prep.fixture: sim_preset(prep)}, db=req.db) as session:
            verdict, _run_id, record = await session.run(req, prep, signals=False)
            fx = session.bench.fixtures[prep.fixture]
            await asyncio.sleep(30.0)  # the DC link bleeds down once the contactors are open
            physical = {"bus_v": fx.pack.bus_voltage(), "cycler_on": fx.cycler.output, "ir_pole": fx.wiring.ir_pole,
                        "imd": fx.pack.insulation_monitor_enabled,
                        "closed": {n for n in ("main_plus", "main_minus", "precharge") if fx.pack.contactor_closed(n)},
                        "path": fx.bms.map.commands.path, "frames": set(fx.bms.frames_sent)}
            return verdict, record, physical

    verdict, record, physical = clock.run(run(), virtual=True)
    assert physical["path"] == "uds" and 0x200 not in physical["frames"]  # the vehicle BMS, no EOL request
    assert verdict == catch.expect, record["reason"]
    bad = [s["path"] for s in record["steps"] if s["outcome"] in ("failed", "error", "aborted")]
    assert bad and catch.step in bad[0].split("/"), f"caught at {bad[:1]}, expected at step '{catch.step}'"
    assert physical["bus_v"] < 60.0
    assert physical["cycler_on"] is False and physical["ir_pole"] is None and physical["imd"] is True
    assert physical["closed"] <= ({catch.params.get("name", "main_plus")} if catch.fault == "welded_contactor" else set())
    assert record["safe_state"], "the record shows what the safe state did"
