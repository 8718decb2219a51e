"""Watchers on the loop clock: the interlock poll over the real Modbus path (sim PLC, ModbusFixture,
our TCP client) and the signal monitors: their grid, their trips and reasons, and that ``stop``
leaves nothing running, whatever state the watcher is in."""

from __future__ import annotations

import asyncio
import types

import pytest

from drivers.errors import ConnectError, InstrumentTimeout
from drivers.fixture.modbus_fixture import ModbusFixture
from sim.instruments.fixture_plc import SimFixturePlc
from sim.pack.model import Pack
from sim.pack.presets import PRESETS
from sim.wiring import Wiring
from station import clock
from station.engine import monitors as mon

PERIOD = 0.05  # s
GUARDS = ["estop_released", "guard_closed"]


class Seq(mon.Watchers):
    """A run's watchers whose events and aborts are recorded with their loop time in ``trips``."""

    def __init__(self, instruments: dict, period: float = PERIOD) -> None:
        self.trips: list[tuple] = []
        super().__init__(instruments, emit=self._record, abort=self._aborted, interlock_period=period)

    def _record(self, cls, **fields) -> None:
        self.trips.append((asyncio.get_running_loop().time(), cls.__name__, fields))

    def _aborted(self, reason: str, *, source: str = "operator") -> None:
        self.trips.append((asyncio.get_running_loop().time(), "abort", source, reason))


class Plc(SimFixturePlc):
    """Records the loop time of every request it serves."""

    def __init__(self) -> None:
        super().__init__(Pack(PRESETS["car-400"]), Wiring(lv_power=True))
        self.times: list[float] = []

    def on_request(self) -> None:
        self.times.append(asyncio.get_running_loop().time())


def on_bench(body, *, timeout: float = 0.5):
    """Run ``body(plc, fixture, seq)`` on virtual time against a simulated PLC."""

    async def main():
        plc = Plc()
        fixture = ModbusFixture("fixture", f"modbus-tcp://{await plc.start()}", timeout=timeout)
        await fixture.open()
        try:
            return await body(plc, fixture, Seq({"fixture": fixture}))
        finally:
            await fixture.close()
            await plc.stop()

    return clock.run(main(), virtual=True)


def test_the_poll_runs_on_the_grid_from_callbacks_and_stop_ends_it():
    async def body(plc, fixture, seq):
        loop = asyncio.get_running_loop()
        tasks = len(asyncio.all_tasks())
        t0 = loop.time()
        watcher = seq.interlocks(GUARDS, "main/hv")
        assert type(watcher.poll).__name__ == "InputPoll"  # the driver's task-free read
        assert seq.claims == {"main/hv": frozenset(GUARDS)}
        assert seq.interlocks(["guard_closed"], "main/hv/inner") is None  # covered
        await asyncio.sleep(1.0 + 1e-6)
        busy = len(asyncio.all_tasks())
        await mon.stop([watcher])
        served = plc.requests
        await asyncio.sleep(1.0)
        return t0, tasks, busy, seq, plc.times, served, plc.requests

    t0, tasks, busy, seq, times, served, after = on_bench(body)
    assert busy == tasks  # no task per watcher, none per poll
    assert times == pytest.approx([t0 + k * PERIOD for k in range(1, 21)], abs=1e-9)
    assert after == served == 20  # nothing after stop
    assert seq.trips == [] and seq.claims == {}


def test_an_interlock_opening_trips_at_the_next_poll_and_polling_ends():
    async def body(plc, fixture, seq):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        loop.call_at(t0 + 0.123, setattr, plc.wiring, "guard_open", True)
        watcher = seq.interlocks(GUARDS, "main/hv")
        await asyncio.sleep(0.5)
        served = plc.requests
        await mon.stop([watcher])
        await mon.stop([watcher])  # idempotent
        return t0, seq, served, plc.times

    t0, seq, served, times = on_bench(body)
    (t, kind, fields), abort = seq.trips
    assert kind == "MonitorTripped" and t == pytest.approx(t0 + 0.15)
    assert fields == {"path": "main/hv", "signal": "fixture.guard_closed", "value": 0.0, "limit": "interlock closed"}
    assert abort[1:] == ("abort", "interlock", "fixture.guard_closed = 0 violates interlock closed")
    assert served == 3 and times[-1] == pytest.approx(t0 + 0.15)  # no poll after the trip
    assert seq.claims == {}


