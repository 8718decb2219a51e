"""The package installed outside a source checkout (as from a wheel: no ``test_plans/`` beside
it): a plan repository's CI proves its plans against the built-in simulated station, and a
simulated run keeps its results under the working directory, never inside the package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "plans-repo-example"


def _installed(tmp_path: Path) -> dict[str, str]:
    """The three packages copied to a site folder of their own, first on the path."""
    site = tmp_path / "site"
    for package in ("station", "drivers", "sim"):
        shutil.copytree(ROOT / package, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    return {**os.environ, "PYTHONPATH": str(site)}


def _station(env, cwd, *args):
    return subprocess.run([sys.executable, "-m", "station.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


@pytest.mark.timeout(600)
def test_a_plan_repository_proves_its_plans_with_the_package_installed_from_a_wheel(tmp_path):
    env = _installed(tmp_path)
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    where = subprocess.run([sys.executable, "-c", "import station; print(station.__file__)"], capture_output=True,
                           text=True, env=env, cwd=repo, check=True).stdout
    assert where.startswith(str(tmp_path / "site")), where  # the copy runs, not the checkout
    plan = sorted((repo / "test_plans").glob("*.yaml"))[0]
    proc = _station(env, repo, "validate", plan)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _station(env, repo, "test", "test_plans", "--jobs", "1", "--json", "out/proof.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((repo / "out" / "proof.json").read_text())["results"]
    assert results and all(r["ok"] for r in results), [r["problem"] for r in results if not r["ok"]]
    proc = _station(env, repo, "run", plan.relative_to(repo), "--sim", "--serial", "CAR0001", "--plain")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (repo / "results" / "station.db").is_file()  # under the working directory
    assert not list((tmp_path / "site").rglob("*.db")), "nothing written into the installed package"
