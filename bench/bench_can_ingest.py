"""CAN ingestion benchmark: frames/s decoded into live values (prints figures, asserts nothing).

1. decode + store only: ``LiveValues.update`` on prebuilt frames (cell-voltage mux frames and
   pack frames in the simulator's mix);
2. through the wire: a LoopBus peer sends, CanPort's in-loop Notifier delivers to LiveValues,
   on the virtual-time loop;
3. simulator + driver: SimCanBms (bus-700, 216 cells) and DbcBms for 60 s of virtual time.

Run: ``.venv/bin/python bench/bench_can_ingest.py``
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import can

from drivers.bms.dbc_bms import DbcBms
from drivers.bms.live_values import LiveValues
from drivers.bms.signals import load_signal_map
from drivers.transports.can import CanPort
from drivers.transports.loopbus import LoopBus
from station.clock import run

CELLS, SENSORS = 216, 48


def sample_frames(signal_map) -> list[SimpleNamespace]:
    """One simulator second's mix: 50 cell frames per 5 of each 100 ms message (+ temps)."""
    db = signal_map.db
    cells = db.get_message_by_name("EOL_CellVoltages")
    frames = [SimpleNamespace(arbitration_id=cells.frame_id, data=bytes(cells.encode(
        {"CellVoltages_Mux": k, **{f"CellVoltage_{4 * k + i:03d}": 3.3 for i in range(4)}})))
        for k in range(CELLS // 4)]
    for name in ("EOL_BmsState", "EOL_PackValues", "EOL_PackState", "EOL_CellVoltageMinMax",
                 "EOL_CellTemperatureMinMax"):
        msg = db.get_message_by_name(name)
        data = bytes(msg.encode({s.name: 0 for s in msg.signals}))
        frames += [SimpleNamespace(arbitration_id=msg.frame_id, data=data)] * 10
    temps = db.get_message_by_name("EOL_CellTemperatures")
    frames += [SimpleNamespace(arbitration_id=temps.frame_id, data=bytes(temps.encode(
        {"CellTemperatures_Mux": k, **{f"CellTemperature_{4 * k + i:03d}": 25.0 for i in range(4)}})))
        for k in range(SENSORS // 4)]
    return frames


def bench_decode(signal_map, seconds: float = 1.5) -> float:
    live = LiveValues(signal_map, clock=time.monotonic)
    frames = sample_frames(signal_map)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for frame in frames:
            live.update(frame)
        count += len(frames)
    return count / (time.perf_counter() - start)


async def bench_wire(signal_map, total: int = 100_000) -> float:
    frames = [can.Message(arbitration_id=f.arbitration_id, data=f.data, is_extended_id=False)
              for f in sample_frames(signal_map)]
    port = CanPort("can://station_loop/bench-wire")
    await port.open()
    live = LiveValues(signal_map)
    received = 0

    def on_frame(msg):
        nonlocal received
        live.update(msg)
        received += 1

    port.add_listener(on_frame)
    peer = LoopBus("bench-wire")
    start = time.perf_counter()
    sent = 0
    while sent < total:
        for frame in frames:
            peer.send(frame)
        sent += len(frames)
        await asyncio.sleep(0)  # let the reader drain, as a 1 ms bus tick would
    while received < sent:
        await asyncio.sleep(0)
    rate = received / (time.perf_counter() - start)
    peer.shutdown()
    await port.close()
    return rate


async def bench_sim(virtual_s: float = 60.0) -> tuple[float, int, float]:
    from sim.bms.can_bms import SimCanBms
    from sim.pack.model import Pack
    from sim.pack.presets import PRESETS
    from sim.wiring import Wiring

    pack = Pack(PRESETS["bus-700"])
    sim = SimCanBms(pack, Wiring(lv_power=True), channel="bench-sim")
    bms = DbcBms("bms", await sim.start(), options={"cells": pack.spec.series,
                                                    "temperature_sensors": pack.spec.temp_sensors})
    await bms.open()
    counted = [0]
    bms.port.add_listener(lambda msg: counted.__setitem__(0, counted[0] + 1))
    start = time.perf_counter()
    await asyncio.sleep(virtual_s)
    wall = time.perf_counter() - start
    await bms.close()
    await sim.stop()
    return counted[0] / wall, counted[0], wall


def main() -> None:
    signal_map = load_signal_map(cells=CELLS, temperature_sensors=SENSORS)
    print(f"decode + store (LiveValues.update):       {bench_decode(signal_map):10,.0f} frames/s")
    print(f"LoopBus -> in-loop Notifier -> LiveValues: {run(bench_wire(signal_map), virtual=True):10,.0f} frames/s")
    rate, frames, wall = run(bench_sim(), virtual=True)
    print(f"SimCanBms + DbcBms, 60 s virtual:          {rate:10,.0f} frames/s "
          f"({frames} frames, both sides, in {wall:.2f} s wall)")


if __name__ == "__main__":
    main()
