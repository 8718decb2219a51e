"""`station test` and the pytest plugin on a test engineer's own repository, where a user trial
broke them: a report or result store path that cannot be written is a usage error said before
anything runs (not a traceback after every run, not a column of failed proofs); YAML that is not
a plan is skipped by both tools alike and said; `--variant` proves each plan for the variants it
has; `station coverage --proof` refuses a proof of another plan and leaves faults the plan cannot
meet out of its share."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from station.results.store import ResultStore

ROOT = Path(__file__).resolve().parents[2]
SMOKE = (ROOT / "test_plans" / "smoke.yaml").read_text()
BUS_BLOCK = """  bus-700:
    description: ~700 V LFP bus pack
    parameters: {v_test: 1000 V, v_max: 788 V, bond_points: [BP1, BP2, BP3, BP4, BP5, BP6]}
"""


def _station(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "station.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def _pytest(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pytest", *map(str, args), "-p", "no:cacheprovider", "-q"],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def _repo(tmp_path: Path) -> Path:
    """smoke.yaml (car-400, bus-700), car_only.yaml (car-400), notes.yaml (not a plan) and a library."""
    plans = tmp_path / "test_plans"
    plans.mkdir()
    (plans / "smoke.yaml").write_text(SMOKE)
    assert BUS_BLOCK in SMOKE
    (plans / "car_only.yaml").write_text(SMOKE.replace(BUS_BLOCK, "").replace("id: smoke", "id: car-only"))
    (plans / "notes.yaml").write_text("owner: line 3\nreviewed: true\n")
    (plans / "steps.yaml").write_text("schema_version: 1\nkind: library\nid: steps\n")
    return plans


@pytest.mark.timeout(600)
def test_paths_that_cannot_be_written_are_exit_2_before_anything_runs(tmp_path):
    plan = ROOT / "test_plans" / "smoke.yaml"
    blocker = tmp_path / "afile"
    blocker.write_text("")
    db = tmp_path / "r.db"
    quick = [plan, "--variant", "car-400", "--only", "isolation_low"]
    for flag, path, said in (("--junit", blocker / "x.xml", f"{blocker} is a file, not a directory"),
                             ("--json", tmp_path, "is a directory, not a file")):
        proc = _station("test", *quick, "--db", db, flag, path)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"station test: {flag} {path}: {said}" in proc.stderr
        assert "Traceback" not in proc.stderr and "proof:" not in proc.stdout
        assert not db.exists(), "a report that cannot be written leaves the store untouched"
    reports = tmp_path / "reports"
    for bad, said in ((blocker / "x.db", f"{blocker} is a file, not a directory"),
                      (tmp_path, "is a directory, not a result store"),
                      (plan, "is not a result store (not an SQLite database)")):
        proc = _station("test", *quick, "--db", bad, "--junit", reports / "j.xml")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and "proof:" not in proc.stdout
        assert f"station test: --db {bad}: {said}" in proc.stderr, proc.stderr
        assert not reports.exists(), "a refused command leaves nothing behind"
        assert not Path(f"{bad}-writers").exists(), "nor the store's lock directory"
    ResultStore(db, mode="production").open().close()  # a production store takes no simulated proof
    proc = _station("test", *quick, "--db", db)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"station test: --db {db}: a production store; the proof's runs are those of a development station" \
        in proc.stderr
    assert "proof:" not in proc.stdout
    # a production station's config: a proof's runs are a development station's
    config = tmp_path / "station" / "production.yaml"
    config.parent.mkdir()
    (tmp_path / "test_plans").symlink_to(ROOT / "test_plans")  # the products' plans, where the config says
    text = (ROOT / "station" / "sim_station.yaml").read_text()
    assert "\nmode: development\n" in text
    config.write_text(text.replace("\nmode: development\n", "\nmode: production\n"))
    proc = _station("test", *quick, "--station", config, "--db", tmp_path / "new.db")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{config}:6:7: station test proves plans on the simulator, as a development station's runs" in proc.stderr
    assert not (tmp_path / "new.db").exists()


@pytest.mark.timeout(600)
def test_a_directory_and_variants_only_some_plans_have(tmp_path):
    plans = _repo(tmp_path)
    (plans / "bus").mkdir()  # a subdirectory, walked as pytest walks it
    (plans / "bus" / "bus_only.yml").write_text(SMOKE.replace("  car-400: {description: ~400 V NMC car pack}\n", "")
                                                .replace("id: smoke", "id: bus-only"))
    (plans / ".cache").mkdir()  # never entered
    (plans / ".cache" / "stale.yaml").write_text("{{ not yaml")
    js = tmp_path / "r.json"
    proc = _station("test", plans, plans / "smoke.yaml", "--variant", "bus-700", "--only", "isolation_low",
                    "--db", tmp_path / "r.db", "--json", js)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stale.yaml" not in proc.stderr
    assert f"station test: {plans / 'notes.yaml'}: not a plan (no top-level schema_version:); skipped" in proc.stderr
    assert "steps.yaml" not in proc.stderr  # a library is part of the plans, not a stray file
    assert f"station test: {plans / 'car_only.yaml'}: none of the variants asked for (bus-700); not proven" in proc.stderr
    proven = {(Path(r["plan"]).name, r["variant"], r["name"]) for r in json.loads(js.read_text())["results"]}
    # each plan once, however often it was named
    assert proven == {("smoke.yaml", "bus-700", "golden"), ("bus_only.yml", "bus-700", "golden")}
    # station validate finds the same plans in the directory
    val = _station("validate", plans)
    assert val.returncode == 0, val.stdout + val.stderr
    assert f"{plans / 'notes.yaml'}: not a plan (no top-level schema_version:); skipped" in val.stderr
    assert f"{plans / 'bus' / 'bus_only.yml'}: OK" in val.stdout and "steps.yaml" not in val.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    val = _station("validate", empty)
    assert val.returncode == 2 and f"no plans in {empty}" in val.stderr
    # a variant no plan has is a plan error, located at every plan as binding it would say
    proc = _station("test", plans, "--variant", "boat-900", "--db", tmp_path / "r.db")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{plans / 'smoke.yaml'}:18:3: unknown variant 'boat-900'" in proc.stderr
    assert f"{plans / 'car_only.yaml'}:18:3: unknown variant 'boat-900'" in proc.stderr


@pytest.mark.timeout(600)
def test_coverage_refuses_a_proof_of_another_plan_and_shares_over_faults_the_plan_can_meet(tmp_path):
    plans = _repo(tmp_path)
    js = tmp_path / "r.json"
    # the smoke plan uses no cycler: every cycler_trip_at form is not applicable to it
    proc = _station("test", plans / "smoke.yaml", "--variant", "car-400", "--explore", "--only", "isolation_low",
                    "--only", "cycler_trip_at", "--db", tmp_path / "r.db", "--json", js)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "undeclared fault forms x variants" in proc.stdout
    cov = _station("coverage", plans / "smoke.yaml", "--proof", js)
    assert cov.returncode == 0, cov.stderr
    row = next(line for line in cov.stdout.splitlines() if line.startswith("car-400: "))
    assert row.startswith("car-400: 1/18 catalogue faults caught (6 %), 1 not applicable;"), row
    other = _station("coverage", plans / "car_only.yaml", "--proof", js)
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert f"the proof holds no run of {plans / 'car_only.yaml'}" in other.stderr
    assert f"it holds runs of: {plans / 'smoke.yaml'}" in other.stderr
    # the same plan from another directory, by a relative path: found by its content
    here = _station("coverage", "smoke.yaml", "--proof", js, cwd=plans)
    assert here.returncode == 0 and row in here.stdout, here.stdout + here.stderr
    (plans / "smoke.yaml").write_text(SMOKE.replace("title: Pack EOL smoke test", "title: Smoke, edited"))
    edited = _station("coverage", plans / "smoke.yaml", "--proof", js)
    assert edited.returncode == 2, edited.stdout + edited.stderr
    assert "the proof is of another version of" in edited.stderr and "prove it again" in edited.stderr


@pytest.mark.timeout(600)
def test_coverage_refuses_a_proof_made_before_a_library_the_plan_includes_changed(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "docs" / "plans-repo-example" / "test_plans", repo / "test_plans")
    js = tmp_path / "r.json"
    proc = _station("test", "test_plans/", "--variant", "car-400", "--only", "isolation_low", "--db", tmp_path / "r.db",
                    "--json", js, cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(js.read_text())["results"][0]
    assert result["plan_release_sha256"] and result["plan_release_sha256"] != result["plan_sha256"]
    plan = repo / "test_plans" / "pack_quick.yaml"
    assert _station("coverage", plan, "--proof", js).returncode == 0
    library = repo / "test_plans" / "lib" / "bond.yaml"
    library.write_text(library.read_text() + "# reviewed\n")
    cov = _station("coverage", plan, "--proof", js)
    assert cov.returncode == 2, cov.stdout + cov.stderr
    assert "or a library it includes, changed since `station test` ran): prove it again" in cov.stderr


@pytest.mark.timeout(600)
def test_the_plugin_proves_each_plan_for_the_variants_it_has_and_refuses_what_it_cannot_do(tmp_path):
    _repo(tmp_path)
    (tmp_path / "test_plans" / "car_only.yaml").unlink()
    car = tmp_path / "car.yaml"  # a plan with car-400 only, beside the plan directory
    car.write_text(SMOKE.replace(BUS_BLOCK, "").replace("id: smoke", "id: car-only"))
    proc = _pytest("test_plans/", "car.yaml", "--plan-variant", "bus-700", "--collect-only", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "car.yaml::plan" in proc.stdout and "test_plans/smoke.yaml::bus-700-golden" in proc.stdout
    assert "notes.yaml" not in proc.stdout and "steps.yaml" not in proc.stdout
    production = tmp_path / "production.db"
    ResultStore(production, mode="production").open().close()
    for workers in ([], ["-n", "2"]):  # a typo must not turn into a green run of nothing
        proc = _pytest("test_plans/", "--plan-variant", "bus-7000", *workers, cwd=tmp_path)
        assert proc.returncode == 4, proc.stdout + proc.stderr
        assert "--plan-variant bus-7000: no plan collected has it" in proc.stdout + proc.stderr
        proc = _pytest("test_plans/", "--plan-variant", "car-400", "--plan-db", car / "x.db", *workers, cwd=tmp_path)
        assert proc.returncode == 4, proc.stdout + proc.stderr
        assert f"--plan-db {car / 'x.db'}: {car} is a file, not a directory" in proc.stdout + proc.stderr
        assert "failed" not in proc.stdout
        proc = _pytest("test_plans/", "--plan-variant", "car-400", "--plan-db", production, *workers, cwd=tmp_path)
        assert proc.returncode == 4 and "a production store" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        # -k leaving none of a variant's golden runs is no unknown variant
        proc = _pytest("test_plans/smoke.yaml", "--plan-variant", "car-400", "-k", "nothing_matches", *workers,
                       "--plan-db", tmp_path / "k.db", cwd=tmp_path)
        assert proc.returncode == 5, proc.stdout + proc.stderr
