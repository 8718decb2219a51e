"""The start-up check against the in-process simulated bench: every instrument read back,
anything energised made safe and confirmed, latches cleared only once safe (audited), the
findings in the next run's record; ``station fixture status`` as a subprocess."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.cycler.itech_it6000 import ItechIT6000
from sim.bench import SimBench
from station import clock
from station.config import SIM_CONFIG, load_config
from station.instruments import StationInstruments
from station.runner import RunRequest, Session, prepare
from station.startup import blocking, fixture_check

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def audit_file(tmp_path, monkeypatch) -> Path:
    """Audit entries go to a file of the test, not beside the simulated station's store."""
    path = tmp_path / "audit.jsonl"
    monkeypatch.setattr("station.security.audit.audit_path", lambda config, db=None: path)
    return path


def audit_entries(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def _cycler_on(bench: SimBench, volts: float = 288.0) -> None:
    """A station that switched the cycler on and then died (no safe state): the real driver
    drives the simulated IT6000 and is dropped without a word."""
    port = bench.endpoints["F1.cycler.port"]
    drv = ItechIT6000("cycler", f"TCPIP::127.0.0.1::{port}::SOCKET")
    await drv.open()
    await drv.set_current_limits(20, 20)
    await drv.set_voltage(volts)
    await drv.set_current(5)
    await drv.set_output(True)
    await drv.close()


async def _check(prepare_bench=None, *, act: bool, stop_plc: bool = False):
    bench = SimBench({"F1": "car-400"})
    await bench.start()
    instruments = StationInstruments(load_config(SIM_CONFIG), bench.endpoints)
    try:
        fx = bench.fixtures["F1"]
        if prepare_bench is not None:
            await prepare_bench(bench)
        if stop_plc:
            await fx.plc.stop()
        check = await fixture_check(load_config(SIM_CONFIG), instruments, "F1", act=act, operator="eng1")
        state = {"cycler_on": fx.cycler.output, "trips": set(fx.cycler.trips), "bus": fx.pack.bus_voltage(),
                 "lv": fx.wiring.lv_power}
        return check, state
    finally:
        await instruments.close()
        await bench.stop()


def test_a_cycler_left_on_is_found_switched_off_and_confirmed(audit_file):
    check, state = clock.run(_check(_cycler_on, act=True), virtual=True)
    found = {(f.instrument, f.what): f for f in check.found}
    assert not found["cycler", "output"].safe and "output ON (OUTP? 1)" in found["cycler", "output"].detail
    assert not found["dmm", "bus voltage"].safe and "bus 288" in found["dmm", "bus voltage"].detail
    assert "cycler: output off (OUTP? 0)" in check.done
    assert check.safe and not blocking(check.lines())
    assert not state["cycler_on"] and abs(state["bus"]) < 60.0  # the bench itself says so
    lines = check.lines()
    assert "fixture F1: found cycler: output ON (OUTP? 1)" in lines
    assert "fixture F1: done cycler: output off (OUTP? 0)" in lines
    (entry,) = audit_entries(audit_file)
    assert entry["kind"] == "make_safe" and entry["fields"]["fixture"] == "F1" and entry["fields"]["safe"]
    assert "cycler: output ON (OUTP? 1)" in entry["fields"]["found"]


def test_status_reads_without_switching():
    check, state = clock.run(_check(_cycler_on, act=False), virtual=True)
    assert not check.safe and check.done == [] and state["cycler_on"]
    assert "NOT SAFE fixture F1: cycler: output ON (OUTP? 1)" in check.lines() and blocking(check.lines())


async def _latched_watchdog(bench: SimBench) -> None:
    import asyncio

    await _cycler_on(bench, volts=5.0)
    await asyncio.sleep(6.0)  # the station is gone: no command for longer than the 5 s watchdog


def test_a_latched_watchdog_is_named_and_cleared_only_once_safe(audit_file):
    read_only, state_before = clock.run(_check(_latched_watchdog, act=False), virtual=True)
    assert state_before["trips"] == {"WDT"} and not state_before["cycler_on"]  # the watchdog stopped the source
    assert "NOT SAFE fixture F1: cycler: latched protection WDT" in read_only.lines()
    check, state = clock.run(_check(_latched_watchdog, act=True), virtual=True)
    assert "cycler: cleared latched protection WDT (fixture confirmed safe first)" in check.done
    assert check.safe and state["trips"] == set()
    kinds = [(e["kind"], e["fields"].get("protections")) for e in audit_entries(audit_file)]
    assert ("clear_protection", ["WDT"]) in kinds


def test_a_latch_is_not_cleared_while_the_fixture_is_not_safe(audit_file):
    async def latched_and_plc_down(bench):
        await _latched_watchdog(bench)
        await bench.fixtures["F1"].plc.stop()

    check, state = clock.run(_check(latched_and_plc_down, act=True), virtual=True)
    assert not check.safe and state["trips"] == {"WDT"}
    assert not any("cleared" in line for line in check.done)
    assert not any(e["kind"] == "clear_protection" for e in audit_entries(audit_file))
    problems = [line for line in check.lines() if line.startswith("NOT SAFE")]
    assert any(line.startswith("NOT SAFE fixture F1: fixture: not reachable") for line in problems), problems


def test_an_unreachable_plc_blocks_and_a_pressed_estop_is_reported():
    down, _ = clock.run(_check(act=True, stop_plc=True), virtual=True)
    assert blocking(down.lines()) and [p.instrument for p in down.problems] == ["fixture"]

    async def press(bench):
        bench.fixtures["F1"].plc.press_estop()

    pressed, _ = clock.run(_check(press, act=True), virtual=True)
    assert "fixture F1: e-stop pressed; release it before a run" in pressed.lines()
    assert pressed.safe and pressed.done == []


async def _lv_left_on(bench: SimBench) -> None:
    """A run that switched the pack's LV power on (its BMS awake) and was killed before its
    release switched it off."""
    bench.fixtures["F1"].wiring.lv_power = True


def test_lv_power_left_on_is_switched_off_once_the_fixture_reads_safe_and_audited(audit_file):
    read_only, state = clock.run(_check(_lv_left_on, act=False), virtual=True)
    assert "NOT SAFE fixture F1: fixture: LV power to the pack on (lv_power on)" in read_only.lines()
    assert state["lv"] and read_only.done == []  # status switches nothing
    check, state = clock.run(_check(_lv_left_on, act=True), virtual=True)
    assert check.done == ["fixture: lv_power off (left on by the last session; switched off once the fixture read safe)"]
    assert check.safe and not state["lv"]  # the bench's own wiring says so
    (lv,) = [f for f in check.after if f.what == "lv_power"]
    assert lv.safe and lv.detail == "LV power to the pack off" and lv.left_on == ()
    (entry,) = audit_entries(audit_file)
    assert entry["kind"] == "make_safe" and entry["fields"]["safe"]
    assert entry["fields"]["found"] == ["fixture: LV power to the pack on (lv_power on)"]
    assert entry["fields"]["done"] == check.done


def test_lv_power_stays_on_while_anything_else_is_not_confirmed_safe(audit_file):
    async def lv_on_dmm_gone(bench):
        await _lv_left_on(bench)
        await bench.fixtures["F1"].dmm.stop()  # the bus voltage cannot be confirmed

    check, state = clock.run(_check(lv_on_dmm_gone, act=True), virtual=True)
    assert not check.safe and state["lv"]
    assert not any("lv_power off" in line for line in check.done), check.done
    assert {p.instrument for p in check.problems} == {"dmm", "fixture"}


CYCLER_PLAN = """\
schema_version: 1
id: cycler-probe
version: 1.0.0
title: Cycler on and off
instruments: [cycler, fixture, bms]
setup:
  - fixture.lv_power: true
  - bms.wake: {within: 5 s}
main:
  - cycler.output: on
  - cycler.output: off
teardown:
  - bms.mode: standby
  - fixture.lv_power: false
"""


def test_the_next_run_after_a_latched_watchdog_passes_and_its_record_holds_the_check(tmp_path):
    plan = tmp_path / "cycler.yaml"
    plan.write_text(CYCLER_PLAN)
    req = RunRequest(plan=str(plan), serial="SN-WDT", sim=True, db=str(tmp_path / "r.db"))
    prep = prepare(req)

    async def main():
        async with Session(prep.config, sim=True, presets={"F1": "car-400"}, db=req.db) as session:
            await _latched_watchdog(session.bench)
            lines = await session.startup_report(["F1"])
            verdict, _run_id, record = await session.run(req, prep)
            return lines, verdict, record

    lines, verdict, record = clock.run(main(), virtual=True)
    assert "fixture F1: done cycler: cleared latched protection WDT (fixture confirmed safe first)" in lines
    assert not blocking(lines)
    assert verdict == "PASS", (record["reason"], record["errors"])
    assert all(a["confirmed"] for a in record["safe_state"]), record["safe_state"]
    (startup,) = record["startup"]
    assert startup["fixture"] == "F1" and startup["safe"]
    assert {"instrument": "cycler", "what": "protection", "safe": False, "detail": "latched protection WDT",
            "latched": ["WDT"], "left_on": []} in startup["found"]
    assert "cycler: cleared latched protection WDT (fixture confirmed safe first)" in startup["done"]


def station(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "station.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def test_station_fixture_status_as_a_process(tmp_path):
    safe = station("fixture", "status", "--sim", "--fixture", "F1")
    assert safe.returncode == 0, safe.stdout + safe.stderr
    assert "F1 cycler   output       ok       output off (OUTP? 0)" in safe.stdout
    assert "F1 dmm      bus voltage  ok       bus" in safe.stdout and safe.stdout.rstrip().endswith("fixture F1: safe")

    with socket.socket() as s:  # a PLC nobody answers for
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "station.yaml"
    config.write_text("schema_version: 1\nstation: {id: EOL-T}\nresults: {db: r.db}\nfixtures:\n  F1:\n    instruments:\n"
                      f"      fixture: {{driver: modbus_fixture, resource: 'modbus-tcp://127.0.0.1:{port}?unit=1', "
                      "timeout: 0.5}\n")
    down = station("fixture", "status", "--station", str(config))
    assert down.returncode == 3, down.stdout + down.stderr
    assert "Traceback" not in down.stderr
    assert "F1 fixture  open         NOT SAFE not reachable" in down.stdout
    assert "fixture F1: NOT SAFE: fixture: not reachable" in down.stdout

    refused = station("fixture", "make-safe", "--sim", "--operator", "op1")
    assert refused.returncode == 2 and "only engineers and admins" in refused.stderr


def test_station_fixture_status_with_the_bench_gone_is_quick_and_names_role_address_and_failure(tmp_path):
    # `station sim serve` stopped: nothing listens on the ports its station config names
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    can, scpi = ports
    bms = f"can://socketcand/can0?host=127.0.0.1&port={can}&tcp_tune=true"
    config = tmp_path / "bench.yaml"
    config.write_text("schema_version: 1\nstation: {id: EOL-T}\nresults: {db: r.db}\nfixtures:\n  F1:\n    instruments:\n"
                      f"      cycler: {{driver: itech_it6000, resource: 'TCPIP::127.0.0.1::{scpi}::SOCKET'}}\n"
                      f"      bms: {{driver: dbc_bms, resource: '{bms}', options: {{cells: 96, temperature_sensors: 24}}}}\n")
    down = station("fixture", "status", "--station", str(config))
    assert down.returncode == 3, down.stdout + down.stderr
    assert "Traceback" not in down.stderr
    lines = down.stdout.splitlines()
    assert (f"F1 cycler   open         NOT SAFE not reachable at TCPIP::127.0.0.1::{scpi}::SOCKET: "
            f"connection to 127.0.0.1:{scpi} refused (nothing listens on that port)") in lines, lines
    assert (f"F1 bms      open         NOT SAFE not reachable at {bms}: socketcand: "
            f"connection to 127.0.0.1:{can} refused (nothing listens on that port)") in lines, lines


def test_station_fixture_make_safe_runs_every_safe_state_and_is_audited(tmp_path):
    config = tmp_path / "station.yaml"
    text = (ROOT / "station/sim_station.yaml").read_text()
    text = text.replace("db: ../results/station.db", f"db: {tmp_path / 'r.db'}")
    text = text.replace("plan: ../test_plans/", f"plan: {ROOT / 'test_plans'}/")
    config.write_text(text)
    done = station("fixture", "make-safe", "--station", str(config), "--sim", "--fixture", "F1", "--operator", "eng1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "F1 done: cycler: output off (OUTP? 0)" in done.stdout
    assert "F1 done: leak: leak cycle stopped and vented (STOP; STATUS: READY)" in done.stdout
    (entry,) = audit_entries(tmp_path / "audit.jsonl")
    assert entry["kind"] == "make_safe" and entry["fields"]["operator"] == "eng1"
    assert entry["fields"]["source"] == "station fixture make-safe" and entry["fields"]["safe"]


def test_a_shared_tester_busy_with_another_fixture_is_left_alone():
    from station.startup_check import check_fixture

    class Busy:
        async def energy_state(self):  # pragma: no cover - must not be called
            raise AssertionError("a busy shared instrument was read")

        async def safe_state(self):  # pragma: no cover - must not be called
            raise AssertionError("a busy shared instrument was stopped")

    class Relays:
        def __init__(self) -> None:
            self.on = True

        async def energy_state(self):
            from drivers.capabilities import StateFinding

            return [StateFinding("ir_hv_plus", not self.on, f"relay {'CLOSED' if self.on else 'open'}")]

        async def safe_state(self):
            from drivers.capabilities import SafeAction

            self.on = False
            return [SafeAction("ir_hv_plus off (acknowledged)", True)]

    plc = Relays()
    check = clock.run(check_fixture("F1", {"safety": Busy(), "fixture": plc}, act=True,
                                    busy=frozenset({"safety"})), virtual=True)
    assert check.safe and check.done == ["fixture: ir_hv_plus off (acknowledged)"]
    assert check.found[0].instrument == "safety" and check.found[0].what == "shared" and check.found[0].safe
    assert not check.found[1].safe and check.after[1].safe
