"""The safe state tells the truth and is never cut short (issue: hardware mode as safe as the sim).

- an action the instrument did not acknowledge is recorded unconfirmed, and a run that would
  have passed ends ERROR "safe state not confirmed" naming the instrument;
- every signal after the first, and any abort or cancel once teardown began, is only noted;
- each safe-state action is committed to the store as it completes, so a station killed during
  a slow safe state keeps the actions already done.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3

from drivers.capabilities import SafeAction
from station import clock
from station.results.store import ResultStore
from station.signals import StopSignals
from tests.engine.conftest import Harness

MAIN = "main:\n  - station.wait: 100 s\n"
TEARDOWN = "main:\n  - station.wait: 1 s\nteardown:\n  - id: slow\n    station.wait: 10 s\n  - id: after\n    station.wait: 1 s\n"


def test_an_unacknowledged_action_is_recorded_unconfirmed_and_the_pass_cannot_stand(h: Harness):
    async def silent_bms() -> list[SafeAction]:
        return [SafeAction("requested standby (contactors open)", confirmed=False)]

    h.instruments["bms"].safe_state = silent_bms
    verdict, _ = h.run("main:\n  - station.wait: 1 s\n")
    assert verdict == "ERROR"
    line = next(a for a in h.of("SafeStateAction") if a.instrument == "bms")
    assert line.ok and not line.confirmed
    reason = h.of("RunFinished")[0].reason
    assert reason.startswith("safe state not confirmed") and "bms (requested standby" in reason


def test_confirmed_actions_keep_the_pass(h: Harness):
    async def answering_bms() -> list[SafeAction]:
        return [SafeAction("contactors open (read back)", confirmed=True)]

    h.instruments["bms"].safe_state = answering_bms
    verdict, _ = h.run("main:\n  - station.wait: 1 s\n")
    assert verdict == "PASS"
    assert all(a.confirmed for a in h.of("SafeStateAction"))


def test_an_abort_during_teardown_is_noted_and_cuts_nothing_short(h: Harness):
    async def main():
        seq = h.sequencer(TEARDOWN)
        loop = asyncio.get_running_loop()
        loop.call_at(loop.time() + 5.0, lambda: seq.abort("SIGTERM received", source="signal"))
        return await seq.run()

    verdict = clock.run(main(), virtual=True)
    assert verdict == "PASS"  # main had passed: nothing was cut short
    assert h.outcomes()["teardown/slow"] == "passed" and h.outcomes()["teardown/after"] == "passed"
    notes = [e.message for e in h.of("LogMessage") if "noted" in e.message]
    assert notes and "SIGTERM received" in notes[0]


def test_an_outside_cancel_during_the_safe_state_is_waited_out(h: Harness):
    started = asyncio.Event()

    async def slow_cycler() -> list[SafeAction]:
        started.set()
        await asyncio.sleep(2.0)
        return [SafeAction("output off (OUTP? 0)", confirmed=True)]

    from tests.engine.fakes import FakeInstrument

    cycler = FakeInstrument("cycler", h.rec)
    cycler.safe_state = slow_cycler
    h.instruments["cycler"] = cycler

    async def main():
        seq = h.sequencer("main:\n  - station.wait: 1 s\n")
        task = asyncio.ensure_future(seq.run())
        await started.wait()
        task.cancel()  # e.g. a runner shutting down
        await asyncio.sleep(0)
        return await task

    verdict = clock.run(main(), virtual=True)
    assert verdict == "PASS"
    actions = [(a.instrument, a.action) for a in h.of("SafeStateAction")]
    assert ("cycler", "output off (OUTP? 0)") in actions
    assert any(a.instrument == "dmm" and "confirmed" in a.action for a in h.of("SafeStateAction"))


def test_every_stop_signal_aborts_once_and_later_ones_are_noted(h: Harness):
    for sig in (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT):
        h.events.clear()
        h.rec.calls.clear()

        async def main(sig: signal.Signals = sig):
            seq = h.sequencer(MAIN + "teardown:\n  - id: slow\n    station.wait: 10 s\n")
            loop = asyncio.get_running_loop()
            with StopSignals() as signals:
                signals.attach(seq)
                loop.call_at(loop.time() + 1.0, os.kill, os.getpid(), sig)
                loop.call_at(loop.time() + 1.5, os.kill, os.getpid(), sig)  # during teardown
                loop.call_at(loop.time() + 1.7, os.kill, os.getpid(), signal.SIGTERM)
                return await seq.run(), seq, list(signals.received)

        verdict, seq, received = clock.run(main(), virtual=True)
        name = signal.Signals(sig).name
        assert verdict == "ABORTED", name
        assert seq.abort_reason.reason == f"{name} received"
        assert received == [name, name, "SIGTERM"]
        assert h.outcomes()["teardown/slow"] == "passed", name  # not cancelled by the later signals
        notes = [e.message for e in h.of("LogMessage") if "received again" in e.message]
        assert len(notes) == 2, (name, notes)
        assert {a.instrument for a in h.of("SafeStateAction")} >= {"dmm", "bms", "fixture", "safety"}
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL  # handlers removed after the block


def test_a_signal_before_the_run_is_attached_stops_it_at_once(h: Harness):
    async def main():
        seq = h.sequencer(MAIN)
        with StopSignals() as signals:
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.sleep(0.01)
            signals.attach(seq)
            return await seq.run()

    assert clock.run(main(), virtual=True) == "ABORTED"
    assert h.outcomes() == {}  # no step began
    assert h.of("RunFinished")[0].reason == "signal: SIGHUP received before the run started"
    assert {a.instrument for a in h.of("SafeStateAction")} >= {"dmm", "bms", "fixture", "safety"}


def test_each_safe_state_action_is_in_the_store_before_the_next_begins(h: Harness, tmp_path):
    db = tmp_path / "results.db"
    store = ResultStore(db).open()
    seen_before_cycler: list[int] = []

    async def slow_cycler() -> list[SafeAction]:
        # the safety tester's action (earlier in the order) must already be readable by another
        # connection: a kill -9 here would keep it
        with sqlite3.connect(db) as other:
            seen_before_cycler.append(other.execute("SELECT COUNT(*) FROM safe_actions").fetchone()[0])
        return [SafeAction("output off", confirmed=True)]

    from tests.engine.fakes import FakeInstrument

    cycler = FakeInstrument("cycler", h.rec)
    cycler.safe_state = slow_cycler
    h.instruments["cycler"] = cycler
    try:
        verdict, _ = h.run("main:\n  - station.wait: 1 s\n", critical=[store.handle])
    finally:
        store.close()
    assert verdict == "PASS"
    assert seen_before_cycler == [1]


def test_the_record_says_which_instruments_were_not_confirmed(h: Harness, tmp_path):
    async def silent_leak() -> list[SafeAction]:
        return [SafeAction("STOP sent", confirmed=False)]

    from tests.engine.fakes import FakeInstrument

    leak = FakeInstrument("leak", h.rec)
    leak.safe_state = silent_leak
    h.instruments["leak"] = leak
    store = ResultStore(tmp_path / "r.db").open()
    try:
        _verdict, seq = h.run("main:\n  - station.wait: 1 s\n", critical=[store.handle])
        record = store.record(seq.run_id)
    finally:
        store.close()
    assert record["summary"]["safe_state_confirmed"] is False
    assert record["summary"]["safe_state_unconfirmed"] == ["leak"]
    assert [a["confirmed"] for a in record["safe_state"] if a["instrument"] == "leak"] == [False]
    assert record["verdict"] == "ERROR" and "leak (STOP sent: not acknowledged)" in record["reason"]


def test_a_fixture_with_energy_sources_but_no_dmm_cannot_confirm_the_bus(h: Harness):

    bound = h.bind("main:\n  - station.wait: 1 s\n")
    del h.instruments["dmm"]
    seq = h.build(bound)
    assert clock.run(seq.run(), virtual=True) == "ERROR"
    assert "no DMM on this fixture" in h.of("RunFinished")[0].reason
    assert "bms, safety" in h.of("RunFinished")[0].reason or "safety, bms" in h.of("RunFinished")[0].reason


def test_a_fixture_without_any_energy_source_has_no_bus_to_confirm(h: Harness):
    bound = h.bind("main:\n  - station.wait: 1 s\n")
    h.instruments = {"fixture": h.instruments["fixture"]}
    seq = h.build(bound)
    assert clock.run(seq.run(), virtual=True) == "PASS"
    last = h.of("SafeStateAction")[-1]
    assert last.confirmed and "no bus to confirm" in last.action


def test_what_a_silent_bms_cannot_confirm_is_settled_by_the_independent_bus_reading(h: Harness, tmp_path):
    async def silent_bms() -> list[SafeAction]:
        return [SafeAction("requested standby: BMS silent, not confirmed", False, bus_settles=True),
                SafeAction("insulation monitor enabled: BMS silent, not confirmed", False, bus_settles=True)]

    h.instruments["bms"].safe_state = silent_bms
    store = ResultStore(tmp_path / "r.db").open()
    try:
        verdict, seq = h.run("main:\n  - station.wait: 1 s\n", critical=[store.handle])
        record = store.record(seq.run_id)
    finally:
        store.close()
    assert verdict == "PASS"
    settled = [a.action for a in h.of("SafeStateAction") if a.action.startswith("settled by the independent bus")]
    assert len(settled) == 2 and settled[0].endswith("for: requested standby: BMS silent, not confirmed")
    assert "0.0 V < 60 V" in settled[0]
    assert record["summary"]["safe_state_confirmed"] is True


def test_without_a_bus_reading_nothing_is_settled(h: Harness):
    async def silent_bms() -> list[SafeAction]:
        return [SafeAction("requested standby: BMS silent, not confirmed", False, bus_settles=True)]

    h.instruments["bms"].safe_state = silent_bms
    h.instruments["dmm"].bus = [400.0]  # the bus never falls: nothing settles what the BMS could not say
    verdict, _ = h.run("main:\n  - station.wait: 1 s\n")
    assert verdict == "ERROR"
    reason = h.of("RunFinished")[0].reason
    assert "bms (requested standby: BMS silent, not confirmed: not acknowledged, and the bus is not confirmed" in reason
    assert not [a for a in h.of("SafeStateAction") if a.action.startswith("settled")]
