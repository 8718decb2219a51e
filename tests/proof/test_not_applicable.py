"""An explored fault the run cannot meet is not applicable, never "let through": one due after
the run ended never struck, one on an instrument the plan does not use cannot touch the run, one
on a cell the pack lacks changes nothing. None of them counts in the let-through total or in the
share of faults caught that `station coverage --proof` shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from station.proof.cases import CATCH, EXPLORE, Case
from station.proof.command import summary
from station.proof.execute import NA_LATE, NA_PACK, NA_PLAN, run_case

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "test_plans" / "smoke.yaml")  # ~10 s of virtual time; no cycler


def _explore(fault: str, **params: str) -> Case:
    return Case(plan=SMOKE, variant="car-400", kind=EXPLORE, fault=fault, params=tuple(params.items()), expect=None)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, object]:
    db = str(tmp_path_factory.mktemp("na") / "r.db")
    cases = {"late estop": _explore("estop_at", t="600"), "default estop": _explore("estop_at"),
             "early estop": _explore("estop_at", t="5"), "late silence": _explore("bms_silent", after="1200"),
             "late hang": _explore("instrument_hang", at="600"), "cycler trip": _explore("cycler_trip_at"),
             "cycler hang": _explore("instrument_hang", instrument="cycler"),
             "no such cell": _explore("weak_cell", cell="150"), "leak": _explore("coolant_leak")}
    return {name: run_case(case, db) for name, case in cases.items()}


@pytest.mark.timeout(300)
def test_a_fault_due_after_the_run_ended_is_not_applicable(results):
    for name in ("late estop", "default estop", "late silence", "late hang"):
        r = results[name]
        assert (r.applicable, r.na, r.ok, r.verdict) == (False, NA_LATE, True, "PASS"), (name, r.problem)
    late = results["late estop"]
    assert late.problem.startswith("not applicable: fault 'estop_at' fires at t=600 s; the run ended at ")
    ended = float(late.problem.rsplit(" at ", 1)[1].removesuffix(" s"))
    assert 1.0 < ended < 30.0  # the smoke plan's run, not the session's clock
    early = results["early estop"]  # due within the run: it struck, and was caught
    assert early.applicable and early.caught and early.na == ""


@pytest.mark.timeout(300)
def test_a_fault_on_an_instrument_the_plan_does_not_use_is_not_applicable_alike(results):
    trip, hang = results["cycler trip"], results["cycler hang"]
    assert (trip.applicable, trip.na, trip.verdict) == (False, NA_PLAN, None)
    assert (hang.applicable, hang.na, hang.verdict) == (False, NA_PLAN, None)
    assert trip.problem == "not applicable: fault 'cycler_trip_at' (cycler) cannot affect this run: the plan does not use it"
    assert results["no such cell"].na == NA_PACK


@pytest.mark.timeout(300)
def test_only_a_fault_the_run_met_is_let_through(results, tmp_path):
    from station.proof.proven import proven_cells
    from station.proof.report import write_json

    lines = summary(list(results.values()), 1.0, 1, "r.db")
    assert ("explore: 2 undeclared fault forms x variants: 1 caught anyway, 1 let through, 0 left the pack unsafe or did "
            "not run; 7 not applicable (4 after the run, 1 not on this pack, 2 plan does not use it)") in lines, lines
    import json

    write_json(list(results.values()), tmp_path / "p.json", {})
    doc = json.loads((tmp_path / "p.json").read_text())
    assert {r["not_applicable"] for r in doc["results"]} == {None, NA_LATE, NA_PLAN, NA_PACK}
    cells = proven_cells(doc, SMOKE, ["car-400"])
    assert [r["fault"] for r in cells[("estop_at", "car-400")].explored] == ["estop_at:t=5"]
    assert cells[("cycler_trip_at", "car-400")].explored == []
    assert cells[("bms_silent", "car-400")].explored == []
    # a fault whose every form could not be met reads n/a with the reason, not "not run"
    assert cells[("cycler_trip_at", "car-400")].text() == f"n/a ({NA_PLAN})"
    assert cells[("bms_silent", "car-400")].text() == f"n/a ({NA_LATE})"
    assert cells[("weak_cell", "car-400")].text() == f"n/a ({NA_PACK})"
    assert cells[("estop_at", "car-400")].text().startswith("1/1 explored caught")
    assert cells[("hipot_breakdown", "car-400")].text() == "not run"


@pytest.mark.timeout(300)
def test_a_declared_catch_due_after_the_run_says_it_never_struck(tmp_path):
    case = Case(plan=SMOKE, variant="car-400", kind=CATCH, fault="estop_at", params=(("t", "600"),),
                expect="ABORTED", step="bond")
    r = run_case(case, str(tmp_path / "r.db"))
    assert r.ok is False and r.applicable is True
    assert r.problem.startswith("ended PASS instead of ABORTED; the fault never struck: fault 'estop_at' fires at "
                                "t=600 s; the run ended at ")
