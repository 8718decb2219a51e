"""UDS session watchdog (S3): a step that needs the extended session after it dropped ends ERROR.

The BMS's UDS server (sim/bms/uds_server.py) drops a non-default session back to the default
one, relocked, when no request arrives for S3 = 5 s; the station's UDS client keeps it alive
with a suppressed TesterPresent (0x3E 80) every 2 s. Nobody answers a suppressed
TesterPresent, so when those frames stop reaching the ECU (a bus fault, a gateway that filters
them) the tester cannot know — it learns at its next request, which the ECU refuses.

Measured in one ``Session`` on the simulated bench, virtual time, twice with the same plan
(extended session, unlock, 8 s pause > S3, write a DID that needs the session):

1. healthy: the keep-alive holds the session over the pause and the run passes;
2. the ECU stops seeing TesterPresent frames from the start of the pause: its session drops
   S3 after the last request; the write step ends ERROR with the ECU's refusal
   (serviceNotSupportedInActiveSession, 0x7F) naming the service and DID, and the safe state
   runs for every instrument (HV sources first, BMS contactors commanded open).

Figures (station-clock seconds): session drop after the last request (S3), drop -> step error
(how long until the plan next talks UDS: plan-dependent), step error -> last safe-state action.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from station import clock
from station.events import SafeStateAction, StepFinished, StepStarted
from station.runner import RunRequest, Session, prepare
from tests.reliability import rig

UDS_PLAN = """\
schema_version: 1
id: rel-uds
version: 1.0.0
title: Reliability probe, UDS extended session held over a pause
product: traction-pack
instruments: [fixture, bms]
setup:
  - fixture.require: [estop_released, guard_closed, pack_present]
  - fixture.lv_power: true
  - bms.wake: {within: 5 s}
main:
  - {id: extended, bms.session: extended}
  - {id: unlock, bms.unlock: {level: 1}}
  - {id: hold, station.wait: %(hold)s}
  - {id: write, timeout: 10 s, bms.write_did: {did: eol_flag, value: 1}}
"""
HOLD_S = 8.0  # > S3 (5 s): only the keep-alive keeps the session


@dataclasses.dataclass
class UdsRun:
    verdict: str
    reason: str | None
    write_error: str | None
    tester_present_dropped: int
    request_before_drop_t: float | None  # loop time the ECU finished its last request before the drop
    drop_t: float | None  # loop time the ECU's session fell back to default (S3 expired)
    error_t: float | None  # loop time the write step finished
    safe_t: float | None  # loop time of the last SafeStateAction
    safe_ok: dict[str, bool]


class _EcuProbe:
    """Wraps the simulated ECU's UDS server: drops TesterPresent when told, times S3 expiry."""

    def __init__(self, uds) -> None:
        self.drop_tester_present = False
        self.reset()
        loop = asyncio.get_running_loop()
        on_message, handle, expired = uds.on_message, uds.handle, uds._s3_expired

        def filtered(msg):
            data = bytes(msg.data)
            single_frame = len(data) > 1 and data[0] >> 4 == 0
            if self.drop_tester_present and single_frame and data[1] == 0x3E:
                self.dropped += 1  # lost on the way: the ECU never sees it
                return
            on_message(msg)

        async def timed_handle(request):
            try:
                return await handle(request)
            finally:
                self.last_request_t = loop.time()

        def timed_expiry():
            self.drop_t = loop.time() if self.drop_t is None else self.drop_t
            self.request_before_drop_t = self.last_request_t
            expired()

        uds.on_message, uds.handle, uds._s3_expired = filtered, timed_handle, timed_expiry

    def reset(self) -> None:
        self.dropped = 0
        self.last_request_t: float | None = None
        self.request_before_drop_t: float | None = None
        self.drop_t: float | None = None


