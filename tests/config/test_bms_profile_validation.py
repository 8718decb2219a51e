"""BMS profiles are checked like plans: by `station validate --station` and at run start, located,
exit 2, nothing opened; relative paths resolve from the file that names them; a plan that needs
what the station's BMS does not offer (a signal, a command, UDS) is refused at its step."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VEHICLE = ROOT / "drivers" / "maps" / "vehicle"
VEHICLE_STATION = ROOT / "station" / "sim_station_vehicle.yaml"
PACK_EOL = ROOT / "test_plans" / "pack_eol.yaml"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "station.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def _station(tmp_path: Path, profile_text: str | None = None) -> Path:
    """A copy of the vehicle sim station whose BMS profile lives next to it (profiles/bms.yaml)."""
    folder = tmp_path / "site"
    (folder / "profiles").mkdir(parents=True)
    for name in ("vehicle_bms.dbc", "vehicle_did.yaml"):
        shutil.copy(VEHICLE / name, folder / "profiles" / name)
    text = profile_text if profile_text is not None else (VEHICLE / "vehicle_bms.yaml").read_text()
    (folder / "profiles" / "bms.yaml").write_text(text)
    config = VEHICLE_STATION.read_text().replace("../drivers/maps/vehicle/vehicle_bms.yaml", "profiles/bms.yaml")
    config = config.replace("plan: ../test_plans/", f"plan: {ROOT}/test_plans/")
    (folder / "station.yaml").write_text(config)
    return folder / "station.yaml"


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_profile_path_resolves_from_the_config_not_the_working_directory(tmp_path):
    station = _station(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = _cli("validate", "--station", str(station), str(PACK_EOL), cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert "pack_eol.yaml: OK" in proc.stdout


def test_a_broken_profile_is_exit_2_at_its_place_in_validate_and_run(tmp_path):
    text = (VEHICLE / "vehicle_bms.yaml").read_text()
    text = text.replace("true_when: [PRECHARGE]}", "true_when: [PRECHARGING]}").replace("routine: 0xF00A, control: stop",
                                                                                      "routine: 0xF00A, control: halt")
    station = _station(tmp_path, text)
    profile = station.parent / "profiles" / "bms.yaml"
    want = [f"{profile}:{_line_of(profile, 'PRECHARGING')}:", "'PRECHARGING' is not a value of BMS_status.BMS_contactorState",
            f"{profile}:{_line_of(profile, 'control: halt')}:", "routine control must be one of start, stop, results"]
    validate = _cli("validate", "--station", str(station), str(PACK_EOL), cwd=tmp_path)
    run = _cli("run", str(PACK_EOL), "--sim", "--station", str(station), "--variant", "car-400", "--serial", "CAR1",
               "--db", str(tmp_path / "r.db"), "--json", str(tmp_path / "r.json"), cwd=tmp_path)
    for proc in (validate, run):
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
        assert all(w in proc.stderr for w in want), proc.stderr
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "r.db").exists()  # nothing ran, nothing recorded


def test_a_read_only_bms_refuses_command_steps_at_validate_with_the_reason(tmp_path):
    text = (VEHICLE / "vehicle_bms.yaml").read_text()
    station = _station(tmp_path, text[:text.index("commands:")] + "commands: {path: none}\n"
                       + text[text.index("diagnostics:"):])
    proc = _cli("validate", "--station", str(station), str(PACK_EOL), cwd=tmp_path)
    assert proc.returncode == 2
    problems = proc.stderr.splitlines()
    for step, action in (("bms.insulation_monitor: disable", "bms.insulation_monitor"),
                         ("bms.close_contactors:", "bms.close_contactors"), ("bms.balancing: {on: true}", "bms.balancing")):
        line = _line_of(PACK_EOL, step)
        assert any(p.startswith(f"{PACK_EOL}:{line}:") and f"{action} needs command" in p and
                   "read-only (command path none)" in p for p in problems), (step, proc.stderr)
    assert not any("bms.identity" in p for p in problems)  # UDS reads are still offered


READ_ONLY_PLAN = """\
schema_version: 1
id: read-only-bms
version: 1.0.0
title: Pack values from a BMS the station cannot command
instruments: [fixture, bms, dmm]
setup:
  - fixture.require: [estop_released, guard_closed, pack_present]
  - fixture.lv_power: true
  - bms.wake: {within: 5 s}
