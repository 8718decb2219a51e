"""station/startup.py: interrupted runs and the fixture's safe state are reported before a run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sim.bench import SimBench
from station import clock
from station.config import SIM_CONFIG, load_config
from station.results.store import ResultStore
from station.startup import blocking, startup_report

ROOT = Path(__file__).resolve().parents[2]


async def _report(store, mutate=None, *, stop_plc: bool = False):
    bench = SimBench({"F1": "car-400", "F2": "bus-700"})
    endpoints = await bench.start()
    try:
        fx = bench.fixtures["F1"]
        if mutate:
            mutate(fx)
        if stop_plc:
            await fx.plc.stop()
        return await startup_report(load_config(SIM_CONFIG), store, endpoints=endpoints)
    finally:
        await bench.stop()


def test_a_killed_run_is_reported_as_interrupted_with_its_last_step(tmp_path):
    db = tmp_path / "station.db"
    out = tmp_path / "lane.json"
    # one SIGKILLed `station run` (the crash-safety lane, one kill after RunStarted)
    cmd = [sys.executable, str(Path(__file__).with_name("crash_lane.py")), str(ROOT / "test_plans/smoke.yaml"),
           str(db), "1", "3", str(out), "0.2"]
    subprocess.run(cmd, cwd=ROOT, check=True, timeout=120)
    (killed,) = json.loads(out.read_text())
    with ResultStore(db) as store:
        lines = clock.run(_report(store), virtual=True)
    interrupted = [line for line in lines if line.startswith("INTERRUPTED")]
    assert killed["started"] and not killed["finished"], killed  # seed 3: killed <= 0.2 s after RunStarted
    run_id = store_run_id(db)
    assert len(interrupted) == 1 and run_id in interrupted[0], lines
    assert "SN3K1" in interrupted[0] and "Retest" in interrupted[0]
    assert "fixture F1: safe (IR relays open, HVIL break off)" in lines
    assert "fixture F2: safe (IR relays open, HVIL break off)" in lines
    assert not blocking(lines)


def store_run_id(db: Path) -> str:
    with ResultStore(db, readonly=True) as store:
        return store.runs(limit=1)[0]["id"]


def test_a_closed_ir_relay_or_active_hvil_break_is_not_safe(tmp_path):
    def leave_relays(fx):
        fx.wiring.ir_pole = "HV+"  # as the PLC would report after a crash mid insulation test
        fx.plc.hvil_break = True

    with ResultStore(tmp_path / "s.db") as store:
        lines = clock.run(_report(store, leave_relays), virtual=True)
    assert "NOT SAFE fixture F1: IR/hipot relay to HV+ closed (ir_hv_plus on)" in lines, lines
    assert any(line.startswith("NOT SAFE fixture F1: HVIL break relay active") for line in lines), lines
    assert "fixture F2: safe (IR relays open, HVIL break off)" in lines
    assert blocking(lines)


def test_an_unreachable_plc_is_not_safe_and_a_pressed_estop_is_reported(tmp_path):
    with ResultStore(tmp_path / "s.db") as store:
        down = clock.run(_report(store, stop_plc=True), virtual=True)
        pressed = clock.run(_report(store, lambda fx: fx.plc.press_estop()), virtual=True)
    assert any(line.startswith("NOT SAFE fixture F1: PLC at") and "could not be read" in line for line in down), down
    assert blocking(down)
    assert "fixture F1: e-stop pressed; release it before a run" in pressed
    assert not blocking(pressed)
