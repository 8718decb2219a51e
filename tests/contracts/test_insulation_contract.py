"""InsulationTester contract: each real driver, over each real transport, against its simulated peer.

Add an implementation by adding a bench factory to ``BENCHES``: it starts the simulated peer on
loopback for ``pack`` and ``wiring`` and returns ``(driver, peer)``; the peer offers
``behaviour`` ("normal" | "hang" | "garbage") and ``received`` (lines it got). What differs by
dialect (result codes, live samples, the stop command, whether a FAIL carries a measurement)
is its ``Dialect``; the behaviour asserted is the same for all.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from drivers.capabilities import Identity, InsulationTester
from drivers.errors import InstrumentTimeout, ProtocolError, RangeError
from drivers.safety.chroma_19032 import Chroma19032
from drivers.safety.kikusui_tos9300 import KikusuiTos9300
from sim.instruments.chroma_19032 import SimChroma19032
from sim.instruments.kikusui_tos9300 import SimKikusuiTos9300
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


async def kikusui_visa_bench(pack: Pack, wiring: Wiring, timeout: float):
    peer = SimKikusuiTos9300(pack, wiring)
    port = (await peer.start()).rsplit(":", 1)[1]
    resource = f"TCPIP::127.0.0.1::{port}::SOCKET"
    return KikusuiTos9300("safety", resource, timeout=timeout, calibration_due=DUE), peer


@dataclass(frozen=True)
class Dialect:
    model: str
    codes: dict[str, int]  # pass, ir_low, ir_open, breakdown, bond_high
    live_samples: bool  # readings polled during the dwell
    reports_arc: bool  # a breakdown is flagged as an arc (else only a failed withstand)
    fail_is_measured: bool  # a FAIL carries the measurement (else NaN: the tester sent its criterion)
    stop: str
    first_query: str  # of a test, the one that meets a garbage answer
    stopped: Callable[[Any], bool]  # the peer recorded the abandoned test as stopped


CHROMA = Dialect("19032", {"pass": 116, "ir_low": 49, "ir_open": 52, "breakdown": 35, "bond_high": 81},
                 live_samples=True, reports_arc=True, fail_is_measured=True, stop="SAFE:STOP",
                 first_query="SAFE:SNUM?", stopped=lambda peer: peer.results[-1][0] == 112)
KIKUSUI = Dialect("TOS9303", {"pass": 0, "ir_low": 2, "ir_open": 1, "breakdown": 1, "bond_high": 1},
                  live_samples=False, reports_arc=False, fail_is_measured=False, stop="ABOR:TEST",
                  first_query="SYST:ERR?", stopped=lambda peer: peer.last.judgement == "ABORT")
BENCHES = {"chroma_19032-visa": (chroma_visa_bench, CHROMA), "chroma_19032-serial": (chroma_serial_bench, CHROMA),
           "kikusui_tos9300-visa": (kikusui_visa_bench, KIKUSUI)}


@pytest.fixture(params=sorted(BENCHES))
def case(request):
    return BENCHES[request.param]


@pytest.fixture
def bench(case):
    return case[0]


@pytest.fixture
def dialect(case):
    return case[1]


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


def test_identify(bench, dialect):
    async def body(drv, peer, pack):
        assert isinstance(drv, InsulationTester)
        return await drv.identify()

    ident = on_bench(bench, body)
    assert isinstance(ident, Identity) and ident.model == dialect.model and ident.serial
    assert ident.calibration_due == DUE


def test_ir_10s_dwell_is_fast_and_samples_rise_to_isolation(bench, dialect):
    async def body(drv, peer, pack):
        loop = asyncio.get_running_loop()
        wall, start = time.perf_counter(), loop.time()
        result = await drv.insulation(voltage=800, dwell=10, low_limit=100e6, ramp=1)
        return result, time.perf_counter() - wall, loop.time() - start, pack.isolation_resistance("HV+")

    result, wall, loop_s, r_iso = on_bench(bench, body)
    assert wall < 3.0  # virtual-time dwell: well under 1 s idle, slack for a loaded CI machine
    assert 11.0 <= loop_s < 12.5  # ramp + dwell + discharge, in loop time
    assert (result.passed, result.code) == (True, dialect.codes["pass"])
    assert result.resistance == pytest.approx(r_iso, rel=0.02)
    if not dialect.live_samples:
        assert result.samples == ()
        return
    values = [v for _, v in result.samples]
    assert len(values) >= 20 and values[0] < 0.5 * r_iso
    assert values[-1] == pytest.approx(r_iso, rel=0.02)
    assert max(values) < 1.05 * r_iso


def test_ir_weak_pole_fails_and_open_circuit_fails(bench, dialect):
    def weak(pack):
        pack.isolation["HV-"] = 40e6

    async def body(drv, peer, pack):
        low = await drv.insulation(800, 5, 100e6)
        peer.wiring.ir_pole = None
        return low, await drv.insulation(800, 1, 100e6)

    low, open_circuit = on_bench(bench, body, pole="HV-", setup=weak)
    assert (low.passed, low.code) == (False, dialect.codes["ir_low"])
    assert (open_circuit.passed, open_circuit.code) == (False, dialect.codes["ir_open"])
    if dialect.fail_is_measured:
        assert low.resistance == pytest.approx(40e6, rel=0.05) and open_circuit.resistance == 9.999e9
    else:
        assert math.isnan(low.resistance) and math.isnan(open_circuit.resistance)


def test_withstand_dc_passes_and_breakdown_fails(bench, dialect):
    async def body(drv, peer, pack):
        good = await drv.withstand("DC", 2000, 2, 0.001)
        pack.breakdown_volts = 1500.0
        return good, await drv.withstand("DC", 2000, 2, 0.001), pack

    good, arc, _pack = on_bench(bench, body)
    assert good.passed and not good.arc and 0 < good.leakage < 1e-4
    assert len(good.samples) >= 4 if dialect.live_samples else good.samples == ()
    assert (arc.passed, arc.arc, arc.code) == (False, dialect.reports_arc, dialect.codes["breakdown"])
    assert dialect.fail_is_measured or math.isnan(arc.leakage)


def test_ground_bond_reads_the_bond_resistance(bench, dialect):
    async def body(drv, peer, pack):
        good = await drv.ground_bond(current=25, dwell=5, high_limit=0.1)
        pack.bond[pack.bond_points[0]] = 0.3
        return good, await drv.ground_bond(current=25, dwell=5, high_limit=0.1)

    good, bad = on_bench(bench, body)
    assert good.passed and good.resistance == pytest.approx(PRESETS["bus-700"].bond_points["BP1"], rel=0.02)
    assert (bad.passed, bad.code) == (False, dialect.codes["bond_high"])
    assert bad.resistance == pytest.approx(0.3, rel=0.02) if dialect.fail_is_measured else math.isnan(bad.resistance)


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


def test_abandoned_test_is_stopped_and_safe_state_confirms(bench, dialect):
    async def body(drv, peer, pack):
        task = asyncio.create_task(drv.insulation(800, 60, 100e6))
        await asyncio.sleep(3.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.1)  # let the peer read the driver's last line
        stopped_by_driver = peer.received[-1]
        return stopped_by_driver, await drv.safe_state(), dialect.stopped(peer)

    stopped_by_driver, report, recorded_as_stopped = on_bench(bench, body)
    assert stopped_by_driver == dialect.stop
    assert dialect.stop in report[0].action and report[0].confirmed
    assert recorded_as_stopped


def test_hang_is_timeout_within_the_configured_timeout(bench):
    async def body(drv, peer, pack):
        peer.behaviour = "hang"
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(InstrumentTimeout, match=r"safety: .*\*IDN\?"):
            await drv.identify()
        return loop.time() - start

    assert on_bench(bench, body, timeout=0.3) < 0.3 + 0.5


def test_garbage_is_protocol_error_naming_the_command(bench, dialect):
    async def body(drv, peer, pack):
        peer.behaviour = "garbage"
        with pytest.raises(ProtocolError, match=r"safety: .*" + re.escape(dialect.first_query)):
            await drv.ground_bond(25, 1, 0.1)

    on_bench(bench, body)
