"""cycler.dcir samples the cycler until a time on the station clock; on virtual time that clock is
a float a very short sleep cannot move, so "until" must count as reached within a microsecond:
a proof's car-800 run sampled for ever with t0 = 54.7119330640048 s (now stuck at 9.999999999999993
of 10 s), and the step's own timeout, on the same stalled clock, never came."""

from __future__ import annotations

import asyncio

import pytest

from drivers.cycler.itech_it6000 import ItechIT6000
from sim.instruments.itech_it6000 import SimItechCycler
from sim.pack import PRESETS, Pack
from station import clock
from station.actions.cycler import _hold
from station.engine.context import ActionContext

STALLED_AT = 54.7119330640048  # s: the start that stalled (float rounding of t0 + 10 - t0)


async def _pulse_samples() -> list[list[float]]:
    pack = Pack(PRESETS["car-400"], seed=3)
    pack.set_contactor("main_minus", True)
    pack.set_contactor("main_plus", True)
    sim = SimItechCycler(pack)
    port = (await sim.start()).rsplit(":", 1)[1]
    cycler = ItechIT6000("cycler", f"TCPIP::127.0.0.1::{port}::SOCKET")
    await cycler.open()
    try:
        loop = asyncio.get_running_loop()
        loop._virtual = STALLED_AT  # the clock where the run stood when the pulse began
        rows: list[list[float]] = []
        await _hold(ActionContext(None, "main/dcir/pulse", {}), cycler, loop.time(), 10.0, 10.0, 0.5, rows)
        return rows
    finally:
        await cycler.close()
        await sim.stop()


@pytest.mark.timeout(120)
def test_a_pulse_ends_when_the_virtual_clock_cannot_reach_its_end_exactly():
    rows = clock.run(_pulse_samples(), virtual=True, in_process=True)
    assert [round(t, 6) for t, _v, _i in rows] == [0.5 * k for k in range(21)]
