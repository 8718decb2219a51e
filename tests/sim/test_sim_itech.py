"""The simulated ITECH IT6000C on the wire, driven by a third-party client (pyvisa + pyvisa-py)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
import pyvisa

from sim.instruments.itech_it6000 import SimItechCycler
from sim.pack import PRESETS, Pack
from station.clock import run


class VisaClient:
    """A plain pyvisa session, run in a worker thread because the simulator lives in the loop."""

    def __init__(self, address: str) -> None:
        self.resource = f"TCPIP::127.0.0.1::{address.rsplit(':', 1)[1]}::SOCKET"
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._inst = None

    async def _run(self, func, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, func, *args)

    async def __aenter__(self) -> VisaClient:
        def connect():
            rm = pyvisa.ResourceManager("@py")
            return rm.open_resource(self.resource, read_termination="\n", write_termination="\n", timeout=1000)

        self._inst = await self._run(connect)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._run(self._inst.close)
        self._pool.shutdown(wait=False)

    async def query(self, command: str) -> str:
        return await self._run(self._inst.query, command)

    async def write(self, command: str) -> None:
        await self._run(self._inst.write, command)

    async def errors(self) -> list[str]:
        """Drain SYST:ERR? up to and including the +0 entry."""
        found = []
        while (entry := await self.query("SYST:ERR?")) != '+0,"No error"':
            found.append(entry)
        return found


async def bench(*, contactors: bool = False, **kw):
    pack = Pack(PRESETS["car-400"], seed=3)
    if contactors:
        pack.set_contactor("main_minus", True)
        pack.set_contactor("main_plus", True)
    sim = SimItechCycler(pack, **kw)
    address = await sim.start()
    return pack, sim, address


async def test_identity_and_setpoints_round_trip():
    _, sim, address = await bench()
    try:
        async with VisaClient(address) as c:
            assert await c.query("*IDN?") == "ITECH Ltd., IT6015C-80-450, 800123456789012345, 1.06-1.04"
            await c.write("VOLT 403.2")
            await c.write("SOURce:CURRent -50")
            await c.write("curr:lim 100;CURR:LIM:NEG -120")
            assert await c.query("VOLT?") == "+4.032000E+02"
            assert await c.query("CURR?") == "-5.000000E+01"
            assert await c.query("CURR:LIM?") == "+1.000000E+02"
            assert await c.query("SOUR:CURR:LIM:NEG?") == "-1.200000E+02"
            assert await c.query("OUTP?") == "0"
            assert await c.errors() == []
    finally:
        await sim.stop()


@pytest.mark.parametrize(
    "request_line, error",
    [
        ("FOO:BAR 1", '-113,"Undefined header"'),
        ("VOLTX 10", '-113,"Undefined header"'),
        ("MEAS:VOLT", '-113,"Undefined header"'),  # a query header without "?"
        ("VOLT abc", '-224,"Illegal parameter value for voltage"'),
        ("VOLT 5000", '-222,"Data out of range"'),
        ("CURR:LIM:NEG 10", '-222,"Data out of range"'),
        ("VOLT", '-109,"Missing parameter"'),
        ("OUTP MAYBE", '-224,"Illegal parameter value"'),
    ],
)
async def test_malformed_requests_queue_the_exact_error(request_line, error):
    _, sim, address = await bench()
    try:
        async with VisaClient(address) as c:
            await c.write(request_line)
            assert await c.errors() == [error]
            assert await c.query("VOLT?") == "+0.000000E+00"  # nothing changed
    finally:
        await sim.stop()


async def test_measurements_and_ah_counter_follow_the_pack():
    pack, sim, address = await bench(contactors=True)
    try:
        async with VisaClient(address) as c:
            volts = float(await c.query("MEAS:VOLT?"))
            assert volts == pytest.approx(pack.pack_voltage(), abs=0.01) and 300 < volts < 420
            assert float(await c.query("MEAS:CURR?")) == 0.0
            await c.write(f"VOLT {volts + 30:.1f};CURR 50;OUTP ON")
            await asyncio.sleep(0.2)
            assert float(await c.query("MEAS:CURR?")) == pytest.approx(50.0)
            assert float(await c.query("FETC:POW?")) == pytest.approx(50 * float(await c.query("FETC:VOLT?")), rel=1e-3)
            assert float(await c.query("FETC:AH?")) > 0
            await c.write("SENS:AH:RES")
            assert float(await c.query("FETC:AH?")) < 1e-3
            await c.write("*RST")
            assert await c.query("OUTP?") == "0"
            assert await c.errors() == []
    finally:
        await sim.stop()


async def test_ovp_trips_latches_and_clears():
    # Contactors open: the source alone drives the DC link up to its setpoint, past OVP.
    _, sim, address = await bench()
    try:
        async with VisaClient(address) as c:
            await c.write("VOLT:PROT 100;VOLT 200;OUTP ON")
            await asyncio.sleep(0.3)
            assert await c.query("STAT:QUES:COND?") == "1"
            assert await c.query("OUTP?") == "0"
            await c.write("OUTP ON")
            assert await c.errors() == ['-221,"Settings conflict"']
            await c.write("PROT:CLE")
            assert await c.query("STAT:QUES:COND?") == "0"
            assert await c.query("OUTP?") == "0"  # clearing never switches the output back on
            await c.write("VOLT 50;OUTP ON")
            await asyncio.sleep(0.3)
            assert (await c.query("OUTP?"), await c.query("STAT:QUES:COND?")) == ("1", "0")
    finally:
        await sim.stop()


async def test_ocp_trips_on_a_reading():
    pack, sim, address = await bench(contactors=True)
    try:
        async with VisaClient(address) as c:
            await c.write(f"CURR:PROT 40;VOLT {pack.pack_voltage() + 30:.0f};CURR 60;OUTP ON")
            await c.query("MEAS:CURR?")
            assert await c.query("STAT:QUES:COND?") == "2"
            assert await c.query("OUTP?") == "0"
    finally:
        await sim.stop()


def test_injected_otp_and_scheduled_trip_on_virtual_time():
    async def main():
        _, sim, address = await bench()
        loop = asyncio.get_running_loop()
        try:
            async with VisaClient(address) as c:
                await c.write("VOLT 10;OUTP ON")
                sim.trip("OTP")
                first = (await c.query("STAT:QUES:COND?"), await c.query("OUTP?"))
                await c.write("PROT:CLE;OUTP ON")
                sim.trip_at(loop.time() + 3.0, "OTP")
                await asyncio.sleep(2.0)
                before = await c.query("OUTP?")
                await asyncio.sleep(2.0)
                after = (await c.query("STAT:QUES:COND?"), await c.query("OUTP?"))
                return first, before, after
        finally:
            await sim.stop()

    first, before, after = run(main(), virtual=True)
    assert first == ("16", "0")
    assert before == "1"
    assert after == ("16", "0")
    with pytest.raises(ValueError, match="unknown protection"):
        SimItechCycler(object()).trip("SMOKE")


def test_watchdog_trips_when_commands_stop_and_can_be_disabled():
    async def main():
        _, sim, address = await bench(watchdog_s=5.0)
        try:
            async with VisaClient(address) as c:
                seen = []
                await c.write("VOLT 10;OUTP ON")
                for _ in range(4):  # fed every 4.5 s: stays on for 18 s
                    await asyncio.sleep(4.5)
                    seen.append(await c.query("OUTP?"))
                await asyncio.sleep(5.5)
                seen.append(await c.query("STAT:QUES:COND?"))
                seen.append(await c.query("OUTP?"))
                await c.write("PROT:CLE;SYST:WDOG 0;OUTP ON")
                await asyncio.sleep(60)
                seen.append(await c.query("OUTP?"))
                await c.write("SYST:WDOG 2")
                await asyncio.sleep(2.5)
                seen.append(await c.query("STAT:QUES:COND?"))
                seen.append(await c.query("SYST:WDOG?"))
                return seen
        finally:
            await sim.stop()

    assert run(main(), virtual=True) == ["1", "1", "1", "1", "2048", "0", "1", "2048", "+2.000000E+00"]


def test_supervisor_trips_ovp_with_no_command_arriving():
    async def main():
        _, sim, address = await bench(check_period=1.0)
        try:
            async with VisaClient(address) as c:
                await c.write("VOLT:PROT 100;VOLT 200;OUTP ON")
                await asyncio.sleep(1.5)  # no command in between: only the supervisor can see it
                return set(sim.trips), sim.output
        finally:
            await sim.stop()

    assert run(main(), virtual=True) == ({"OVP"}, False)
