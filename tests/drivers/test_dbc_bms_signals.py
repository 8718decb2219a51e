"""Signal map files: validation with PATH:LINE:COL, cycle times, and the live-value store."""

from __future__ import annotations

import random
import time
from types import SimpleNamespace

import pytest

from drivers.bms.live_values import LiveValues
from drivers.bms.signals import MAPS, SignalMapError, load_signal_map
from drivers.errors import StaleSignalError

BAD = """\
dbc: eol_bms.dbc
signals:
  pack_voltage: EOL_PackValues.PackVoltag
  pack_volts: EOL_PackValues.PackVoltage
  soc: EOL_Nope.SOC
  hvil_closed: {signal: EOL_BmsState.HvilClosed, inverted: true}
cells:
  signals: EOL_CellVoltages.CellVoltage_{index:03d}
request:
  message: EOL_StateRequest
  mode: {signal: RequestMode, values: {normal: 1}}
  balancing: {signal: Balance, values: {off: 0, on: 1}}
  insulation_monitor: {signal: ImdDisable, values: {enabled: 0, disabled: 1}}
colour: blue
"""


def test_every_problem_is_reported_with_its_position(tmp_path):
    path = tmp_path / "bad_signals.yaml"
    path.write_text(BAD)
    with pytest.raises(SignalMapError) as info:
        load_signal_map(path, dbc=MAPS / "eol_bms.dbc", cells=300)
    problems = info.value.problems
    want = [
        ":3:17: signal 'PackVoltag' not in message EOL_PackValues",
        ":4:3: unknown logical signal 'pack_volts'",
        ":5:8: message 'EOL_Nope' not in the DBC",
        ":6:50: unknown key 'inverted' in signal hvil_closed",
        ":8:12: cells: 300 configured but 'CellVoltage_256' is not in EOL_CellVoltages",
        ":11:31: request.mode values lack ['standby']",
        ":12:23: signal 'Balance' not in message EOL_StateRequest",
        ":14:1: unknown key 'colour' in the map",
    ]
    for text in want:
        assert any(p.startswith(str(path)) and text in p for p in problems), (text, problems)
    assert len(problems) == len(want)


def test_signals_that_are_not_a_mapping_are_a_located_problem(tmp_path):
    # found by the profile fuzzer: a scalar under 'signals' raised AttributeError
    path = tmp_path / "scalar_signals.yaml"
    path.write_text("dbc: eol_bms.dbc\nsignals: oops\n")
    with pytest.raises(SignalMapError) as info:
        load_signal_map(path, dbc=MAPS / "eol_bms.dbc")
    assert any(p.startswith(f"{path}:2:10: signals must map logical signal names") for p in info.value.problems), \
        info.value.problems


def test_the_shipped_map_loads_with_cycle_times_from_the_dbc():
    m = load_signal_map(cells=96, temperature_sensors=24)
    cycle = {msg.name: msg.cycle_time / 1000 for msg in m.db.messages}
    assert m.signals["pack_voltage"].period == pytest.approx(cycle["EOL_PackValues"])
    assert m.signals["soc"].period == pytest.approx(cycle["EOL_PackState"])
    assert m.cells.period == pytest.approx(24 * cycle["EOL_CellVoltages"])  # per frame x 24 mux frames
    assert m.temperatures.period == pytest.approx(6 * cycle["EOL_CellTemperatures"])
    assert m.request.period == pytest.approx(0.1)
    assert m.request.encode("discharge", True, False) == bytes([0x1B]) + bytes(7)
    assert m.request.decode(bytes([0x1B]) + bytes(7)) == ("discharge", True, False)
    assert set(m.cyclic_messages().values()) == {
        "EOL_BmsState", "EOL_PackValues", "EOL_PackState", "EOL_CellVoltageMinMax",
        "EOL_CellTemperatureMinMax", "EOL_CellVoltages", "EOL_CellTemperatures"}


