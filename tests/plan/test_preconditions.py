"""Declared dependencies (issue 18 item 2): preconditions checked in run order at bind, and at
run time an ERROR naming the precondition, never a product FAIL."""

from __future__ import annotations

import json

import pytest

from drivers.base.diagnostics import InputError
from station.actions.preconditions import PreconditionError, require_physical
from station.actions.registry import PRECONDITIONS, all_actions
from station.cli import main
from station.plan.bind import bind_plan
from station.plan.loader import load_plan

HEAD = """\
schema_version: 1
id: t
version: 1.0.0
title: T
instruments: [fixture, bms, cycler, dmm, safety]
"""
DCIR = "cycler.dcir: {current: 100 A, duration: 10 s, at: 10 s, v_min: 300 V, v_max: 420 V}"


def _problems(tmp_path, body: str) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + body)
    try:
        bind_plan(load_plan(path))
    except InputError as err:
        return [str(p) for p in err.problems]
    return []


def test_every_declared_condition_is_in_the_catalogue_and_established_somewhere():
    actions = all_actions().values()
    needed = {c for a in actions for c in a.preconditions}
    assert needed and needed <= set(PRECONDITIONS)
    assert needed <= {c for a in actions for verb, c, _ in a.changes() if verb == "establishes"}


def test_order_checked_statically(tmp_path):
    assert any("no earlier step establishes it" in p for p in _problems(tmp_path, f"main:\n  - {DCIR}\n"))
    assert _problems(tmp_path, f"main:\n  - bms.close_contactors: {{}}\n  - {DCIR}\n") == []
    broke = _problems(tmp_path, f"main:\n  - bms.close_contactors: {{}}\n  - bms.open_contactors: {{}}\n  - {DCIR}\n")
    assert any("bms.open_contactors at" in p and "broke it before" in p for p in broke), broke


def test_a_step_that_may_not_run_is_not_refused(tmp_path):
    """Only what is certain is refused: a conditional close may well run."""
    body = f"main:\n  - bms.close_contactors: {{}}\n    when: \"${{serial == 'x'}}\"\n  - {DCIR}\n"
    assert _problems(tmp_path, body) == []


def test_ground_bond_takes_its_points_as_an_argument(tmp_path):
    missing = _problems(tmp_path, "parameters: {bond_points: [BP1]}\nmain:\n  - safety.ground_bond: {point: BP1}\n")
    assert any("needs one of the arguments 'index', 'points'" in p for p in missing), missing
    assert _problems(tmp_path, "main:\n  - safety.ground_bond: {point: BP2, points: [BP1, BP2]}\n") == []


def test_a_negative_resistance_is_a_broken_precondition_not_a_fail():
    with pytest.raises(PreconditionError, match="precondition dc_bus_connected not met"):
        require_physical("dc_bus_connected", "cycler.dcir", "r_discharge", -0.84, "ohm")
    require_physical("dc_bus_connected", "cycler.dcir", "r_discharge", 0.04, "ohm")


def test_broken_at_run_time_is_an_error_naming_it(tmp_path, capsys):
    """Statically possible (the close may run), false at run time: ERROR (exit 3), not FAIL."""
    plan = tmp_path / "dcir.yaml"
    plan.write_text(HEAD + f"""\
setup:
  - fixture.require: [estop_released, guard_closed, pack_present]
  - fixture.clamp: true
  - fixture.lv_power: true
  - bms.wake: {{within: 5 s}}
main:
  - id: contactors
    when: "${{serial == 'never'}}"
    bms.close_contactors: {{within: 3 s}}
  - id: dcir
    {DCIR}
    expect: {{r_discharge: {{max: 200 mOhm}}}}
teardown:
  - bms.open_contactors: {{}}
""")
    out = tmp_path / "r.json"
    code = main(["run", str(plan), "--sim", "--plain", "--json", str(out), "--db", str(tmp_path / "r.db")])
    assert code == 3
    record = json.loads(out.read_text())
    step = next(s for s in record["steps"] if s.get("step_id") == "dcir")
    assert step["outcome"] == "error"
    assert "precondition dc_bus_connected not met" in step["error"]
    assert not [m for m in record.get("measurements", []) if m.get("path", "").endswith("dcir")]


