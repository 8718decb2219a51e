"""Cycler contract: each real driver, over its real transport, against its simulated peer.

Add an implementation by adding a bench factory to ``BENCHES``: it starts the simulated peer on
loopback for ``pack`` and returns a ``Bench``. Test bodies get ``(driver, bench, pack)``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from drivers.capabilities import Cycler, Identity, SafeAction
from drivers.cycler.itech_it6000 import ItechIT6000
from drivers.errors import DeviceError, InstrumentTimeout, ProtocolError, RangeError
from sim.instruments.itech_it6000 import SimItechCycler
from sim.pack import PRESETS, Pack
from station.clock import run

DUE = dt.date(2027, 6, 30)


@dataclass
class Bench:
    driver: Cycler
    peer: Any  # offers trip(kind) and a ``behaviour`` fault switch
    sent: Callable[[], int]  # requests the peer has received so far
    faults: frozenset[str]  # behaviours the peer supports
    watchdog_by_default: bool  # a control watchdog is armed once the driver is open


async def itech_bench(pack: Pack, timeout: float) -> Bench:
    peer = SimItechCycler(pack)
    port = (await peer.start()).rsplit(":", 1)[1]
    driver = ItechIT6000("cycler", f"TCPIP::127.0.0.1::{port}::SOCKET", timeout=timeout, calibration_due=DUE)
    return Bench(driver, peer, lambda: len(peer.received), frozenset({"hang", "garbage"}), True)


async def modbus_bench(pack: Pack, timeout: float) -> Bench:
    from drivers.cycler.modbus_cycler import ModbusCycler
    from sim.instruments.modbus_cycler import SimModbusCycler

    peer = SimModbusCycler(pack)
    port = (await peer.start()).rsplit(":", 1)[1]
    driver = ModbusCycler("cycler", f"modbus-tcp://127.0.0.1:{port}?unit=1", timeout=timeout, calibration_due=DUE)
    return Bench(driver, peer, lambda: peer.requests, frozenset({"hang"}), True)


BENCHES = {"itech_it6000": itech_bench, "modbus_cycler": modbus_bench}


@pytest.fixture(params=sorted(BENCHES))
def bench(request):
    return BENCHES[request.param]


def live_pack() -> Pack:
    """car-400 with its contactors closed, so the cycler reaches the cells."""
    pack = Pack(PRESETS["car-400"], seed=5)
    pack.set_contactor("main_minus", True)
    pack.set_contactor("main_plus", True)
    return pack


def on_bench(bench, body, *, timeout: float = 1.0, virtual: bool = True):
    """Run ``body(driver, bench, pack)`` with the driver open, on (virtual) loop time."""

    async def main():
        pack = live_pack()
        b = await bench(pack, timeout)
        try:
            async with b.driver:
                return await body(b.driver, b, pack)
        finally:
            await b.peer.stop()

    return run(main(), virtual=virtual)


def test_identify(bench):
    async def body(drv, b, pack):
        assert isinstance(drv, Cycler)
        return await drv.identify()

    ident = on_bench(bench, body)
    assert isinstance(ident, Identity) and ident.serial and ident.firmware
    assert ident.calibration_due == DUE


def test_charge_and_discharge_follow_the_sign_convention(bench):
    async def body(drv, b, pack):
        v0 = pack.pack_voltage()
        await drv.set_current_limits(200, 200)
        await drv.set_voltage(v0 + 40)
        await drv.set_current(80)
        await drv.reset_counters()
        await drv.set_output(True)
        await asyncio.sleep(2)
        charge = await drv.measure()
        await drv.set_voltage(v0 - 40)
        await drv.set_current(-60)
        await asyncio.sleep(2)
        discharge = await drv.measure()
        return v0, charge, discharge

    v0, charge, discharge = on_bench(bench, body)
    assert charge.current == pytest.approx(80, rel=1e-3)
    assert charge.voltage > v0 and charge.power == pytest.approx(charge.voltage * 80, rel=1e-3)
    assert 0 < charge.ah < 80 * 3 / 3600
    assert discharge.current == pytest.approx(-60, rel=1e-3)
    assert discharge.voltage < v0 and discharge.power < 0


def test_limits_clamp_the_current(bench):
    async def body(drv, b, pack):
        await drv.set_current_limits(30, 20)
        await drv.set_voltage(pack.pack_voltage() + 40)
        await drv.set_current(100)
        await drv.set_output(True)
        await asyncio.sleep(1)
        return (await drv.measure()).current

    assert on_bench(bench, body) == pytest.approx(30, rel=1e-3)


def test_protection_trip_reports_latches_and_clears(bench):
    async def body(drv, b, pack):
        await drv.set_current_limits(50, 50)
        await drv.set_voltage(pack.pack_voltage() + 10)
        await drv.set_output(True)
        healthy = await drv.protection()
        b.peer.trip("OTP")
        tripped = await drv.protection()
        with pytest.raises(DeviceError) as refused:  # latched: output stays off
            await drv.set_output(True)
        await drv.clear_protection()
        cleared = await drv.protection()
        await drv.set_output(True)
        return healthy, tripped, refused.value, cleared

    healthy, tripped, refused, cleared = on_bench(bench, body)
    assert (healthy, tripped, cleared) == (frozenset(), frozenset({"OTP"}), frozenset())
    assert refused.instrument == "cycler" and refused.command and refused.command in str(refused)


def test_measure_and_protection_agrees_with_the_separate_calls(bench):
    async def body(drv, b, pack):
        await drv.set_current_limits(50, 50)
        await drv.set_voltage(pack.pack_voltage() + 10)
        await drv.set_current(20)
        await drv.set_output(True)
        await asyncio.sleep(2)
        both = await drv.measure_and_protection()
        apart = (await drv.measure(), await drv.protection())
        b.peer.trip("OCP")
        return both, apart, (await drv.measure_and_protection())[1]

    (reading, trips), (apart_reading, apart_trips), tripped = on_bench(bench, body)
    assert trips == apart_trips == frozenset() and tripped == frozenset({"OCP"})
    assert reading.current == pytest.approx(20, rel=1e-3) == apart_reading.current
    assert reading.voltage == pytest.approx(apart_reading.voltage, abs=0.01)


def test_watchdog_trips_when_the_host_goes_quiet(bench):
    async def body(drv, b, pack):
        if not b.watchdog_by_default:
            pytest.skip("this cycler's watchdog is off until configured")
        await drv.set_current_limits(50, 50)
        await drv.set_voltage(pack.pack_voltage() + 10)
        await drv.set_current(10)
        await drv.set_output(True)
        on = await drv.energy_state()
        await asyncio.sleep(30)
        return on, await drv.protection(), (await drv.measure()).current

    on, trips, amps = on_bench(bench, body)
    assert "WDT" in trips and amps == 0.0
    assert [(f.what, f.safe) for f in on] == [("output", False), ("current", False), ("protection", True)]


def test_a_latched_watchdog_is_reported_refuses_the_output_and_clears(bench):
    """Armed at open() (5 s by default): quiet for longer, the source stops itself and latches
    WDT; energy_state names it; the output is refused until clear_protection()."""

    async def body(drv, b, pack):
        await drv.set_current_limits(50, 50)
        await drv.set_voltage(pack.pack_voltage() + 10)
        await drv.set_current(10)
        await drv.set_output(True)
        await asyncio.sleep(6)
        latched = await drv.energy_state()
        with pytest.raises(DeviceError):
            await drv.set_output(True)
        await drv.clear_protection()
        cleared = await drv.energy_state()
        await drv.set_output(True)  # works again
        await drv.set_output(False)
        return latched, cleared

    latched, cleared = on_bench(bench, body)
    by_what = {f.what: f for f in latched}
    assert by_what["output"].safe and by_what["current"].safe  # the watchdog switched it off
    assert by_what["protection"].latched == ("WDT",) and not by_what["protection"].safe
    assert all(f.safe for f in cleared)


def test_safe_state_is_idempotent_and_stops_the_current(bench):
    async def body(drv, b, pack):
        await drv.set_current_limits(100, 100)
        await drv.set_voltage(pack.pack_voltage() + 20)
        await drv.set_current(50)
        await drv.set_output(True)
        await asyncio.sleep(1)
        before = (await drv.measure()).current
        first = await drv.safe_state()
        second = await drv.safe_state()
        return before, first, second, (await drv.measure()).current

    before, first, second, after = on_bench(bench, body)
    assert before == pytest.approx(50, rel=1e-3) and after == 0.0
    assert first == second and len(first) >= 1 and all(isinstance(a, SafeAction) and a.confirmed for a in first)


def test_out_of_range_is_refused_before_any_byte(bench):
    async def body(drv, b, pack):
        sent = b.sent()
        for call in (lambda: drv.set_voltage(1e4), lambda: drv.set_current(-1e4), lambda: drv.set_current_limits(-1, 5)):
            with pytest.raises(RangeError, match="cycler"):
                await call()
        return b.sent() - sent

    assert on_bench(bench, body) == 0


@pytest.mark.parametrize("behaviour, error", [("hang", InstrumentTimeout), ("garbage", ProtocolError)])
def test_faulty_peer_raises_typed_error_naming_the_command(bench, behaviour, error):
    async def body(drv, b, pack):
        if behaviour not in b.faults:
            pytest.skip(f"this peer has no {behaviour!r} fault mode")
        b.peer.behaviour = behaviour
        start = time.monotonic()
        with pytest.raises(error) as info:
            await drv.measure()
        return info.value, time.monotonic() - start

    exc, took = on_bench(bench, body, timeout=0.3, virtual=False)
    assert exc.instrument == "cycler" and exc.command and exc.command in str(exc)
    assert took < 0.3 + 0.3


def test_ten_minute_charge_on_virtual_time(bench):
    """10 simulated minutes at 100 A, polled every 3 s through the wire, on virtual time."""

    async def body(drv, b, pack):
        loop = asyncio.get_running_loop()
        await drv.set_current_limits(150, 150)
        await drv.set_voltage(4.2 * pack.spec.series)
        await drv.set_current(100)
        await drv.reset_counters()
        await drv.set_output(True)
        t0 = loop.time()
        reading = await drv.measure()
        while loop.time() - t0 < 600:
            await asyncio.sleep(3)
            reading = await drv.measure()
            assert reading.current == pytest.approx(100, rel=1e-3), reading
        await drv.set_output(False)
        return reading, loop.time() - t0

    start = time.monotonic()
    reading, elapsed = on_bench(bench, body)
    wall = time.monotonic() - start
    # Virtual time, not a speed figure (bench/ measures speed): 600 s must not take anything
    # like 600 s. ~0.6 s on a quiet machine; the bound leaves room for a loaded CI runner.
    assert wall < 30.0
    assert reading.ah == pytest.approx(100 * 600 / 3600, rel=0.01)
    assert reading.ah == pytest.approx(100 * elapsed / 3600, rel=0.01)
