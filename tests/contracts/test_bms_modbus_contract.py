"""The Bms capability contract, run against ModbusBms talking to SimModbusBms.

Same behaviour as the CAN BMS (tests/contracts/test_bms_contract.py): wake, signals and cells
consistent with each other, mode request -> contactors close via precharge, insulation monitor
disable, balancing, an idempotent safe state, stale values once the BMS is gone; plus the EOL
write/read-back the reference plan does over UDS, here over holding registers. Modbus TCP and
RTU on a socket:// line run on virtual time; RTU on a pty runs on real time (pty bytes reach the
other side from a kernel work queue, which a virtual-time loop would jump past).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from drivers.capabilities import Bms, Dtc, Identity, SafeAction
from drivers.errors import DeviceError, InstrumentTimeout, StaleSignalError
from drivers.registry import driver_class
from sim.bms.modbus_bms import SimModbusBms
from sim.pack.model import Pack
from sim.pack.presets import PRESETS
from sim.wiring import Wiring
from station.clock import run

LINKS = [("car-400", "tcp", True), ("bus-700", "rtu-socket", True), ("car-400", "rtu-pty", False)]


async def connect(preset: str, link: str, **options):
    pack = Pack(PRESETS[preset])
    sim = SimModbusBms(pack, Wiring(lv_power=True))
    if link == "tcp":
        resource = f"modbus-tcp://{await sim.start()}?unit=1"
    else:
        resource = f"modbus-rtu://{await sim.start_rtu(link.removeprefix('rtu-'))}?baud=115200&unit=1"
    bms = driver_class("modbus_bms")("bms", resource, timeout=1.0,
                                     options={"maker": "ACME", "model": "Pack BMS", **options})
    await bms.open()
    return pack, sim, bms


async def until(predicate, within: float) -> bool:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > within:
            return False
        await asyncio.sleep(0.01)
    return True


@pytest.mark.parametrize("preset, link, virtual", LINKS)
def test_bms_contract_over_modbus(preset, link, virtual):
    async def main():
        pack, sim, bms = await connect(preset, link)
        out = {}
        try:
            assert isinstance(bms, Bms)
            out["wake"] = await bms.wake(5.0)
            out["ident"] = await bms.identify()
            out["dids"] = [await bms.uds_read(d) for d in (0xF18C, 0xF189, 0xF191, 0xF187)]
            out["cells"], out["temps"] = bms.cell_voltages(), bms.cell_temperatures()
            out["values"] = {n: bms.signal(n) for n in (
                "pack_voltage", "soc", "cell_voltage_min", "cell_voltage_max", "cell_temperature_max",
                "hvil_closed", "imd_enabled", "contactor_main_plus")}
            out["dtcs"] = await bms.read_dtcs()
            sim.ecu.add_dtc(0x0A1B2C, 0x09)
            out["dtc_seen"] = await bms.read_dtcs(0x09)
            seen = set()
            await bms.request_mode("normal")
            out["closed_in_time"] = await until(
                lambda: seen.add((bms.state(), bms.signal("contactor_precharge"))) or bms.state() == "normal", 3.0)
            out["seen"] = seen
            out["closed"] = tuple(bms.signal(n) for n in ("contactor_main_plus", "contactor_main_minus",
                                                           "contactor_precharge"))
            await bms.set_insulation_monitor(False)
            out["imd_off"] = await until(lambda: bms.signal("imd_enabled") == 0.0, 1.0), pack.insulation_monitor_enabled
            await bms.set_balancing(True)
            out["balancing"] = await until(lambda: bms.signal("balancing_active") == 1.0, 1.0)
            out["safe"] = await bms.safe_state(), await bms.safe_state()
            await asyncio.sleep(0.4)
            out["after"] = (bms.state(), bms.signal("contactor_main_plus"), bms.signal("contactor_main_minus"),
                            bms.signal("imd_enabled"), bms.signal("balancing_active"))
        finally:
            await bms.close()
            await sim.stop()
        return pack.spec, out

    spec, out = run(main(), virtual=virtual)
    assert 0 <= out["wake"] < 5.0
    ident = out["ident"]
    assert isinstance(ident, Identity) and (ident.maker, ident.model) == ("ACME", "Pack BMS")
    assert out["dids"] == [b"BMS2610010000042", spec.bms_sw_version.encode(), spec.bms_hw_version.encode().ljust(8),
                           spec.bms_part_number.encode().ljust(16)]
    cells, temps, values = out["cells"], out["temps"], out["values"]
    assert len(cells) == spec.series and len(temps) == spec.temp_sensors
    assert values["pack_voltage"] == pytest.approx(sum(cells), rel=0.005)
    assert values["cell_voltage_min"] == pytest.approx(min(cells), abs=0.005)
    assert values["cell_voltage_max"] == pytest.approx(max(cells), abs=0.005)
    assert values["cell_temperature_max"] == pytest.approx(max(temps), abs=0.5)
    assert 0 < values["soc"] <= 100 and values["hvil_closed"] == 1.0 and values["imd_enabled"] == 1.0
    assert values["contactor_main_plus"] == 0.0
    assert out["dtcs"] == [] and out["dtc_seen"] == [Dtc(0x0A1B2C, 0x09)]
    assert out["closed_in_time"] and ("precharge", 1.0) in out["seen"]  # through precharge, not straight
    assert out["closed"] == (1.0, 1.0, 0.0)
    assert out["imd_off"] == (True, False)
    assert out["balancing"]
    first, second = out["safe"]
    assert first == second == [SafeAction("requested standby: contactors open (read back)", True),
                               SafeAction("insulation monitor enabled (acknowledged)", True),
                               SafeAction("balancing off (acknowledged)", True)]
    assert out["after"] == ("standby", 0.0, 0.0, 1.0, 0.0)


def test_eol_data_write_and_read_back_over_registers():
    async def main():
        _pack, sim, bms = await connect("car-400", "tcp")
        try:
            await bms.uds_session("extended")
            await bms.uds_unlock(1)
            await bms.uds_write(0xF1A0, b"\x01")
            await bms.uds_write(0xF1A1, bytes.fromhex("20261125"))
            await bms.uds_write(0xF1A2, b"CAR0042".ljust(20))
            await bms.clear_dtcs()
            await bms.ecu_reset()
            back = [await bms.uds_read(d) for d in (0xF1A0, 0xF1A1, 0xF1A2)]
            locked = sim.ecu.unlocked_level  # the reset relocked it
            return back, locked, await bms.read_dtcs()
        finally:
            await bms.close()
            await sim.stop()

    back, locked, dtcs = run(main(), virtual=True)
    assert back == [b"\x01", bytes.fromhex("20261125"), b"CAR0042".ljust(20)]
    assert locked == 0 and dtcs == []


def test_a_vanished_bms_reports_stale_values_and_a_closed_driver_lets_contactors_drop():
    async def main():
        pack, sim, bms = await connect("car-400", "tcp")
        await bms.wake(5.0)
        await bms.request_mode("normal")
        await until(lambda: bms.state() == "normal", 3.0)
        await bms.close()  # the master stops talking: the BMS's 1 s watchdog opens the contactors
        await asyncio.sleep(1.5)
        dropped = sim.state, pack.contactor_closed("main_plus")
        await bms.open()
        await bms.wake(5.0)
        await sim.stop()
        await asyncio.sleep(1.6)  # > 3 x the 0.5 s cell poll period
        try:
            with pytest.raises(StaleSignalError) as stale:
                bms.signal("soc")
            with pytest.raises(StaleSignalError):
                bms.cell_voltages()
        finally:
            await bms.close()
        return dropped, stale.value

    dropped, stale = run(main(), virtual=True)
    assert dropped == ("error", False)
    assert "signal soc is stale" in str(stale) and "last poll failed" in str(stale)


def test_wrong_unit_and_unmapped_register_end_in_typed_errors_naming_register_and_signal(tmp_path):
    # a site map that expects SOH where this BMS has nothing (input 50): exception 2
    text = Path(SimModbusBms(Pack(PRESETS["car-400"]), Wiring()).map.path).read_text()
    site_map = tmp_path / "site.yaml"
    site_map.write_text(text.replace("{name: soh, table: input, address: 6,", "{name: soh, table: input, address: 50,"))

    async def main():
        _pack, sim, bms = await connect("car-400", "rtu-socket", map=str(site_map))
        loop = asyncio.get_running_loop()
        try:
            start = loop.time()
            with pytest.raises(DeviceError) as unmapped:
                await bms.wake(5.0)  # the BMS answered "no such address": waiting cannot help
            unmapped_took = loop.time() - start
            port = bms.resource.split("//", 1)[1].split("?")[0]
            other = driver_class("modbus_bms")("bms", f"modbus-rtu://{port}?baud=115200&unit=2", timeout=0.3,
                                               options={"autopoll": False})
            await other.open()
            start = loop.time()
            with pytest.raises(InstrumentTimeout) as ignored:
                await other.read_signal("soc")  # unit 2: the BMS (unit 1) stays silent
            ignored_took = loop.time() - start
            await other.close()
        finally:
            await bms.close()
            await sim.stop()
        return unmapped.value, unmapped_took, ignored.value, ignored_took, sim.gateways

    unmapped, unmapped_took, ignored, ignored_took, _ = run(main(), virtual=True)
    assert unmapped.code == 2 and "soh (input 50..50)" in str(unmapped) and unmapped_took < 1.0
    assert "soc (input 5..5)" in str(ignored) and 0.3 <= ignored_took < 0.4
