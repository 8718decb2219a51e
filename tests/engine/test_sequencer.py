"""The sequencer against call-recording fakes: outcomes, verdicts, teardown and the safe state."""

from __future__ import annotations

import asyncio
import os
import signal

from drivers.errors import DeviceError
from station import clock
from station.signals import StopSignals

ALL = {"dmm", "fixture", "bms", "safety"}

MAIN_V = """
main:
  - id: v
    dmm.voltage: {range: 1000 V}
    expect: {voltage: {min: 390 V, max: 410 V}}
  - id: after
    dmm.voltage: {}
teardown:
  - id: td
    fixture.output: {name: lv_power, on: false}
"""


def safe_called(h) -> set[str]:
    return {who for who, what, _ in h.rec.calls if what == "safe_state"}


def test_pass_runs_teardown_and_safe_state(h):
    verdict, _seq = h.run(MAIN_V)
    assert verdict == "PASS"
    assert h.outcomes() == {"main/v": "passed", "main/after": "passed", "teardown/td": "passed"}
    assert safe_called(h) == ALL
    assert h.of("RunFinished")[0].verdict == "PASS"


def test_fail_keeps_measuring_then_teardown_and_safe_state(h):
    h.instruments["dmm"].volts = [420.0, 400.0]
    verdict, _seq = h.run(MAIN_V)
    assert verdict == "FAIL"
    assert h.outcomes()["main/v"] == "failed"
    assert h.outcomes()["main/after"] == "passed"  # on_failure: continue (default)
    assert h.outcomes()["teardown/td"] == "passed"
    failed = [m for m in h.of("MeasurementTaken") if m.verdict == "fail"]
    assert failed[0].limits == {"unit": "V", "min": 390.0, "max": 410.0}
    assert "420 V" in failed[0].text
    assert safe_called(h) == ALL


def test_on_failure_stop_skips_the_rest(h):
    h.instruments["dmm"].volts = [420.0]
    verdict, _ = h.run("on_failure: stop\n" + MAIN_V)
    assert verdict == "FAIL"
    assert "main/after" not in h.outcomes()
    assert h.outcomes()["teardown/td"] == "passed"


def test_instrument_error_ends_main_with_error(h):
    h.instruments["dmm"].error_at = {1}
    verdict, _ = h.run(MAIN_V)
    assert verdict == "ERROR"
    assert h.outcomes()["main/v"] == "error"
    assert "main/after" not in h.outcomes()
    assert h.outcomes()["teardown/td"] == "passed"
    error = next(e for e in h.of("StepFinished") if e.path == "main/v").error
    assert "DeviceError" in error and "READ?" in error
    assert safe_called(h) == ALL


def test_step_timeout_is_an_error_then_safe_state(h):
    h.instruments["dmm"].delay = 100.0
    verdict, _seq = h.run("""
main:
  - id: slow
    dmm.voltage: {}
    timeout: 2 s
""")
    assert verdict == "ERROR"
    step = next(e for e in h.of("StepFinished") if e.path == "main/slow")
    assert step.outcome == "error" and "2 s" in step.error
    assert step.duration_s == 2.0
    assert safe_called(h) == ALL


def test_monitor_trip_aborts_to_safe_state(h):
    bms = h.instruments["bms"]

    async def main():
        seq = h.sequencer("""
main:
  - id: charge
    monitors:
      - {signal: bms.cell_voltage_max, max: 4.2 V, period: 100 ms}
    steps:
      - station.wait: 60 s
      - id: never
        dmm.voltage: {}
""")
        loop = asyncio.get_running_loop()
        loop.call_at(loop.time() + 10.0, lambda: bms.values.__setitem__("cell_voltage_max", 4.25))
        return await seq.run(), seq

    verdict, _seq = clock.run(main(), virtual=True)
    assert verdict == "ABORTED"
    trip = h.of("MonitorTripped")[0]
    assert trip.signal == "bms.cell_voltage_max" and trip.value == 4.25
    assert 10.0 <= trip.t <= 10.2  # reaction within one period
    assert "main/charge/never" not in h.outcomes()
    assert h.outcomes()["main/charge/station.wait@1"] == "aborted"
    assert "monitor" in h.of("RunFinished")[0].reason
    assert safe_called(h) == ALL


def test_interlock_lost_during_hv_step_aborts(h):
    fixture = h.instruments["fixture"]

    async def main():
        seq = h.sequencer("""
main:
  - bms.insulation_monitor: disable
  - id: iso
    safety.insulation: {pole: HV+, voltage: 500 V, dwell: 30 s}
""")
        loop = asyncio.get_running_loop()
        loop.call_at(loop.time() + 5.0, lambda: fixture.inputs.__setitem__("guard_closed", False))
        return await seq.run()

    assert clock.run(main(), virtual=True) == "ABORTED"
    assert h.outcomes()["main/iso"] == "aborted"
    assert "guard_closed" in h.of("RunFinished")[0].reason
    # the IR relay was released by the action's own cleanup, then everything went safe
    assert ("fixture", "set_output", ("ir_hv_plus", False)) in h.rec.calls
    assert safe_called(h) == ALL


def test_interlock_open_before_hv_step_refuses_it(h):
    h.instruments["fixture"].inputs["estop_released"] = False
    verdict, _ = h.run("""
main:
  - bms.insulation_monitor: disable
  - id: iso
    safety.insulation: {pole: HV+, voltage: 500 V}
""")
    assert verdict == "ABORTED"
    assert "insulation" not in h.rec.names("safety")


