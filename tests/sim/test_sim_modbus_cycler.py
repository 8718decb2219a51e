"""The simulated Modbus cycler on the real pack model, driven by pymodbus' own client."""

from __future__ import annotations

import asyncio

from pymodbus.client import AsyncModbusTcpClient

from sim.instruments.modbus_cycler import SimModbusCycler
from sim.pack.model import Pack
from sim.pack.presets import PRESETS
from station.clock import run

F32 = AsyncModbusTcpClient.DATATYPE.FLOAT32


def f32(x: float) -> list[int]:
    return AsyncModbusTcpClient.convert_to_registers(x, F32)


def with_cycler(body):
    """Run ``body(sim, client, pack)`` against a served SimModbusCycler on virtual time."""

    async def main():
        pack = Pack(PRESETS["car-400"])
        pack.set_contactor("main_minus", True)
        pack.set_contactor("main_plus", True)
        sim = SimModbusCycler(pack)
        host, port = (await sim.start()).split(":")
        client = AsyncModbusTcpClient(host, port=int(port), retries=0, timeout=1)
        assert await client.connect()
        try:
            return await body(sim, client, pack)
        finally:
            client.close()
            await sim.stop()

    return run(main(), virtual=True)


async def read_inputs(client) -> dict:
    regs = (await client.read_input_registers(0, count=13, device_id=1)).registers
    conv = AsyncModbusTcpClient.convert_from_registers
    return {
        "v": conv(regs[0:2], F32), "i": conv(regs[2:4], F32), "p": conv(regs[4:6], F32),
        "ah": conv(regs[6:8], F32), "prot": regs[8], "hb": regs[9],
        "serial": conv(regs[10:12], AsyncModbusTcpClient.DATATYPE.UINT32), "fw": regs[12],
    }


async def charge(client, amps: float, volts: float = 450.0) -> None:
    await client.write_registers(0, f32(volts) + f32(amps) + f32(100.0) + f32(100.0), device_id=1)
    await client.write_coil(0, True, device_id=1)


def test_charge_pulse_drives_the_pack_and_counts_ah():
    async def body(sim, client, pack):
        await charge(client, 20.0)
        await asyncio.sleep(36.0)
        got = await read_inputs(client)
        on = (await client.read_discrete_inputs(0, count=1, device_id=1)).bits[0]
        await client.write_coil(2, True, device_id=1)  # reset_counters
        ah_after_reset = (await read_inputs(client))["ah"]
        return got, on, ah_after_reset

    got, on, ah_after_reset = with_cycler(body)
    assert on
    assert abs(got["i"] - 20.0) < 0.5
    assert 300.0 < got["v"] < 450.0
    assert abs(got["p"] - got["v"] * got["i"]) < 1.0
    assert abs(got["ah"] - 20.0 * 36.0 / 3600.0) < 0.01
    assert ah_after_reset < 1e-3
    assert (got["prot"], got["serial"], got["fw"]) == (0, 520001, 0x0103)


def test_discharge_sign_is_negative():
    async def body(sim, client, pack):
        await charge(client, -30.0, volts=200.0)
        await asyncio.sleep(1.0)
        return await read_inputs(client)

    got = with_cycler(body)
    assert abs(got["i"] + 30.0) < 0.5 and got["p"] < 0


def test_out_of_range_setpoint_is_exception_3_and_unmapped_is_2():
    async def body(sim, client, pack):
        return (await client.write_registers(0, f32(2000.0), device_id=1),
                await client.write_register(12, 601, device_id=1),  # watchdog 60.1 s > 60 s
                await client.read_holding_registers(13, count=1, device_id=1),
                await client.read_input_registers(13, count=1, device_id=1),
                await client.write_coil(3, True, device_id=1),
                sim.values["voltage_setpoint"])

    *rsps, vset = with_cycler(body)
    codes = [r.exception_code if r.isError() else None for r in rsps]
    assert codes == [3, 3, 2, 2, 2]
    assert vset == 0.0  # a refused write changes nothing


def test_ovp_trips_without_polling_and_latches_until_cleared():
    async def body(sim, client, pack):
        await client.write_registers(8, f32(100.0), device_id=1)  # OVP at 100 V; pack ~ 370 V
        await charge(client, 5.0)
        await asyncio.sleep(1.0)
        prot = (await read_inputs(client))["prot"]
        on = (await client.read_coils(0, count=1, device_id=1)).bits[0]
        refused = await client.write_coil(0, True, device_id=1)
        await client.write_registers(8, f32(1000.0), device_id=1)
        await client.write_coil(1, True, device_id=1)  # protection_clear
        cleared = (await read_inputs(client))["prot"]
        again = await client.write_coil(0, True, device_id=1)
        return prot, on, refused, cleared, again, pack.source_reading()[1]

    prot, on, refused, cleared, again, amps = with_cycler(body)
    assert prot == 0b0001 and not on
    assert refused.isError() and refused.exception_code == 3
    assert cleared == 0 and not again.isError()
    assert amps > 0


def test_watchdog_switches_output_off_when_the_host_goes_quiet():
    async def body(sim, client, pack):
        await client.write_register(12, 20, device_id=1)  # 2.0 s
        await charge(client, 10.0)
        for _ in range(5):  # polled every second: stays on
            await asyncio.sleep(1.0)
            await client.read_input_registers(0, count=2, device_id=1)
        alive = sim.output
        await asyncio.sleep(2.5)
        return alive, sim.output, (await read_inputs(client))["prot"], pack.source_reading()[1]

    alive, output, prot, amps = with_cycler(body)
    assert alive and not output
    assert prot == 0b1000  # WDT
    assert abs(amps) < 1.0


def test_injected_otp_and_heartbeat():
    async def body(sim, client, pack):
        hb0 = (await read_inputs(client))["hb"]
        await charge(client, 5.0)
        await asyncio.sleep(1.0)
        sim.trip("OTP")
        got = await read_inputs(client)
        return hb0, got["hb"], got["prot"], sim.output

    hb0, hb1, prot, output = with_cycler(body)
    assert hb1 - hb0 >= 9  # 100 ms ticks
    assert prot == 0b0100 and not output
