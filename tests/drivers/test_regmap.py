"""Register maps: shipped maps load, values round-trip, and bad maps report every problem at line:col."""

from __future__ import annotations

import pytest

from drivers.maps.regmap import MAPS_DIR, Field, MapError, ReadPlan, load_map, parse_map


def test_shipped_maps_load_with_the_names_the_drivers_use():
    fx = load_map(MAPS_DIR / "fixture_plc.yaml")
    assert fx.names("coil") == ["clamp", "lv_power", "ir_hv_plus", "ir_hv_minus", "hvil_break", "guard_lock"]
    assert fx.names("discrete") == ["estop_released", "guard_closed", "pack_present", "clamp_closed"]
    assert fx["bond_point"].table == "holding"
    cy = load_map("modbus_cycler.yaml")
    assert cy["protection"].bits == ((0, "OVP"), (1, "OCP"), (2, "OTP"), (3, "WDT"))
    assert cy["voltage_setpoint"].min == 0 and cy["voltage_setpoint"].max == 1000


@pytest.mark.parametrize("field, value, words", [
    (Field("v", "holding", 0, "float32"), 401.5, [0x43C8, 0xC000]),
    (Field("v", "holding", 0, "float32", word_order="little"), 401.5, [0xC000, 0x43C8]),
    (Field("i", "holding", 0, "int16"), -2, [0xFFFE]),
    (Field("n", "input", 0, "uint32"), 70000, [0x0001, 0x1170]),
    (Field("n", "input", 0, "int32", word_order="little"), -1, [0xFFFF, 0xFFFF]),
    (Field("t", "holding", 0, "uint16", scale=0.1), 5.0, [50]),
])
def test_encode_decode_round_trip(field, value, words):
    assert field.encode(value) == words
    assert field.decode(words) == pytest.approx(value)


def test_value_that_does_not_fit_its_type_is_refused():
    with pytest.raises(ValueError):
        Field("i", "holding", 0, "uint16").encode(-1)
    with pytest.raises(ValueError):
        Field("i", "holding", 0, "int16", scale=0.01).encode(400.0)


def test_blocks_split_at_gaps():
    m = parse_map("name: m\nregisters:\n"
                  "  - {name: a, table: input, address: 0, type: float32}\n"
                  "  - {name: b, table: input, address: 2}\n"
                  "  - {name: c, table: input, address: 5}\n")
    assert [(s, n, [f.name for f in g]) for s, n, g in m.blocks(m.table("input"))] == [
        (0, 3, ["a", "b"]), (5, 1, ["c"])]


def test_a_read_plan_is_built_once_per_table_and_decodes_by_name():
    m = parse_map("name: m\nregisters:\n"
                  "  - {name: a, table: input, address: 0, type: float32}\n"
                  "  - {name: b, table: input, address: 2, scale: 0.5}\n"
                  "  - {name: c, table: input, address: 5}\n"
                  "  - {name: d, table: discrete, address: 1}\n")
    plan = m.plan("input")
    assert m.plan("input") is plan and m.table("input") is m.table("input")
    assert plan.blocks == ((0, 3), (5, 1))
    out = plan.decode(0, [0x43C8, 0xC000, 8], {})
    assert out == {"a": 401.5, "b": 4.0} and plan.decode(1, [7], out) == {"a": 401.5, "b": 4.0, "c": 7}
    assert m.plan("discrete").decode(0, [1], {}) == {"d": True}  # a bit is a bool, whatever the transport gave
    assert ReadPlan(m, ()).blocks == ()


BAD = """\
name: broken
extra: 1
registers:
  - {name: clamp, table: coil, address: 0}
  - {name: clamp, table: coil, address: 1}
  - {name: volts, table: holding, address: 0, type: float32}
  - {name: amps, table: holding, address: 1, type: float32}
  - {name: x, table: coils, address: 2}
  - {name: y, table: input, address: -1, adress: 3}
  - {name: z, table: input, address: 9, type: bool, access: rw}
  - {name: w, table: holding, address: 20, type: uint16, scale: "1"}
  - {name: s, table: input, address: 30, bits: {0: OK, 17: BAD}}
"""


def test_every_problem_is_listed_with_path_line_col():
    with pytest.raises(MapError) as err:
        parse_map(BAD, "maps/broken.yaml")
    problems = err.value.problems
    expected = [
        ("maps/broken.yaml:2:1:", "unknown key 'extra'"),
        ("maps/broken.yaml:5:", "duplicate name 'clamp' (first at line 4)"),
        ("maps/broken.yaml:7:", "'amps' at holding 1 overlaps 'volts'"),
        ("maps/broken.yaml:8:", "'table' must be one of coil|discrete|holding|input"),
        ("maps/broken.yaml:9:", "unknown key 'adress'"),
        ("maps/broken.yaml:9:", "address -1 outside"),
        ("maps/broken.yaml:10:", "type 'bool' does not fit table 'input'"),
        ("maps/broken.yaml:10:", "read-only: access must be r"),
        ("maps/broken.yaml:11:", "'scale' must be a number"),
        ("maps/broken.yaml:12:", "bit 17"),
    ]
    for where, what in expected:
        assert any(p.startswith(where) and what in p for p in problems), (where, what, problems)
    assert len(problems) == len(expected)
    assert "Traceback" not in str(err.value)


def test_yaml_syntax_and_duplicate_keys_have_positions():
    with pytest.raises(MapError) as err:
        parse_map("name: m\nregisters:\n  - {name: a, table: coil, address: 0\n", "m.yaml")
    assert err.value.problems[0].startswith("m.yaml:4:")
    with pytest.raises(MapError) as err:
        parse_map("name: m\nname: n\nregisters: []\n", "m.yaml")
    assert err.value.problems[0].startswith("m.yaml:2:1:")


def test_missing_keys_and_missing_file():
    with pytest.raises(MapError) as err:
        parse_map("name: m\nregisters:\n  - {table: coil}\n", "m.yaml")
    assert err.value.problems == ["m.yaml:3:5: missing key 'name'", "m.yaml:3:5: missing key 'address'"]
    with pytest.raises(MapError) as err:
        load_map("/nonexistent/map.yaml")
    assert "/nonexistent/map.yaml: cannot read map" in str(err.value)