def test_operator_abort_mid_step(h):
    async def main():
        seq = h.sequencer("""
main:
  - station.wait: 100 s
  - id: later
    dmm.voltage: {}
teardown:
  - id: td
    fixture.output: {name: lv_power, on: false}
""")
        loop = asyncio.get_running_loop()
        loop.call_at(loop.time() + 3.0, seq.abort, "operator pressed abort")
        return await seq.run()

    assert clock.run(main(), virtual=True) == "ABORTED"
    assert h.outcomes()["main/station.wait@1"] == "aborted"
    assert "main/later" not in h.outcomes()
    assert h.outcomes()["teardown/td"] == "passed"
    assert h.of("RunFinished")[0].reason == "operator: operator pressed abort"
    assert safe_called(h) == ALL


def test_sigint_aborts_through_the_safe_state(h):
    """Ctrl-C (SIGINT) and SIGTERM reach the safe state, never a traceback."""
    for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
        h.rec.calls.clear()

        async def main(sig: signal.Signals = sig):
            seq = h.sequencer("main:\n  - station.wait: 100 s\n")
            loop = asyncio.get_running_loop()
            with StopSignals() as stops:
                stops.attach(seq)
                loop.call_at(loop.time() + 1.0, os.kill, os.getpid(), sig)
                return await seq.run(), seq

        verdict, seq = clock.run(main(), virtual=True)
        assert verdict == "ABORTED"
        assert seq.abort_reason.reason == f"{name} received"
        assert safe_called(h) == ALL


def test_one_failing_safe_state_does_not_stop_the_others(h):
    h.instruments["bms"].safe_error = DeviceError("no answer", instrument="bms", command="standby")
    verdict, _ = h.run(MAIN_V)
    assert verdict == "ERROR"  # the pass cannot stand if the pack may not be safe
    assert safe_called(h) == ALL
    bad = [a for a in h.of("SafeStateAction") if not a.ok]
    assert bad[0].instrument == "bms" and "no answer" in bad[0].error


def test_safe_state_confirms_bus_below_60_v(h):
    h.instruments["dmm"].bus = [400.0, 300.0, 120.0, 30.0]
    verdict, _ = h.run("main:\n  - id: v\n    dmm.voltage: {}\n")
    assert verdict == "PASS"
    confirm = [a for a in h.of("SafeStateAction") if a.instrument == "dmm"][-1]
    assert confirm.ok and "30.0 V < 60 V" in confirm.action


def test_shared_tester_busy_with_another_fixture_is_not_stopped_by_this_ones_safe_state(h):
    """Stopping a shared IR tester mid-test would abort the other fixture's pack; this fixture's
    own relays are what keep its pack away from it."""

    async def main():
        lock = asyncio.Lock()
        await lock.acquire()  # the other fixture is using the tester
        seq = h.sequencer("main:\n  - id: v\n    dmm.voltage: {}\n", locks={"safety": lock})
        return await seq.run()

    assert clock.run(main(), virtual=True) == "PASS"
    assert "safety" not in safe_called(h)
    note = next(a for a in h.of("SafeStateAction") if a.instrument == "safety")
    assert note.ok and "in use by another fixture" in note.action
    assert {"fixture", "cycler"} - {"cycler"} <= safe_called(h)  # the fixture's relays are released


def test_shared_tester_free_at_the_safe_state_is_held_until_it_is_stopped(h):
    """Stopping takes exchanges (SAFE:STOP, then SAFE:STAT?): another fixture must not start a test
    on the shared tester in between, or this stop aborts that pack's test (the 8-pack benchmark
    ended ERROR with '112 STOP' that way)."""
    tester = h.instruments["safety"]

    async def main():
        lock = asyncio.Lock()
        stopping = asyncio.Event()

        async def slow_safe_state():
            h.rec.log("safety", "safe_state")
            stopping.set()
            await tester._use(0.2)  # the stop and its confirmation take time on the wire
            return ["safety stopped"]

        async def other_fixture():
            await stopping.wait()
            async with lock:  # as the engine does for a step on a shared instrument
                await tester._use(5.0)

        tester.safe_state = slow_safe_state
        seq = h.sequencer("main:\n  - id: v\n    dmm.voltage: {}\n", locks={"safety": lock})
        verdict, _ = await asyncio.gather(seq.run(), other_fixture())
        return verdict

    assert clock.run(main(), virtual=True) == "PASS"
    assert "safety" in safe_called(h)  # it was free: this fixture did stop it
    assert tester.max_busy == 1  # and the other fixture's test started only after the stop


def test_shared_tester_just_handed_to_a_waiting_fixture_counts_as_in_use():
    """Between a release and the waiter's next turn the lock is not locked(), yet the tester is
    about to start that fixture's test: the safe state must leave it alone, not wait for it."""
    from station.engine.safe import _in_use

    async def main():
        lock = asyncio.Lock()
        await lock.acquire()
        waiter = asyncio.create_task(lock.acquire())
        await asyncio.sleep(0)  # the waiter queues
        lock.release()
        seen = (lock.locked(), _in_use(lock))
        await waiter
        lock.release()
        return seen, _in_use(lock)

    assert clock.run(main(), virtual=True) == ((False, True), False)



def test_step_names_fill_their_templates_per_loop_item(h):
    _verdict, _ = h.run("""
parameters:
  limit: 410 V
main:
  - id: loop
    for_each: {p: [HV+, HV-]}
    steps:
      - name: "Voltage at ${p} below ${limit}"
        dmm.voltage: {}
      - name: "Shown as written: ${later.voltage}"
        dmm.voltage: {}
  - id: later
    dmm.voltage: {}
""")
    names = [e.name for e in h.of("StepStarted")]
    assert names[:2] == ["Voltage at HV+ below 410 V", "Shown as written: ${later.voltage}"]
    assert names[2] == "Voltage at HV- below 410 V"
