"""--fault parameters are checked against the catalogue before anything runs (issue 18 item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.faults import CATALOGUE, PACK, PLAN, check_fault, fault_reach, never_struck, unreachable
from sim.pack.catalogue import shipped
from station.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "test_plans" / "smoke.yaml"


@pytest.mark.parametrize("name, params, wanted", [
    ("isolation_low", {"pole": "HV"}, "must be one of HV+, HV-, got 'HV'"),
    ("isolation_low", {"pol": "HV-"}, "no parameter 'pol' (did you mean 'pole'?)"),
    ("isolation_low", {"ohm": "-5"}, "'ohm' = -5 is outside [0, "),
    ("isolation_low", {"ohm": "nan"}, "finite"),
    ("weak_cell", {"cell": "x"}, "'cell' must be a whole number"),
    ("dtc_present", {"code": "0x1000000"}, "outside [0, 16777215]"),
    ("cycler_trip_at", {"kind": "OPT"}, "must be one of OVP, OCP, OTP, got 'OPT'"),
    ("instrument_hang", {"instrument": "dmmm"}, "did you mean 'dmm'"),
    ("isolaton_low", {}, "did you mean 'isolation_low'"),
])
def test_bad_parameters_are_refused_with_what_is_allowed(name, params, wanted):
    problem = check_fault(name, params)
    assert problem is not None and wanted in problem, problem


def test_every_default_is_valid():
    for name in CATALOGUE:
        assert check_fault(name, {}) is None, name


def test_a_fault_that_cannot_reach_the_pack_says_so():
    spec = shipped()["car-400"].spec
    assert "series elements" in fault_reach("weak_cell", {"cell": str(spec.series)}, spec)
    assert fault_reach("weak_cell", {"cell": str(spec.series - 1)}, spec) is None
    assert "temperature sensors" in fault_reach("hot_cell", {"sensor": str(spec.temp_sensors)}, spec)
    assert "bonding points" in fault_reach("bond_high", {"point": "NOPE"}, spec)
    assert "does not use it" in fault_reach("instrument_hang", {"instrument": "leak"}, spec, ["dmm"])


def test_unreachable_names_the_parameter_and_whether_the_pack_or_the_plan_lacks_it():
    spec = shipped()["car-400"].spec
    assert unreachable("weak_cell", {"cell": "150"}, spec) == unreachable("weak_cell", {"cell": "150"}, spec, ["dmm"])
    assert unreachable("weak_cell", {"cell": "150"}, spec).param == "cell"
    assert unreachable("weak_cell", {"cell": "150"}, spec).what == PACK
    hang = unreachable("instrument_hang", {}, spec, ["fixture", "bms"])  # the default strikes the dmm
    assert (hang.what, hang.param) == (PLAN, "instrument")
    # the cycler is station equipment: tripping it cannot touch a run that never switches it on,
    # the same as hanging it
    trip = unreachable("cycler_trip_at", {}, spec, ["fixture", "bms", "dmm", "safety"])
    assert trip is not None and (trip.what, trip.param) == (PLAN, None)
    assert trip.message == "fault 'cycler_trip_at' (cycler) cannot affect this run: the plan does not use it"
    assert unreachable("instrument_hang", {"instrument": "cycler"}, spec, ["fixture", "bms"]).what == PLAN
    assert unreachable("cycler_trip_at", {}, spec, ["cycler"]) is None
    assert unreachable("cycler_trip_at", {}, spec) is None  # no roles given: nothing to say


def test_the_catalogue_says_which_parameters_are_trigger_times():
    triggers = {(name, p) for name, f in CATALOGUE.items() for p, spec in f.params.items() if spec.trigger}
    assert triggers == {("bms_silent", "after"), ("estop_at", "t"), ("cycler_trip_at", "t"),
                        ("instrument_hang", "at"), ("instrument_garbage", "at")}
    for name, p in triggers:
        assert CATALOGUE[name].params[p].doc == "s after the run starts"


def test_a_fault_due_after_the_run_ended_never_struck():
    assert never_struck("estop_at", {}, 9.7) == "fault 'estop_at' fires at t=30 s; the run ended at 9.7 s"
    assert never_struck("instrument_hang", {"at": "600"}, 9.7) == \
        "fault 'instrument_hang' fires at t=600 s; the run ended at 9.7 s"
    assert never_struck("bms_silent", {"after": "1200"}, 400.0).startswith("fault 'bms_silent' fires at t=1200 s")
    assert never_struck("estop_at", {"t": "5"}, 9.7) is None
    assert never_struck("instrument_hang", {}, 9.7) is None  # at=0: right after identification
    assert never_struck("coolant_leak", {}, 0.1) is None  # not timed: present from the start


@pytest.mark.parametrize("fault, wanted", [
    ("isolation_low:pole=HV", "must be one of HV+, HV-"),
    ("weak_cell:cell=100000", "cannot affect this pack"),
])
def test_run_refuses_with_exit_2_before_touching_anything(fault, wanted, capsys, tmp_path):
    code = main(["run", str(SMOKE), "--sim", "--fault", fault, "--db", str(tmp_path / "r.db")])
    err = capsys.readouterr().err
    assert code == 2
    assert wanted in err and "Traceback" not in err
    assert not (tmp_path / "r.db").exists()  # refused before the store was opened: nothing recorded


def test_sim_serve_refuses_a_fault_that_cannot_reach_its_pack(tmp_path, capsys):
    """`station sim serve --fault` is checked against the served pack too, before anything starts."""
    from sim.serve import check_arguments

    _faults, problems = check_arguments("car-400", ["bond_high:point=BP5", "hot_cell:sensor=3"], 1.0)
    assert problems == [("fault 'bond_high': point='BP5' cannot affect this pack: its bonding points are "
                         "BP1, BP2, BP3, BP4 (did you mean 'BP4'?) (pack car-400)")], problems
    assert check_arguments("bus-700", ["bond_high:point=BP5"], 1.0)[1] == []  # six points: it reaches
    code = main(["sim", "serve", "--preset", "car-400", "--fault", "weak_cell:cell=500"])
    err = capsys.readouterr().err
    assert code == 2 and "cell=500 cannot affect this pack: it has 96 series elements" in err and "(pack car-400)" in err


CATCHING = """\
schema_version: 1
id: reach
version: 1.0.0
title: Reach
instruments: [fixture, bms, safety]
parameters: {points: [BP1]}
variants: {car-400: {}, bus-700: {}}
catches:
  - {fault: bond_high, step: bond, params: {point: BP5}}
  - {fault: instrument_hang, step: bond, expect: ERROR, params: {instrument: dmm}}
