"""station/startup.py: interrupted runs and the fixture's safe state are reported before a run,
in process and by ``station run`` itself (on stderr; a fixture not safe refuses the run, exit 3)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sim.bench import SimBench
from station import clock
from station.config import SIM_CONFIG, load_config
from station.results.store import ResultStore
from station.startup import blocking, startup_report
from tests.reliability import rig

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


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> tuple[Path, str]:
    """A store holding one SIGKILLed `station run` (the crash-safety lane, one kill after
    RunStarted): (db path, id of the killed run)."""
    tmp = tmp_path_factory.mktemp("killed")
    db, out = tmp / "station.db", tmp / "lane.json"
    cmd = [sys.executable, str(Path(__file__).with_name("crash_lane.py")), str(ROOT / "test_plans/smoke.yaml"),
           str(db), "1", "3", str(out), "0.2"]
    subprocess.run(cmd, cwd=ROOT, check=True, timeout=120)
    (lane,) = json.loads(out.read_text())
    assert lane["started"] and not lane["finished"], lane  # seed 3: killed <= 0.2 s after RunStarted
    return db, store_run_id(db)


def test_a_killed_run_is_reported_as_interrupted_with_its_last_step(killed):
    db, run_id = killed
    with ResultStore(db) as store:
        lines = clock.run(_report(store), virtual=True)
    interrupted = [line for line in lines if line.startswith("INTERRUPTED")]
    assert len(interrupted) == 1 and run_id in interrupted[0], lines
    assert "SN3K1" in interrupted[0] and "Retest" in interrupted[0]
    for fixture in ("F1", "F2"):  # every instrument read back, not only the PLC
        assert any(line.startswith(f"fixture {fixture}: safe (read back: safety, cycler, bms, leak, fixture, dmm; bus ")
                   for line in lines), lines
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
    assert "NOT SAFE fixture F1: fixture: IR/hipot relay to HV+ CLOSED (ir_hv_plus on)" in lines, lines
    assert any(line.startswith("NOT SAFE fixture F1: fixture: HVIL break relay") for line in lines), lines
    assert any(line.startswith("fixture F2: safe (read back:") for line in lines), lines
    assert blocking(lines)  # read-only: reported, not switched (station run's check switches them off)


def test_an_unreachable_plc_is_not_safe_and_a_pressed_estop_is_reported(tmp_path):
    with ResultStore(tmp_path / "s.db") as store:
        down = clock.run(_report(store, stop_plc=True), virtual=True)
        pressed = clock.run(_report(store, lambda fx: fx.plc.press_estop()), virtual=True)
    assert any(line.startswith("NOT SAFE fixture F1: fixture: not reachable at modbus-tcp://") for line in down), down
    assert blocking(down)
    assert "fixture F1: e-stop pressed; release it before a run" in pressed
    assert not blocking(pressed)


def station(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "station.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def test_station_run_reports_the_interrupted_run_before_the_next_run(killed):
    db, run_id = killed
    proc = station("run", "test_plans/smoke.yaml", "--sim", "--serial", "SN3K2", "--db", str(db), "--plain")
    report = [line for line in proc.stderr.splitlines() if line.startswith("start-up: ")]
    rig.report("start-up report of `station run` after a SIGKILLed run (stderr)", report)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    interrupted = [line for line in report if line.startswith("start-up: INTERRUPTED")]
    assert len(interrupted) == 1 and run_id in interrupted[0] and "SN3K1" in interrupted[0], report
    assert any(line.startswith("start-up: fixture F1: safe (read back: safety, cycler, bms") for line in report), report
    # printed before the run started (stderr is written first, the run's lines go to stdout)
    assert proc.stdout.startswith("run "), proc.stdout[:200]


REFUSE_PLAN = """\
schema_version: 1
id: refuse-probe
version: 1.0.0
title: One fixture step
instruments: [fixture]
main:
  - fixture.require: [estop_released]
"""


def test_station_run_refuses_when_the_fixture_plc_cannot_be_read(tmp_path):
    with socket.socket() as s:  # a port nobody listens on: the PLC is off or unplugged
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "station.yaml"
    config.write_text("schema_version: 1\nstation: {id: EOL-T}\nfixtures:\n  F1:\n    instruments:\n"
                      f"      fixture: {{driver: modbus_fixture, resource: 'modbus-tcp://127.0.0.1:{port}?unit=1', "
                      "timeout: 0.5}\n")
    plan = tmp_path / "plan.yaml"
    plan.write_text(REFUSE_PLAN)
    db = tmp_path / "r.db"
    proc = station("run", str(plan), "--station", str(config), "--db", str(db), "--plain")
    rig.report("`station run` with the fixture PLC unreachable", [f"exit {proc.returncode}", *proc.stderr.splitlines()])
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"start-up: NOT SAFE fixture F1: fixture: not reachable at modbus-tcp://127.0.0.1:{port}?unit=1" in proc.stderr
    assert "switched is listed above): NOT SAFE fixture F1: fixture: not reachable" \
        in proc.stderr
    assert proc.stdout == ""  # no run line: nothing started
    with ResultStore(db, readonly=True) as store:
        assert store.runs(limit=5) == []  # and nothing recorded
