"""What the matrix, JUnit and the pytest plugin say of a case: a not-applicable cell names its
reason, a long problem is cut after a whole word, a case that never ran says why it has no
record."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from station.proof.cases import CATCH, EXPLORE, GOLDEN, Case
from station.proof.execute import NA_LATE, NA_PACK, NA_PLAN, CaseResult
from station.proof.report import Matrix, cell_text, clip, record_line

ROOT = Path(__file__).resolve().parents[2]
PLAN = "/plans/a_rather_long_plan_name.yaml"
EXPLORED = Case(plan=PLAN, variant="car-400", kind=EXPLORE, fault="estop_at", params=(("t", "600"),), expect=None)


def _na(why: str) -> CaseResult:
    return CaseResult(EXPLORED, ok=True, applicable=False, na=why, problem=f"not applicable: {why}")


def test_a_not_applicable_cell_names_its_reason():
    assert cell_text(_na(NA_PLAN)) == "n/a (plan does not use it)"
    assert cell_text(_na(NA_PACK)) == "n/a (not on this pack)"
    assert cell_text(_na(NA_LATE)) == "n/a (after the run)"


def test_a_long_problem_is_cut_after_a_whole_word():
    text = "fault 'weak_cell': cell=150 cannot affect this pack: it has 96 series elements (0..95)"
    assert clip(text) == "fault 'weak_cell': cell=150 cannot affect this pack: it has…"
    assert len(clip(text)) <= 60
    assert clip(text, 31) == "fault 'weak_cell': cell=150…"  # the ':' before the cut is dropped too
    assert clip("short") == "short"
    assert clip("x" * 80) == "x" * 59 + "…"  # one word longer than the cell: cut where it must be
    catch = Case(plan=PLAN, variant="car-400", kind=CATCH, fault="weak_cell", params=(("cell", "150"),),
                 expect="FAIL", step="cells")
    result = CaseResult(catch, ok=False, problem=f"{PLAN}:20:45: {text} (variant car-400, pack car-400)")
    # the cell names the plan file, not its whole path (the summary has it whole)
    assert cell_text(result) == "✗ a_rather_long_plan_name.yaml:20:45: fault 'weak_cell'…"


def test_the_matrix_header_keeps_the_plan_name_apart_from_the_variants():
    golden = Case(plan=PLAN, variant="car-400", kind=GOLDEN)
    matrix = Matrix([golden])
    assert matrix.lines()[0].split() == ["a_rather_long_plan_name.yaml", "car-400"]


def test_a_case_that_never_ran_says_why_it_has_no_record():
    assert record_line(_na(NA_PLAN)) == "no record: nothing was run, the fault is not applicable (plan does not use it)"
    refused = CaseResult(EXPLORED, ok=False, problem="p.yaml:3:4: fault 'x' cannot affect this pack")
    assert record_line(refused) == "no record: no run was recorded (p.yaml:3:4: fault 'x' cannot affect this pack)"
    ran = CaseResult(EXPLORED, ok=True, run_id="R1", db="out/r.db")
    assert record_line(ran) == "record: run R1 in out/r.db (station results --db out/r.db show R1)"


@pytest.mark.timeout(300)
def test_the_pytest_plugin_says_why_a_case_has_no_record(tmp_path):
    smoke = (ROOT / "test_plans" / "smoke.yaml").read_text()
    catch = "  - {fault: weak_cell, step: bond, params: {cell: 150}}"
    (tmp_path / "unreachable.yaml").write_text(smoke.replace("teardown:", f"catches:\n{catch}\n\nteardown:", 1))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "unreachable.yaml", "-k", "weak_cell", "--plan-variant", "car-400",
         "--plan-db", str(tmp_path / "r.db"), "-p", "no:cacheprovider", "-o", "cache_dir=" + str(tmp_path / "c")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "run None" not in proc.stdout
    assert "no record: no run was recorded (" in proc.stdout, proc.stdout
    line = next(i for i, t in enumerate((tmp_path / "unreachable.yaml").read_text().splitlines(), 1) if t == catch)
    assert f"unreachable.yaml:{line}:{catch.index('150') + 1}: fault 'weak_cell': cell=150" in proc.stdout
