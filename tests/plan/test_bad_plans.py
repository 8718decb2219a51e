"""Every broken plan in tests/data/bad_plans gives its located message, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from station.cli import main

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "data" / "bad_plans"
EXPECTED = YAML(typ="safe").load((BAD / "expected.yaml").read_text())
SIM_STATION = ROOT / "station" / "sim_station.yaml"


def _args(path: Path) -> list[str]:
    extra = ["--station", str(SIM_STATION)] if path.read_bytes().startswith(b"# station: sim") else []
    return ["validate", *extra, str(path)]


def test_corpus_is_big_enough():
    files = sorted(p.name for p in BAD.glob("*.yaml") if p.name != "expected.yaml")
    assert len(files) >= 20
    assert set(files) == set(EXPECTED), "every bad plan needs an expectation, and vice versa"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_plan_reports_location_and_message(name, capsys):
    where, message = EXPECTED[name]
    path = BAD / name
    code = main(_args(path))
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    location_file, line, col = where.rsplit(":", 2)
    wanted = f"{BAD / location_file}:{line}:{col}: "
    lines = [ln for ln in err.splitlines() if ln.startswith(str(BAD / location_file) + ":")]
    hits = [ln for ln in lines if ln.startswith(wanted) and message in ln]
    assert hits, f"expected '{wanted}{message}' in:\n{err}"


def test_validate_as_a_process_has_no_traceback():
    """The real console script on the whole corpus: one exit 2 and only located lines."""
    files = [str(p) for p in sorted(BAD.glob("[0-9]*.yaml"))]
    proc = subprocess.run([sys.executable, "-m", "station.cli", "validate", *files],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    for line in proc.stderr.strip().splitlines():
        assert line.split(":", 3)[1].isdigit() and line.split(":", 3)[2].isdigit(), line


def test_all_problems_reported_not_just_the_first(tmp_path):
    plan = tmp_path / "many.yaml"
    plan.write_text("""\
schema_version: 1
id: many
version: 1.0.0
title: Many problems
instruments: [dmm]
main:
  - dmm.voltage: {rnage: 10 V}
  - id: b
    dmm.voltag: {}
  - id: c
    dmm.voltage: {range: 5 A}
""")
    proc = subprocess.run([sys.executable, "-m", "station.cli", "validate", str(plan)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    located = [ln.split(": ", 1)[0].rsplit(":", 2)[1] for ln in proc.stderr.splitlines()]
    assert located == ["7", "9", "11"]
