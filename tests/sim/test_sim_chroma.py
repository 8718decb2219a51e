"""The simulated Chroma 19032 on the wire, driven by a third-party client (pyvisa + pyvisa-py).

pyvisa blocks, so it runs in a worker thread; the virtual-time loop holds real time while a
call is pending, and ``asyncio.sleep`` between calls lets loop time pass for the tester.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
import pyvisa

from sim.instruments.chroma_19032 import SimChroma19032
from sim.pack import PRESETS, Pack
from sim.wiring import Wiring
from station.clock import run

NO_ERROR = '+0,"No error"'


class Visa:
    """One raw-socket pyvisa session to the simulator."""

    def __init__(self, address: str, timeout_ms: int = 1000) -> None:
        self.resource = f"TCPIP::127.0.0.1::{address.rsplit(':', 1)[1]}::SOCKET"
        self.timeout_ms = timeout_ms
        self.pool = ThreadPoolExecutor(max_workers=1)

    async def call(self, func, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, func, *args)

    async def __aenter__(self) -> Visa:
        def connect():
            rm = pyvisa.ResourceManager("@py")
            return rm.open_resource(self.resource, read_termination="\n", write_termination="\n", timeout=self.timeout_ms)

        self.inst = await self.call(connect)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.call(self.inst.close)
        self.pool.shutdown(wait=False)

    async def q(self, command: str) -> str:
        return await self.call(self.inst.query, command)

    async def w(self, *commands: str) -> None:
        for command in commands:
            await self.call(self.inst.write, command)


def on_sim(body, *, pole="HV+", pack_setup=None, wiring=None, **visa_kw):
    """Run ``body(visa, sim, pack)`` against a fresh simulator on the virtual-time loop."""

    async def main():
        pack = Pack(PRESETS["car-400"], seed=7)
        pack.set_insulation_monitor(False)
        if pack_setup:
            pack_setup(pack)
        sim = SimChroma19032(pack, wiring or Wiring(ir_pole=pole))
        address = await sim.start()
        try:
            async with Visa(address, **visa_kw) as visa:
                return await body(visa, sim, pack)
        finally:
            await sim.stop()

    return run(main(), virtual=True)


def test_identity_and_empty_error_queue():
    async def body(visa, sim, pack):
        return await visa.q("*IDN?"), await visa.q("SYST:ERR?")

    idn, err = on_sim(body)
    assert idn.split(",")[:2] == ["Chroma ATE", "19032"]
    assert err == NO_ERROR


def test_malformed_requests_queue_scpi_errors():
    async def body(visa, sim, pack):
        await visa.w("SAFE:BOGUS 1", "FOO?", "SAFE:STEP 1:IR 2000", "SAFE:STEP 1:IR abc", "SAFE:STEP 3:IR:LIM 1e6")
        return [await visa.q("SYST:ERR?") for _ in range(6)]

    assert on_sim(body) == [
        '-113,"Undefined header"',
        '-113,"Undefined header"',
        '-222,"Data out of range"',  # IR above 1000 V
        '-224,"Illegal parameter value for IR level"',
        '-222,"Data out of range"',  # no step 3
        NO_ERROR,
    ]


def test_step_programming_both_spellings_and_delete():
    async def body(visa, sim, pack):
        await visa.w("SAFE:STEP 1:IR 800", "SOUR:SAFE:STEP1:IR:LIM 5e8", "SAFE:STEP1:IR:TIME 10", "SAFE:STEP 1:IR:TIME:RAMP 1")
        await visa.w("SAFE:STEP 2:GB 25", "SAFE:STEP 2:GB:LIM 0.1")
        read = [await visa.q(c) for c in ("SAFE:SNUM?", "SAFE:STEP 1:IR?", "SAFE:STEP1:IR:LIM?", "SAFE:STEP 2:GB:LIM?")]
        await visa.w("SAFE:STEP 1:DEL")
        read += [await visa.q("SAFE:SNUM?"), await visa.q("SAFE:STEP 1:GB?"), await visa.q("SYST:ERR?")]
        return read

    assert on_sim(body) == ["2", "+8.000000E+02", "+5.000000E+08", "+1.000000E-01", "1", "+2.500000E+01", NO_ERROR]


def test_ir_runs_in_loop_time_and_reading_rises_to_isolation():
    async def body(visa, sim, pack):
        await visa.w("SAFE:STEP 1:IR 500", "SAFE:STEP 1:IR:LIM 1e8", "SAFE:STEP 1:IR:TIME 10", "SAFE:STEP 1:IR:TIME:RAMP 1")
        await visa.w("SAFE:STAR")
        seen = []
        for _ in range(5):
            await asyncio.sleep(2.0)
            seen.append((await visa.q("SAFE:STAT?"), float(await visa.q("SAFE:FETC? MMET")), await visa.q("SAFE:RES:ALL?")))
        await asyncio.sleep(1.5)  # past ramp + dwell + discharge (11.3 s)
        end = await visa.q("SAFE:STAT?"), await visa.q("SAFE:RES:ALL?"), float(await visa.q("SAFE:RES:ALL:MMET?"))
        return seen, end, pack.isolation_resistance("HV+")

    seen, end, r_iso = on_sim(body)
    assert [s[0] for s in seen] == ["RUNNING"] * 5 and {s[2] for s in seen} == {"115"}
    readings = [s[1] for s in seen]
    assert readings[0] < readings[-1] and readings[0] < 0.9 * r_iso
    assert end[:2] == ("STOPPED", "116")
    assert end[2] == pytest.approx(r_iso, rel=0.02)


def test_ir_below_limit_fails_49_and_open_circuit_fails_52():
    def weak(pack):
        pack.isolation["HV-"] = 2e6

    async def body(visa, sim, pack):
        await visa.w("SAFE:STEP 1:IR 500", "SAFE:STEP 1:IR:LIM 1e8", "SAFE:STEP 1:IR:TIME 1", "SAFE:STAR")
        await asyncio.sleep(2.0)
        weak_pole = await visa.q("SAFE:RES:ALL?"), float(await visa.q("SAFE:RES:ALL:MMET?"))
        sim.wiring.ir_pole = None  # the relay matrix connects nothing
        await visa.w("SAFE:STAR")
        await asyncio.sleep(2.0)
        return weak_pole, (await visa.q("SAFE:RES:ALL?"), await visa.q("SAFE:RES:ALL:MMET?"))

    weak_pole, open_circuit = on_sim(body, pole="HV-", pack_setup=weak)
    assert weak_pole[0] == "49" and weak_pole[1] == pytest.approx(2e6, rel=0.05)
    assert open_circuit == ("52", "+9.999000E+09")


@pytest.mark.parametrize(
    "mode, breakdown, code",
    [
        ("DC", float("inf"), "116"),
        ("AC", float("inf"), "17"),  # the Y-caps alone draw ~0.28 A at 2 kV 50 Hz: AC hipot fails HI
        ("AC", 1500.0, "19"),
        ("DC", 1500.0, "35"),
    ],
)
def test_withstand_leakage_and_arc(mode, breakdown, code):
    def setup(pack):
        pack.breakdown_volts = breakdown

    async def body(visa, sim, pack):
        await visa.w(f"SAFE:STEP 1:{mode} 2000", f"SAFE:STEP 1:{mode}:LIM 0.005", f"SAFE:STEP 1:{mode}:TIME 1", "SAFE:STAR")
        await asyncio.sleep(1.5)
        return await visa.q("SAFE:RES:ALL?"), float(await visa.q("SAFE:RES:ALL:MMET?")), pack.withstand(mode, 2000)[0]

    got, leakage, expected = on_sim(body, pack_setup=setup)
    assert got == code
    assert leakage == pytest.approx(expected, rel=0.02)


def test_withstand_with_nothing_connected_fails_lo():
    async def body(visa, sim, pack):
        await visa.w("SAFE:STEP 1:DC 1000", "SAFE:STEP 1:DC:LIM 0.001", "SAFE:STEP 1:DC:TIME 1", "SAFE:STAR")
        await asyncio.sleep(1.5)
        return await visa.q("SAFE:RES:ALL?")

    assert on_sim(body, pole=None) == "34"


def test_ground_bond_point_from_wiring_else_first_point():
    def bad_bp2(pack):
        pack.bond["BP2"] = 0.25

    async def body(visa, sim, pack):
        await visa.w("SAFE:STEP 1:GB 25", "SAFE:STEP 1:GB:LIM 0.1", "SAFE:STEP 1:GB:TIME 1", "SAFE:STAR")
        await asyncio.sleep(1.5)
        first = await visa.q("SAFE:RES:ALL?"), float(await visa.q("SAFE:RES:ALL:MMET?"))
        sim.wiring.bond_point = "BP2"  # the probe moved; Wiring has no such field yet
        await visa.w("SAFE:STAR")
        await asyncio.sleep(1.5)
        return first, (await visa.q("SAFE:RES:ALL?"), float(await visa.q("SAFE:RES:ALL:MMET?")))

    first, second = on_sim(body, pack_setup=bad_bp2)
    assert first[0] == "116" and first[1] == pytest.approx(PRESETS["car-400"].bond_points["BP1"], rel=0.02)
    assert second[0] == "81" and second[1] == pytest.approx(0.25, rel=0.02)


def test_stop_while_running_and_no_reprogramming_meanwhile():
    async def body(visa, sim, pack):
        await visa.w("SAFE:STEP 1:IR 500", "SAFE:STEP 1:IR:TIME 60", "SAFE:STAR")
        await asyncio.sleep(5.0)
        await visa.w("SAFE:STEP 1:IR 600", "SAFE:STAR")
        errors = [await visa.q("SYST:ERR?"), await visa.q("SYST:ERR?")]
        await visa.w("SAFE:STOP", "SAFE:STOP")
        return errors, await visa.q("SAFE:STAT?"), await visa.q("SAFE:RES:ALL?"), await visa.q("SAFE:STEP 1:IR?")

    errors, status, code, level = on_sim(body)
    assert errors == ['-221,"Settings conflict"'] * 2
    assert (status, code, level) == ("STOPPED", "112", "+5.000000E+02")


def test_reprogramming_forgets_the_last_result():
    async def body(visa, sim, pack):
        await visa.w("SAFE:STEP 1:GB 10", "SAFE:STEP 1:GB:TIME 0.5", "SAFE:STAR")
        await asyncio.sleep(1.0)
        before = await visa.q("SAFE:RES:ALL?")
        await visa.w("SAFE:STEP 1:GB:LIM 0.2")
        return before, await visa.q("SAFE:RES:ALL?")

    assert on_sim(body) == ("116", "112")


def test_reset_forgets_steps():
    async def body(visa, sim, pack):
        await visa.w("SAFE:STEP 1:IR 500", "*RST")
        return await visa.q("SAFE:SNUM?"), await visa.q("SAFE:RES:ALL?")

    assert on_sim(body) == ("0", "112")


def test_hang_fault_never_answers():
    async def body(visa, sim, pack):
        sim.behaviour = "hang"
        with pytest.raises(pyvisa.errors.VisaIOError):
            await visa.q("*IDN?")
        return sim.received

    assert on_sim(body, timeout_ms=200) == ["*IDN?"]


def test_garbage_fault_answers_noise():
    async def body(visa, sim, pack):
        sim.behaviour = "garbage"
        return await visa.q("SAFE:STAT?")

    reply = on_sim(body)
    assert reply != "STOPPED" and "garbage" in reply
