"""`station test` says where a plan or config problem is, as `station validate` does: a declared
catch that cannot affect the pack at the catch, a wrong --variant at the plan's variants, and a
preparation problem of any plan x variant before anything runs (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from drivers.base.diagnostics import InputError
from station.proof.cases import CATCH, plan_cases

ROOT = Path(__file__).resolve().parents[2]
SMOKE = (ROOT / "test_plans" / "smoke.yaml").read_text()
UNREACHABLE = "  - {fault: weak_cell, step: bond, params: {cell: 150}}"


def _plan(tmp_path: Path, catches: str, name: str = "unreachable.yaml", text: str = SMOKE) -> Path:
    path = tmp_path / name
    path.write_text(text.replace("teardown:", f"catches:\n{catches}\n\nteardown:", 1))
    return path


def _where(path: Path, line_text: str, token: str) -> str:
    lines = path.read_text().splitlines()
    line = lines.index(line_text) + 1
    return f"{path}:{line}:{lines[line - 1].index(token) + 1}"


def test_a_catch_that_cannot_affect_the_pack_is_located_at_its_parameter(tmp_path):
    from station.proof.execute import run_case

    plan = _plan(tmp_path, "  - {fault: isolation_low, step: iso_plus}\n" + UNREACHABLE)
    (case,) = [c for c in plan_cases(plan, variants=["car-400"]) if c.kind == CATCH and c.fault == "weak_cell"]
    r = run_case(case, str(tmp_path / "r.db"))
    assert r.ok is False and r.verdict is None
    where = _where(plan, UNREACHABLE, "150")  # the cell that is not on the pack, not 1:1
    assert r.problem == (f"{where}: fault 'weak_cell': cell=150 cannot affect this pack: it has 96 series "
                         "elements (0..95) (variant car-400, pack car-400)")


def test_a_default_that_cannot_affect_the_run_is_located_at_the_fault(tmp_path):
    """instrument_hang strikes the DMM by default; a plan without one: located at the fault's name."""
    from station.proof.execute import run_case

    catch = "  - {fault: instrument_hang, step: bond}"
    text = SMOKE.replace("instruments: [fixture, bms, dmm, safety]", "instruments: [fixture, bms, safety]")
    plan = _plan(tmp_path, catch, "nodmm.yaml", text)
    (case,) = [c for c in plan_cases(plan, variants=["car-400"]) if c.kind == CATCH]
    r = run_case(case, str(tmp_path / "r.db"))
    assert r.problem.startswith(f"{_where(plan, catch, 'instrument_hang')}: fault 'instrument_hang': instrument=dmm "
                                "cannot affect this run: the plan does not use it")


def test_a_wrong_variant_is_located_where_validate_locates_it():
    from station.plan.bind import bind_plan
    from station.plan.loader import load_plan

    smoke = ROOT / "test_plans" / "smoke.yaml"
    with pytest.raises(InputError) as proof:
        plan_cases(smoke, variants=["car400"])
    with pytest.raises(InputError) as validate:
        bind_plan(load_plan(smoke), "car400")
    assert proof.value.problems == validate.value.problems
    (problem,) = proof.value.problems
    assert (problem.line, problem.col) == (18, 3)
    assert problem.message == "unknown variant 'car400'; variants: car-400, bus-700"


def _station_test(*args):
    return subprocess.run([sys.executable, "-m", "station.cli", "test", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.mark.timeout(300)
def test_a_wrong_variant_is_a_usage_error_for_every_plan_before_anything_runs(tmp_path):
    db = tmp_path / "r.db"
    other = tmp_path / "other.yaml"
    other.write_text(SMOKE)
    proc = _station_test(ROOT / "test_plans" / "smoke.yaml", other, "--variant", "car400", "--db", db, "--jobs", "1")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    for path in (ROOT / "test_plans" / "smoke.yaml", other):
        assert f"{path}:18:3: unknown variant 'car400'; variants: car-400, bus-700" in proc.stderr
    assert "Traceback" not in proc.stderr and not db.exists()


@pytest.mark.timeout(300)
def test_a_variant_that_cannot_be_prepared_is_exit_2_before_anything_runs(tmp_path):
    """A variant with no simulated pack fails every one of its runs the same way: a plan or
    config error, found before the first run, not a column of failed proofs."""
    text = SMOKE.replace("  car-400: {description: ~400 V NMC car pack}",
                         "  car-400: {description: ~400 V NMC car pack}\n  truck-900: {}")
    plan = tmp_path / "trucks.yaml"
    plan.write_text(text)
    db = tmp_path / "r.db"
    proc = _station_test(plan, "--db", db, "--jobs", "1")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "variant 'truck-900' has no simulated pack" in proc.stderr
    assert proc.stderr.count("has no simulated pack") == 1, proc.stderr  # once, not once per case
    assert "proof:" not in proc.stdout and not db.exists(), "nothing was run"


@pytest.mark.timeout(300)
def test_a_broken_station_config_is_exit_2_located_once(tmp_path):
    config = (ROOT / "station" / "sim_station.yaml").read_text()
    (tmp_path / "cfg").mkdir()
    (tmp_path / "test_plans").symlink_to(ROOT / "test_plans")  # the config's ../test_plans/ paths
    broken = tmp_path / "cfg" / "broken.yaml"
    broken.write_text(config.replace("plan: ../test_plans/smoke.yaml", "plan: ../test_plans/nope.yaml", 1))
    db = tmp_path / "r.db"
    proc = _station_test(ROOT / "test_plans" / "smoke.yaml", "--station", broken, "--db", db, "--jobs", "1")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = next(i for i, t in enumerate(broken.read_text().splitlines(), 1) if "nope.yaml" in t)
    assert proc.stderr.count(f"{broken}:{line}:") == 1 and "plan file not found: ../test_plans/nope.yaml" in proc.stderr
    assert not db.exists()


@pytest.mark.timeout(300)
def test_the_pytest_plugin_fails_a_plan_that_cannot_be_prepared_once(tmp_path):
    text = SMOKE.replace("  car-400: {description: ~400 V NMC car pack}",
                         "  car-400: {description: ~400 V NMC car pack}\n  truck-900: {}")
    (tmp_path / "trucks.yaml").write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "trucks.yaml", "--plan-db", str(tmp_path / "r.db"), "-p", "no:cacheprovider",
         "-o", "cache_dir=" + str(tmp_path / "cache"), "-rf"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed" in proc.stdout and "passed" not in proc.stdout, proc.stdout
    assert "variant 'truck-900' has no simulated pack" in proc.stdout
    assert not (tmp_path / "r.db").exists(), "nothing was run"
