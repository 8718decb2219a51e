"""`station run` end to end as a process: the smoke plan against the simulator on its real protocols."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def station(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "station.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def test_smoke_run_exit_0_with_full_json_and_junit(tmp_path):
    out_json, out_xml, db = tmp_path / "r.json", tmp_path / "r.xml", tmp_path / "r.db"
    proc = station("run", "test_plans/smoke.yaml", "--sim", "--serial", "SN1", "--json", str(out_json),
                   "--junit", str(out_xml), "--db", str(db), "--operator", "op1")  # smoke is released
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    record = json.loads(out_json.read_text())
    assert record["verdict"] == "PASS" and record["status"] == "finished"
    assert record["serial"] == "SN1" and record["operator"] == "op1"
    plan = record["plan"]
    assert plan["id"] == "smoke" and plan["version"] == "1.0.0" and len(plan["sha256"]) == 64
    assert record["variant"] == "car-400"
    assert record["parameters"]["v_test"] == "500 V"
    assert record["station_id"] == "EOL-SIM-01" and record["software_version"]
    assert record["started_utc"].endswith("+00:00") and record["finished_utc"]
    roles = {i["role"]: i for i in record["instruments"]}
    assert {"dmm", "cycler", "safety", "fixture", "bms", "leak"} <= set(roles)
    assert roles["dmm"]["model"] == "34465A" and roles["dmm"]["calibration_due"] == "2027-04-30"
    assert roles["safety"]["maker"].startswith("Chroma")
    measurements = [m for s in record["steps"] for m in s["measurements"]]
    iso = [m for m in measurements if m["name"] == "resistance" and m["limits"].get("min")]
    assert iso and all(m["verdict"] == "pass" and m["unit"] == "ohm" for m in iso)
    assert all(m["utc"] for m in measurements)
    assert record["safe_state"] and all(a["ok"] for a in record["safe_state"])
    suite = ET.parse(out_xml).getroot()
    cases = suite.findall(".//testcase")
    assert len(cases) == len({s["path"] for s in record["steps"]})
    assert not suite.findall(".//failure")


def test_fault_gives_fail_with_junit_failure_naming_value_and_limits(tmp_path):
    out_xml = tmp_path / "r.xml"
    proc = station("run", "test_plans/smoke.yaml", "--sim", "--serial", "SN2", "--fault", "isolation_low:pole=HV-",
                   "--junit", str(out_xml), "--db", str(tmp_path / "r.db"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failures = ET.parse(out_xml).getroot().findall(".//failure")
    assert len(failures) == 1
    text = failures[0].get("message") + (failures[0].text or "")
    assert "resistance" in text and "iso_minus" in ET.parse(out_xml).getroot().find(".//failure/..").get("name")


def test_usage_errors_exit_2_without_traceback(tmp_path):
    for args in (["run", "test_plans/smoke.yaml"],  # no station config and no --sim
                 ["run", "test_plans/smoke.yaml", "--sim", "--variant", "boat-900"],
                 ["run", "test_plans/smoke.yaml", "--sim", "--fault", "isolaton_low"],
                 ["run", "missing.yaml", "--sim"]):
        proc = station(*args, "--db", str(tmp_path / "x.db"))
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stderr.strip()


def test_every_command_has_help():
    for args in (["--help"], ["run", "--help"], ["validate", "--help"], ["schema", "--help"], ["sim", "--help"],
                 ["sim", "serve", "--help"], ["sim", "faults", "--help"], ["ui", "--help"], ["results", "--help"],
                 ["results", "list", "--help"], ["results", "show", "--help"], ["results", "export", "--help"],
                 ["coverage", "--help"]):
        proc = station(*args, timeout=30)
        assert proc.returncode == 0 and "usage:" in proc.stdout, args


def test_sim_faults_lists_one_per_line_name_first():
    proc = station("sim", "faults", timeout=30)
    assert proc.returncode == 0
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert {"isolation_low", "weak_cell", "bms_silent", "estop_at", "instrument_hang"} <= set(names)
