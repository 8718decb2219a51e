"""`station test` as a test engineer uses it on their own plans: a proof that does not hold names
what happened instead and keeps its record; bad input is exit 2 with PATH:LINE:COL; --explore
reports undeclared faults caught or let through; `station coverage --proof` shows it; the pytest
plugin collects plan files (with pytest-xdist) in a repository of plans."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from station.results.store import ResultStore

ROOT = Path(__file__).resolve().parents[2]
SMOKE = (ROOT / "test_plans" / "smoke.yaml").read_text()

CATCHES = """catches:
  - {fault: isolation_low, step: iso_plus}
  - {fault: bond_high, step: iso_minus, params: {ohm: 1}}

teardown:"""


def _plan(dirpath: Path, name: str = "mine.yaml", catches: str = CATCHES) -> Path:
    """The smoke plan with two declared catches: the first holds, the second names the wrong step."""
    dirpath.mkdir(parents=True, exist_ok=True)
    path = dirpath / name
    path.write_text(SMOKE.replace("teardown:", catches, 1))
    return path


def _station_test(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "station.cli", "test", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.timeout(600)
def test_a_failed_proof_names_what_happened_and_keeps_its_record(tmp_path):
    plan = _plan(tmp_path / "plans")
    db, js, junit = tmp_path / "r.db", tmp_path / "r.json", tmp_path / "r.xml"
    proc = _station_test(plan, "--variant", "car-400", "--db", db, "--json", js, "--junit", junit, "--jobs", "2")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads(js.read_text())
    by_name = {r["name"]: r for r in doc["results"]}
    assert set(by_name) == {"golden", "isolation_low@iso_plus", "bond_high(ohm=1)@iso_minus"}
    assert by_name["golden"]["ok"] and by_name["isolation_low@iso_plus"]["ok"]
    wrong = by_name["bond_high(ohm=1)@iso_minus"]
    assert wrong["ok"] is False and wrong["verdict"] == "FAIL" and wrong["safe"] is True
    assert wrong["problem"] == "caught at main/bond instead of at step 'iso_minus'"
    assert "FAILED mine[car-400] bond_high(ohm=1)@iso_minus: caught at main/bond" in proc.stdout
    with ResultStore(db, readonly=True) as store:  # the record of the failed proof is kept
        record = store.record(wrong["run_id"])
    assert record["verdict"] == "FAIL" and record["faults"] == ["bond_high:ohm=1"]
    assert f"station results --db {db} show {wrong['run_id']}" in proc.stdout
    suites = ET.parse(junit).getroot()
    assert suites.get("tests") == "3" and suites.get("failures") == "1"
    failure = suites.find(".//testcase[@name='bond_high(ohm=1)@iso_minus']/failure")
    assert failure is not None and "instead of at step 'iso_minus'" in failure.get("message")


@pytest.mark.timeout(600)
def test_bad_plan_and_bad_options_are_exit_2_before_anything_runs(tmp_path):
    bad = _plan(tmp_path, "bad.yaml", "catches:\n  - {fault: isolation_low, step: no_such_step}\n\nteardown:")
    db = tmp_path / "r.db"
    proc = _station_test(bad, "--db", db)
    assert proc.returncode == 2
    assert f"{bad}:" in proc.stderr and "no_such_step" in proc.stderr and "Traceback" not in proc.stderr
    proc = _station_test(ROOT / "test_plans" / "smoke.yaml", "--variant", "boat-900", "--db", db)
    assert proc.returncode == 2 and "smoke.yaml:18:3: unknown variant 'boat-900'" in proc.stderr
    proc = _station_test(ROOT / "test_plans" / "smoke.yaml", "--only", "isolation_lo", "--db", db)
    assert proc.returncode == 2 and "did you mean 'isolation_low'" in proc.stderr
    assert not db.exists(), "nothing was run"


@pytest.mark.timeout(600)
def test_explore_reports_undeclared_faults_and_coverage_shows_the_proof(tmp_path):
    plan = _plan(tmp_path, catches="catches:\n  - {fault: isolation_low, step: iso_plus}\n\nteardown:")
    js = tmp_path / "r.json"
    proc = _station_test(plan, "--variant", "car-400", "--explore", "--only", "isolation_low", "--only", "coolant_leak",
                         "--db", tmp_path / "r.db", "--json", js)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(js.read_text())
    explored = {r["fault"]: r for r in doc["results"] if r["kind"] == "explore"}
    # the declared default form is proven, not explored again; the others are
    assert "isolation_low" not in explored
    assert {"isolation_low:pole=HV-", "isolation_low:ohm=100000", "isolation_low:ohm=5e+07", "coolant_leak",
            "coolant_leak:rate=10"} <= set(explored)
    assert explored["isolation_low:pole=HV-"]["caught"] is True
    assert "iso_minus" in explored["isolation_low:pole=HV-"]["at"].split("/")
    assert explored["isolation_low:ohm=5e+07"]["caught"] is False  # above the 20 MOhm limit: not a defect here
    assert explored["coolant_leak"]["caught"] is False  # the smoke plan has no leak test: let through
    assert all(r["safe"] for r in explored.values())
    assert "let through" in proc.stdout and "explore: " in proc.stdout
    cov = subprocess.run([sys.executable, "-m", "station.cli", "coverage", str(plan), "--proof", str(js)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert cov.returncode == 0, cov.stderr
    lines = cov.stdout.splitlines()
    row = next(line for line in lines if line.startswith("coolant_leak") and "explored" in line)
    assert "0/4 explored caught" in row
    row = next(line for line in lines if line.startswith("isolation_low") and "explored" in line)
    assert "✓ iso_plus" in row
    assert any(line.startswith("car-400: 1/19 catalogue faults caught") for line in lines), cov.stdout
    bad = subprocess.run([sys.executable, "-m", "station.cli", "coverage", str(plan), "--proof", str(plan)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "not JSON" in bad.stderr


@pytest.mark.timeout(600)
def test_pytest_plugin_collects_plans_in_a_plan_repository_and_runs_them_under_xdist(tmp_path):
    repo = tmp_path / "my-plans"
    _plan(repo / "test_plans")
    (repo / "test_plans" / "lib").mkdir()
    (repo / "test_plans" / "lib" / "steps.yaml").write_text("schema_version: 1\nkind: library\nid: l\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "test_plans/", "-n", "2", "--plan-variant", "car-400", "--plan-db",
         str(tmp_path / "r.db"), "--junitxml", str(tmp_path / "j.xml"), "-p", "no:cacheprovider", "-rf"],
        capture_output=True, text=True, cwd=repo, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "2 workers" in proc.stdout or "gw1" in proc.stdout
    assert "caught at main/bond instead of at step 'iso_minus'" in proc.stdout
    cases = ET.parse(tmp_path / "j.xml").getroot().findall(".//testcase")
    names = sorted(tc.get("name") for tc in cases)
    assert names == ["car-400-bond_high(ohm=1)@iso_minus", "car-400-golden", "car-400-isolation_low@iso_plus"]
    failed = [tc.get("name") for tc in cases if tc.find("failure") is not None]
    assert failed == ["car-400-bond_high(ohm=1)@iso_minus"]


def test_this_repositorys_own_run_does_not_collect_plans(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "tests/data", "-p", "no:cacheprovider"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert ".yaml" not in proc.stdout
    assert "no tests collected" in proc.stdout or proc.returncode == 5


@pytest.mark.timeout(600)
def test_the_documented_plan_repository_passes_under_pytest_xdist(tmp_path):
    """docs/plans-repo-example as its CI job runs it (pytest form, two workers)."""
    import yaml

    repo = ROOT / "docs" / "plans-repo-example"
    gitlab = yaml.safe_load((repo / ".gitlab-ci.yml").read_text())
    github = yaml.safe_load((repo / ".github" / "workflows" / "plans.yml").read_text())
    steps = [s.get("run", "") for s in github["jobs"]["prove"]["steps"]]
    assert any(s.startswith("station test test_plans/ --junit") for s in steps)
    assert any(s.startswith("pytest test_plans/ -n auto") for s in gitlab["prove-plans-pytest"]["script"])
    for job in ("prove-plans", "prove-plans-pytest"):  # the result store is kept, not only the JUnit
        assert "out/" in gitlab[job]["artifacts"]["paths"], job
    assert "out/" in (repo / ".gitignore").read_text().splitlines()
    assert "asyncio_default_fixture_loop_scope = function" in (repo / "pytest.ini").read_text().splitlines()
    _check_install_source(repo, [*steps, *gitlab["prove-plans"]["script"], *gitlab["prove-plans-pytest"]["script"]])
    _check_tree_and_library(repo)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "test_plans/", "-n", "2", "--plan-variant", "car-400", "--plan-db",
         str(tmp_path / "r.db"), "--junitxml", str(tmp_path / "j.xml"), "-p", "no:cacheprovider",
         "-o", "cache_dir=" + str(tmp_path / "cache")],
        capture_output=True, text=True, cwd=repo, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    names = sorted(tc.get("name") for tc in ET.parse(tmp_path / "j.xml").getroot().findall(".//testcase"))
    assert names == ["car-400-bond_high(point=BP4)@bond", "car-400-bond_high@bond", "car-400-golden",
                     "car-400-isolation_low(pole=HV-)@iso_minus", "car-400-isolation_low@iso_plus"]
    assert not (repo / "out").exists(), "the run wrote only where it was told"


def _check_install_source(repo: Path, ci_commands: list[str]) -> None:
    """The station is on no public index: requirements.txt names an explicit source (a marked
    placeholder), and every CI job installs from it."""
    from packaging.requirements import Requirement

    lines = [line for line in (repo / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    (req,) = [Requirement(line) for line in lines]
    assert req.name == "eol-station" and req.extras == {"test"}
    assert req.url and req.url.startswith("git+https://") and "YOUR-GROUP" in req.url and req.url.endswith("@vX.Y.Z")
    assert "PLACEHOLDER" in (repo / "requirements.txt").read_text()
    installs = [c for c in ci_commands if c.startswith("pip install")]
    assert installs and all(c == "pip install -r requirements.txt" for c in installs), installs
    doc = (ROOT / "docs" / "station_test.md").read_text()
    assert lines[0] in doc, "docs/station_test.md shows the install source"


def _check_tree_and_library(repo: Path) -> None:
    """Every file the docs' tree of the example names exists; the plan uses its library with
    arguments and every bonding point it declares."""
    import re

    from station.plan.bind import bind_plan
    from station.plan.loader import load_plan

    doc = (ROOT / "docs" / "station_test.md").read_text()
    tree = doc[doc.index("my-plans/"):].split("```", 1)[0]
    named = re.findall(r"[├└]── (\S+)", tree)
    assert {"lib/", "bond.yaml", ".gitignore", "requirements.txt"} <= set(named), named
    for name in named:
        assert list(repo.rglob(name.rstrip("/"))), f"the docs' tree names {name}; the example has none"
    plan = repo / "test_plans" / "pack_quick.yaml"
    text = plan.read_text()
    assert "include: lib/bond.yaml" in text and 'with: {points: "${bond_points}"}' in text
    assert load_plan(repo / "test_plans" / "lib" / "bond.yaml").plan.kind == "library"
    bound = bind_plan(load_plan(plan), "bus-700")
    assert bound.parameters["bond_points"] == ["BP1", "BP2", "BP3", "BP4", "BP5", "BP6"]
    assert "lib/bond.yaml" in bound.libraries
