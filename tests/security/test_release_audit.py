"""Releasing a plan edits the station config in place (comments kept) and is audited; the audit
log is a hash chain that names the line of any edit, insertion, deletion or reordering."""

from __future__ import annotations

import itertools
import json
import os

import pytest

from drivers.base.diagnostics import InputError
from station.config import load_config
from station.plan.loader import load_plan
from station.security.audit import GENESIS, AuditLog, audit_path
from station.security.release import release_plan
from station.security.roles import release_problem

from .conftest import write_station


def test_release_records_hash_keeps_comments_and_audits(station_dir):
    cfg_path = write_station(station_dir)
    plan = station_dir / "plans" / "smoke.yaml"
    before = cfg_path.read_text()
    digest = release_plan(cfg_path, plan, "admin")
    after = cfg_path.read_text()
    assert digest == load_plan(plan).sha256
    assert "# one electrical-safety analyser shared by both fixtures" in after
    assert "station: {id: EOL-SIM-01, name: Simulated EOL station}" in after  # flow style kept
    assert after.startswith(before.splitlines()[0])
    cfg = load_config(cfg_path)
    assert cfg.config.released == {"plans/smoke.yaml": digest}
    assert release_problem(cfg, plan, digest) is None
    log = AuditLog(audit_path(cfg))
    (entry,) = log.entries()
    assert entry["kind"] == "release" and entry["fields"]["sha256"] == digest
    assert entry["fields"]["operator"] == "admin" and entry["fields"]["previous"] is None
    # a re-release after an edit replaces the same key and records what it replaced
    plan.write_text(plan.read_text() + "# tuned on the line\n")
    second = release_plan(cfg_path, plan, "admin")
    assert load_config(cfg_path).config.released == {"plans/smoke.yaml": second} and second != digest
    assert log.entries()[-1]["fields"]["previous"] == digest and log.verify() == []


@pytest.mark.parametrize("who, message", [("eng1", "only admins may release"), ("nobody", "unknown operator")])
def test_only_admins_release_and_the_config_is_untouched(station_dir, who, message):
    cfg_path = write_station(station_dir)
    before = cfg_path.read_bytes()
    with pytest.raises(InputError, match=message):
        release_plan(cfg_path, station_dir / "plans" / "smoke.yaml", who)
    assert cfg_path.read_bytes() == before
    (refusal,) = AuditLog(audit_path(load_config(cfg_path))).entries()  # the attempt is on record
    assert refusal["kind"] == "refusal" and refusal["fields"]["what"] == "role denied"
    assert refusal["fields"]["operator"] == who and refusal["fields"]["action"] == "release"


def test_a_plan_that_does_not_validate_cannot_be_released(station_dir):
    cfg_path = write_station(station_dir)
    bad = station_dir / "plans" / "bad.yaml"
    bad.write_text((station_dir / "plans" / "smoke.yaml").read_text().replace("dwell: 2 s", "dwell: 2 V"))
    before = cfg_path.read_bytes()
    with pytest.raises(InputError) as err:
        release_plan(cfg_path, bad, "admin")
    assert all(p.file == str(bad) and p.line > 1 for p in err.value.problems)
    assert cfg_path.read_bytes() == before


def _log(tmp_path, n=5) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(n):
        log.append(["login", "release", "abort", "override", "logout"][i % 5], who=f"u{i}", n=i)
    return log


def test_audit_chain_is_intact_and_linked(tmp_path):
    log = _log(tmp_path)
    entries = log.entries()
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0]["prev"] == GENESIS
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(entries))
    assert log.verify() == [] and log.head() == entries[-1]["hash"]
    with pytest.raises(ValueError, match="unknown audit entry kind"):
        log.append("coffee")


def _rewrite(log: AuditLog, edit) -> None:
    lines = log.path.read_text().splitlines()
    log.path.write_text("\n".join(edit(lines)) + "\n")


@pytest.mark.parametrize("name, edit, line, words", [
    ("edit a field", lambda ls: [ls[0], ls[1].replace('"who":"u1"', '"who":"eve"'), *ls[2:]], 2, "altered"),
    ("delete a line", lambda ls: ls[:2] + ls[3:], 3, "chain broken"),
    ("swap two lines", lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], 2, "chain broken"),
    ("insert a forged line", lambda ls: ls[:1] + [ls[1].replace('"n":1', '"n":9')] + ls[1:], 2, "altered"),
    ("garbage", lambda ls: ls[:4] + ["{not json"] + ls[4:], 5, "not a JSON entry"),
])
def test_audit_tampering_is_detected_at_its_line(tmp_path, name, edit, line, words):
    log = _log(tmp_path)
    _rewrite(log, edit)
    problems = log.verify()
    assert problems, name
    assert any(p.startswith(f"{log.path}:{line}:") and words in p for p in problems), problems


def test_recomputed_hash_still_breaks_the_chain(tmp_path):
    """A forger who recomputes the edited entry's hash breaks the next entry's link instead."""
    from station.security.audit import entry_hash

    log = _log(tmp_path)
    lines = log.path.read_text().splitlines()
    forged = json.loads(lines[1])
    forged["fields"]["who"] = "eve"
    forged["hash"] = entry_hash(forged)
    lines[1] = json.dumps(forged, sort_keys=True, separators=(",", ":"))
    log.path.write_text("\n".join(lines) + "\n")
    assert any(p.startswith(f"{log.path}:3:") and "chain broken" in p for p in log.verify())


def test_append_after_torn_last_line_keeps_chaining(tmp_path):
    log = _log(tmp_path, 3)
    with log.path.open("a") as fh:
        fh.write('{"seq":4,"ki')  # power loss mid-write
    log.append("abort", reason="e-stop")
    entries = log.entries()
    assert entries[-1]["seq"] == 4 and entries[-1]["prev"] == entries[-2]["hash"]
    assert [p.split(": ", 1)[1] for p in log.verify()] == ["not a JSON entry"]


def test_a_run_on_an_in_memory_store_keeps_its_audit_in_memory(tmp_path):
    """A run with ``--db :memory:`` used to write ``audit.jsonl`` into the working directory
    (found beside the repository after the reliability suite)."""
    import subprocess
    import sys
    from pathlib import Path

    from station.config import SIM_CONFIG

    assert audit_path(load_config(SIM_CONFIG), ":memory:") is None
    log = AuditLog(None)
    first = log.append("abort", run_id="r1")
    log.append("abort", run_id="r2")
    assert [e["seq"] for e in log.entries()] == [1, 2] and log.verify() == []
    assert log.entries()[1]["prev"] == first["hash"]
    plan = tmp_path / "trip.yaml"  # a monitor that trips at once: the abort is audited
    plan.write_text(_TRIP_PLAN)
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-m", "station.cli", "run", str(plan), "--sim", "--serial", "SN0001",
                           "--db", ":memory:", "--plain"],
                          cwd=work, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.returncode == 3 and "ABORTED" in proc.stdout, proc.stdout + proc.stderr
    assert list(work.iterdir()) == []


_TRIP_PLAN = """\
schema_version: 1
id: trip
version: 1.0.0
title: a monitor that trips at once
product: traction-pack
instruments: [fixture, bms]
setup:
  - fixture.require: [estop_released, guard_closed, pack_present]
  - fixture.lv_power: true
  - bms.wake: {within: 5 s}
main:
  - id: watch
    monitors:
      - {signal: bms.cell_voltage_max, max: 1 V, period: 10 ms}
    steps:
      - id: wait
        station.wait: 10 s
"""
