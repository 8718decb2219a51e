"""Station config: validated like plans (every problem at PATH:LINE:COL), drivers by registry key."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.base.diagnostics import InputError
from drivers.errors import UnknownDriverError
from drivers.registry import available, builtin, driver_class
from station.cli import main
from station.config import SIM_CONFIG, load_config

GOOD = """\
schema_version: 1
station: {id: EOL-T}
instruments:
  tester: {driver: chroma_19032, resource: "TCPIP::127.0.0.1::5025::SOCKET", shared: true}
fixtures:
  F1:
    instruments:
      safety: tester
      dmm: {driver: keysight_34465a, resource: "TCPIP::10.0.0.6::5025::SOCKET", calibration_due: 2027-01-31}
"""


def test_sim_config_loads_and_lists_fixtures():
    loaded = load_config(SIM_CONFIG)
    assert loaded.fixture_ids() == ["F1", "F2"]
    assert loaded.roles("F1") == {"safety", "fixture", "cycler", "dmm", "leak", "bms"}
    shared = loaded.instruments_for("F1")["safety"]
    assert shared[0] == "safety_tester" and shared[1].shared


def test_good_config_and_shared_reference(tmp_path: Path):
    path = tmp_path / "station.yaml"
    path.write_text(GOOD)
    loaded = load_config(path)
    assert loaded.instruments_for("F1")["dmm"][1].calibration_due.isoformat() == "2027-01-31"


@pytest.mark.parametrize("patch, where, message", [
    (("driver: keysight_34465a", "driver: keysight_3446"), (9, 21), "unknown driver 'keysight_3446'; valid keys:"),
    (("safety: tester", "safety: testr"), (8, 15), "no station-level instrument 'testr'"),
    (("shared: true", "shared: true, sharde: 1"), (4, 92), "unknown key 'sharde' (did you mean 'shared'?)"),
    (("calibration_due: 2027-01-31", "calibration_due: soon"), (9, 98), "'calibration_due': input should be a valid date"),
    (("station: {id: EOL-T}", "station: {id: EOL-T}\nstation: {id: X}"), (3, 1), "duplicate key 'station'"),
])
def test_config_errors_are_located(tmp_path: Path, patch, where, message):
    path = tmp_path / "station.yaml"
    path.write_text(GOOD.replace(*patch))
    with pytest.raises(InputError) as err:
        load_config(path)
    located = [p for p in err.value.problems if (p.line, p.col) == where and message in p.message]
    assert located, [str(p) for p in err.value.problems]


def test_validate_with_a_broken_station_config_exits_2(tmp_path: Path, capsys):
    path = tmp_path / "station.yaml"
    path.write_text(GOOD.replace("fixtures:", "fixturs:"))
    assert main(["validate", "--station", str(path), "test_plans/smoke.yaml"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:5:1: unknown key 'fixturs' (did you mean 'fixtures'?)" in err
    assert "Traceback" not in err


def test_registry_resolves_every_builtin_and_names_valid_keys_when_unknown():
    assert {"itech_it6000", "chroma_19032", "keysight_34465a", "modbus_fixture", "dbc_bms"} <= set(builtin())
    for key in builtin():
        assert isinstance(driver_class(key), type)
    with pytest.raises(UnknownDriverError) as err:
        driver_class("itech_6000")
    assert "itech_it6000" in str(err.value) and "keysight_34465a" in str(err.value)
    assert set(builtin()) <= set(available())


def test_driver_keys_scan_the_installed_packages_once_per_process(monkeypatch):
    """Resolving driver keys reads the installed distributions' entry points once (a scan of
    every distribution's metadata), however many keys a run resolves, unknown ones included."""
    from drivers import plugins

    scans = []
    real = plugins.metadata.entry_points
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda **kw: scans.append(kw) or real(**kw))
    plugins.plugins.cache_clear()
    try:
        assert driver_class("itech_it6000").__name__ == "ItechIT6000"
        assert driver_class("keysight_34465a").__name__ == "Keysight34465A"
        with pytest.raises(UnknownDriverError):
            driver_class("itech_6000")
        assert scans == [{"group": "eol_station.drivers"}]
    finally:
        plugins.plugins.cache_clear()


def test_drivers_are_built_from_config_without_io():
    """Building every instrument of the simulated station touches nothing (no sim running)."""
    from station.instruments import StationInstruments

    loaded = load_config(SIM_CONFIG)
    endpoints = {"F1.fixture": "127.0.0.1:1502", "F1.cycler.port": "1", "F1.dmm.port": "2",
                 "F1.leak": "127.0.0.1:3", "F1.can": "F1", "F1.cells": "96", "F1.temps": "24", "safety.port": "4"}
    fx = StationInstruments(loaded, endpoints).build("F1")
    assert set(fx.drivers) == {"safety", "fixture", "cycler", "dmm", "leak", "bms"}
    assert all(getattr(d, "transport", None) is None for d in fx.drivers.values())


def test_a_resource_the_driver_refuses_is_a_located_config_error(tmp_path: Path):
    from station.instruments import StationInstruments

    path = tmp_path / "station.yaml"
    path.write_text(GOOD.replace("      dmm:", "      fixture: {driver: modbus_fixture, resource: \"modbus-tcp://plc\"}\n      dmm:"))
    loaded = load_config(path)
    with pytest.raises(InputError) as err:
        StationInstruments(loaded).build("F1")
    problem = err.value.problems[0]
    assert (problem.line, problem.col) == (9, 51) and "modbus-tcp://plc" in problem.message


def test_the_simulated_station_releases_the_current_reference_plans():
    """Operators run released plans only: the shipped sim config must release today's plans."""
    from station.security.release import plan_release_digest

    loaded = load_config(SIM_CONFIG)
    for key, digest in loaded.config.released.items():
        plan = loaded.resolve_path(key)
        assert plan_release_digest(plan) == digest, (
            f"{key} changed since it was released: run `station release {plan} --station {SIM_CONFIG} --operator admin`")
    assert {Path(k).name for k in loaded.config.released} == {"smoke.yaml", "pack_eol.yaml"}
