"""Dimensions and limits inferred per variant at bind (issue 18 item 1)."""

from __future__ import annotations

import pytest

from drivers.base.diagnostics import InputError
from station.cli import main
from station.plan import judge as j, model as m
from station.plan.bind import bind_plan
from station.plan.loader import load_plan
from station.plan.values import ValueProblem

HEAD = """\
schema_version: 1
id: t
version: 1.0.0
title: T
instruments: [dmm, safety, fixture, bms, cycler]
"""


def _bind(tmp_path, body: str, variant=None):
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + body)
    return bind_plan(load_plan(path), variant)


def _problems(tmp_path, body: str, variant=None) -> list[str]:
    with pytest.raises(InputError) as info:
        _bind(tmp_path, body, variant)
    return [str(p) for p in info.value.problems]


def test_every_variant_is_checked_and_named(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + """\
parameters: {lo: 40 V, hi: 42 V}
variants:
  a: {parameters: {lo: 50 V}}
  b: {}
  c: {parameters: {hi: 20 A}}
main:
  - id: x
    dmm.voltage: {}
    expect: {voltage: {min: "${lo}", max: "${hi}"}}
""")
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert "min 50 V is greater than max 42 V (variant a)" in captured.err
    assert "variant b, 1 step)" in captured.out
    assert "max of 'voltage' is current (20 A), but 'voltage' is in V (variant c)" in captured.err


def test_dimension_flows_through_results_and_functions(tmp_path):
    problems = _problems(tmp_path, """\
main:
  - id: a
    dmm.voltage: {}
  - id: c
    station.calc: {d: "${max(abs(a.voltage), 1 V) * 2}"}
    expect: {d: {min: 1 ohm}}
""")
    assert any("min of 'd' is resistance (1 ohm), but 'd' is in V" in p for p in problems), problems


def test_differences_of_results_are_not_division_errors(tmp_path):
    bound = _bind(tmp_path, """\
main:
  - id: a
    dmm.voltage: {}
  - id: b
    dmm.voltage: {}
  - id: c
    station.calc: {r: "${(a.voltage - b.voltage) / (a.voltage - b.voltage + 1 V)}"}
    expect: {r: {max: 0.5}}
""")
    assert bound.deferred == []


def test_what_only_the_run_knows_is_listed(tmp_path):
    bound = _bind(tmp_path, """\
main:
  - id: c
    station.calc: {s: "${serial}"}
    expect: {s: {regex: "SN.*"}}
  - id: a
    dmm.voltage: {}
    expect: {voltage: {max: "${1 V if serial == 'x' else 2 V}"}}
""")
    assert len(bound.deferred) == 2
    assert all("checked at run time: depends on serial" in str(p) or "computed value 's'" in str(p)
               for p in bound.deferred), bound.deferred


def test_bare_computed_value_never_drops_a_unit_at_run_time():
    with pytest.raises(ValueProblem, match="the value is a bare number"):
        j.judge(2.0, "", m.Limit(max="3 s"), {})
    assert j.judge(2.0, "", m.Limit(max=3), {})[0] == "pass"


MONITORED = """\
parameters: {v_cap: 4.2 V, t_cap: 45 degC}
variants:
  nmc: {}
  wrong: {parameters: {v_cap: 45 degC}}
main:
  - id: g
    monitors:
      - {signal: bms.cell_voltage_max, max: "${v_cap}"}
      - {signal: bms.cell_temperature_max, max: "${t_cap}"}
    steps:
      - station.wait: 1 s
"""


def test_monitor_limits_are_dimension_checked_per_variant(tmp_path, capsys):
    """A monitor bound through a parameter is checked for the variant that sets it (issue 18 item 1)."""
    _bind(tmp_path, MONITORED, "nmc")
    problems = _problems(tmp_path, MONITORED, "wrong")
    assert any(":13:" in p and "max of 'bms.cell_voltage_max' is temperature (45 degC), but "
               "'bms.cell_voltage_max' is in V (variant wrong)" in p for p in problems), problems
    path = tmp_path / "p.yaml"
    assert main(["validate", str(path)]) == 2  # validate binds every variant: 'wrong' names itself
    assert "(variant wrong)" in capsys.readouterr().err


@pytest.mark.parametrize("monitor, message", [
    ("{signal: bms.cell_voltage_max, max: 45 degC}", "'45 degC' is temperature, expected V"),
    ("{signal: bms.cell_voltage_max, max: 4.2}", "'4.2' needs a unit (V)"),
    ("{signal: bms.soc, max: 3 V}", "'3 V' is voltage"),
    ("{signal: bms.cell_voltage_min, min: 4.2 V, max: 3 V}", "min 4.2 V is greater than max 3 V"),
    ("{signal: bms.cell_voltage_min, min: '${hi}', max: '${lo}'}", "min 4.2 V is greater than max 3 V (variant"),
])
def test_monitor_literal_and_order_problems(tmp_path, monitor, message):
    body = ("parameters: {lo: 3 V, hi: 4.2 V}\nvariants: {only: {}}\nmain:\n  - id: g\n"
            f"    monitors:\n      - {monitor}\n    steps:\n      - station.wait: 1 s\n")
    problems = _problems(tmp_path, body)
    assert any(message in p and ":11:" in p for p in problems), problems


def test_monitor_on_a_signal_of_unknown_unit_is_left_to_run_time(tmp_path):
    body = ("parameters: {cap: 3 V}\nmain:\n  - id: g\n    monitors:\n"
            "      - {signal: bms.error_overvoltage, max: '${cap}'}\n    steps:\n      - station.wait: 1 s\n")
    bound = _bind(tmp_path, body)
    assert [p.message for p in bound.deferred] == ["checked at run time: depends on the unit of signal 'bms.error_overvoltage'"]


def test_percent_signals_are_compared_as_fractions():
    """SOC is read as a percent number (50.0); a '95 %' limit evaluates to 0.95."""
    from station.plan import signal_units

    assert signal_units.si_factor("bms.soc") == pytest.approx(0.01)
    assert signal_units.si_factor("bms.cell_voltage_max") == 1.0 and signal_units.unit_of("cycler.x") is None


def test_every_logical_bms_signal_has_its_unit():
    from drivers.bms.logical_units import LOGICAL_UNITS
    from drivers.bms.signal_map import LOGICAL

    assert set(LOGICAL_UNITS) == LOGICAL
