"""The station user file (scrypt-hashed PINs and badges) and the UI log-in that uses it."""

from __future__ import annotations

import stat

import pytest

from drivers.base.diagnostics import InputError
from station.config import load_config
from station.results.store import ResultStore
from station.security.users import UserFile, check_secret, hash_secret
from station.ui.app import OperatorApp
from tests.ui.helpers import finished, scan, shown, until

from .conftest import PINS, SMOKE, production_station, write_station


def test_secrets_are_salted_scrypt_hashes_compared_whole():
    one, two = hash_secret("2468", n=2**10), hash_secret("2468", n=2**10)
    assert one != two and one.startswith("scrypt$1024$8$1$")  # a fresh salt each time
    assert check_secret("2468", one) and check_secret("2468", two)
    assert not check_secret("2469", one) and not check_secret("2468", one[:-4] + "AAA=")
    assert not check_secret("2468", "plain-2468") and not check_secret("2468", "md5$x$y$z$a$b")


def test_user_file_is_private_and_holds_no_pin_in_clear(tmp_path):
    users = UserFile(tmp_path / "users.yaml").load()
    users.set("eng1", "pin", "8642")
    text = (tmp_path / "users.yaml").read_text()
    assert "8642" not in text and "scrypt$" in text
    assert stat.S_IMODE((tmp_path / "users.yaml").stat().st_mode) == 0o600
    assert check_secret("8642", UserFile(tmp_path / "users.yaml").load().credential("eng1", "pin"))
    with pytest.raises(InputError, match="a PIN is at least 4 digits"):
        users.set("eng1", "pin", "12")
    (tmp_path / "bad.yaml").write_text("schema_version: 1\nusers:\n  - {id: x, password: hunter2}\n")
    with pytest.raises(InputError) as err:
        UserFile(tmp_path / "bad.yaml").load()
    assert err.value.problems[0].line == 3


async def _type(pilot, selector: str, text: str) -> None:
    pilot.app.screen.query_one(selector).focus()
    await pilot.pause()
    await pilot.press(*text, "enter")
    await pilot.pause()


async def test_ui_production_login_needs_the_pin_and_runs_carry_it(station_dir):
    prod = production_station(station_dir, release=())
    prod.release(SMOKE)  # the catalogue's SN* product runs the repository's smoke plan
    app = OperatorApp(load_config(prod.config), sim=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await _type(pilot, "#login-id", "admin")
        assert app.operator is None and app.screen.query_one("#login-pin").display  # asked for the PIN
        await _type(pilot, "#login-pin", "0000")
        assert app.operator is None
        assert "authentication failed for 'admin'" in shown(app.screen.query_one("#login-error"))
        await _type(pilot, "#login-id", "mallory[/]")  # unknown, and markup: shown as text
        assert "unknown operator id 'mallory[/]'" in shown(app.screen.query_one("#login-error"))
        await _type(pilot, "#login-id", "op1")
        await _type(pilot, "#login-pin", PINS["op1"])
        assert app.operator.id == "op1" and app.auth.method == "pin"
        await scan(pilot, app, "F1", "SN0042")
        await pilot.press("enter")
        await until(pilot, finished(app, "F1"), timeout=60, what="the run's verdict")
    details = [e["fields"].get("detail") for e in prod.refusals("authentication failed")]
    assert details == ["wrong or unknown pin", "unknown operator id 'mallory[/]'"]
    assert [e["fields"]["operator"] for e in prod.audit().entries() if e["kind"] == "login"][-1] == "op1"
    with ResultStore(station_dir / "results" / "station.db", readonly=True) as store:
        (run,) = store.runs()
        record = store.record(run["id"])
    assert (record["verdict"], record["mode"], record["operator"]) == ("PASS", "production", "op1")
    assert record["release"]["key"] == "admin-2026"


async def test_ui_development_engineers_with_a_pin_on_file_authenticate_operators_need_not(station_dir):
    users = UserFile(station_dir / "users.yaml").load()
    users.set("eng1", "pin", PINS["eng1"])
    users.set("op1", "badge", "BADGE-0042")
    cfg = write_station(station_dir, extra="\nusers_file: users.yaml\n")
    app = OperatorApp(load_config(cfg), sim=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await _type(pilot, "#login-id", "eng1")
        assert app.operator is None and app.screen.query_one("#login-pin").display
        await _type(pilot, "#login-pin", PINS["eng1"])
        assert app.operator.id == "eng1" and app.auth.method == "pin"
        await pilot.press("f5")
        await pilot.pause()
        await _type(pilot, "#login-id", "admin")  # an admin with no credential on file: not let in
        assert app.screen.query_one("#login-pin").display
        await _type(pilot, "#login-pin", "1234")
        assert app.operator is None
        await _type(pilot, "#login-id", "BADGE-0042")  # a badge scan is id and credential at once
        assert app.operator.id == "op1" and app.auth.method == "badge"
    directory = UserFile(station_dir / "users.yaml").load()
    config = load_config(cfg)
    from station.config import OperatorConfig
    from station.security.users import needs_credential

    assert not needs_credential(config, directory, OperatorConfig(id="op3", role="operator"))
    assert needs_credential(config, directory, OperatorConfig(id="eng9", role="engineer"))
    assert not needs_credential(config, None, OperatorConfig(id="eng9", role="engineer"))  # no user file: CI


def _cli(*args: str, stdin: str = "", env: dict | None = None):
    import os
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if k != "STATION_PIN"} | (env or {})
    return subprocess.run([sys.executable, "-m", "station.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=120, env=environ)


def test_users_set_reads_a_piped_pin_and_says_how_when_none_comes(station_dir):
    prod = production_station(station_dir, release=())
    piped = _cli("users", "set", "eng1", "--station", str(prod.config), stdin="9753\n")
    assert piped.returncode == 0, piped.stderr
    assert check_secret("9753", UserFile(station_dir / "users.yaml").load().credential("eng1", "pin"))
    empty = _cli("users", "set", "eng1", "--station", str(prod.config), stdin="")
    assert empty.returncode == 2 and "Traceback" not in empty.stderr
    assert "no PIN given for 'eng1': pipe it in (echo ... | station users set eng1 --station FILE)" in empty.stderr
    # a release takes the PIN from stdin with --pin-file -, and without any says what is missing
    plan = str(station_dir / "plans" / "smoke.yaml")
    bare = _cli("release", plan, "--station", str(prod.config), "--operator", "admin", "--key", str(prod.key))
    assert bare.returncode == 2
    assert "'admin' needs a PIN on this station (production mode) and none was given: put it on the first " \
           "line of a file and give --pin-file FILE (--pin-file - reads it from stdin), or set STATION_PIN" in bare.stderr
    released = _cli("release", plan, "--station", str(prod.config), "--operator", "admin", "--key", str(prod.key),
                    "--pin-file", "-", stdin=PINS["admin"] + "\n")
    assert released.returncode == 0, released.stderr
