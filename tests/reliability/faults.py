"""Instrument-fault harness: break one instrument during its step of a full run, then heal it.

``run_role(config, plan, db, role, modes)`` runs ``FAULT_PLAN`` (one step per instrument) in
a ``Session`` on the simulated bench, on virtual time. When the role's step starts, its simulated peer is broken:

- ``hang``: the peer reads and never answers (``behaviour = "hang"``; BMS: stops sending);
- ``partial``: the peer sends half a reply line with no terminator, then goes silent;
- ``garbage``: the peer answers noise (``behaviour = "garbage"``);
- ``disconnect``: the peer's server is stopped mid-step (the socket closes under the driver).

Then the peer is healed (normal behaviour, server restarted on the same port) and the same
Session runs the plan again: ``reconnect_verdict`` is that second run's verdict. All modes of
one role share one Session, in the order given (put ``disconnect`` last: it breaks the driver).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from pathlib import Path

from station.config import InstrumentConfig
from station.events import SafeStateAction, StepFinished, StepStarted
from station.runner import RunRequest, Session, prepare

FAULT_PLAN = """\
schema_version: 1
id: rel-faults
version: 1.0.0
title: Reliability probe, one step per instrument
product: traction-pack
instruments: [fixture, bms, dmm, safety, cycler, leak]
parameters:
  bond_points: {value: [BP1, BP2, BP3, BP4]}
setup:
  - fixture.require: [estop_released, guard_closed, pack_present]
  - fixture.clamp: true
  - fixture.lv_power: true
  - bms.wake: {within: 5 s}
main:
  - {id: fixture_step, timeout: 10 s, fixture.require: [estop_released, guard_closed, pack_present]}
  - {id: dmm_step, timeout: 10 s, dmm.voltage: {range: 1000 V, nplc: 1}}
  - {id: cycler_step, timeout: 10 s, cycler.measure: {}}
  - {id: safety_step, timeout: 20 s, safety.ground_bond: {point: BP1, index: 1, current: 25 A, dwell: 2 s}}
  - {id: leak_step, timeout: 90 s, leak.test: {timeout: 60 s}}
  - {id: bms_step, timeout: 10 s, bms.pack: {}}
"""
STEP_TIMEOUT = {"fixture": 10.0, "dmm": 10.0, "cycler": 10.0, "cycler_modbus": 10.0, "safety": 20.0,
                "leak": 90.0, "bms": 10.0}
PARTIAL = {"dmm": b"+4.0123", "cycler": b"+3.9", "safety": b"RUNN", "leak": b"<01>:(OK): 0"}


@dataclasses.dataclass
class FaultResult:
    role: str
    mode: str
    verdict: str
    reason: str | None
    step_outcome: str | None
    step_error: str | None
    step_duration_s: float | None  # station clock (virtual)
    run_wall_s: float
    safe_ok: dict[str, bool]  # role -> every SafeStateAction of it ok
    reconnect_verdict: str
    reconnect_reason: str | None


def plan_file(tmp: Path) -> Path:
    path = tmp / "rel_faults.yaml"
    path.write_text(FAULT_PLAN)
    return path


def modbus_cycler_config(loaded, endpoints_key: str = "F1.cycler_modbus"):
    """The sim config with F1's cycler on the Modbus cycler driver and simulator."""
    from station.config import LoadedConfig

    cfg = loaded.config
    fx = cfg.fixtures["F1"]
    cycler = InstrumentConfig(driver="modbus_cycler", resource=f"modbus-tcp://{{{endpoints_key}}}?unit=1")
    fixtures = {**cfg.fixtures, "F1": fx.model_copy(update={"instruments": {**fx.instruments, "cycler": cycler}})}
    return LoadedConfig(cfg.model_copy(update={"fixtures": fixtures}), loaded.path)


def _peer(bench, role: str):
    fx = bench.fixtures["F1"]
    return {"fixture": fx.plc, "dmm": fx.dmm, "cycler": fx.cycler, "cycler_modbus": fx.cycler_modbus,
            "safety": bench.safety, "leak": fx.leak, "bms": fx.bms}[role]