def test_no_reply_trips_after_the_transport_timeout():
    async def body(plc, fixture, seq):
        t0 = asyncio.get_running_loop().time()
        plc.behaviour = "hang"
        watcher = seq.interlocks(GUARDS, "main/hv")
        await asyncio.sleep(1.0)
        await mon.stop([watcher])
        return t0, seq, plc.requests

    t0, seq, requests = on_bench(body, timeout=0.25)
    (t, _kind, fields), abort = seq.trips
    assert t == pytest.approx(t0 + PERIOD + 0.25) and fields["signal"] == "fixture"
    assert fields["limit"].startswith("fixture unreachable (fixture: no reply within 0.25 s")
    assert abort[2] == "interlock" and "fixture unreachable (" in abort[3]
    assert requests == 0  # hang: the requests reach the device, none is served


def test_a_lost_connection_trips_at_the_next_poll():
    async def body(plc, fixture, seq):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        watcher = seq.interlocks(GUARDS, "main/hv")
        await asyncio.sleep(0.12)
        await plc.stop()  # drops the connection
        await asyncio.sleep(0.5)
        await mon.stop([watcher])
        return t0, seq

    t0, seq = on_bench(body)
    (t, _kind, fields), _abort = seq.trips
    assert t == pytest.approx(t0 + 0.15)
    assert "fixture unreachable (fixture: connection lost" in fields["limit"]


def test_stop_while_a_read_is_in_flight_gives_the_link_back_at_once():
    async def body(plc, fixture, seq):
        loop = asyncio.get_running_loop()
        plc.behaviour = "hang"
        watcher = seq.interlocks(GUARDS, "main/hv")
        await asyncio.sleep(PERIOD + 0.01)  # the first poll is in flight, unanswered
        await mon.stop([watcher])
        plc.behaviour = "normal"
        t = loop.time()
        inputs = await fixture.read_inputs()  # not queued behind the abandoned poll
        waited = loop.time() - t
        await asyncio.sleep(1.0)  # past the abandoned poll's timeout: no trip, no callback
        return inputs, waited, seq, plc.requests

    inputs, waited, seq, requests = on_bench(body)
    assert inputs["guard_closed"] is True and waited == 0.0
    assert seq.trips == [] and requests == 1 and seq.claims == {}


def test_a_stopped_watcher_does_not_undo_a_newer_claim():
    async def body(plc, fixture, seq):
        first = seq.interlocks(["guard_closed"], "main/a")
        await mon.stop([first])
        second = seq.interlocks(GUARDS, "main/b")
        await mon.stop([first])  # late second stop of the first: no effect
        claimed = dict(seq.claims)
        await mon.stop([second])
        return claimed, seq.claims

    claimed, after = on_bench(body)
    assert claimed == {"main/b": frozenset(GUARDS)} and after == {}


def test_a_sibling_is_not_covered_and_keeps_polling_after_the_first_ends():
    """Parallel HV steps: each polls; the first one ending must not leave the other unwatched."""
    async def body(plc, fixture, seq):
        loop = asyncio.get_running_loop()
        first = seq.interlocks(GUARDS, "main/par/a")
        second = seq.interlocks(GUARDS, "main/par/b")
        await asyncio.sleep(0.3)
        await mon.stop([first])
        t = loop.time()
        loop.call_at(t + 0.2, setattr, plc.wiring, "guard_open", True)
        await asyncio.sleep(0.5)
        await mon.stop([second])
        return first, second, t, seq

    first, second, t, seq = on_bench(body)
    assert first is not None and second is not None
    (when, kind, fields), _abort = seq.trips
    assert kind == "MonitorTripped" and fields["path"] == "main/par/b"
    assert t + 0.2 - 1e-9 <= when <= t + 0.2 + PERIOD + 1e-9


# -- fixtures without a task-free read: one task per read -------------------------------------
class SlowFixture:
    """``read_inputs`` takes ``delay`` s, or raises ``error``."""

    def __init__(self, delay: float = 0.0, error: Exception | None = None) -> None:
        self.delay, self.error, self.reads, self.cancelled = delay, error, 0, 0

    async def read_inputs(self) -> dict[str, bool]:
        self.reads += 1
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.error is not None:
            raise self.error
        return {"estop_released": True, "guard_closed": True}


