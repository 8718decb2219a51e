"""SimCanBms on the virtual-time loop: frame rates, cells, staleness, precharge, faults."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import math

import can
import cantools
import pytest

from drivers.bms.dbc_bms import DbcBms
from drivers.bms.signals import MAPS
from drivers.errors import StaleSignalError
from sim.bms.can_bms import SimCanBms
from sim.bms.state_machine import ERR_HVIL, ERR_PRECHARGE, ERR_REQUEST_TIMEOUT, ERR_SENSOR
from sim.pack.model import Pack
from sim.pack.presets import PRESETS
from sim.wiring import Wiring
from station.clock import run

DB = cantools.database.load_file(str(MAPS / "eol_bms.dbc"))
SPEC = PRESETS["car-400"]
_channels = (f"simbms-{i}" for i in itertools.count())


async def rig(spec=SPEC, *, lv_power=True, **sim_kw):
    pack = Pack(spec)
    wiring = Wiring(lv_power=lv_power)
    sim = SimCanBms(pack, wiring, channel=next(_channels), seed=1, **sim_kw)
    resource = await sim.start()
    bms = DbcBms("bms", resource, options={"cells": spec.series, "temperature_sensors": spec.temp_sensors})
    await bms.open()
    return pack, wiring, sim, bms


async def teardown(sim, bms):
    await bms.close()
    await sim.stop()


def test_ten_seconds_yield_every_message_at_its_rate_and_all_cells_decode():
    async def main():
        pack = Pack(SPEC)
        sim = SimCanBms(pack, Wiring(lv_power=True), channel=next(_channels), seed=3)
        resource = await sim.start()
        assert resource.startswith("can://station_loop/")
        bus = can.Bus(interface="station_loop", channel=sim.channel, ignore_config=True)
        frames: list[can.Message] = []
        notifier = can.Notifier(bus, [frames.append], loop=asyncio.get_running_loop())
        await asyncio.sleep(10.0)
        notifier.stop()
        bus.shutdown()
        await sim.stop()
        return frames, pack.pack_voltage()

    frames, pack_voltage = run(main(), virtual=True)
    counts = collections.Counter(f.arbitration_id for f in frames)
    expected = {m.frame_id: round(10.0 / (m.cycle_time / 1000)) for m in DB.messages if m.senders == ["BMS"]}
    assert len(expected) == 7
    for frame_id, n in expected.items():
        assert abs(counts[frame_id] - n) <= 1, (hex(frame_id), counts[frame_id])
    cells: dict[int, float] = {}
    for f in frames:
        if f.arbitration_id == 0x310:
            for name, value in DB.decode_message(0x310, f.data, decode_choices=False).items():
                if name.startswith("CellVoltage_"):
                    cells[int(name[-3:])] = value
    assert sorted(cells) == list(range(SPEC.series))
    assert all(3.0 < v < 4.3 for v in cells.values())
    assert sum(cells.values()) == pytest.approx(pack_voltage, rel=0.01)


def test_a_dead_bms_sends_nothing_and_wakes_with_lv_power():
    async def main():
        loop = asyncio.get_running_loop()
        _pack, wiring, sim, bms = await rig(lv_power=False)
        await asyncio.sleep(1.0)
        silent = sum(sim.frames_sent.values())
        wiring.lv_power = True
        started = loop.time()
        took = await bms.wake(5.0)
        await teardown(sim, bms)
        return silent, took, loop.time() - started

    silent, took, _ = run(main(), virtual=True)
    assert silent == 0
    rotation = SPEC.series // 4 * DB.get_message_by_name("EOL_CellVoltages").cycle_time / 1000
    assert rotation - 0.1 < took < rotation + 0.2  # a full cell-voltage rotation plus a frame


def test_silent_bms_goes_stale_after_three_cycle_times():
    async def main():
        loop = asyncio.get_running_loop()
        _pack, _wiring, sim, bms = await rig()
        await bms.wake(2.0)
        t_silent = loop.time()
        sim.silent_after(t_silent)
        await asyncio.sleep(0.25)
        fresh = bms.signal("pack_voltage")
        await asyncio.sleep(0.1)
        with pytest.raises(StaleSignalError, match="bms: signal pack_voltage is stale"):
            bms.signal("pack_voltage")
        await teardown(sim, bms)
        return fresh

    assert 300 < run(main(), virtual=True) < 420


def test_normal_request_closes_contactors_through_precharge_with_tau_rc():
    tau = SPEC.precharge_ohm * SPEC.link_capacitance

    async def main():
        loop = asyncio.get_running_loop()
        pack, _wiring, sim, bms = await rig()
        await bms.wake(2.0)
        assert bms.state() == "standby" and pack.bus_voltage() < 1.0
        await bms.request_mode("normal")
        t0 = loop.time()
        await asyncio.sleep(tau)
        during = (sim.state, pack.bus_voltage() / pack.pack_voltage(),
                  [pack.contactor_closed(c) for c in ("main_minus", "precharge", "main_plus")])
        while sim.state != "normal":
            await asyncio.sleep(0.001)
        closed_after = loop.time() - t0
        await asyncio.sleep(0.2)
        seen = (bms.state(), bms.signal("contactor_main_plus"), bms.signal("contactor_precharge"),
                bms.signal("bus_voltage") / bms.signal("pack_voltage"))
        await asyncio.sleep(2.0)  # the driver's cyclic request keeps it closed
        still = sim.state
        await bms.safe_state()
        await asyncio.sleep(0.2)
        opened = (bms.state(), [pack.contactor_closed(c) for c in ("main_minus", "precharge", "main_plus")])
        await teardown(sim, bms)
        return during, closed_after, seen, still, opened

    during, closed_after, seen, still, opened = run(main(), virtual=True)
    assert during[0] == "precharge"
    assert during[1] == pytest.approx(1 - math.exp(-1), abs=0.05)
    assert during[2] == [True, True, False]
    assert 2.5 * tau < closed_after < 3.5 * tau  # 95 % of pack voltage = 3 tau
    assert seen[:3] == ("normal", 1.0, 0.0) and seen[3] > 0.95
    assert still == "normal"
    assert opened == ("standby", [False, False, False])


def test_precharge_timeout_opens_and_reports_error():
    slow = dataclasses.replace(SPEC, link_capacitance=1.0)  # tau 40 s

    async def main():
        pack, _wiring, sim, bms = await rig(slow, precharge_timeout=0.5)
        await bms.wake(2.0)
        await bms.request_mode("normal")
        await asyncio.sleep(0.8)
        result = (bms.state(), int(bms.signal("error_flags")),
                  [pack.contactor_closed(c) for c in ("main_minus", "precharge", "main_plus")])
        await teardown(sim, bms)
        return result

    state, flags, contactors = run(main(), virtual=True)
    assert state == "error" and flags & ERR_PRECHARGE
    assert contactors == [False, False, False]


def test_lost_request_opens_the_contactors():
    async def main():
        pack, _wiring, sim, bms = await rig()
        await bms.wake(2.0)
        await bms.request_mode("normal")
        await asyncio.sleep(0.5)
        assert sim.state == "normal"
        bms._stop_cyclic()  # the station dies without a safe state
        await asyncio.sleep(1.3)
        result = (sim.state, sim.machine.error_flags, pack.contactor_closed("main_plus"))
        await teardown(sim, bms)
        return result

    state, flags, main_plus = run(main(), virtual=True)
    assert state == "error" and flags & ERR_REQUEST_TIMEOUT and not main_plus


def test_open_tap_and_dead_sensor_read_invalid_and_flag_a_sensor_fault():
    async def main():
        pack, _wiring, sim, bms = await rig()
        pack.open_tap = {5}
        pack.dead_sensor = {2}
        await asyncio.sleep(1.5)
        result = (bms.cell_voltages(), bms.cell_temperatures(), int(bms.signal("error_flags")),
                  bms.signal("cell_voltage_min"))
        await teardown(sim, bms)
        return result

    cells, temps, flags, v_min = run(main(), virtual=True)
    assert cells[5] == 0.0 and all(3.0 < v < 4.3 for i, v in enumerate(cells) if i != 5)
    assert temps[2] == pytest.approx(-819.2) and all(15 < t < 40 for i, t in enumerate(temps) if i != 2)
    assert flags & ERR_SENSOR
    assert v_min > 3.0  # min/max over valid cells only


def test_insulation_monitor_and_balancing_requests_reach_the_pack():
    async def main():
        pack, _wiring, sim, bms = await rig()
        await bms.wake(2.0)
        await bms.set_insulation_monitor(False)
        await bms.set_balancing(True)
        await asyncio.sleep(0.3)
        during = (pack.insulation_monitor_enabled, bms.signal("imd_enabled"), bms.signal("imd_resistance"),
                  bms.signal("balancing_active"))
        await bms.safe_state()
        await asyncio.sleep(0.3)
        after = (pack.insulation_monitor_enabled, bms.signal("imd_enabled"), bms.signal("balancing_active"))
        await teardown(sim, bms)
        return during, after

    during, after = run(main(), virtual=True)
    assert during[:3] == (False, 0.0, 0.0)
    assert during[3] in (0.0, 1.0)  # a balanced new pack may have nothing to bleed
    assert after == (True, 1.0, 0.0)


def test_hvil_break_while_closed_opens_the_contactors():
    async def main():
        pack, _wiring, sim, bms = await rig()
        await bms.wake(2.0)
        await bms.request_mode("normal")
        await asyncio.sleep(0.5)
        assert bms.signal("hvil_closed") == 1.0 and sim.state == "normal"
        pack.set_hvil_break(True)
        await asyncio.sleep(0.3)
        result = (bms.signal("hvil_closed"), bms.state(), int(bms.signal("error_flags")),
                  pack.contactor_closed("main_plus"))
        await teardown(sim, bms)
        return result

    hvil, state, flags, main_plus = run(main(), virtual=True)
    assert (hvil, state, main_plus) == (0.0, "error", False) and flags & ERR_HVIL