async def _break(bench, role: str, mode: str) -> None:
    peer = _peer(bench, role)
    if role == "bms":
        if mode in ("hang", "partial", "garbage"):
            peer.silent_after(asyncio.get_running_loop().time())
        else:
            await peer.stop()
        return
    if mode == "disconnect":
        # The SCPI server's stop() waits for every connection to close (Python 3.11.7's
        # Server.wait_closed); the shared safety tester's can stay open: bound the wait, the
        # listening socket and our side of each connection are closed by then anyway.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(peer.stop(), 2.0)
        return
    peer.behaviour = "hang" if mode == "partial" else mode
    if mode == "partial":
        for writer in list(getattr(peer, "_writers", ())):
            # on the wire now: the simulated DMM wraps its writer in a proxy that holds output
            # until its next reply, which would glue these bytes to the reply after the heal
            getattr(writer, "_writer", writer).write(PARTIAL[role])


async def _heal(bench, role: str, endpoints: dict[str, str], mode: str) -> None:
    peer = _peer(bench, role)
    if role == "bms":
        peer.silent_after(float("inf"))
        if mode == "disconnect":
            await peer.start()
        return
    peer.behaviour = "normal"
    if mode == "disconnect":
        key = {"safety": "safety"}.get(role, f"F1.{role}")
        await peer.start("127.0.0.1", int(endpoints[key].rsplit(":", 1)[1]))


def with_timeouts(loaded, seconds: float):
    """Every instrument's per-operation timeout set to ``seconds`` (a hung VISA call waits it in real time)."""
    from station.config import LoadedConfig

    cfg = loaded.config

    def fix(ref):
        return ref if isinstance(ref, str) else ref.model_copy(update={"timeout": seconds})

    fixtures = {name: fx.model_copy(update={"instruments": {r: fix(ref) for r, ref in fx.instruments.items()}})
                for name, fx in cfg.fixtures.items()}
    instruments = {k: fix(v) for k, v in cfg.instruments.items()}
    return LoadedConfig(cfg.model_copy(update={"fixtures": fixtures, "instruments": instruments}), loaded.path)


async def run_role(config, plan: Path, db: str, role: str, modes: list[str]) -> list[FaultResult]:
    """Each mode in turn in one Session: a faulted run, heal, a run that should pass again."""
    target_role = "cycler" if role == "cycler_modbus" else role
    step_path = f"main/{target_role}_step"
    # bms.pack reads the live values the BMS keeps sending: break the BMS one (30 s) step
    # earlier, so that its values have gone stale when its step reads them
    break_at = "main/leak_step" if role == "bms" else step_path
    req = RunRequest(plan=str(plan), sim=True, serial="SN0001", db=db)
    prep = dataclasses.replace(prepare(req), config=config)
    results = []
    async with Session(config, sim=True, db=db) as session:
        bench = session.bench
        for mode in modes:
            pending: list[asyncio.Task] = []
            finished: dict[str, StepFinished] = {}
            safe: dict[str, bool] = {}

            def on_event(event, mode=mode, pending=pending, finished=finished, safe=safe):
                if isinstance(event, StepStarted) and event.path == break_at:
                    pending.append(asyncio.ensure_future(_break(bench, role, mode)))
                elif isinstance(event, StepFinished):
                    finished[event.path] = event
                elif isinstance(event, SafeStateAction):
                    safe[event.instrument] = safe.get(event.instrument, True) and event.ok

            wall = time.perf_counter()
            verdict, _rid, record = await session.run(req, prep, subscribers=[on_event], signals=False)
            wall = time.perf_counter() - wall
            await asyncio.gather(*pending)
            await _heal(bench, role, bench.endpoints, mode)
            await asyncio.sleep(0.5)  # the healed BMS's frames are fresh again
            again, _rid2, record2 = await session.run(req, prep, signals=False)
            step = finished.get(step_path)
            results.append(FaultResult(role, mode, verdict, record["reason"], step.outcome if step else None,
                                       step.error if step else None, step.duration_s if step else None,
                                       round(wall, 3), safe, again, record2["reason"]))
    return results
