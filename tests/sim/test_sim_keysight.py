"""The simulated Keysight 34465A on the wire, driven by a third-party client (pyvisa + pyvisa-py)."""

from __future__ import annotations

import asyncio
import re
import statistics
from concurrent.futures import ThreadPoolExecutor

import pytest
import pyvisa

from sim.instruments.keysight_34465a import SimKeysightDmm
from sim.pack import PRESETS, Pack
from station.clock import run

READING = re.compile(r"^[+-]\d\.\d{8}E[+-]\d{2}$")


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
            return rm.open_resource(self.resource, read_termination="\n", write_termination="\n", timeout=3000)

        self._inst = await self._run(connect)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._run(self._inst.close)
        self._pool.shutdown(wait=False)

    async def query(self, command: str) -> str:
        return await self._run(self._inst.query, command)

    async def write(self, command: str) -> None:
        await self._run(self._inst.write, command)


async def bench(seed: int = 0, *, live: bool = True):
    pack = Pack(PRESETS["car-400"], seed=1)
    if live:  # contactors closed: the connector shows the pack voltage
        pack.set_contactor("main_minus", True)
        pack.set_contactor("main_plus", True)
    sim = SimKeysightDmm(pack, seed=seed)
    return pack, sim, await sim.start()


async def readings(address: str, setup: str, n: int) -> list[str]:
    async with VisaClient(address) as c:
        await c.write(setup)
        return [await c.query("READ?") for _ in range(n)]


async def test_identity_and_reading_format():
    pack, sim, address = await bench()
    try:
        async with VisaClient(address) as c:
            assert re.fullmatch(r"Keysight Technologies,34465A,MY\d+,[\w.-]+", await c.query("*IDN?"))
            await c.write("CONF:VOLT:DC 1000")
            await c.write("VOLT:DC:NPLC 1")
            assert await c.query("VOLT:DC:NPLC?") == "+1.00000000E+00"
            reply = await c.query("READ?")
            assert READING.match(reply), reply
            assert float(reply) == pytest.approx(pack.bus_voltage(), abs=0.05)
            await c.write("CONF:VOLT:DC 1000")
            assert await c.query("VOLT:DC:NPLC?") == "+1.00000000E+01"  # CONF resets NPLC
            assert await c.query("SYST:ERR?") == '+0,"No error"'
    finally:
        await sim.stop()


@pytest.mark.parametrize(
    "request_line, error",
    [
        ("MEAS:RES?", '-113,"Undefined header"'),
        ("CONF:VOLT:DC 5000", '-222,"Data out of range"'),
        ("CONF:VOLT:DC lots", '-224,"Illegal parameter value for range"'),
        ("VOLT:DC:NPLC 1000", '-222,"Data out of range"'),
        ("VOLT:DC:NPLC", '-109,"Missing parameter"'),
    ],
)
async def test_malformed_requests_queue_the_exact_error(request_line, error):
    _, sim, address = await bench()
    try:
        async with VisaClient(address) as c:
            await c.write(request_line)
            assert await c.query("SYST:ERR?") == error
            assert await c.query("SYST:ERR?") == '+0,"No error"'
    finally:
        await sim.stop()


async def test_overload_and_autorange():
    pack, sim, address = await bench()
    try:
        async with VisaClient(address) as c:
            await c.write("CONF:VOLT:DC 10;VOLT:DC:NPLC 0.02")
            assert await c.query("READ?") == "+9.90000000E+37"
            await c.write("CONF:VOLT:DC AUTO;VOLT:DC:NPLC 0.02")
            assert float(await c.query("READ?")) == pytest.approx(pack.bus_voltage(), abs=0.1)
            assert await c.query("VOLT:DC:RANG?") == "+1.00000000E+03"
    finally:
        await sim.stop()


def test_read_takes_nplc_times_20_ms_of_loop_time():
    async def main():
        _, sim, address = await bench()
        loop = asyncio.get_running_loop()
        try:
            async with VisaClient(address) as c:
                spent = {}
                for nplc in (1, 10):
                    await c.write(f"CONF:VOLT:DC 1000;VOLT:DC:NPLC {nplc}")
                    t0 = loop.time()
                    await c.query("READ?")
                    spent[nplc] = loop.time() - t0
                return spent
        finally:
            await sim.stop()

    spent = run(main(), virtual=True)
    assert 0.02 <= spent[1] < 0.1
    assert 0.2 <= spent[10] < 0.3


def test_noise_is_seeded_and_scales_with_range_and_nplc():
    async def series(seed: int, setup: str, n: int = 30, live: bool = True) -> list[float]:
        _, sim, address = await bench(seed, live=live)
        try:
            return [float(r) for r in await readings(address, setup, n)]
        finally:
            await sim.stop()

    async def main():
        return (
            await series(7, "CONF:VOLT:DC 1000;VOLT:DC:NPLC 0.02"),
            await series(7, "CONF:VOLT:DC 1000;VOLT:DC:NPLC 0.02"),
            await series(8, "CONF:VOLT:DC 1000;VOLT:DC:NPLC 0.02"),
            await series(7, "CONF:VOLT:DC 1000;VOLT:DC:NPLC 1"),
            await series(7, "CONF:VOLT:DC 1;VOLT:DC:NPLC 0.02", live=False),  # dead bus: 0 V
        )

    a, same, other, slow, small = run(main(), virtual=True)
    assert a == same and a != other
    # The pack rests (no current), so the spread is the meter's noise alone.
    assert statistics.stdev(slow) < statistics.stdev(a) / 3  # sigma ~ 1/sqrt(NPLC): 7x here
    assert statistics.stdev(small) < statistics.stdev(a) / 100
    assert all(abs(v) < 1e-3 for v in small)
