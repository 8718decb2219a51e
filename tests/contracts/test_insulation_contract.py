"""InsulationTester contract: each real driver, over each real transport, against its simulated peer.

Add an implementation by adding a bench factory to ``BENCHES``: it starts the simulated peer on
loopback for ``pack`` and ``wiring`` and returns ``(driver, peer)``; the peer offers
``behaviour`` ("normal" | "hang" | "garbage") and ``received`` (lines it got).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from drivers.capabilities import Identity, InsulationTester
from drivers.errors import InstrumentTimeout, ProtocolError, RangeError
from drivers.safety.chroma_19032 import Chroma19032
from sim.instruments.chroma_19032 import SimChroma19032
from sim.pack import PRESETS, Pack
from sim.wiring import Wiring
from station.clock import run

DUE = dt.date(2027, 5, 31)


async def chroma_visa_bench(pack: Pack, wiring: Wiring, timeout: float):
    peer = SimChroma19032(pack, wiring)
    port = (await peer.start()).rsplit(":", 1)[1]
    resource = f"TCPIP::127.0.0.1::{port}::SOCKET"
    return Chroma19032("safety", resource, timeout=timeout, calibration_due=DUE), peer


async def chroma_serial_bench(pack: Pack, wiring: Wiring, timeout: float):
    peer = SimChroma19032(pack, wiring)
    address = await peer.start()
    return Chroma19032("safety", f"socket://{address}", timeout=timeout, calibration_due=DUE), peer


BENCHES = {"chroma_19032-visa": chroma_visa_bench, "chroma_19032-serial": chroma_serial_bench}


@pytest.fixture(params=sorted(BENCHES))
def bench(request):
    return BENCHES[request.param]


def on_bench(bench, body, *, timeout: float = 1.0, pole: str | None = "HV+", setup=None):
    """Run ``body(driver, peer, pack)`` with the driver open, on the virtual-time loop."""

    async def main():
        pack = Pack(PRESETS["bus-700"], seed=9)
        pack.set_insulation_monitor(False)  # as the plan does before an IR step
        if setup:
            setup(pack)
        driver, peer = await bench(pack, Wiring(ir_pole=pole), timeout)
        try:
            async with driver:
                return await body(driver, peer, pack)
        finally:
            await peer.stop()

    return run(main(), virtual=True)


def test_identify(bench):
    async def body(drv, peer, pack):
        assert isinstance(drv, InsulationTester)
        return await drv.identify()

    ident = on_bench(bench, body)
    assert isinstance(ident, Identity) and ident.model == "19032" and ident.serial
    assert ident.calibration_due == DUE


def test_ir_10s_dwell_is_fast_and_samples_rise_to_isolation(bench):
    async def body(drv, peer, pack):
        loop = asyncio.get_running_loop()
        wall, start = time.perf_counter(), loop.time()
        result = await drv.insulation(voltage=800, dwell=10, low_limit=100e6, ramp=1)
        return result, time.perf_counter() - wall, loop.time() - start, pack.isolation_resistance("HV+")

    result, wall, loop_s, r_iso = on_bench(bench, body)
    assert wall < 3.0  # virtual-time dwell: well under 1 s idle, slack for a loaded CI machine
    assert 11.0 <= loop_s < 12.5  # ramp + dwell + discharge, in loop time
    assert (result.passed, result.code) == (True, 116)
    assert result.resistance == pytest.approx(r_iso, rel=0.02)
    values = [v for _, v in result.samples]
    assert len(values) >= 20 and values[0] < 0.5 * r_iso
    assert values[-1] == pytest.approx(r_iso, rel=0.02)
    assert max(values) < 1.05 * r_iso


def test_ir_weak_pole_fails_and_open_circuit_fails(bench):
    def weak(pack):
        pack.isolation["HV-"] = 40e6

    async def body(drv, peer, pack):
        low = await drv.insulation(800, 5, 100e6)
        peer.wiring.ir_pole = None
        return low, await drv.insulation(800, 1, 100e6)

    low, open_circuit = on_bench(bench, body, pole="HV-", setup=weak)
    assert (low.passed, low.code) == (False, 49) and low.resistance == pytest.approx(40e6, rel=0.05)
    assert (open_circuit.passed, open_circuit.code, open_circuit.resistance) == (False, 52, 9.999e9)


def test_withstand_dc_passes_and_breakdown_is_an_arc(bench):
    async def body(drv, peer, pack):
        good = await drv.withstand("DC", 2000, 2, 0.001)
        pack.breakdown_volts = 1500.0
        return good, await drv.withstand("DC", 2000, 2, 0.001), pack

    good, arc, pack = on_bench(bench, body)
    assert good.passed and not good.arc and 0 < good.leakage < 1e-4
    assert len(good.samples) >= 4
    assert (arc.passed, arc.arc, arc.code) == (False, True, 35)


def test_ground_bond_reads_the_bond_resistance(bench):
    async def body(drv, peer, pack):
        good = await drv.ground_bond(current=25, dwell=5, high_limit=0.1)
        pack.bond[pack.bond_points[0]] = 0.3
        return good, await drv.ground_bond(current=25, dwell=5, high_limit=0.1)

    good, bad = on_bench(bench, body)
    assert good.passed and good.resistance == pytest.approx(PRESETS["bus-700"].bond_points["BP1"], rel=0.02)
    assert (bad.passed, bad.code) == (False, 81)


def test_out_of_range_reaches_nothing_on_the_wire(bench):
    async def body(drv, peer, pack):
        await asyncio.sleep(0.1)  # let the peer read what open() sent
        before = list(peer.received)
        with pytest.raises(RangeError):
            await drv.insulation(1500, 10, 100e6)
        await asyncio.sleep(0.1)
        return before, peer.received

    before, after = on_bench(bench, body)
    assert after == before == ["*CLS"]


def test_abandoned_test_is_stopped_and_safe_state_confirms(bench):
    async def body(drv, peer, pack):
        task = asyncio.create_task(drv.insulation(800, 60, 100e6))
        await asyncio.sleep(3.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.1)  # let the peer read the driver's last line
        stopped_by_driver = peer.received[-1]
        return stopped_by_driver, await drv.safe_state(), peer.results

    stopped_by_driver, report, results = on_bench(bench, body)
    assert stopped_by_driver == "SAFE:STOP"
    assert "STOPPED" in report[0].action and report[0].confirmed
    assert results[-1][0] == 112


def test_hang_is_timeout_within_the_configured_timeout(bench):
    async def body(drv, peer, pack):
        peer.behaviour = "hang"
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(InstrumentTimeout, match=r"safety: .*\*IDN\?"):
            await drv.identify()
        return loop.time() - start

    assert on_bench(bench, body, timeout=0.3) < 0.3 + 0.5


def test_garbage_is_protocol_error_naming_the_command(bench):
    async def body(drv, peer, pack):
        peer.behaviour = "garbage"
        with pytest.raises(ProtocolError, match=r"safety: .*SAFE:SNUM\?"):
            await drv.ground_bond(25, 1, 0.1)

    on_bench(bench, body)
