"""LeakTester contract: each real driver, over its real transport, against its simulated peer.

Add an implementation by adding a bench factory to ``BENCHES``: it starts the simulated peer on
loopback for ``pack`` with cycles of ``test_time`` s and returns ``(driver, peer)``; the peer
offers ``behaviour`` ("normal" | "hang" | "garbage" | "alarm") and ``received`` (lines it got).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time

import pytest

from drivers.capabilities import Identity, LeakTester
from drivers.errors import InstrumentTimeout, ProtocolError
from drivers.leak.ateq import AteqLeakTester
from sim.instruments.ateq_leak import SimAteqLeak
from sim.pack import PRESETS, Pack
from station.clock import run

DUE = dt.date(2027, 4, 30)
OPTIONS = {"model": "F5200", "serial": "F52-01234", "firmware": "v2.04"}


async def ateq_bench(pack: Pack, test_time: float, timeout: float):
    peer = SimAteqLeak(pack, test_time=test_time, limit=50.0)
    address = await peer.start()
    driver = AteqLeakTester("leak", f"socket://{address}", timeout=timeout, options=OPTIONS, calibration_due=DUE)
    return driver, peer


BENCHES = {"ateq_leak": ateq_bench}


@pytest.fixture(params=sorted(BENCHES))
def bench(request):
    return BENCHES[request.param]


def on_bench(bench, body, *, test_time: float = 60.0, timeout: float = 1.0, rate: float | None = None):
    """Run ``body(driver, peer, pack)`` with the driver open, on the virtual-time loop."""

    async def main():
        pack = Pack(PRESETS["car-400"], seed=4)
        if rate is not None:
            pack.coolant_leak_rate = rate
        driver, peer = await bench(pack, test_time, timeout)
        try:
            async with driver:
                return await body(driver, peer, pack)
        finally:
            await peer.stop()

    return run(main(), virtual=True)


def test_identify(bench):
    async def body(drv, peer, pack):
        assert isinstance(drv, LeakTester)
        return await drv.identify()

    ident = on_bench(bench, body)
    assert isinstance(ident, Identity) and ident.model == "F5200" and ident.serial == "F52-01234"
    assert ident.calibration_due == DUE


def test_60s_leak_test_is_fast_and_reads_the_circuit(bench):
    async def body(drv, peer, pack):
        loop = asyncio.get_running_loop()
        wall, start = time.perf_counter(), loop.time()
        result = await drv.test(timeout=120)
        return result, time.perf_counter() - wall, loop.time() - start

    result, wall, loop_s = on_bench(bench, body, rate=12.0)
    assert wall < 3.0  # virtual-time dwell: well under 1 s idle, slack for a loaded CI machine
    assert 60.0 <= loop_s < 60.5
    assert result.status == "OK"
    assert result.pressure == pytest.approx(12.0, abs=2.0)  # 12 Pa/min over one minute


def test_leaky_circuit_fails_td(bench):
    async def body(drv, peer, pack):
        return await drv.test(timeout=120)

    result = on_bench(bench, body, rate=120.0)
    assert result.status == "TD" and result.pressure == pytest.approx(120.0, abs=3.0)


def test_alarm_is_reported_not_judged(bench):
    async def body(drv, peer, pack):
        peer.behaviour = "alarm"
        return await drv.test(timeout=120)

    result = on_bench(bench, body)
    assert result.status == "AL" and math.isnan(result.pressure) and "AL:" in result.raw


def test_hang_is_timeout_within_the_test_timeout_and_stops_the_cycle(bench):
    async def body(drv, peer, pack):
        peer.behaviour = "hang"
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(InstrumentTimeout, match=r"leak: no result line within 90 s \(command 'START'\)"):
            await drv.test(timeout=90)
        elapsed = loop.time() - start
        await asyncio.sleep(0.1)
        return elapsed, peer.received

    elapsed, received = on_bench(bench, body)
    assert 90.0 <= elapsed < 90.5
    assert received == ["START", "STOP"]


def test_garbage_is_protocol_error_naming_the_command(bench):
    async def body(drv, peer, pack):
        peer.behaviour = "garbage"
        with pytest.raises(ProtocolError, match=r"leak: .*\(command 'START'\)"):
            await drv.test(timeout=120)

    on_bench(bench, body)


def test_safe_state_aborts_a_running_cycle(bench):
    async def body(drv, peer, pack):
        await drv.transport.write("START")  # a cycle left running (the station that started it died)
        await asyncio.sleep(10.0)
        assert peer.cycling
        before = await drv.energy_state()
        report = await drv.safe_state()
        cycling = peer.cycling
        return before, report, cycling, await drv.energy_state()

    before, report, cycling, after = on_bench(bench, body)
    assert not before[0].safe and after[0].safe
    assert report[0].confirmed and "STOP" in report[0].action and not cycling


def test_safe_state_of_a_dead_line_is_unconfirmed_within_the_timeout(bench):
    async def body(drv, peer, pack):
        peer.behaviour = "hang"
        loop = asyncio.get_running_loop()
        start = loop.time()
        report = await drv.safe_state()
        return report, loop.time() - start

    (action,), took = on_bench(bench, body)
    assert not action.confirmed and "not confirmed" in action.action
    assert took < 5.0  # the engine's per-instrument bound