async def run_uds(config, plan: Path) -> list[UdsRun]:
    req = RunRequest(plan=str(plan), sim=True, serial="SN0001", db=":memory:")
    prep = dataclasses.replace(prepare(req), config=config)
    results = []
    async with Session(config, sim=True, db=":memory:") as session:
        probe = _EcuProbe(session.bench.fixtures[prep.fixture].bms._uds)
        for faulted in (False, True):
            probe.reset()
            probe.drop_tester_present = False
            seqs: list = []
            finished: dict[str, float] = {}
            errors: dict[str, str | None] = {}
            safe: list[float] = []
            safe_ok: dict[str, bool] = {}

            def on_event(event, faulted=faulted, seqs=seqs, finished=finished, errors=errors, safe=safe,
                         safe_ok=safe_ok):
                t = seqs[0].events.t0 + event.t
                if isinstance(event, StepStarted) and event.path == "main/hold" and faulted:
                    probe.drop_tester_present = True
                elif isinstance(event, StepFinished):
                    finished[event.path], errors[event.path] = t, event.error
                elif isinstance(event, SafeStateAction):
                    safe.append(t)
                    safe_ok[event.instrument] = safe_ok.get(event.instrument, True) and event.ok

            verdict, _run_id, record = await session.run(req, prep, subscribers=[on_event],
                                                         on_sequencer=seqs.append, signals=False)
            results.append(UdsRun(verdict, record["reason"], errors.get("main/write"), probe.dropped,
                                  probe.request_before_drop_t, probe.drop_t, finished.get("main/write"),
                                  max(safe) if safe else None, safe_ok))
            await asyncio.sleep(0.5)  # the next pack's BMS frames are fresh
    return results


def test_a_dropped_uds_session_ends_the_step_in_error_and_the_safe_state_runs(tmp_path):
    plan = tmp_path / "rel_uds.yaml"
    plan.write_text(UDS_PLAN % {"hold": f"{HOLD_S:g} s"})
    healthy, dropped = clock.run(run_uds(rig.sim_config(), plan), virtual=True)
    s3 = dropped.drop_t - dropped.request_before_drop_t if dropped.drop_t is not None else None
    rig.report("UDS session watchdog (S3), virtual time (station-clock s)", [
        f"healthy: verdict {healthy.verdict}; session drops {0 if healthy.drop_t is None else 1}; "
        f"keep-alive over a {HOLD_S:g} s pause",
        f"TesterPresent lost: {dropped.tester_present_dropped} frames dropped; session fell back to default "
        f"{s3:.3f} s after the last request (S3)",
        f"drop -> write step ERROR {dropped.error_t - dropped.drop_t:.3f} s (the plan's next UDS request); "
        f"step ERROR -> last safe-state action {(dropped.safe_t - dropped.error_t) * 1e3:.1f} ms; "
        f"all safe {all(dropped.safe_ok.values())} ({', '.join(sorted(dropped.safe_ok))})",
        f"verdict {dropped.verdict}; cause: {dropped.write_error}"])
    assert healthy.verdict == "PASS", healthy.reason
    assert healthy.drop_t is None and healthy.tester_present_dropped == 0
    assert dropped.verdict == "ERROR", dropped.reason
    assert "main/write" in (dropped.reason or ""), dropped.reason
    error = dropped.write_error or ""
    assert error.startswith("DeviceError: bms: ") and "serviceNotSupportedInActiveSession" in error, error
    assert "0x2E WriteDataByIdentifier" in error and "0xf1a0" in error, error
    assert dropped.tester_present_dropped >= 2  # every 2 s over the 8 s pause
    assert s3 is not None and abs(s3 - 5.0) < 0.05, s3
    assert dropped.drop_t < dropped.error_t <= dropped.drop_t + HOLD_S
    assert set(dropped.safe_ok) >= {"fixture", "bms", "cycler", "safety"} and all(dropped.safe_ok.values()), \
        dropped.safe_ok
    assert dropped.error_t <= dropped.safe_t