IR = "safety.insulation: {pole: HV+, voltage: 500 V}"


def test_insulation_and_withstand_need_the_pack_insulation_monitor_off(tmp_path):
    """The pack's monitor connects each pole to chassis: tested with it on, the tester measures it."""
    assert all("insulation_monitor_disabled" in all_actions()[a].preconditions
               for a in ("safety.insulation", "safety.withstand"))
    missing = _problems(tmp_path, f"main:\n  - {IR}\n")
    assert any(":7:5: action 'safety.insulation' needs insulation_monitor_disabled" in p
               and "no earlier step establishes it" in p for p in missing), missing
    assert _problems(tmp_path, f"main:\n  - bms.insulation_monitor: disable\n  - {IR}\n") == []
    again = _problems(tmp_path, "main:\n  - bms.insulation_monitor: disable\n  - bms.insulation_monitor: enable\n"
                                "  - safety.withstand: {pole: HV+, voltage: 2 kV}\n")
    assert any("safety.withstand' needs insulation_monitor_disabled" in p and "bms.insulation_monitor state=enable at" in p
               and "broke it before" in p for p in again), again


@pytest.mark.parametrize("breaker", ["bms.mode: standby", "bms.hvil_check: {}", "fixture.lv_power: off"])
def test_what_opens_the_contactors_breaks_the_dc_bus(tmp_path, breaker):
    broke = _problems(tmp_path, f"main:\n  - bms.close_contactors: {{}}\n  - {breaker}\n  - {DCIR}\n")
    assert any("needs dc_bus_connected" in p and "broke it before" in p for p in broke), broke


def test_an_argument_decides_the_effect_and_an_expression_is_given_the_benefit(tmp_path):
    assert _problems(tmp_path, f"main:\n  - bms.mode: normal\n  - {DCIR}\n") == []
    assert _problems(tmp_path, f"main:\n  - fixture.lv_power: on\n  - bms.close_contactors: {{}}\n"
                               f"  - fixture.lv_power: true\n  - {DCIR}\n") == []
    body = (f"parameters: {{m: standby}}\nmain:\n  - bms.close_contactors: {{}}\n  - bms.mode: '${{m}}'\n  - {DCIR}\n")
    assert _problems(tmp_path, body) == []  # the expression may not break it: left to run time
    wrong = _problems(tmp_path, "main:\n  - fixture.lv_power: [true]\n  - bms.mode: {mode: {a: 1}}\n")
    assert any("expected true/false" in p for p in wrong) and len(wrong) == 2, wrong  # reported, never a crash


def test_not_checked_where_the_plan_cannot_establish_it(tmp_path):
    """No BMS in the plan: the station may hold the contactors closed; the run-time check decides."""
    path = tmp_path / "p.yaml"
    path.write_text(HEAD.replace("[fixture, bms, cycler, dmm, safety]", "[fixture, cycler, safety]")
                    + f"main:\n  - {DCIR}\n  - {IR}\n")
    bind_plan(load_plan(path))


def test_insulation_with_the_monitor_on_is_an_error_naming_it_not_a_fail(tmp_path):
    """Through the real station on the simulator: the enabled monitor would read ~1.2 MOhm, a FAIL."""
    plan = tmp_path / "ir.yaml"
    plan.write_text(HEAD + f"""\
setup:
  - fixture.require: [estop_released, guard_closed, pack_present]
  - fixture.clamp: true
  - fixture.lv_power: true
  - bms.wake: {{within: 5 s}}
main:
  - id: off
    when: "${{serial == 'never'}}"
    bms.insulation_monitor: disable
  - id: ir
    {IR}
    expect: {{resistance: {{min: 20 MOhm}}}}
""")
    out = tmp_path / "r.json"
    code = main(["run", str(plan), "--sim", "--plain", "--json", str(out), "--db", str(tmp_path / "r.db")])
    assert code == 3
    record = json.loads(out.read_text())
    step = next(s for s in record["steps"] if s.get("step_id") == "ir")
    assert step["outcome"] == "error"
    assert "precondition insulation_monitor_disabled not met for safety.insulation" in step["error"]