def test_a_fixture_without_input_poll_is_polled_through_tasks_and_stop_cancels_the_read():
    fixture = SlowFixture(delay=0.03)

    async def main():
        seq = Seq({"fixture": fixture})
        watcher = seq.interlocks(GUARDS, "main/hv")
        await asyncio.sleep(0.5 + 0.06)  # polls at 0.05, 0.10 (after each read's 30 ms), ...; one in flight
        await mon.stop([watcher])
        await asyncio.sleep(0.5)
        return seq, {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}

    seq, left = clock.run(main(), virtual=True)
    assert seq.trips == [] and not left
    assert fixture.reads == 11 and fixture.cancelled == 1


def test_a_fixture_error_through_a_task_trips_as_unreachable():
    fixture = SlowFixture(error=InstrumentTimeout("no reply within 2 s", instrument="fixture"))

    async def main():
        seq = Seq({"fixture": fixture})
        watcher = seq.interlocks(GUARDS, "main/hv")
        await asyncio.sleep(0.2)
        await mon.stop([watcher])
        return seq

    seq = clock.run(main(), virtual=True)
    (_t, _kind, fields), _abort = seq.trips
    assert fields["limit"] == "fixture unreachable (fixture: no reply within 2 s)"
    assert fixture.reads == 1


# -- signal monitors ---------------------------------------------------------------------------
class Bms:
    """``signal()`` answers ``values[name]`` (raises it if an exception) and records when asked."""

    def __init__(self, **values) -> None:
        self.values, self.asked = values, []

    def signal(self, name: str) -> float:
        self.asked.append(asyncio.get_running_loop().time())
        value = self.values[name]
        if isinstance(value, Exception):
            raise value
        return value


def group(*monitors) -> types.SimpleNamespace:
    return types.SimpleNamespace(monitors=[types.SimpleNamespace(signal=s, min=lo, max=hi, period=p)
                                           for s, lo, hi, p in monitors],
                                 step=types.SimpleNamespace(requires=[]))


def watch_signals(bms, node, *, change=None, until: float = 1.0):
    """Start ``node``'s monitors, apply ``change(bms)`` at 0.42 s, stop at ``until``; return
    (t0, checks right after start, after one iteration, seq)."""

    async def main():
        loop = asyncio.get_running_loop()
        seq = Seq({"bms": bms})
        t0 = loop.time()
        if change is not None:
            loop.call_at(t0 + 0.42, change, bms)
        watchers = seq.start(node, {}, "main/g")
        at_start = len(bms.asked)
        await asyncio.sleep(0)
        first = len(bms.asked)
        await asyncio.sleep(until - 1e-6)
        await mon.stop(watchers)
        await asyncio.sleep(1.0)
        return t0, at_start, first, seq

    return clock.run(main(), virtual=True)


def test_signal_checks_start_in_the_next_iteration_then_run_on_the_grid_until_stop():
    bms = Bms(cell_voltage_max=3.9)
    t0, at_start, first, seq = watch_signals(bms, group(("bms.cell_voltage_max", None, "4.2 V", "100 ms")))
    assert (at_start, first) == (0, 1)
    assert bms.asked == pytest.approx([t0 + k * 0.1 for k in range(10)], abs=1e-9)  # none after stop
    assert seq.trips == []


@pytest.mark.parametrize("change, reason", [
    (lambda b: b.values.__setitem__("v", 4.25), "bms.v = 4.25 violates max 4.2 V"),
    (lambda b: b.values.__setitem__("t", -1.0), "bms.t = -1 violates min 0"),
    (lambda b: b.values.__setitem__("v", ConnectError("stale for 0.5 s", instrument="bms")),
     "bms.v = nan violates signal lost (bms: stale for 0.5 s)"),
])
def test_a_signal_out_of_limits_or_lost_trips_at_the_next_check(change, reason):
    bms = Bms(v=3.9, t=25.0)
    t0, _, _, seq = watch_signals(bms, group(("bms.v", None, "4.2 V", "50 ms"), ("bms.t", 0, None, None)),
                                  change=change)
    (t, kind, _fields), abort = seq.trips
    assert kind == "MonitorTripped" and t == pytest.approx(t0 + 0.45)
    assert abort[2:] == ("monitor", reason)
    assert bms.asked[-1] == pytest.approx(t0 + 0.45)  # no check after the trip


def test_a_signal_of_an_instrument_without_signals_trips_unavailable():
    _t0, _, _, seq = watch_signals(Bms(), group(("dmm.v", None, "1 V", None)))
    assert seq.trips[-1][2:] == ("monitor", "dmm.v = nan violates signal unavailable")
