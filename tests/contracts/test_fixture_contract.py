"""Fixture contract: ModbusFixture over ModbusTransport against SimFixturePlc on loopback,
on the real pack model and virtual time."""

from __future__ import annotations

import asyncio

import pytest

from drivers.capabilities import Fixture
from drivers.errors import ConnectError, DeviceError, InstrumentTimeout, RangeError
from drivers.fixture.modbus_fixture import ModbusFixture
from sim.instruments.fixture_plc import SimFixturePlc
from sim.pack.model import Pack
from sim.pack.presets import PRESETS
from sim.wiring import Wiring
from station.clock import run

READY = {"estop_released": True, "guard_closed": True, "pack_present": True, "clamp_closed": True}


def on_bench(body, *, timeout: float = 1.0):
    """Run ``body(driver, peer, pack, wiring)`` with the driver open, on virtual loop time."""

    async def main():
        pack, wiring = Pack(PRESETS["car-400"], seed=5), Wiring()
        peer = SimFixturePlc(pack, wiring)
        address = await peer.start()
        driver = ModbusFixture("fixture", f"modbus-tcp://{address}", timeout=timeout)
        try:
            async with driver:
                return await body(driver, peer, pack, wiring)
        finally:
            await peer.stop()

    return run(main(), virtual=True)


def test_identify_and_contact_cycles():
    async def body(drv, peer, pack, wiring):
        assert isinstance(drv, Fixture)
        ident = await drv.identify()
        await drv.set_output("clamp", True)
        await asyncio.sleep(1)
        return ident, await drv.contact_cycles()

    ident, cycles = on_bench(body)
    assert (ident.serial, ident.firmware, cycles) == ("710001", "1.2", 1)


def test_load_sequence_reaches_ready():
    async def body(drv, peer, pack, wiring):
        rest = await drv.read_inputs()
        await drv.set_output("clamp", True)
        await drv.set_output("lv_power", True)
        await drv.set_output("guard_lock", True)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while not (await drv.read_inputs())["clamp_closed"]:
            await asyncio.sleep(0.05)
        return rest, loop.time() - t0, await drv.read_inputs(), await drv.read_outputs(), wiring

    rest, took, ready, outputs, wiring = on_bench(body)
    assert rest == {**READY, "clamp_closed": False}
    assert 0.45 <= took <= 0.6
    assert ready == READY
    assert outputs == {"clamp": True, "lv_power": True, "ir_hv_plus": False, "ir_hv_minus": False,
                       "hvil_break": False, "guard_lock": True}
    assert wiring.clamp and wiring.lv_power and wiring.guard_lock


def test_ir_matrix_never_shorts_the_poles():
    async def body(drv, peer, pack, wiring):
        await drv.set_output("ir_hv_plus", True)
        plus = wiring.ir_pole
        with pytest.raises(DeviceError) as refused:
            await drv.set_output("ir_hv_minus", True)
        still = wiring.ir_pole
        await drv.set_output("ir_hv_plus", False)
        await drv.set_output("ir_hv_minus", True)
        return plus, refused.value, still, wiring.ir_pole

    plus, refused, still, minus = on_bench(body)
    assert (plus, still, minus) == ("HV+", "HV+", "HV-")
    assert refused.code == 3 and "ILLEGAL_DATA_VALUE" in str(refused) and "fixture" in str(refused)


def test_bond_point_and_hvil_break_reach_the_pack():
    async def body(drv, peer, pack, wiring):
        await drv.select_bond_point(3)
        bp = wiring.bond_point
        with pytest.raises(DeviceError) as beyond:  # in the map's range, beyond this pack's points
            await drv.select_bond_point(len(pack.bond_points) + 1)
        await drv.set_output("hvil_break", True)
        return bp, beyond.value.code, pack.hvil_closed()

    assert on_bench(body) == ("BP3", 3, False)


def test_estop_shows_on_the_inputs_and_drops_the_ir_relay():
    async def body(drv, peer, pack, wiring):
        await drv.set_output("ir_hv_minus", True)
        peer.press_estop_at(asyncio.get_running_loop().time() + 2.0)
        before = (await drv.read_inputs())["estop_released"]
        await asyncio.sleep(2.5)
        return before, (await drv.read_inputs())["estop_released"], (await drv.read_outputs())["ir_hv_minus"]

    assert on_bench(body) == (True, False, False)


def test_safe_state_releases_relays_and_keeps_clamp_and_lv_power():
    async def body(drv, peer, pack, wiring):
        for name in ("clamp", "lv_power", "ir_hv_plus", "hvil_break", "guard_lock"):
            await drv.set_output(name, True)
        await drv.select_bond_point(2)
        first = await drv.safe_state()
        second = await drv.safe_state()
        return first == second, await drv.read_outputs(), wiring.bond_point, pack.hvil_closed()

    idempotent, outputs, bond, hvil = on_bench(body)
    assert idempotent and bond is None and hvil
    assert outputs == {"clamp": True, "lv_power": True, "ir_hv_plus": False, "ir_hv_minus": False,
                       "hvil_break": False, "guard_lock": True}


def test_unknown_name_sends_nothing():
    async def body(drv, peer, pack, wiring):
        before = peer.requests
        with pytest.raises(RangeError, match="valid: clamp, lv_power"):
            await drv.set_output("hv_relay", True)
        return peer.requests - before

    assert on_bench(body) == 0


def test_hung_or_stopped_plc_fails_within_the_timeout():
    async def body(drv, peer, pack, wiring):
        loop = asyncio.get_running_loop()
        peer.behaviour = "hang"
        t0 = loop.time()
        with pytest.raises(InstrumentTimeout):
            await drv.read_inputs()
        hung = loop.time() - t0
        await peer.stop()
        await asyncio.sleep(0.01)
        t0 = loop.time()
        with pytest.raises((ConnectError, InstrumentTimeout)):
            await drv.safe_state()
        return hung, loop.time() - t0

    hung, stopped = on_bench(body, timeout=0.5)
    assert 0.5 <= hung <= 0.6
    assert stopped <= 4 * 0.6  # four safe-state actions, each bounded by the timeout
