"""The simulated fixture PLC, driven by pymodbus' own client (not our driver)."""

from __future__ import annotations

import asyncio

from pymodbus.client import AsyncModbusTcpClient

from sim.instruments.fixture_plc import SimFixturePlc
from sim.pack.model import Pack
from sim.pack.presets import PRESETS
from sim.wiring import Wiring
from station.clock import run


def with_plc(body, wiring: Wiring | None = None):
    """Run ``body(plc, client, wiring, pack)`` against a served SimFixturePlc on virtual time."""

    async def main():
        pack, w = Pack(PRESETS["car-400"]), wiring or Wiring()
        plc = SimFixturePlc(pack, w)
        host, port = (await plc.start()).split(":")
        client = AsyncModbusTcpClient(host, port=int(port), retries=0, timeout=1)
        assert await client.connect()
        try:
            return await body(plc, client, w, pack)
        finally:
            client.close()
            await plc.stop()

    return run(main(), virtual=True)


def test_start_reports_loopback_port():
    async def body(plc, client, w, pack):
        rsp = await client.read_discrete_inputs(0, count=4, device_id=1)
        return rsp.bits[:4]

    # estop released, guard closed, pack present, clamp not closed
    assert with_plc(body) == [True, True, True, False]


def test_clamp_closes_after_half_a_second_and_counts_a_cycle():
    async def body(plc, client, w, pack):
        loop = asyncio.get_running_loop()
        await client.write_coil(0, True, device_id=1)
        t0 = loop.time()
        early = (await client.read_discrete_inputs(3, count=1, device_id=1)).bits[0]
        await asyncio.sleep(0.6)
        late = (await client.read_discrete_inputs(3, count=1, device_id=1)).bits[0]
        cycles = (await client.read_input_registers(3, count=2, device_id=1)).registers
        return early, late, w.clamp, cycles, loop.time() - t0

    early, late, clamp, cycles, elapsed = with_plc(body)
    assert (early, late, clamp, cycles) == (False, True, True, [0, 1])
    assert elapsed < 1.0


def test_ir_relays_route_one_pole_and_refuse_both():
    async def body(plc, client, w, pack):
        await client.write_coil(2, True, device_id=1)
        pole_plus = w.ir_pole
        both = await client.write_coil(3, True, device_id=1)
        after = w.ir_pole
        await client.write_coils(2, [False, True], device_id=1)
        return pole_plus, both, after, w.ir_pole

    pole_plus, both, after, final = with_plc(body)
    assert pole_plus == "HV+"
    assert both.isError() and both.exception_code == 3  # ILLEGAL_DATA_VALUE: never short the poles
    assert after == "HV+"
    assert final == "HV-"


def test_hvil_lv_power_guard_lock_and_bond_point():
    async def body(plc, client, w, pack):
        await client.write_coils(4, [True, True], device_id=1)  # hvil_break, guard_lock
        await client.write_coil(1, True, device_id=1)  # lv_power
        await client.write_register(0, 2, device_id=1)
        bp2 = w.bond_point
        too_far = await client.write_register(0, len(pack.bond_points) + 1, device_id=1)
        await client.write_register(0, 0, device_id=1)
        coils = (await client.read_coils(0, count=6, device_id=1)).bits[:6]
        return not pack.hvil_closed(), w.guard_lock, w.lv_power, bp2, too_far, w.bond_point, coils

    broken, lock, lv, bp2, too_far, bp_none, coils = with_plc(body)
    assert (broken, lock, lv, bp2, bp_none) == (True, True, True, "BP2", None)
    assert too_far.isError() and too_far.exception_code == 3
    assert coils == [False, True, False, False, True, True]


def test_illegal_address_answers_exception_2():
    async def body(plc, client, w, pack):
        return (await client.read_holding_registers(7, count=1, device_id=1),
                await client.write_register(1, 1, device_id=1),
                await client.read_coils(16, count=1, device_id=1))

    for rsp in with_plc(body):
        assert rsp.isError() and rsp.exception_code == 2


def test_estop_at_a_time_drops_ir_relays_and_reports():
    async def body(plc, client, w, pack):
        loop = asyncio.get_running_loop()
        await client.write_coil(2, True, device_id=1)
        plc.press_estop_at(loop.time() + 5.0)
        before = (await client.read_discrete_inputs(0, count=1, device_id=1)).bits[0]
        await asyncio.sleep(5.1)
        after = (await client.read_discrete_inputs(0, count=1, device_id=1)).bits[0]
        relay = (await client.read_coils(2, count=1, device_id=1)).bits[0]
        return before, after, relay, w.ir_pole

    assert with_plc(body) == (True, False, False, None)


def test_inputs_follow_wiring():
    w = Wiring(guard_open=True, pack_present=False)

    async def body(plc, client, wiring, pack):
        return (await client.read_discrete_inputs(0, count=4, device_id=1)).bits[:4]

    assert with_plc(body, w) == [True, False, False, False]
