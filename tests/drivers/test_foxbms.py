"""DbcBms against the real foxBMS 2 DBC, driven only by drivers/maps/foxbms_signals.yaml."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cantools
import pytest

from drivers.bms.dbc_bms import DbcBms
from drivers.testing.can import ExpectedFrames, Tx
from station.clock import run

FOXBMS_DBC = (Path(__file__).resolve().parents[2] / "../shared/fixtures/dbc/foxbms/foxbms.dbc").resolve()
pytestmark = pytest.mark.skipif(not FOXBMS_DBC.exists(), reason=f"foxBMS DBC fixture not found at {FOXBMS_DBC}")
CELLS, SENSORS = 16, 12


@pytest.fixture(scope="module")
def db():
    return cantools.database.load_file(str(FOXBMS_DBC), strict=False)


def make(frames) -> tuple[DbcBms, ExpectedFrames]:
    port = ExpectedFrames(frames)
    bms = DbcBms("bms", "can://station_loop/FOX", transport=port,
                 options={"signals": "foxbms_signals.yaml", "dbc": str(FOXBMS_DBC),
                          "cells": CELLS, "temperature_sensors": SENSORS})
    return bms, port


def mux_frame(db, name: str, mux_signal: str, mux: int, values: dict) -> bytes:
    message = db.get_message_by_name(name)
    data = {s.name: 0 for s in message.signals if s.multiplexer_ids == [mux]}
    data[mux_signal] = mux
    data.update(values)
    return bytes(message.encode(data, strict=False))


def test_multiplexed_cell_voltages_and_temperatures_decode(db):
    mv = {i: 3600 + 7 * i for i in range(CELLS)}
    volt_frames = [mux_frame(db, "f_CellVoltages", "f_CellVoltages_Mux", m,
                             {f"CellVoltage_{i:03d}": mv[i] for i in range(4 * m, 4 * m + 4)}) for m in range(CELLS // 4)]
    temp_frames = [mux_frame(db, "f_CellTemperatures", "f_CellTemperatures_Mux", m,
                             {f"CellTemperature_{i:03d}": 20 + i for i in range(6 * m, 6 * m + 6)}) for m in range(SENSORS // 6)]
    state = db.encode_message("f_BmsState", {s.name: 0 for s in db.get_message_by_name("f_BmsState").signals}
                              | {"BmsState": 7, "InterlockState": 0, "InsulationMonitoring": 1,
                                 "InsulationResistance": 10000}, strict=False)

    async def main():
        bms, port = make([])
        await bms.open()
        for data in volt_frames:
            port.inject(0x250, data)
        for data in temp_frames:
            port.inject(0x260, data)
        port.inject(0x220, state)
        await asyncio.sleep(0.01)
        result = (bms.cell_voltages(), bms.cell_temperatures(), bms.state(), bms.signal("hvil_closed"),
                  bms.signal("imd_enabled"), bms.signal("imd_resistance"))
        port.assert_done()
        return result

    volts, temps, state_text, hvil, imd, r_imd = run(main(), virtual=True)
    assert volts == pytest.approx([mv[i] / 1000 for i in range(CELLS)])
    assert temps == [20 + i for i in range(SENSORS)]
    assert (state_text, hvil, imd, r_imd) == ("normal", 1.0, 1.0, 10_000_000.0)


def test_state_request_is_a_correct_f_bms_state_request(db):
    request = db.get_message_by_name("f_BmsStateRequest")

    def expected(**values) -> bytes:
        return bytes(request.encode({s.name: 0 for s in request.signals} | values))

    frames = [Tx(0x210, expected(RequestBmsMode=2)),
              Tx(0x210, expected(RequestBmsMode=2, DisableInsulationMonitoring=1)),
              Tx(0x210, expected(RequestBmsMode=2, DisableInsulationMonitoring=1, ActivateBalancing=1)),
              Tx(0x210, expected())]

    async def main():
        bms, port = make(frames)
        await bms.open()
        await bms.request_mode("charge")
        await bms.set_insulation_monitor(False)
        await bms.set_balancing(True)
        await bms.safe_state()
        port.assert_done()
        return [bytes(m.data) for m in port.sent]

    sent = run(main(), virtual=True)
    decoded = db.decode_message(0x210, sent[2], decode_choices=False)
    assert decoded["RequestBmsMode"] == 2  # Charge
    assert decoded["DisableInsulationMonitoring"] == 1
    assert decoded["ActivateBalancing"] == 1
    assert decoded["ResetPersistentFlags"] == 0 and decoded["SetBalancingThreshold"] == 0
    assert db.decode_message(0x210, sent[3], decode_choices=True)["RequestBmsMode"] == "Standby"