def test_live_values_staleness_uses_three_cycle_times_and_names_the_age():
    now = [0.0]
    m = load_signal_map(cells=4, temperature_sensors=0)
    live = LiveValues(m, clock=lambda: now[0], instrument="bms")
    data = m.db.get_message_by_name("EOL_PackState").encode({"SOC": 55.5, "SOH": 99})
    live(SimpleNamespace(arbitration_id=0x302, data=data))
    live(SimpleNamespace(arbitration_id=0x7FF, data=b""))  # unmapped ids are ignored
    limit = 3 * m.signals["soc"].period
    now[0] = limit
    assert live.get("soc") == pytest.approx(55.5)
    now[0] = limit + 1e-4
    with pytest.raises(StaleSignalError, match=rf"bms: signal soc is stale: last received {limit:.3f} s ago "
                                               rf"\(limit {limit:.3f} s\)"):
        live.get("soc")


def test_ingestion_is_fast():
    m = load_signal_map(cells=192, temperature_sensors=48)
    live = LiveValues(m, clock=time.monotonic)
    msg = m.db.get_message_by_name("EOL_CellVoltages")
    frames = [SimpleNamespace(arbitration_id=0x310, data=msg.encode(
        {"CellVoltages_Mux": k, **{f"CellVoltage_{4 * k + i:03d}": 3.6 for i in range(4)}})) for k in range(48)]
    start = time.perf_counter()
    for _ in range(100):
        for f in frames:
            live.update(f)
    rate = 4800 / (time.perf_counter() - start)
    assert live.group("cell_voltage") == [pytest.approx(3.6)] * 192
    assert rate > 10_000  # generous floor for a loaded CI machine; bench/ measures the real figure


def test_integer_fast_path_stores_exactly_what_cantools_decodes(tmp_path):
    # A factor and an inverted flag in the map exercise the general entries beside the simple ones.
    text = (MAPS / "eol_bms_signals.yaml").read_text()
    text = text.replace("pack_current: EOL_PackValues.PackCurrent",
                        "pack_current: {signal: EOL_PackValues.PackCurrent, factor: 0.5}")
    text = text.replace("hvil_closed: EOL_BmsState.HvilClosed",
                        "hvil_closed: {signal: EOL_BmsState.HvilClosed, invert: true}")
    path = tmp_path / "map_signals.yaml"
    path.write_text(text)
    m = load_signal_map(path, dbc=MAPS / "eol_bms.dbc", cells=20, temperature_sensors=8)
    now = [0.0]
    fast, slow = (LiveValues(m, clock=lambda: now[0]) for _ in range(2))
    assert all(h.layout is not None for h in fast._handlers.values())
    for handler in slow._handlers.values():
        handler.layout = None  # cantools decodes every frame
    heard: dict[str, list] = {"fast": [], "slow": []}
    fast.listeners.append(lambda name, value: heard["fast"].append((name, value)))
    slow.listeners.append(lambda name, value: heard["slow"].append((name, value)))
    rng = random.Random(3)
    ids = sorted(fast._handlers)
    for i in range(3000):
        now[0] = i * 0.01
        frame_id = rng.choice(ids)
        raw = rng.getrandbits(64)
        mux = fast._handlers[frame_id].mux_field
        if mux is not None:  # a mapped mux value (cells: 0..4, temperatures: 0..1), or one the DBC lacks
            value = rng.randrange(5 if frame_id == 0x310 else 2) if rng.random() < 0.9 else 0xFF
            raw = raw & ~(mux[1] << mux[0]) | value << mux[0]
        data = raw.to_bytes(8, "little")[: 7 if rng.random() < 0.02 else 8]  # a few short frames
        for live in (fast, slow):
            live.update(SimpleNamespace(arbitration_id=frame_id, data=data))
    assert fast.bad_frames == slow.bad_frames > 0
    assert fast._stamps == slow._stamps and None not in fast._stamps
    assert [(v, type(v)) for v in fast._values] == [(v, type(v)) for v in slow._values]
    assert heard["fast"] == heard["slow"] and len(heard["fast"]) > 10_000
    assert any(value < 0 for name, value in heard["fast"] if name == "pack_current")  # signed
    assert {value for name, value in heard["fast"] if name == "hvil_closed"} == {0.0, 1.0}
