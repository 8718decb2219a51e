"""Plans as tests: every shipped plan passes a golden simulated pack on every variant, through the
CLI as CI runs it (exit code + JUnit), and catches every fault it declares, leaving the pack safe."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from station import clock
from station.plan.loader import load_plan
from station.runner import RunRequest, Session, prepare, sim_preset

ROOT = Path(__file__).resolve().parents[2]
PLANS = sorted(p for p in (ROOT / "test_plans").glob("*.yaml"))
EXIT = {"PASS": 0, "FAIL": 1, "ERROR": 3, "ABORTED": 3}


def _variants(path: Path) -> list[str]:
    return list(load_plan(path).plan.variants) or [None]


GOLDEN = [(p, v) for p in PLANS for v in _variants(p)]
CATCHES = [(p, v, i, c) for p in PLANS for v in _variants(p)
           for i, c in enumerate(load_plan(p).plan.catches) if not c.variants or v in c.variants]


@pytest.mark.parametrize("plan,variant", GOLDEN, ids=[f"{p.stem}-{v}" for p, v in GOLDEN])
def test_golden_pack_passes_through_the_cli(plan, variant, tmp_path):
    junit = tmp_path / "run.xml"
    args = [sys.executable, "-m", "station.cli", "run", str(plan), "--sim", "--serial", "GOLD1",
            "--junit", str(junit), "--json", str(tmp_path / "run.json"), "--db", str(tmp_path / "r.db")]
    if variant:
        args += ["--variant", variant]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    suite = ET.parse(junit).getroot()  # consumed as a CI server would
    assert int(suite.get("tests")) > 5
    assert suite.findall(".//failure") == [] and suite.findall(".//error") == []
    if plan.stem == "pack_eol":
        import json

        record = json.loads((tmp_path / "run.json").read_text())
        assert record["duration_s"] > 20 * 60, "the reference EOL represents over 20 minutes of instrument time"
        # the record names every library the plan included, by content, and the release digest
        libraries = record["plan"]["libraries"]
        assert sorted(libraries) == sorted(f"lib/{f.name}" for f in (ROOT / "test_plans" / "lib").glob("*.yaml")
                                           if f"lib/{f.name}" in (ROOT / "test_plans" / "pack_eol.yaml").read_text())
        assert len(libraries) >= 3 and all(len(d) == 64 for d in libraries.values())
        bound = prepare(RunRequest(plan=str(plan), sim=True, serial="GOLD1", variant=variant)).bound
        assert record["plan"]["release_sha256"] == bound.release_sha256 != record["plan"]["sha256"]
        # precharge is timed on the recorded bus curve (95 % of the pack), not by the BMS's report
        step = next(s for s in record["steps"] if s["path"] == "main/contactors")
        got = {m["name"]: m["value"] for m in step["measurements"]}
        curve = next(s["rows"] for s in record["series"] if s["path"] == "main/contactors" and s["name"] == "precharge")
        pack_v = curve[-1][1]  # contactors closed: the bus is the pack
        after = next(i for i, (_, volts) in enumerate(curve) if volts >= 0.95 * pack_v)
        assert curve[after - 1][0] <= got["precharge_time"] <= curve[after][0]
        assert got["precharge_time"] < got["feedback_time"]


def _fault_text(catch) -> str:
    params = ",".join(f"{k}={v}" for k, v in catch.params.items())
    return catch.fault + (f":{params}" if params else "")


@pytest.mark.parametrize("plan,variant,index,catch", CATCHES,
                         ids=[f"{p.stem}-{v}-{c.fault}-{i}" for p, v, i, c in CATCHES])
def test_declared_fault_is_caught_at_its_step_and_the_pack_is_left_safe(plan, variant, index, catch, tmp_path):
    req = RunRequest(plan=str(plan), variant=variant, sim=True, serial="FAULT1", faults=[_fault_text(catch)],
                     db=str(tmp_path / "r.db"), stop_on_failure=True)
    prep = prepare(req)

    async def run():
        async with Session(prep.config, sim=True, presets={prep.fixture: sim_preset(prep)}, db=req.db) as session:
            verdict, _run_id, record = await session.run(req, prep, signals=False)
            fx = session.bench.fixtures[prep.fixture]
            pack, wiring = fx.pack, fx.wiring
            # the DC link bleeds down in a few seconds once the contactors are open
            await asyncio.sleep(30.0)
            physical = {
                "bus_v": pack.bus_voltage(),
                "contactors": {n: pack.contactor_closed(n) for n in ("main_plus", "main_minus", "precharge")},
                "cycler_on": fx.cycler.output,
                "ir_pole": wiring.ir_pole,
                "imd": pack.insulation_monitor_enabled,
            }
            return verdict, record, physical

    verdict, record, physical = clock.run(run(), virtual=True)
    assert verdict == catch.expect, record["reason"]
    bad = [s["path"] for s in record["steps"] if s["outcome"] in ("failed", "error", "aborted")]
    assert bad, "the run must show where the fault was caught"
    assert catch.step in bad[0].split("/"), f"caught at {bad[0]}, expected at step '{catch.step}'"
    # the pack is safe: HV bus below 60 V, cycler off, IR relays released, monitor back on,
    # contactors open (a welded one is the defect itself: the other two must be open)
    assert physical["bus_v"] < 60.0
    assert physical["cycler_on"] is False and physical["ir_pole"] is None and physical["imd"] is True
    closed = {n for n, c in physical["contactors"].items() if c}
    assert closed <= ({catch.params.get("name", "main_plus")} if catch.fault == "welded_contactor" else set())
    assert record["safe_state"], "the record shows what the safe state did"
    unconfirmed = [a for a in record["safe_state"] if not a["ok"]]
    if unconfirmed:  # e.g. the DMM itself is the faulty instrument: the record must say so
        assert verdict in ("ERROR", "ABORTED")
