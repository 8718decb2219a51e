"""What SimCanBms puts in each frame: cantools' encoding of its last measurement cycle.

Also the pieces it is built from: ``fastcodec.packer`` bit for bit against cantools, the
measurement noise drawn as before (one block per scan), and the bench's pack slot followed.
"""

from __future__ import annotations

import asyncio
import itertools
import random

import can
import cantools
import numpy as np
import pytest

from drivers.bms.fastcodec import CantoolsPacker, Packer, packer
from drivers.bms.signals import MAPS
from sim.bench import PackSlot
from sim.bms.can_bms import SimCanBms
from sim.bms.measurements import Measurements
from sim.pack.model import Pack
from sim.pack.presets import PRESETS
from sim.wiring import Wiring
from station.clock import run

DB = cantools.database.load_file(str(MAPS / "eol_bms.dbc"))
SPEC = PRESETS["car-400"]
_channels = (f"simframes-{i}" for i in itertools.count())


def _float_in_range(signal, rng: random.Random) -> float:
    """A float anywhere in the signal's raw range (on and off the scale grid, halfway points)."""
    raw_low, raw_high = ((-(1 << (signal.length - 1)), (1 << (signal.length - 1)) - 1) if signal.is_signed
                         else (0, (1 << signal.length) - 1))
    raw = rng.choice([float(rng.randint(raw_low, raw_high)), rng.uniform(raw_low, raw_high),
                      rng.randint(raw_low, raw_high - 1) + 0.5])
    return raw * signal.scale + signal.offset


def test_packer_matches_cantools_for_float_values_on_every_message():
    rng = random.Random(11)
    checked = 0
    for message in DB.messages:
        mux = next((s for s in message.signals if s.is_multiplexer), None)
        mux_values = sorted({i for s in message.signals for i in (s.multiplexer_ids or ())}) or [None]
        for mux_value in mux_values:
            signals = [s for s in message.signals if not s.is_multiplexer
                       and (mux_value is None or mux_value in (s.multiplexer_ids or ()))]
            constants = {mux.name: mux_value} if mux is not None else {}
            if len(signals) > 1:  # one signal held constant, as the BMS does with unmapped ones
                constants[signals[-1].name] = _float_in_range(signals[-1], rng)
                signals = signals[:-1]
            enc = packer(message, [s.name for s in signals], constants)
            assert isinstance(enc, Packer), message.name
            for _ in range(30):
                values = [_float_in_range(s, rng) for s in signals]
                expected = message.encode({**constants, **dict(zip((s.name for s in signals), values))},
                                          scaling=True, strict=False)
                assert enc.pack(values) == expected, (message.name, mux_value, values)
                checked += 1
    assert checked > 1000


def test_packer_leaves_big_endian_messages_to_cantools():
    db = cantools.database.load_string(
        'VERSION ""\nBS_:\nBU_: A\nBO_ 1 M: 8 A\n SG_ S : 7|16@0+ (0.5,0) [0|1000] "" A\n'
        ' SG_ T : 23|8@0+ (1,0) [0|255] "" A\n', database_format="dbc")
    message = db.get_message_by_name("M")
    enc = packer(message, ["S"], {"T": 7})
    assert isinstance(enc, CantoolsPacker)
    assert enc.pack([123.5]) == message.encode({"S": 123.5, "T": 7}, scaling=True, strict=False)


def test_one_noise_block_per_scan_draws_the_numbers_of_one_draw_per_reading():
    pack = Pack(SPEC, clock=lambda: 0.0)
    m = Measurements(pack, seed=5)
    m.sample(0.0)
    rng, sigma = np.random.default_rng(5), m.sigma
    snap = pack.snapshot()
    cells = snap.cell_voltages + rng.normal(0.0, sigma["cell_v"], SPEC.series)
    temps = pack.cell_temperatures() + rng.normal(0.0, sigma["temp"], SPEC.temp_sensors)
    assert m.cells == cells.tolist()
    assert m.temps == temps.tolist()
    assert m.pack_v == snap.pack_voltage + float(rng.normal(0.0, sigma["pack_v"]))
    assert m.pack_i == snap.pack_current + float(rng.normal(0.0, sigma["current"]))


