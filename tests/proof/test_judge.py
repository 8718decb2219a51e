"""The judgement of one proof run and the plan's cases, without running anything."""

from __future__ import annotations

from pathlib import Path

from sim.faults import CATALOGUE
from station.proof.cases import CATCH, EXPLORE, GOLDEN, Case, plan_cases
from station.proof.execute import judge
from station.proof.explore import undeclared, variations
from station.proof.safety import PhysicalState

ROOT = Path(__file__).resolve().parents[2]
SAFE_RECORD = {"safe_state": [{"instrument": "cycler", "ok": True}]}


def _catch(step="iso_plus", expect="FAIL"):
    return Case(plan="p.yaml", variant="car-400", kind=CATCH, fault="isolation_low", expect=expect, step=step)


def test_a_catch_holds_only_with_its_verdict_at_its_step():
    assert judge(_catch(), "FAIL", "main/isolation/iso_plus/ir", [], SAFE_RECORD) == []
    assert judge(_catch(), "ERROR", "main/isolation/iso_plus/ir", [], SAFE_RECORD) == \
        ["ended ERROR instead of FAIL, at main/isolation/iso_plus/ir"]
    assert judge(_catch(), "FAIL", "main/bond", [], SAFE_RECORD) == ["caught at main/bond instead of at step 'iso_plus'"]
    assert judge(_catch(), "PASS", None, [], SAFE_RECORD) == ["ended PASS instead of FAIL"]
    # a step id matches a whole path segment, never a prefix of one
    assert judge(_catch(step="iso"), "FAIL", "main/isolation/iso_plus/ir", [], SAFE_RECORD) != []


def test_an_unsafe_end_or_a_missing_safe_state_fails_any_proof():
    got = judge(_catch(), "FAIL", "main/isolation/iso_plus/ir", ["cycler output on"], SAFE_RECORD)
    assert got == ["pack not safe afterwards: cycler output on"]
    assert judge(_catch(), "FAIL", "main/isolation/iso_plus/ir", [], {"safe_state": []}) == \
        ["the record shows no safe state"]
    unconfirmed = {"safe_state": [{"instrument": "dmm", "ok": False}]}
    assert judge(_catch(), "FAIL", "main/isolation/iso_plus/ir", [], unconfirmed) == \
        ["safe state not confirmed by dmm in a run that ended FAIL"]
    assert judge(_catch(expect="ERROR"), "ERROR", "main/isolation/iso_plus", [], unconfirmed) == []


def test_golden_and_explored_runs():
    golden = Case(plan="p.yaml", variant=None, kind=GOLDEN)
    assert judge(golden, "PASS", None, [], SAFE_RECORD) == []
    assert judge(golden, "FAIL", "main/bond", [], {**SAFE_RECORD, "reason": "failed at main/bond"}) == \
        ["ended FAIL instead of PASS, at main/bond (failed at main/bond)"]
    explored = Case(plan="p.yaml", variant=None, kind=EXPLORE, fault="coolant_leak", expect=None)
    assert judge(explored, "PASS", None, [], SAFE_RECORD) == []  # let through is a finding, not a failure
    assert judge(explored, "FAIL", "main/leak", ["HV bus at 400.0 V"], SAFE_RECORD) == \
        ["pack not safe afterwards: HV bus at 400.0 V"]


def test_physical_state_names_each_unsafe_finding_and_allows_the_welded_contactor():
    safe = PhysicalState(bus_v=0.2, closed=("main_plus",), welded=("main_plus",), cycler_on=False, ir_pole=None, imd_on=True)
    assert safe.problems() == []
    bad = PhysicalState(bus_v=402.0, closed=("main_plus", "main_minus"), welded=("main_plus",), cycler_on=True,
                        ir_pole="HV-", imd_on=False)
    assert bad.problems() == ["HV bus at 402.0 V (>= 60 V) 30 s after the run", "contactor(s) closed: main_minus",
                              "cycler output on", "insulation tester relay closed on HV-",
                              "insulation monitor left disabled"]


def test_variations_start_with_the_defaults_and_span_each_parameter():
    assert variations("hvil_stuck_closed") == [()]
    got = variations("isolation_low")
    assert got[0] == () and (("pole", "HV-"),) in got
    ohms = [dict(p)["ohm"] for p in got if p and p[0][0] == "ohm"]
    assert ohms == ["100000", "2.23607e+06", "5e+07"]  # geometric across a wide span
    assert all(len(p) <= 1 for p in got)  # one parameter moved at a time
    assert (("kind", "OVP"),) in variations("cycler_trip_at")


def test_undeclared_leaves_out_exactly_the_declared_forms():
    from station.plan.loader import load_plan

    plan = load_plan(ROOT / "test_plans" / "pack_eol.yaml").plan
    car = undeclared(plan, "car-400")
    bus = undeclared(plan, "bus-700")
    # isolation_low with pole=HV+ and default ohm is declared: its explicit and implicit forms are out
    assert ("isolation_low", ()) not in car
    assert ("isolation_low", (("pole", "HV-"),)) in car  # HV- at the default 300 kOhm is not declared
    # cell_imbalance is declared for car-400 only: bus-700 explores its defaults
    assert ("cell_imbalance", ()) not in car and ("cell_imbalance", ()) in bus
    assert {name for name, _ in car} <= set(CATALOGUE)


def test_plan_cases_golden_and_catches_per_variant():
    cases = plan_cases(ROOT / "test_plans" / "pack_eol.yaml")
    assert [c.variant for c in cases if c.kind == GOLDEN] == ["car-400", "bus-700", "car-800"]
    car = [c for c in cases if c.kind == CATCH and c.variant == "car-400"]
    bus = [c for c in cases if c.kind == CATCH and c.variant == "bus-700"]
    assert len(car) == len(bus) + 1  # cell_imbalance is car-400 only
    names = {c.name for c in car}
    assert "isolation_low(pole=HV-,ohm=2000000)@iso_minus" in names and "hipot_breakdown@withstand" in names
    assert len({c.id for c in cases}) == len(cases)
    assert plan_cases(ROOT / "test_plans" / "lib" / "bond.yaml") == []  # a library proves nothing itself


def test_an_explored_form_the_pack_does_not_have_is_not_applicable(tmp_path):
    """hot_cell on sensor 500 of a 24-sensor pack: refused before anything is armed or run."""
    from station.proof.execute import run_case

    plan = str(ROOT / "test_plans" / "smoke.yaml")
    explored = Case(plan=plan, variant="car-400", kind=EXPLORE, fault="hot_cell", params=(("sensor", "500"),), expect=None)
    r = run_case(explored, str(tmp_path / "r.db"))
    assert r.applicable is False and r.ok is True and r.verdict is None
    assert r.problem.startswith("not applicable: fault 'hot_cell': sensor=500 cannot affect this pack: it has 24")
    declared = Case(plan=plan, variant="car-400", kind=CATCH, fault="hot_cell", params=(("sensor", "500"),),
                    expect="FAIL", step="cells")
    r = run_case(declared, str(tmp_path / "r.db"))
    # declared, it is a plan error naming the variant and its pack, before anything is armed
    assert r.ok is False and r.applicable is True and r.verdict is None
    assert "sensor=500 cannot affect this pack: it has 24 temperature sensors" in r.problem
    assert r.problem.endswith("(variant car-400, pack car-400)")