main:
  - id: bond
    safety.ground_bond: {point: BP1, points: "${points}"}
"""


def test_coverage_says_which_declared_catch_cannot_reach_which_variant(tmp_path, capsys):
    plan = tmp_path / "reach.yaml"
    plan.write_text(CATCHING)
    assert main(["coverage", str(plan)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("bond_high"))
    assert "NO EFFECT ON THIS PACK" in row and "bond (FAIL)" in row  # car-400 has no BP5, bus-700 has
    assert ("bond_high [car-400]: declared at step 'bond', but fault 'bond_high': point='BP5' cannot affect "
            "this pack: its bonding points are BP1, BP2, BP3, BP4") in out
    assert "instrument_hang [bus-700]: declared at step 'bond', but fault 'instrument_hang': instrument=dmm " \
           "cannot affect this run: the plan does not use it" in out


def test_station_test_refuses_a_declared_catch_that_cannot_reach_the_variant(tmp_path):
    from station.proof.cases import CATCH, Case
    from station.proof.execute import run_case

    plan = tmp_path / "reach.yaml"
    plan.write_text(CATCHING)
    case = Case(plan=str(plan), variant="car-400", kind=CATCH, fault="bond_high", params=(("point", "BP5"),),
                expect="FAIL", step="bond")
    result = run_case(case, str(tmp_path / "r.db"))
    assert not result.ok and result.verdict is None
    assert "point='BP5' cannot affect this pack" in result.problem and "(variant car-400, pack car-400)" in result.problem
