"""Map files (drivers/maps/mapfile.py): numeric keys, positions, and the per-file cache of the
register maps, the BMS map, the DID table and the DBC behind a signal map."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from drivers.bms.did_table import DidTableError, load_did_table, parse_did_table
from drivers.bms.modbus_map import load_bms_map
from drivers.bms.signals import MAPS, SignalMapError, load_signal_map
from drivers.maps.regmap import MapError, load_map, parse_map

MAP = "name: m\nregisters:\n  - {name: a, table: holding, address: 0x10}\n"


def rewrite(path: Path, text: str) -> None:
    """New content with a later mtime (a same-second rewrite must not look unchanged)."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_a_map_is_parsed_once_and_again_when_the_file_changes(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(MAP)
    first = load_map(path)
    assert load_map(path) is first
    assert first["a"].address == 0x10
    rewrite(path, MAP.replace("0x10", "0x20") + "  - {name: b, table: holding, address: 0x30}\n")
    second = load_map(path)
    assert second is not first and second["a"].address == 0x20 and "b" in second


def test_a_broken_file_is_reported_every_time_not_cached(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(MAP.replace("0x10", "x"))
    for _ in range(2):
        with pytest.raises(MapError, match=r"m.yaml:3:40: 'address' must be an integer"):
            load_map(path)
    rewrite(path, MAP)
    assert load_map(path)["a"].address == 16


def test_bms_map_and_did_table_are_shared_until_changed(tmp_path):
    assert load_bms_map("modbus_bms.yaml") is load_bms_map("modbus_bms.yaml")
    assert load_did_table() is load_did_table()
    table = tmp_path / "dids.yaml"
    table.write_text("schema_version: 1\ndids:\n  0xF190: {name: vin, length: 17, codec: ascii}\n")
    first = load_did_table(table)
    with pytest.raises(TypeError):
        first.entries[0xF191] = first.entries[0xF190]  # shared by every caller: read-only
    rewrite(table, table.read_text() + "  0x0100: {name: flag, length: 1, codec: uint}\n")
    assert sorted(load_did_table(table).entries) == [0x0100, 0xF190]


def test_the_dbc_is_parsed_once_per_content(tmp_path):
    shutil.copy(MAPS / "eol_bms_signals.yaml", tmp_path / "signals.yaml")
    dbc = tmp_path / "eol_bms.dbc"
    shutil.copy(MAPS / "eol_bms.dbc", dbc)
    a = load_signal_map(tmp_path / "signals.yaml", dbc=dbc, cells=4)
    b = load_signal_map(tmp_path / "signals.yaml", dbc=dbc, cells=8)
    assert a.db is b.db and len(b.cells.names) == 8
    text = dbc.read_text()
    assert 'BA_ "GenMsgCycleTime" BO_ ' in text
    rewrite(dbc, text + "\n")
    assert load_signal_map(tmp_path / "signals.yaml", dbc=dbc).db is not a.db


def test_numeric_keys_stay_numbers_and_quoted_ones_stay_text():
    m = parse_map("name: m\nregisters:\n  - {name: s, table: input, address: 0, bits: {0x1: A, 3: B}}\n")
    assert m["s"].bits == ((1, "A"), (3, "B"))
    with pytest.raises(MapError) as err:
        parse_map("name: m\nregisters:\n  - {name: s, table: input, address: 0, bits: {'0': A}}\n", "m.yaml")
    assert err.value.problems == ["m.yaml:3:48: bit '0': 'A' must be 0..15: NAME"]
    table = parse_did_table("schema_version: 1\nsecurity:\n  1: {algorithm: xor}\n"
                            "dids:\n  0xF18C: {name: s, length: 2, codec: ascii, security: 1, default: on}\n")
    assert list(table.entries) == [0xF18C] and list(table.security) == [1]
    assert table[0xF18C].default == b"on"  # YAML 1.2: 'on' is text, not true


def test_every_duplicate_key_is_reported_where_it_is():
    with pytest.raises(DidTableError) as err:
        parse_did_table("schema_version: 1\ndids:\n  0x1: {name: a, length: 1, codec: uint}\n"
                        "  1: {name: b, length: 1, codec: uint}\n  2: {name: c, length: 1, codec: uint, name: d}\n",
                        "t.yaml")
    assert err.value.problems == ["t.yaml:4:3: duplicate key '1' (first defined at line 3)",
                                  "t.yaml:5:40: duplicate key 'name' (first defined at line 5)"]


def test_bad_utf8_and_bad_numbers_in_a_signal_map_have_positions(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_bytes(b"name: m\nregisters:\n  - {name: a\xff, table: coil, address: 0}\n")
    with pytest.raises(MapError, match=r"m.yaml:3:13: not valid UTF-8 \(byte 0xff\)"):
        load_map(path)
    signals = tmp_path / "s.yaml"
    signals.write_text("dbc: eol_bms.dbc\nsignals:\n  soc: {signal: EOL_PackState.SOC, factor: 0b11}\n"
                       "  hvil_closed: {signal: EOL_BmsState.HvilClosed, invert: 'no'}\n")
    with pytest.raises(SignalMapError) as err:
        load_signal_map(signals, dbc=MAPS / "eol_bms.dbc")
    assert err.value.problems == [f"{signals}:3:44: factor must be a number, got '0b11'",  # YAML 1.2: text
                                  f"{signals}:4:58: invert must be true or false, got 'no'"]