class _Capture:
    """Stands in for the sim's bus: keeps (id, payload) of each frame sent."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, bytes]] = []

    def send(self, msg: can.Message) -> None:
        self.frames.append((msg.arbitration_id, bytes(msg.data)))

    def shutdown(self) -> None:
        pass


def _encode(name: str, values: dict) -> bytes:
    message = DB.get_message_by_name(name)
    data = {s.name: 0.0 for s in message.signals if not s.multiplexer_ids}
    data.update(values)
    return message.encode(data, scaling=True, strict=False)


def test_every_frame_is_cantools_encoding_of_the_last_measurement_cycle():
    async def main():
        pack = Pack(SPEC)
        pack.open_tap = {1}
        sim = SimCanBms(pack, Wiring(lv_power=True), channel=next(_channels), seed=2)
        await sim.start()
        await asyncio.sleep(0.5)
        real, capture = sim._bus, _Capture()
        sim._bus = capture
        sim.error_flags = 0x100
        for _period, send in sim._cyclic._streams:  # one frame of every stream, now
            send()
        sim._bus = real
        await sim.stop()
        return sim, capture.frames

    sim, frames = run(main(), virtual=True)
    m, snap = sim.measure, sim.measure.snap
    sent = dict(frames)
    assert len(sent) == 7
    v_low, v_low_i, v_high, v_high_i = m.extremes_of["cell_voltage"]
    assert v_low > 3.0  # the open tap (None) is left out of the extremes
    expected = {
        "EOL_PackValues": {"PackVoltage": m.pack_v, "PackCurrent": m.pack_i, "BusVoltage": snap.bus_voltage,
                           "PackPower": snap.pack_voltage * snap.pack_current},
        "EOL_PackState": {"SOC": 100.0 * snap.soc, "SOH": 100.0},
        "EOL_CellVoltageMinMax": {"CellVoltageMin": v_low, "CellVoltageMinIndex": v_low_i,
                                  "CellVoltageMax": v_high, "CellVoltageMaxIndex": v_high_i},
        "EOL_BmsState": {"BmsState": 0, "HvilClosed": 1.0, "ImdEnabled": 1.0,
                         "ErrorFlags": float(0x100 | 0x8), "AliveCounter": float(sim._alive),
                         "ImdResistance": min(float(sim.pack.imd_reading()), 65.535e6)},  # clamped to the DBC range
    }
    for name, values in expected.items():
        frame_id = DB.get_message_by_name(name).frame_id
        assert sent[frame_id] == _encode(name, values), name
    # the cell frame carries the next mux value of the rotation: 4 cells each, tap 1 reads 0 V
    cell_frame = sent[DB.get_message_by_name("EOL_CellVoltages").frame_id]
    mux = cell_frame[0]
    cells = {f"CellVoltage_{i:03d}": (0.0 if m.cells[i] is None else m.cells[i]) for i in range(4 * mux, 4 * mux + 4)}
    assert sent[0x310] == _encode("EOL_CellVoltages", {"CellVoltages_Mux": mux, **cells})


def test_a_pack_rolled_into_the_bench_slot_is_the_one_measured():
    async def main():
        low = Pack(SPEC)
        low.element_soc -= 0.3
        slot = PackSlot(Pack(SPEC))
        sim = SimCanBms(slot, Wiring(lv_power=True), channel=next(_channels), seed=2)
        await sim.start()
        await asyncio.sleep(0.3)
        before = sim.measure.snap.soc
        slot.swap(low)
        await asyncio.sleep(0.3)
        after = sim.measure.snap.soc
        await sim.stop()
        return before, after

    before, after = run(main(), virtual=True)
    assert before == pytest.approx(SPEC.initial_soc, abs=0.01)
    assert after == pytest.approx(SPEC.initial_soc - 0.3, abs=0.01)
