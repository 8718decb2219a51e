"""What one simulated second of steady charge costs, and one poll of the fixture's interlocks.

These are the per-second figures behind the proof's speed (``station test``: its long runs are
~93 % ``soc_adjust``).

- **Steady charge**: a cut-down plan keeps set-up, contactors, the reference plan's ``soc`` group
  (its monitors, the HV interlock watch, ``cycler.charge_to_soc``) and open contactors. It is run
  to two SOC targets, and the difference of the two runs is divided by the difference of their
  simulated durations. Start-up, preparation and the short steps cancel out.
- **Fixture poll**: the station's interlock watcher, the ``modbus_fixture`` driver and the
  simulated PLC on loopback, on virtual time, nothing else running. It polls for
  ``POLL_SECONDS``, and the difference from a near-zero-length watch is divided by the polls.

Each figure is CPU time (the best of ``--reps`` processes) or, with ``--callgrind``, instructions
counted by valgrind's callgrind. Callgrind is deterministic under ``PYTHONHASHSEED=0`` and does
not count the kernel's work (the loopback TCP of a poll).

Run: ``.venv/bin/python bench/bench_steady.py [--callgrind] [--reps N]``
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT

VARIANT = "car-400"
TARGETS = (48.5, 47.5)  # SOC %: the car-400 pack starts near 50 %, 1 % is ~76 s at 100 A
POLL_SECONDS = 100.0  # s of virtual time: 2,000 polls at 50 ms
POLL_PERIOD = 0.05  # s, as the shipped simulated stations poll

PLAN = """\
schema_version: 1
id: bench-steady-charge
version: 1.0.0
title: Steady charge (bench/bench_steady.py)
product: traction-pack
instruments: [fixture, bms, cycler]
parameters:
  n_cells: {{value: 96}}
  v_max: {{value: 403 V}}
  cell_v_min: {{value: 3.0 V}}
  cell_v_max: {{value: 4.2 V}}
  capacity: {{value: 210 Ah}}
  soc_target: {{value: {target} %}}
  soc_current: {{value: 100 A}}
variants:
  {variant}: {{description: the reference car pack}}
setup:
  - id: interlocks
    fixture.require: [estop_released, guard_closed, pack_present]
  - fixture.clamp: true
  - fixture.lv_power: true
  - bms.wake: {{within: 5 s}}
main:
  - id: contactors
    bms.close_contactors: {{within: 3 s, sample: 10 ms}}
  - id: soc
    requires: [hv_interlock]
    monitors:
      - {{signal: bms.cell_voltage_max, max: "${{cell_v_max}}"}}
      - {{signal: bms.cell_voltage_min, min: "${{cell_v_min}}"}}
    steps:
      - id: soc_adjust
        cycler.charge_to_soc: {{target: "${{soc_target}}", current: "${{soc_current}}", capacity: "${{capacity}}",
                               v_max: "${{v_max}}", v_min: "${{n_cells * cell_v_min}}", poll: 2 s}}
  - id: open_contactors
    bms.open_contactors: {{within: 3 s, settle: 5 s}}