main:
  - id: pack
    bms.pack: {}
    expect: {voltage: {min: 250 V, max: 420 V}}
  - id: cells
    bms.cells: {settle: 1 s}
    expect: {count: {equals: 96}}
teardown:
  - fixture.lv_power: false
"""


def test_a_read_only_bms_runs_and_its_safe_state_is_recorded_as_what_was_done(tmp_path):
    text = (VEHICLE / "vehicle_bms.yaml").read_text().replace("  soc: BMS_energyStatus.BMS_socUI\n", "")
    station = _station(tmp_path, text[:text.index("commands:")] + "commands: {path: none}\n"
                       + text[text.index("diagnostics:"):])
    plan = tmp_path / "read_only.yaml"
    plan.write_text(READ_ONLY_PLAN)
    proc = _cli("run", str(plan), "--sim", "--station", str(station), "--serial", "CAR2", "--db", str(tmp_path / "r.db"),
                "--json", str(tmp_path / "r.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((tmp_path / "r.json").read_text())
    pack = next(s for s in record["steps"] if s["path"] == "main/pack")
    assert {m["name"] for m in pack["measurements"]} == {"voltage", "current"}  # no soc offered: none measured
    assert any("does not offer soc" in str(line) for line in record["log"])
    bms = [(a["action"], a["confirmed"]) for a in record["safe_state"] if a["instrument"] == "bms"]
    assert bms[0] == ("read-only BMS (command path none): no command sent", True)
    assert bms[1][1] and bms[1][0].startswith("contactors reported open (")  # read back: the BMS's own report
    assert len(bms) == 2  # nothing else claimed: opening them is the fixture's LV off, recorded as its step


MISSING_PLAN = """\
schema_version: 1
id: wants-more
version: 1.0.0
title: Expects signals the vehicle BMS does not map
instruments: [fixture, bms]
main:
  - id: soh
    bms.signal: soh
  - id: pack
    bms.pack: {}
    expect: {soc: {min: 20 %}}
  - id: watched
    monitors:
      - {signal: bms.alive_counter, min: 0}
    steps:
      - station.wait: 1 s
"""


def test_a_plan_expecting_a_signal_the_bms_does_not_offer_fails_at_validate_located(tmp_path):
    text = (VEHICLE / "vehicle_bms.yaml").read_text().replace("  soc: BMS_energyStatus.BMS_socUI\n", "")
    station = _station(tmp_path, text)
    plan = tmp_path / "wants_more.yaml"
    plan.write_text(MISSING_PLAN)
    proc = _cli("validate", "--station", str(station), str(plan), cwd=tmp_path)
    assert proc.returncode == 2
    err = proc.stderr
    assert f"{plan}:8:17: bms.signal needs signal soh, which this station's BMS profile does not map" in err, err
    assert f"{plan}:11:19: bms.pack measures soc only where the BMS offers signal soc" in err, err
    assert f"{plan}:14:18: monitor reads signal 'alive_counter', which this station's BMS profile does not map" in err, err


def test_uds_actions_need_the_uds_option_and_templated_arguments_are_left_to_the_run():
    from station.actions.offers import refusals

    offer = {"signals": {"bms_state"}, "groups": set(), "command_path": "can", "commands": {"mode": ("standby",)},
             "uds": False}
    assert refusals(offer, "bms.read_did", {"did": "ecu_serial"}, set()) == [
        (("action",), "bms.read_did needs UDS diagnostics, which this station's BMS has no 'uds' option for")]
    assert "offers mode: standby" in refusals(offer, "bms.mode", {"mode": "normal"}, set())[0][1]
    assert refusals(offer, "bms.mode", {"mode": "${m}"}, set()) == []
    assert refusals(offer, "bms.mode", {"mode": "standby"}, set()) == []
