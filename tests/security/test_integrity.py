"""Each bypass of issue 21, reproduced as an insider would try it, refused and audited.

A production station (tests/security/conftest.py: trusted admin key, users with PINs, the
smoke plan released with a signature) runs one real pack on the simulator through the CLI;
the attacks then go through the same CLI and files.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from drivers.base.diagnostics import InputError
from station.cli import main
from station.config import load_config
from station.results.store import ResultStore, StoreModeError
from station.runner import RunRequest, prepare
from station.security.audit import AuditLog
from station.security.signing import new_private_key, sign

from .conftest import PINS, SMOKE, Production, production_station


@pytest.fixture(scope="module")
def prod_run(tmp_path_factory) -> tuple[Production, str]:
    """A production station that has run one pack (PASS) into its production store."""
    folder = tmp_path_factory.mktemp("prod")
    (folder / "plans").mkdir()
    shutil.copy(SMOKE, folder / "plans" / "smoke.yaml")
    prod = production_station(folder)
    mp = pytest.MonkeyPatch()
    mp.setenv("STATION_PIN", PINS["op1"])
    try:
        code = main(["run", str(folder / "plans" / "smoke.yaml"), "--sim", "--station", str(prod.config),
                     "--operator", "op1", "--serial", "SN100", "--plain"])
    finally:
        mp.undo()
    assert code == 0
    with ResultStore(_db(prod), readonly=True) as store:
        (run,) = store.runs()
    return prod, run["id"]


def _db(prod: Production) -> Path:
    return prod.folder / "results" / "station.db"


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["run", *args, "--plain"])
    out, err = capsys.readouterr()
    return code, out, err


# -- 1. sed production -> development, then --db the production store ---------------------------
def test_a_development_copy_of_the_config_cannot_write_into_the_production_store(prod_run, capsys, tmp_path):
    prod, run_id = prod_run
    dev = tmp_path / "dev.yaml"
    dev.write_text(prod.config.read_text().replace("mode: production", "mode: development"))
    before = len(prod.audit().entries())
    code, _out, err = _run(capsys, str(prod.folder / "plans" / "smoke.yaml"), "--sim", "--station", str(dev),
                           "--db", str(_db(prod)), "--serial", "SN101")
    assert code == 2 and "is a production store: a development station may not write to it" in err
    assert "Traceback" not in err
    with ResultStore(_db(prod), readonly=True) as store:
        assert [r["id"] for r in store.runs()] == [run_id]  # nothing entered
        assert store.store_mode() == "production"
    entries = prod.audit().entries()[before:]
    (refusal,) = [e for e in entries if e["kind"] == "refusal"]
    assert refusal["fields"]["what"] == "store mode mismatch"
    assert refusal["fields"]["config"] == str(dev) and refusal["fields"]["serial"] == "SN101"
    assert refusal["fields"]["config_sha256"] == hashlib.sha256(dev.read_bytes()).hexdigest()


def test_a_production_station_refuses_a_development_store(station_dir, capsys, monkeypatch):
    prod = production_station(station_dir)
    dev_db = station_dir / "dev" / "station.db"
    ResultStore(dev_db, mode="development").open().close()  # claimed by a development bench
    monkeypatch.setenv("STATION_PIN", PINS["op1"])
    code, _out, err = _run(capsys, str(station_dir / "plans" / "smoke.yaml"), "--sim", "--station",
                           str(prod.config), "--db", str(dev_db), "--operator", "op1", "--serial", "SN1")
    assert code == 2 and "is a development store: a production station may not write to it" in err
    refusals = [e for e in AuditLog(dev_db.with_name("audit.jsonl")).entries() if e["kind"] == "refusal"]
    assert refusals[-1]["fields"]["what"] == "store mode mismatch"


def test_the_store_itself_refuses_the_other_mode(tmp_path):
    db = tmp_path / "s.db"
    ResultStore(db, mode="production").open().close()
    with pytest.raises(StoreModeError, match="production store; a development station may not"):
        ResultStore(db, mode="development").open()
    ResultStore(db, mode="production").open().close()  # its own mode: fine


# -- 2. editing the released digest to the modified plan's sha256 -------------------------------
def _edit_plan_and_digest(prod: Production) -> Path:
    plan = prod.folder / "plans" / "smoke.yaml"
    old = load_config(prod.config).config.released["plans/smoke.yaml"].sha256
    plan.write_text(plan.read_text().replace("max: 100 mOhm", "max: 900 mOhm"))
    new = hashlib.sha256(plan.read_bytes()).hexdigest()
    prod.config.write_text(prod.config.read_text().replace(old, new))
    assert load_config(prod.config).config.released["plans/smoke.yaml"].sha256 == new
    return plan


def test_editing_the_released_digest_without_the_key_is_refused_and_audited(station_dir, capsys, monkeypatch):
    prod = production_station(station_dir)
    plan = _edit_plan_and_digest(prod)
    monkeypatch.setenv("STATION_PIN", PINS["op1"])
    code, _out, err = _run(capsys, str(plan), "--sim", "--station", str(prod.config), "--operator", "op1",
                           "--serial", "SN1")
    assert code == 2 and "the signature by key 'admin-2026' does not match the release" in err
    assert prod.refusals("release refused")[-1]["fields"]["operator"] == "op1"
    assert main(["verify", "--station", str(prod.config)]) == 3
    assert "BROKEN" in capsys.readouterr().out


def test_a_bare_digest_an_untrusted_key_or_a_moved_signature_are_refused(station_dir):
    prod = production_station(station_dir)
    plan = station_dir / "plans" / "smoke.yaml"
    auth = prod.auth("op1")
    req = RunRequest(plan=str(plan), sim=True, station=str(prod.config), serial="SN1", operator="op1", auth=auth)
    assert prepare(req).release[0] == "admin-2026"
    text = prod.config.read_text()
    entry = load_config(prod.config).config.released["plans/smoke.yaml"]
    # a bare digest in place of the signed release
    start = text.index("  plans/smoke.yaml:")
    prod.config.write_text(text[:start] + f"  plans/smoke.yaml: {entry.sha256}\n")
    with pytest.raises(InputError, match="unsigned release"):
        prepare(req)
    # the insider's own key (not trusted by the station) signs the edited content
    mine = station_dir / "mine.key"
    new_private_key(mine)
    from station.security.signing import load_private_key

    forged = sign(load_private_key(mine), "EOL-SIM-01", "plans/smoke.yaml", entry.sha256)
    prod.config.write_text(text.replace(entry.signature, forged))
    with pytest.raises(InputError, match="does not match the release"):
        prepare(req)
    prod.config.write_text(text.replace("key: admin-2026", "key: mallory"))
    with pytest.raises(InputError, match="signed by key 'mallory', which this station does not trust"):
        prepare(req)
    # the same signature moved to another plan file with the same bytes
    other = station_dir / "plans" / "other.yaml"
    other.write_bytes(plan.read_bytes())
    prod.config.write_text(text.replace("  plans/smoke.yaml:", "  plans/other.yaml:"))
    with pytest.raises(InputError, match="does not match the release"):
        prepare(RunRequest(plan=str(other), sim=True, station=str(prod.config), serial="SN1", operator="op1", auth=auth))
    assert len(prod.refusals("release refused")) == 4


def test_release_needs_the_admins_trusted_key_and_pin(station_dir, capsys, monkeypatch):
    from station.security.release import release_plan

    prod = production_station(station_dir, release=())
    plan = station_dir / "plans" / "smoke.yaml"
    before = prod.config.read_bytes()
    with pytest.raises(InputError, match="a release must be signed"):
        release_plan(prod.config, plan, "admin", auth=prod.auth("admin"))
    other = station_dir / "other.key"
    new_private_key(other)
    with pytest.raises(InputError, match="not among station EOL-SIM-01's trusted keys"):
        release_plan(prod.config, plan, "admin", key=other, auth=prod.auth("admin"))
    with pytest.raises(InputError, match="operator 'admin' is not authenticated"):
        release_plan(prod.config, plan, "admin", key=prod.key)
    monkeypatch.delenv("STATION_PIN", raising=False)
    code = main(["release", str(plan), "--station", str(prod.config), "--operator", "admin", "--key", str(prod.key)])
    err = capsys.readouterr().err  # what is missing, and how to give it
    assert code == 2 and "'admin' needs a PIN on this station (production mode) and none was given: " in err
    assert "--pin-file FILE (--pin-file - reads it from stdin), or set STATION_PIN" in err
    assert prod.config.read_bytes() == before
    assert len(prod.refusals("release refused")) == 2 and prod.refusals("authentication required")
    assert prod.refusals("authentication failed")[-1]["fields"]["detail"] == "no PIN or badge given"
    pin = station_dir / "pin"
    pin.write_text(PINS["admin"] + "\n")
    assert main(["release", str(plan), "--station", str(prod.config), "--operator", "admin", "--key", str(prod.key),
                 "--pin-file", str(pin)]) == 0
    assert main(["verify", "--station", str(prod.config)]) == 0


# -- 3. --operator admin: nothing checked who is typing -----------------------------------------
def test_operator_flag_without_or_with_a_wrong_pin_is_refused_and_audited(station_dir, capsys, monkeypatch):
    prod = production_station(station_dir)
    plan = str(station_dir / "plans" / "smoke.yaml")
    monkeypatch.delenv("STATION_PIN", raising=False)
    code, _out, err = _run(capsys, plan, "--sim", "--station", str(prod.config), "--operator", "admin", "--serial", "SN1")
    assert code == 2 and "'admin' needs a PIN on this station (production mode) and none was given: " in err
    assert "authentication failed" not in err and "--pin-file FILE" in err and "STATION_PIN" in err
    monkeypatch.setenv("STATION_PIN", "0000")
    code, _out, err = _run(capsys, plan, "--sim", "--station", str(prod.config), "--operator", "admin", "--serial", "SN1")
    assert code == 2 and "authentication failed for 'admin'" in err
    details = [e["fields"]["detail"] for e in prod.refusals("authentication failed")]
    assert details == ["no PIN or badge given", "wrong or unknown pin"]
    # the engine path itself: a token for someone else, or none, does not run as admin
    req = RunRequest(plan=plan, sim=True, station=str(prod.config), serial="SN1", operator="admin", auth=prod.auth("op1"))
    with pytest.raises(InputError, match="operator 'admin' is not authenticated"):
        prepare(req)
    req.auth = None
    with pytest.raises(InputError, match="operator 'admin' is not authenticated"):
        prepare(req)
    assert len(prod.refusals("authentication required")) == 2


def test_five_failures_lock_the_id_even_with_the_right_pin(station_dir):
    from station.security.users import AuthError

    prod = production_station(station_dir)
    for _ in range(5):
        with pytest.raises(AuthError):
            prod.auth("eng1", "9999")
    with pytest.raises(AuthError, match="locked for 15 minutes after 5 failed attempts"):
        prod.auth("eng1")
    assert prod.auth("op1").operator == "op1"  # other ids are not affected
    assert prod.refusals("authentication failed")[-1]["fields"]["detail"] == "locked out"


def test_roles_are_still_enforced_for_authenticated_people(station_dir):
    prod = production_station(station_dir)
    req = RunRequest(plan=str(station_dir / "plans" / "smoke.yaml"), sim=True, station=str(prod.config), serial="SN1",
                     operator="op1", auth=prod.auth("op1"), faults=["isolation_low"])
    with pytest.raises(InputError, match="operator 'op1' may not inject faults"):
        prepare(req)
    assert prod.refusals("role denied")[-1]["fields"]["operator"] == "op1"


# -- 4. the audit log: every kind recorded, tampering detected ----------------------------------
def _copy_results(prod: Production, tmp_path: Path) -> tuple[Path, Path]:
    dest = tmp_path / "results"
    shutil.copytree(_db(prod).parent, dest)
    return dest / "station.db", dest / "audit.jsonl"


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


@pytest.mark.parametrize("tamper", ["edit", "remove", "reorder", "truncate"])
def test_audit_verify_detects_an_edited_removed_reordered_or_truncated_log(prod_run, tmp_path, capsys, tamper):
    prod, _run_id = prod_run
    db, log = _copy_results(prod, tmp_path)
    assert main(["audit", "verify", "--db", str(db)]) == 0
    assert "intact" in capsys.readouterr().out
    lines = _lines(log)
    assert [__import__("json").loads(x)["kind"] for x in lines[:3]] == ["login", "release", "login"]
    if tamper == "edit":
        lines[1] = lines[1].replace('"operator":"admin"', '"operator":"eng1"')
    elif tamper == "remove":
        del lines[1]
    elif tamper == "reorder":
        lines[0], lines[1] = lines[1], lines[0]
    else:  # the last entries, before the run: only the run's anchor can tell
        lines = lines[:2]
    log.write_text("".join(lines))
    assert main(["audit", "verify", "--db", str(db)]) == 3
    out = capsys.readouterr().out
    expected = {"edit": "was altered", "remove": "chain broken", "reorder": "chain broken",
                "truncate": "which the log no longer holds"}[tamper]
    assert expected in out


def test_a_production_record_knows_its_mode_config_and_release(prod_run, capsys):
    prod, run_id = prod_run
    with ResultStore(_db(prod), readonly=True) as store:
        record = store.record(run_id)
    config = load_config(prod.config)
    assert record["mode"] == "production"
    assert record["config_sha256"] == hashlib.sha256(prod.config.read_bytes()).hexdigest()
    released = config.config.released["plans/smoke.yaml"]
    assert record["release"] == {"key": "admin-2026", "signature": released.signature}
    hashes = [e["hash"] for e in prod.audit().entries()]
    assert record["audit_head"] in hashes  # the run anchors the chain
    assert main(["results", "--db", str(_db(prod)), "list", "--mode", "development"]) == 0
    assert "no runs" in capsys.readouterr().out
    assert main(["results", "--db", str(_db(prod)), "list"]) == 0
    assert run_id in capsys.readouterr().out


def test_a_config_change_since_the_last_run_is_audited(prod_run, tmp_path):
    from station.security.provenance import note_config_change

    prod, _run_id = prod_run
    db, log = _copy_results(prod, tmp_path)
    edited = tmp_path / "station.yaml"
    edited.write_text(prod.config.read_text().replace("interlock_period: 0.05", "interlock_period: 0.5"))
    audit = AuditLog(log)
    with ResultStore(db, readonly=True) as store:
        assert note_config_change(load_config(prod.config), store, audit) is False  # unchanged
        assert note_config_change(load_config(edited), store, audit) is True
    entry = audit.entries()[-1]
    assert entry["kind"] == "config_change"
    assert entry["fields"]["current"] == hashlib.sha256(edited.read_bytes()).hexdigest()
    assert audit.verify() == []


# -- profile files are part of what is released -------------------------------------------------
def test_editing_a_profile_file_unreleases_the_plan(station_dir):
    from drivers.bms.signals import DEFAULT_MAP
    from station.security.manifest import manifest, release_digest

    profile = station_dir / "bms_signals.yaml"  # the BMS's signal map, a file the driver declares
    profile.write_bytes(DEFAULT_MAP.read_bytes())
    (station_dir / "eol_bms.dbc").write_bytes((DEFAULT_MAP.parent / "eol_bms.dbc").read_bytes())  # the map names it
    prod = production_station(station_dir, release=())
    text = prod.config.read_text().replace("options: {cells: \"{F1.cells}\"",
                                           "options: {signals: bms_signals.yaml, cells: \"{F1.cells}\"", 1)
    prod.config.write_text(text)
    prod.release(station_dir / "plans" / "smoke.yaml")
    cfg = load_config(prod.config)
    req = RunRequest(plan=str(station_dir / "plans" / "smoke.yaml"), sim=True, station=str(prod.config), serial="SN1",
                     operator="op1", auth=prod.auth("op1"))
    prep = prepare(req)
    assert manifest(cfg, prep.bound)["profile:bms_signals.yaml"] == hashlib.sha256(profile.read_bytes()).hexdigest()
    assert release_digest(cfg, prep.bound) != prep.bound.release_sha256
    profile.write_bytes(profile.read_bytes() + b"# edited after the release\n")
    with pytest.raises(InputError, match="content differs from its release"):
        prepare(req)


def test_the_store_schema_v3_columns_are_there(prod_run):
    prod, run_id = prod_run
    conn = sqlite3.connect(_db(prod))
    try:
        row = conn.execute("SELECT station_mode, release_key FROM runs WHERE id = ?", (run_id,)).fetchone()
        assert row == ("production", "admin-2026")
        assert conn.execute("SELECT mode FROM store_mode").fetchall() == [("production",)]
    finally:
        conn.close()