"""


# -- what a child process measures -----------------------------------------------------------
def _steady(target: float) -> dict:
    """One run of the cut-down plan to ``target`` % SOC: simulated seconds and CPU seconds."""
    from station.clock import run
    from station.runner import RunRequest, execute, prepare

    with tempfile.TemporaryDirectory(prefix="bench-steady-") as tmp:
        plan = Path(tmp) / "steady.yaml"
        plan.write_text(PLAN.format(target=target, variant=VARIANT))
        req = RunRequest(plan=str(plan), serial="STEADY1", variant=VARIANT, sim=True, db=f"{tmp}/r.db")
        prep = prepare(req)
        start = time.process_time()
        verdict, _id, record = run(execute(req, prep), virtual=True, in_process=True)
        cpu = time.process_time() - start
    return {"verdict": verdict, "sim_s": float(record["duration_s"]), "cpu_s": cpu}


def _poll(seconds: float) -> dict:
    """The interlock watcher polling the simulated PLC for ``seconds`` of virtual time."""
    import asyncio

    from drivers import roles
    from drivers.fixture.modbus_fixture import ModbusFixture
    from sim.instruments.fixture_plc import SimFixturePlc
    from sim.pack.model import Pack
    from sim.pack.presets import PRESETS
    from sim.wiring import Wiring
    from station.clock import run
    from station.engine.monitors import Watchers

    out: dict = {}

    async def main() -> None:
        peer = SimFixturePlc(Pack(PRESETS[VARIANT], seed=5), Wiring())
        address = await peer.start()
        try:
            async with ModbusFixture("fixture", f"modbus-tcp://{address}", timeout=1.0) as driver:
                await driver.set_output("clamp", True)  # pack_present and the clamp's end switch
                await asyncio.sleep(1.0)
                trips: list[str] = []
                watchers = Watchers({roles.on_duty(roles.INTERLOCKS): driver}, emit=lambda *a, **k: None,
                                    abort=lambda reason, **k: trips.append(reason), interlock_period=POLL_PERIOD)
                watch = watchers.interlocks(["estop_released", "guard_closed", "pack_present"], "main/bench")
                if watch is None:
                    raise RuntimeError("the interlock watcher did not start")
                first, start = peer.requests, time.process_time()
                await asyncio.sleep(seconds)
                out.update(cpu_s=time.process_time() - start, polls=peer.requests - first, trips=trips)
                watch.cancel()
        finally:
            await peer.stop()

    run(main(), virtual=True, in_process=True)
    return out


# -- the parent: processes, repetitions, differences ------------------------------------------
def _child(args: list[str], *, callgrind: bool) -> dict:
    """Run this script as ``--child ARGS`` (under callgrind if asked); its JSON, plus ``instructions``."""
    argv = [sys.executable, __file__, "--child", *args]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    with tempfile.TemporaryDirectory(prefix="bench-steady-cg-") as tmp:
        if callgrind:
            argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out", *argv]
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if callgrind:
        found = re.search(r"Collected : (\d+)", proc.stderr)
        if found is None:
            raise RuntimeError(f"no instruction count in callgrind's output:\n{proc.stderr[-2000:]}")
        out["instructions"] = int(found.group(1))
    return out


def _best(args: list[str], reps: int, *, callgrind: bool) -> dict:
    """The child's figures with the least CPU of ``reps`` (one run under callgrind: it is exact)."""
    runs = [_child(args, callgrind=callgrind) for _ in range(1 if callgrind else reps)]
    return min(runs, key=lambda r: r["cpu_s"])


def steady(reps: int = 3, *, callgrind: bool = False) -> dict:
    """Cost of one simulated second of steady charge: CPU µs (and instructions with ``callgrind``)."""
    short, long = (_best(["steady", str(t)], reps, callgrind=callgrind) for t in TARGETS)
    for r in (short, long):
        if r["verdict"] != "PASS":
            raise RuntimeError(f"the steady-charge plan ended {r['verdict']}, not PASS")
    sim = long["sim_s"] - short["sim_s"]
    out = {"simulated_s": sim, "cpu_us_per_s": (long["cpu_s"] - short["cpu_s"]) / sim * 1e6}
    if callgrind:
        out["instructions_per_s"] = (long["instructions"] - short["instructions"]) / sim
    return out


def poll(reps: int = 3, *, callgrind: bool = False) -> dict:
    """Cost of one fixture poll: CPU µs (kernel included) and instructions with ``callgrind``."""
    watch, idle = (_best(["poll", str(s)], reps, callgrind=callgrind) for s in (POLL_SECONDS, 0.001))
    if watch["trips"]:
        raise RuntimeError(f"the interlock watcher tripped: {watch['trips']}")
    polls = watch["polls"] - idle["polls"]
    out = {"polls": polls, "cpu_us_per_poll": watch["cpu_s"] / watch["polls"] * 1e6}
    if callgrind:
        out["instructions_per_poll"] = (watch["instructions"] - idle["instructions"]) / polls
    return out


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        kind, value = sys.argv[2], float(sys.argv[3])
        print(json.dumps(_steady(value) if kind == "steady" else _poll(value)))
        return
    callgrind = "--callgrind" in sys.argv
    if callgrind and shutil.which("valgrind") is None:
        sys.exit("--callgrind needs valgrind on PATH")
    reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 3
    # under callgrind the CPU times are valgrind's, not the program's: only instructions are shown
    s = steady(reps, callgrind=callgrind)
    cost = f"{s['instructions_per_s'] / 1e6:.1f} M instructions" if callgrind else f"{s['cpu_us_per_s']:.0f} us CPU"
    print(f"steady charge ({VARIANT}, {s['simulated_s']:.0f} s simulated): {cost} per simulated second")
    p = poll(reps, callgrind=callgrind)
    cost = f"{p['instructions_per_poll'] / 1e3:.0f}k instructions" if callgrind else f"{p['cpu_us_per_poll']:.1f} us CPU"
    print(f"fixture poll every {POLL_PERIOD * 1000:.0f} ms ({p['polls']} polls): {cost} per poll")


if __name__ == "__main__":
    main()
