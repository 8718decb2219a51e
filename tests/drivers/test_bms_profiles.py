"""BMS profiles say what real DBCs say: numbering, multiplexed pages, value tables, unit and offset
overrides, optional signals, and command paths as data (CAN request, UDS, none)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import can
import cantools
import pytest

from drivers.bms.did_table import load_did_table
from drivers.bms.live_values import LiveValues
from drivers.bms.signals import MAPS, SignalMapError, load_signal_map
from drivers.capabilities import SafeAction
from drivers.errors import DeviceError, InstrumentError
from drivers.registry import driver_class
from sim.bms.can_bms import SimCanBms
from sim.bms.ecu import EcuState
from sim.pack.model import Pack
from sim.pack.presets import PRESETS
from sim.wiring import Wiring
from station.clock import run

VEHICLE = MAPS / "vehicle"
PROFILE = VEHICLE / "vehicle_bms.yaml"
_channels = (f"profile-bms-{i}" for i in itertools.count())


@pytest.fixture(scope="module")
def db():
    return cantools.database.load_file(str(VEHICLE / "vehicle_bms.dbc"))


def _profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(f"dbc: {VEHICLE / 'vehicle_bms.dbc'}\n" + text)
    return path


# --- signal maps -------------------------------------------------------------------------------

def test_cells_numbered_from_one_across_multiplexed_pages():
    m = load_signal_map(PROFILE, cells=96, temperature_sensors=24)
    assert m.cells.names[:4] == ("BMS_brickVoltage1", "BMS_brickVoltage2", "BMS_brickVoltage3", "BMS_brickVoltage4")
    assert m.cells.names[-1] == "BMS_brickVoltage96"
    assert m.cells.mux_values[:4] == (0, 0, 0, 1) and m.cells.mux_values[-1] == 31  # three bricks a page
    assert m.cells.factor == pytest.approx(0.001)  # unit: mV
    assert m.temperatures.names[0] == "BMS_thermistor1" and len(set(m.temperatures.mux_values)) == 4
    # no cycle times in the DBC: the map's `messages`, per page (cycle: frame) times the pages
    assert m.cells.period == pytest.approx(0.020 * 32)
    assert m.signals["pack_voltage"].period == pytest.approx(0.1)


def test_counting_from_zero_on_a_one_based_dbc_is_located(tmp_path):
    path = _profile(tmp_path, "messages: {BMS_brickVoltages: {cycle_ms: 20}}\n"
                              "cells: {signals: 'BMS_brickVoltages.BMS_brickVoltage{index}'}\n")
    with pytest.raises(SignalMapError) as info:
        load_signal_map(path, cells=96)
    assert f"{path}:3:18: " in info.value.problems[0] and "'BMS_brickVoltage0'" in info.value.problems[0]


def test_cells_as_an_explicit_list_and_a_format_pattern(tmp_path):
    listed = _profile(tmp_path, "messages: {BMS_brickVoltages: {cycle_ms: 20}}\ncells:\n  signals: ["
                                + ", ".join(f"BMS_brickVoltages.BMS_brickVoltage{i}" for i in (3, 2, 1)) + "]\n")
    m = load_signal_map(listed, cells=3)
    assert m.cells.names == ("BMS_brickVoltage3", "BMS_brickVoltage2", "BMS_brickVoltage1")
    with pytest.raises(SignalMapError, match="the list names 3"):
        load_signal_map(listed, cells=4)
    pattern = tmp_path / "p2.yaml"
    pattern.write_text(f"dbc: {VEHICLE / 'vehicle_bms.dbc'}\nmessages: {{BMS_brickVoltages: {{cycle_ms: 20}}}}\n"
                       "cells: {signals: 'BMS_brickVoltages.BMS_brickVoltage{index:d}', start: 10}\n")
    assert load_signal_map(pattern, cells=2).cells.names == ("BMS_brickVoltage10", "BMS_brickVoltage11")


def test_value_tables_states_and_units_resolve_and_bad_ones_are_located(tmp_path):
    m = load_signal_map(PROFILE)
    assert m.signals["bms_state"].states["normal"] == 2 and m.signals["bms_state"].states["error"] == 4
    assert m.signals["contactor_precharge"].true_when == frozenset({2.0})
    assert m.signals["contactor_main_minus"].true_when == frozenset({2.0, 4.0})
    assert m.signals["imd_resistance"].factor == 1000.0  # kOhm
    assert m.signals["cell_voltage_min_index"].offset == -1.0
    bad = _profile(tmp_path, "messages: {BMS_status: {cycle_ms: 100}}\nsignals:\n"
                             "  contactor_main_plus: {signal: BMS_status.BMS_contactorState, true_when: [SHUT]}\n"
                             "  imd_resistance: {signal: BMS_status.BMS_isolationResistance, unit: kiloohm}\n"
                             "  bms_state: {signal: BMS_status.BMS_state, states: {normal: RUN}}\n"
                             "  pack_voltage: BMS_hvBusStatus.BMS_packVoltage\n")
    with pytest.raises(SignalMapError) as info:
        load_signal_map(bad)
    text = "\n".join(info.value.problems)
    assert f"{bad}:4:76: 'SHUT' is not a value of BMS_status.BMS_contactorState; its values: 0 SNA, 1 OPEN" in text
    assert f"{bad}:5:70: unknown unit 'kiloohm'" in text
    assert f"{bad}:6:62: 'RUN' is not a value of BMS_status.BMS_state" in text
    assert f"{bad}:7:3: message BMS_hvBusStatus has no GenMsgCycleTime; give cycle_ms here or under messages" in text


def _frame(db, name: str, **values) -> can.Message:
    message = db.get_message_by_name(name)
    data = {s.name: 0 for s in message.signals if not s.multiplexer_ids or
            s.multiplexer_ids == [values.get(next((x.name for x in message.signals if x.is_multiplexer), ""), 0)]}
    data.update(values)
    return can.Message(arbitration_id=message.frame_id, data=message.encode(data, strict=False))


@pytest.mark.parametrize("path", ["fast", "cantools"])
def test_enums_pages_units_and_offsets_decode(db, path):
    live = LiveValues(load_signal_map(PROFILE, cells=6, temperature_sensors=6), clock=lambda: 1.0)
    if path == "cantools":
        for handler in live._handlers.values():
            handler.layout = None  # the general decoder must read the same values
    seen = {}
    for state in ("OPEN", "PRECHARGE", "CLOSED", "WELDED"):
        live.update(_frame(db, "BMS_status", BMS_contactorState=state, BMS_hvilStatus="OK",
                           BMS_isolationMonitor="ACTIVE", BMS_state="DRIVE", BMS_isolationResistance=5000))
        seen[state] = tuple(live.get(n) for n in ("contactor_main_plus", "contactor_main_minus", "contactor_precharge"))
    assert seen == {"OPEN": (0, 0, 0), "PRECHARGE": (0, 1, 1), "CLOSED": (1, 1, 0), "WELDED": (1, 0, 0)}
    assert live.state() == "normal" and live.get("hvil_closed") == 1.0 and live.get("imd_enabled") == 1.0
    assert live.get("imd_resistance") == pytest.approx(5e6)
    live.update(_frame(db, "BMS_minMax", BMS_minMaxMux=0, BMS_brickVoltageMin=3650, BMS_brickNumVoltageMin=1))
    live.update(_frame(db, "BMS_minMax", BMS_minMaxMux=1, BMS_thermistorTMax=31.5, BMS_thermistorNumTMax=7))
    assert live.get("cell_voltage_min") == pytest.approx(3.65) and live.get("cell_voltage_min_index") == 0.0
    assert live.get("cell_temperature_max") == 31.5  # the other page of the same message
    for page, bricks in ((0, (3601, 3602, 3603)), (1, (3604, 3605, 3606))):
        live.update(_frame(db, "BMS_brickVoltages", BMS_brickVoltagesMux=page,
                           **{f"BMS_brickVoltage{3 * page + i + 1}": v for i, v in enumerate(bricks)}))
    assert live.group("cell_voltage") == pytest.approx([3.601, 3.602, 3.603, 3.604, 3.605, 3.606])


def test_optional_signals_are_simply_not_offered():
    offers = load_signal_map(PROFILE).offers()
    assert "soh" not in offers["signals"] and "soc" in offers["signals"]
    assert offers["command_path"] == "uds"
    assert offers["commands"]["mode"] == ("standby", "normal", "discharge", "charge")


# --- command paths -------------------------------------------------------------------------------

def test_command_problems_are_located(tmp_path):
    bad = _profile(tmp_path, "commands:\n  path: uds\n  mode:\n    normal: {routine: 0xF00A, control: begin}\n"
                             "  balancing:\n    on: {write_did: 0xFD30, io_control: 1}\n"
                             "  insulation_monitor:\n    enabled: {io_control: 0xFD21, session: diag}\n")
    with pytest.raises(SignalMapError) as info:
        load_signal_map(bad)
    text = "\n".join(info.value.problems)
    assert f"{bad}:5:40: routine control must be one of start, stop, results, got 'begin'" in text
    assert f"{bad}:4:3: commands.mode needs 'standby'" in text
    assert f"{bad}:7:5: command on needs exactly one of routine, io_control, write_did" in text
    assert f"{bad}:6:3: commands.balancing needs both on and off" in text
    assert f"{bad}:9:44: session must be one of default, extended, programming" in text


async def _vehicle(options: dict | None = None):
    pack = Pack(PRESETS["car-400"])
    ecu = EcuState.from_table(load_did_table(VEHICLE / "vehicle_did.yaml"))
    sim = SimCanBms(pack, Wiring(lv_power=True), channel=next(_channels), signals=PROFILE, ecu=ecu)
    resource = await sim.start()
    bms = driver_class("dbc_bms")("bms", resource, options={
        "signals": str(PROFILE), "cells": pack.spec.series, "temperature_sensors": pack.spec.temp_sensors,
        "uds": {"tx_id": 0x7E4, "rx_id": 0x7EC}, **(options or {})})
    await bms.open()
    return pack, sim, bms


async def _until(predicate, within: float = 3.0) -> bool:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > within:
            return False
        await asyncio.sleep(0.01)
    return True


def test_uds_commands_drive_the_vehicle_bms_and_its_safe_state_is_acknowledged():
    async def main():
        pack, sim, bms = await _vehicle()
        try:
            await bms.wake(5.0)
            await bms.set_insulation_monitor(False)  # 0x2F FD21 03 00, extended session, level 1
            imd_off = await _until(lambda: bms.signal("imd_enabled") == 0.0) and not pack.insulation_monitor_enabled
            await bms.request_mode("normal")  # 0x31 01 F00A 02
            closed = await _until(lambda: bms.state() == "normal" and bms.signal("contactor_main_plus") == 1.0)
            await bms.set_balancing(True)  # 0x2E FD30 01, no security
            await asyncio.sleep(2.0)  # no cyclic request: the vehicle BMS holds its state on UDS alone
            held = bms.state()
            done = await bms.safe_state()
            opened = await _until(lambda: bms.signal("contactor_main_plus") == 0.0 and bms.state() == "standby")
            return imd_off, closed, held, done, opened, pack.insulation_monitor_enabled, sim.frames_sent
        finally:
            await bms.close()
            await sim.stop()

    imd_off, closed, held, done, opened, imd_back, _frames = run(main(), virtual=True)
    assert imd_off and closed and held == "normal" and opened and imd_back
    assert [a.confirmed for a in done] == [True, True, True]
    assert all(isinstance(a, SafeAction) for a in done)
    assert "0x31 RoutineControl stop 0xf00a" in done[0].action and "0x2F InputOutputControl return_control 0xfd21" in done[1].action


def test_the_ecu_refuses_a_command_step_outside_its_session_or_security_level():
    async def main():
        _pack, sim, bms = await _vehicle()
        try:
            await bms.wake(5.0)
            client = bms._client("test")
            errors = []
            for setup in ("default", "extended"):
                if setup == "extended":
                    await client.session("extended")
                try:
                    await client.request(0x31, bytes([0x01, 0xF0, 0x0A, 0x02]), "start 0xf00a 02")
                except DeviceError as err:
                    errors.append(err.code)
            return errors, sim.state
        finally:
            await bms.close()
            await sim.stop()

    errors, state = run(main(), virtual=True)
    assert errors == [0x7F, 0x33] and state == "standby"  # not in the default session; locked


def test_a_read_only_bms_refuses_commands_and_its_safe_state_says_what_it_did(tmp_path):
    text = PROFILE.read_text().replace("dbc: vehicle_bms.dbc", f"dbc: {VEHICLE / 'vehicle_bms.dbc'}")
    text = text[:text.index("commands:")] + "commands: {path: none}\n"
    profile = tmp_path / "read_only.yaml"
    profile.write_text(text)

    async def main():
        _pack, sim, bms = await _vehicle({"signals": str(profile)})
        try:
            await bms.wake(5.0)
            refused = []
            for command in (bms.request_mode("normal"), bms.set_insulation_monitor(False)):
                try:
                    await command
                except InstrumentError as err:
                    refused.append(str(err))
            done = await bms.safe_state()
            sim.wiring.lv_power = False  # the fixture's LV off: the BMS falls silent, last report open
            await asyncio.sleep(1.0)
            silent = await bms.safe_state()
            return refused, done, silent, bms.offers()
        finally:
            await bms.close()
            await sim.stop()

    refused, done, silent, offers = run(main(), virtual=True)
    assert all("read-only BMS (command path none)" in r for r in refused) and len(refused) == 2
    assert offers["command_path"] == "none" and offers["commands"] == {}
    assert [(a.action, a.confirmed) for a in done] == [
        ("read-only BMS (command path none): no command sent", True), ("contactors reported open (BMS state frame)", True)]
    assert silent[1].confirmed and "BMS silent; its last report" in silent[1].action


def test_a_request_message_needs_only_the_standby_mode(tmp_path):
    """A CAN request with a mode signal only: balancing and the monitor are simply not offered."""
    path = tmp_path / "mode_only.yaml"
    path.write_text(f"dbc: {MAPS / 'eol_bms.dbc'}\nsignals: {{pack_voltage: EOL_PackValues.PackVoltage}}\n"
                    "request:\n  message: EOL_StateRequest\n"
                    "  mode: {signal: RequestMode, values: {standby: 0, normal: 1}}\n")
    offers = load_signal_map(path).offers()
    assert offers["command_path"] == "can" and offers["commands"] == {"mode": ("standby", "normal")}
    from station.actions.offers import refusals

    assert any("offers balancing: none" in why for _, why in refusals(offers, "bms.balancing", {"on": True}, set()))
    assert refusals(offers, "bms.open_contactors", {}, set())[0][1].startswith(
        "bms.open_contactors needs signals contactor_main_plus, contactor_main_minus")
