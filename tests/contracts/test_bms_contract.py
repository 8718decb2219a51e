"""The Bms capability contract, run against DbcBms talking CAN (and UDS) to SimCanBms."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from drivers.capabilities import Bms, Identity, SafeAction
from drivers.errors import StaleSignalError
from drivers.registry import driver_class
from sim.bms.can_bms import SimCanBms
from sim.pack.model import Pack
from sim.pack.presets import PRESETS
from sim.wiring import Wiring
from station.clock import run

_channels = (f"contract-bms-{i}" for i in itertools.count())


async def connect(preset: str):
    pack = Pack(PRESETS[preset])
    sim = SimCanBms(pack, Wiring(lv_power=True), channel=next(_channels))
    resource = await sim.start()
    cls = driver_class("dbc_bms")
    bms = cls("bms", resource, options={
        "cells": pack.spec.series, "temperature_sensors": pack.spec.temp_sensors,
        "uds": {"tx_id": 0x7E4, "rx_id": 0x7EC}, "maker": "ACME", "model": "Pack BMS"})
    await bms.open()
    return pack, sim, bms


@pytest.mark.parametrize("preset", ["car-400", "bus-700"])
def test_bms_contract(preset):
    async def main():
        loop = asyncio.get_running_loop()
        pack, sim, bms = await connect(preset)
        try:
            assert isinstance(bms, Bms)
            assert 0 < await bms.wake(5.0) < 5.0
            ident = await bms.identify()  # from options: the BMS is the pack's, read over UDS
            serial = (await bms.uds_read(0xF18C)).decode("ascii").strip()
            cells, temps = bms.cell_voltages(), bms.cell_temperatures()
            values = {n: bms.signal(n) for n in ("pack_voltage", "soc", "cell_voltage_min", "cell_voltage_max",
                                                 "cell_temperature_max", "hvil_closed", "imd_enabled")}
            dtcs = await bms.read_dtcs()
            await bms.request_mode("normal")
            start = loop.time()
            while bms.state() != "normal" and loop.time() - start < 3.0:
                await asyncio.sleep(0.01)
            closed = (bms.state(), bms.signal("contactor_main_plus"))
            first = await bms.safe_state()
            second = await bms.safe_state()
            await asyncio.sleep(0.3)
            opened = (bms.state(), bms.signal("contactor_main_plus"), bms.signal("contactor_main_minus"))
        finally:
            await bms.close()
            await sim.stop()
        return pack.spec, (ident, serial), cells, temps, values, dtcs, closed, first, second, opened

    spec, ident, cells, temps, values, dtcs, closed, first, second, opened = run(main(), virtual=True)
    ident, serial = ident
    assert isinstance(ident, Identity) and (ident.maker, ident.model) == ("ACME", "Pack BMS")
    assert serial  # ECU serial F18C over UDS
    assert len(cells) == spec.series and len(temps) == spec.temp_sensors
    assert values["pack_voltage"] == pytest.approx(sum(cells), rel=0.005)
    assert values["cell_voltage_min"] == pytest.approx(min(cells), abs=0.005)
    assert values["cell_voltage_max"] == pytest.approx(max(cells), abs=0.005)
    assert values["cell_temperature_max"] == pytest.approx(max(temps), abs=0.5)
    assert 0 < values["soc"] <= 100 and values["hvil_closed"] == 1.0 and values["imd_enabled"] == 1.0
    assert dtcs == [] or all(hasattr(d, "code") for d in dtcs)
    assert closed == ("normal", 1.0)
    # confirmed by the BMS's own state frame after each request
    assert first == second and first[0] == SafeAction("requested standby: contactors open (BMS state frame)", True)
    assert all(isinstance(a, SafeAction) and a.confirmed for a in first)
    assert opened == ("standby", 0.0, 0.0)


def test_a_closed_bms_reports_stale_values_instead_of_old_ones():
    async def main():
        _pack, sim, bms = await connect("car-400")
        await bms.wake(5.0)
        await sim.stop()
        await asyncio.sleep(3 * bms.map.cells.period + 0.1)  # > 3 cell-voltage rotations
        try:
            with pytest.raises(StaleSignalError):
                bms.signal("soc")
            with pytest.raises(StaleSignalError):
                bms.cell_voltages()
        finally:
            await bms.close()

    run(main(), virtual=True)


def test_bms_contract_energy_state_and_a_silent_bms():
    """energy_state reads a fresh frame (contactors closed, then open); a BMS that dies on the bus
    gets its standby request recorded unconfirmed, within the bound, without an exception."""

    async def main():
        loop = asyncio.get_running_loop()
        _pack, sim, bms = await connect("car-400")
        try:
            await bms.wake(5.0)
            await bms.request_mode("normal")
            start = loop.time()
            while bms.state() != "normal" and loop.time() - start < 3.0:
                await asyncio.sleep(0.01)
            closed = await bms.energy_state()
            sim.silent_after(loop.time())
            await asyncio.sleep(0.5)  # its frames are stale now
            start = loop.time()
            silent = await bms.safe_state()
            took = loop.time() - start
            quiet = await bms.energy_state()
        finally:
            await bms.close()
            await sim.stop()
        return closed, silent, took, quiet

    closed, silent, took, quiet = run(main(), virtual=True)
    assert not closed[0].safe and "CLOSED: main_plus, main_minus" in closed[0].detail
    assert not silent[0].confirmed and silent[0].action.startswith(
        "requested standby: contactors STILL CLOSED (main_plus, main_minus; BMS silent; its last state frame")
    assert took < 0.1
    assert "BMS silent" in quiet[0].detail
