"""Modbus cycler contract: ModbusCycler over ModbusTransport against SimModbusCycler on loopback,
on the real pack model and virtual time."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from drivers.capabilities import Cycler, SafeAction
from drivers.cycler.modbus_cycler import ModbusCycler
from drivers.errors import ConnectError, DeviceError, InstrumentTimeout, ProtocolError, RangeError
from sim.instruments.modbus_cycler import SimModbusCycler
from sim.pack.model import Pack
from sim.pack.presets import PRESETS
from station.clock import run

DUE = dt.date(2027, 6, 30)


def on_bench(body, *, timeout: float = 1.0):
    """Run ``body(driver, peer, pack)`` with the driver open, on virtual loop time."""

    async def main():
        pack = Pack(PRESETS["car-400"], seed=5)
        pack.set_contactor("main_minus", True)
        pack.set_contactor("main_plus", True)
        peer = SimModbusCycler(pack)
        address = await peer.start()
        driver = ModbusCycler("cycler", f"modbus-tcp://{address}?unit=1", timeout=timeout,
                              calibration_due=DUE, options={"maker": "EOL-Sim"})
        try:
            async with driver:
                return await body(driver, peer, pack)
        finally:
            await peer.stop()

    return run(main(), virtual=True)


def test_identify():
    async def body(drv, peer, pack):
        assert isinstance(drv, Cycler)
        return await drv.identify()

    ident = on_bench(body)
    assert (ident.maker, ident.serial, ident.firmware, ident.calibration_due) == ("EOL-Sim", "520001", "1.3", DUE)


def test_charge_then_discharge_follow_the_sign_convention():
    async def body(drv, peer, pack):
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
        return v0, charge, await drv.measure()

    v0, charge, discharge = on_bench(body)
    assert charge.current == pytest.approx(80, rel=1e-3)
    assert charge.voltage > v0 and charge.power == pytest.approx(charge.voltage * 80, rel=1e-3)
    assert 0 < charge.ah < 80 * 3 / 3600
    assert discharge.current == pytest.approx(-60, rel=1e-3) and discharge.power < 0


def test_limits_clamp_the_current():
    async def body(drv, peer, pack):
        await drv.set_current_limits(30, 20)
        await drv.set_voltage(pack.pack_voltage() + 40)
        await drv.set_current(100)
        await drv.set_output(True)
        await asyncio.sleep(1)
        return (await drv.measure()).current

    assert on_bench(body) == pytest.approx(30, rel=1e-3)


def test_protection_trip_refuses_output_until_cleared():
    async def body(drv, peer, pack):
        await drv.set_voltage(pack.pack_voltage() + 10)
        await drv.set_output(True)
        healthy = await drv.protection()
        peer.trip("OTP")
        tripped = await drv.protection()
        with pytest.raises(DeviceError) as refused:
            await drv.set_output(True)
        await drv.clear_protection()
        cleared = await drv.protection()
        await drv.set_output(True)
        return healthy, tripped, refused.value.code, cleared, peer.output

    assert on_bench(body) == (frozenset(), frozenset({"OTP"}), 3, frozenset(), True)


def test_watchdog_trips_when_the_station_goes_quiet():
    async def body(drv, peer, pack):
        await drv.set_current_limits(50, 50)
        await drv.set_voltage(pack.pack_voltage() + 20)
        await drv.set_current(20)
        await drv.set_watchdog(2.0)
        await drv.set_output(True)
        await asyncio.sleep(1.5)
        alive = await drv.protection()
        await asyncio.sleep(2.5)
        return alive, await drv.protection(), (await drv.measure()).current

    alive, tripped, amps = on_bench(body)
    assert alive == frozenset() and tripped == frozenset({"WDT"})
    assert abs(amps) < 1.0


def test_safe_state_is_idempotent_and_stops_the_current():
    async def body(drv, peer, pack):
        await drv.set_current_limits(100, 100)
        await drv.set_voltage(pack.pack_voltage() + 20)
        await drv.set_current(50)
        await drv.set_output(True)
        await asyncio.sleep(0.5)
        first = await drv.safe_state()
        second = await drv.safe_state()
        await asyncio.sleep(0.5)
        return first, second, peer.output, peer.values["current_setpoint"], (await drv.measure()).current

    first, second, output, setpoint, amps = on_bench(body)
    assert first == second == [SafeAction("output off (read back off)", True),
                               SafeAction("current setpoint 0 A (write acknowledged)", True)]
    assert (output, setpoint) == (False, 0.0) and abs(amps) < 1.0


def test_out_of_range_sends_nothing():
    async def body(drv, peer, pack):
        before = peer.requests
        with pytest.raises(RangeError):
            await drv.set_voltage(5000)
        with pytest.raises(RangeError):
            await drv.set_current_limits(10, 700)
        return peer.requests - before, peer.values["charge_current_limit"]

    assert on_bench(body) == (0, 0)


@pytest.mark.parametrize("behaviour", ["hang", "garbage"])
def test_silent_or_noisy_peer_times_out_within_the_timeout(behaviour):
    async def body(drv, peer, pack):
        peer.behaviour = behaviour
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises((InstrumentTimeout, ProtocolError)):
            await drv.measure()
        return loop.time() - t0

    assert on_bench(body, timeout=0.5) <= 0.6


def test_stopped_peer_is_connect_error_or_timeout():
    async def body(drv, peer, pack):
        await peer.stop()
        await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises((ConnectError, InstrumentTimeout)):
            await drv.protection()
        return loop.time() - t0

    assert on_bench(body, timeout=0.5) <= 0.6
