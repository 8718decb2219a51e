"""The simulated ATEQ leak tester on the wire, driven by a third-party client (plain pyserial).

pyserial blocks, so each call runs in a worker thread with a short timeout (the virtual-time
loop holds real time meanwhile); the cycle itself passes in loop time via ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
import serial

from drivers.leak.ateq import parse_result
from sim.instruments.ateq_leak import SimAteqLeak, result_line
from sim.pack import PRESETS, Pack
from station.clock import run


class Line:
    """A pyserial ``socket://`` client, as a line-based terminal program would use it."""

    def __init__(self, address: str) -> None:
        self.url = f"socket://{address}"
        self.pool = ThreadPoolExecutor(max_workers=1)

    async def call(self, func, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, func, *args)

    async def __aenter__(self) -> Line:
        self.port = await self.call(lambda: serial.serial_for_url(self.url, timeout=0.05))
        return self

    async def __aexit__(self, *exc) -> None:
        await self.call(self.port.close)
        self.pool.shutdown(wait=False)

    async def send(self, text: str) -> None:
        await self.call(self.port.write, text.encode() + b"\r\n")

    async def lines(self) -> list[str]:
        """Everything pushed so far, split into lines (waits at most 0.05 s real time)."""
        data = await self.call(self.port.read, 4096)
        return data.decode("ascii", errors="replace").splitlines()


def on_sim(body, *, rate=None, **kw):
    async def main():
        pack = Pack(PRESETS["bus-700"], seed=5)
        if rate is not None:
            pack.coolant_leak_rate = rate
        sim = SimAteqLeak(pack, **kw)
        address = await sim.start()
        try:
            async with Line(address) as line:
                return await body(line, sim)
        finally:
            await sim.stop()

    return run(main(), virtual=True)


def test_cycle_pushes_ok_line_after_test_time():
    async def body(line, sim):
        await line.send("START")
        await asyncio.sleep(59.0)
        early = await line.lines()
        await asyncio.sleep(2.0)
        return early, await line.lines()

    early, late = on_sim(body, rate=6.0, test_time=60.0, noise=0.0)
    assert early == []
    assert late == ["<01>:(OK): 006 Pa"]


def test_leaky_circuit_is_td_and_parses_as_such():
    async def body(line, sim):
        await line.send("START")
        await asyncio.sleep(31.0)
        return await line.lines()

    (pushed,) = on_sim(body, rate=180.0, limit=50.0)  # 90 Pa over 30 s
    result = parse_result(pushed)
    assert result.status == "TD" and result.pressure == pytest.approx(90, abs=3)


def test_stop_aborts_silently_and_busy_and_unknown_get_error_lines():
    async def body(line, sim):
        await line.send("START")
        await line.send("START")
        await line.send("HELLO")
        await asyncio.sleep(1.0)
        replies = await line.lines()
        await line.send("STOP")
        await asyncio.sleep(40.0)
        return replies, await line.lines(), sim.received

    replies, after_stop, received = on_sim(body)
    assert replies == ["ER: BUSY", "ER: UNKNOWN COMMAND"]
    assert after_stop == []
    assert received == ["START", "START", "HELLO", "STOP"]


@pytest.mark.parametrize(
    "behaviour, expected",
    [
        ("hang", []),
        ("alarm", ["ER: UNKNOWN COMMAND", "<01>:AL: 02 FILL PRESSURE TOO LOW"]),
    ],
)
def test_fault_behaviours(behaviour, expected):
    async def body(line, sim):
        sim.behaviour = behaviour
        await line.send("START")
        await line.send("NONSENSE")
        await asyncio.sleep(31.0)
        return await line.lines()

    assert on_sim(body) == expected


def test_garbage_fault_pushes_noise():
    async def body(line, sim):
        sim.behaviour = "garbage"
        await line.send("START")
        await asyncio.sleep(31.0)
        return await line.lines()

    (pushed,) = on_sim(body)
    assert pushed.startswith("\x15#?garbage@")


@pytest.mark.parametrize(
    "decay, limit, text",
    [(27.2, 50, "<01>:(OK): 027 Pa"), (87.0, 50, "<01>:(TD): 087 Pa"), (-2.6, 50, "<01>:(OK): -003 Pa"), (1234.0, 50, "<01>:(TD): 1234 Pa")],
)
def test_result_line_format(decay, limit, text):
    assert result_line(1, decay, limit) == text
