"""--fault parameters are checked against the catalogue before anything runs (issue 18 item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.faults import CATALOGUE, check_fault, fault_reach
from sim.pack.catalogue import shipped
from station.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "test_plans" / "smoke.yaml"


@pytest.mark.parametrize("name, params, wanted", [
    ("isolation_low", {"pole": "HV"}, "must be one of HV+, HV-, got 'HV'"),
    ("isolation_low", {"pol": "HV-"}, "no parameter 'pol' (did you mean 'pole'?)"),
    ("isolation_low", {"ohm": "-5"}, "'ohm' = -5 is outside [0, "),
    ("isolation_low", {"ohm": "nan"}, "finite"),
    ("weak_cell", {"cell": "x"}, "'cell' must be a whole number"),
    ("dtc_present", {"code": "0x1000000"}, "outside [0, 16777215]"),
    ("cycler_trip_at", {"kind": "OPT"}, "must be one of OVP, OCP, OTP, got 'OPT'"),
    ("instrument_hang", {"instrument": "dmmm"}, "did you mean 'dmm'"),
    ("isolaton_low", {}, "did you mean 'isolation_low'"),
])
def test_bad_parameters_are_refused_with_what_is_allowed(name, params, wanted):
    problem = check_fault(name, params)
    assert problem is not None and wanted in problem, problem


def test_every_default_is_valid():
    for name in CATALOGUE:
        assert check_fault(name, {}) is None, name


def test_a_fault_that_cannot_reach_the_pack_says_so():
    spec = shipped()["car-400"].spec
    assert "series elements" in fault_reach("weak_cell", {"cell": str(spec.series)}, spec)
    assert fault_reach("weak_cell", {"cell": str(spec.series - 1)}, spec) is None
    assert "temperature sensors" in fault_reach("hot_cell", {"sensor": str(spec.temp_sensors)}, spec)
    assert "bonding points" in fault_reach("bond_high", {"point": "NOPE"}, spec)
    assert "does not use it" in fault_reach("instrument_hang", {"instrument": "leak"}, spec, ["dmm"])


@pytest.mark.parametrize("fault, wanted", [
    ("isolation_low:pole=HV", "must be one of HV+, HV-"),
    ("weak_cell:cell=100000", "cannot affect this pack"),
])
def test_run_refuses_with_exit_2_before_touching_anything(fault, wanted, capsys, tmp_path):
    code = main(["run", str(SMOKE), "--sim", "--fault", fault, "--db", str(tmp_path / "r.db")])
    err = capsys.readouterr().err
    assert code == 2
    assert wanted in err and "Traceback" not in err
    assert not (tmp_path / "r.db").exists()  # refused before the store was opened: nothing recorded
