"""Signing keys and ``station verify`` / ``station keys new`` through the CLI."""

from __future__ import annotations

import os

import pytest

from drivers.base.diagnostics import InputError
from station.cli import main
from station.config import load_config
from station.runner import RunRequest, prepare
from station.security.signing import load_private_key, statement

from .conftest import production_station, write_station


def test_keys_new_writes_a_private_key_0600_and_never_overwrites(tmp_path, capsys):
    key = tmp_path / "admin.pem"
    assert main(["keys", "new", str(key), "--id", "admin-2027"]) == 0
    out = capsys.readouterr().out
    assert "{id: admin-2027, owner: OPERATOR-ID, public_key: \"ed25519:" in out
    assert os.stat(key).st_mode & 0o777 == 0o600
    load_private_key(key)
    assert main(["keys", "new", str(key)]) == 2
    assert "a key file already exists here" in capsys.readouterr().err
    os.chmod(key, 0o644)
    with pytest.raises(InputError, match="readable by others"):
        load_private_key(key)


def test_the_statement_binds_station_plan_and_digest():
    base = statement("EOL-1", "plans/a.yaml", "AB" * 32)
    assert base == statement("EOL-1", "plans/a.yaml", "ab" * 32)  # hex case does not matter
    assert len({base, statement("EOL-2", "plans/a.yaml", "ab" * 32), statement("EOL-1", "plans/b.yaml", "ab" * 32)}) == 3


def test_verify_in_development_accepts_bare_digests_and_reports_changes(station_dir, capsys):
    from station.plan.loader import load_plan

    plan = station_dir / "plans" / "smoke.yaml"
    cfg = write_station(station_dir, released={"plans/smoke.yaml": load_plan(plan).sha256})
    assert main(["verify", "--station", str(cfg)]) == 0
    assert "UNSIGNED  plans/smoke.yaml: bare digest, no signature" in capsys.readouterr().out
    plan.write_text(plan.read_text() + "# edited\n")
    assert main(["verify", "--station", str(cfg)]) == 3
    assert "CHANGED" in capsys.readouterr().out


def test_a_key_owned_by_an_operator_does_not_release(station_dir):
    prod = production_station(station_dir)
    text = prod.config.read_text().replace("owner: admin", "owner: op1")
    prod.config.write_text(text)
    req = RunRequest(plan=str(station_dir / "plans" / "smoke.yaml"), sim=True, station=str(prod.config),
                     serial="SN1", operator="op1", auth=prod.auth("op1"))
    with pytest.raises(InputError, match="belongs to 'op1', an operator, who may not release"):
        prepare(req)
    assert load_config(prod.config).config.trusted_keys[0].owner == "op1"
