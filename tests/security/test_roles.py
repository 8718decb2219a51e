"""``authorize``: who may run which plan, with which faults, in which mode."""

from __future__ import annotations

import pytest

from drivers.base.diagnostics import InputError
from station.config import load_config
from station.plan.loader import load_plan
from station.security.roles import authorize, may_release, release_problem

from .conftest import write_station


def _setup(station_dir, *, mode="development", release=True):
    plan = station_dir / "plans" / "smoke.yaml"
    digest = load_plan(plan).sha256
    cfg = load_config(write_station(station_dir, mode=mode, released={"plans/smoke.yaml": digest} if release else None))
    return cfg, plan, digest


def _auth(cfg, who, plan, digest, *, faults=(), sim=True):
    authorize(cfg, who, plan_path=plan, plan_sha256=digest, variant="car-400", faults=list(faults), sim=sim)


def test_unknown_operator_is_refused_naming_the_known_ones(station_dir):
    cfg, plan, digest = _setup(station_dir)
    with pytest.raises(InputError, match=r"unknown operator 'mallory' \(operators: op1, eng1, admin\)"):
        _auth(cfg, "mallory", plan, digest)


def test_operator_runs_released_plan_only(station_dir):
    cfg, plan, digest = _setup(station_dir)
    _auth(cfg, "op1", plan, digest)  # released, same content: allowed
    with pytest.raises(InputError, match=r"smoke\.yaml differs from its released version") as err:
        _auth(cfg, "op1", plan, "0" * 64)
    assert err.value.problems[0].file == str(plan)
    other = station_dir / "plans" / "other.yaml"
    other.write_bytes(plan.read_bytes())
    with pytest.raises(InputError, match=r"other\.yaml is not released for station EOL-SIM-01"):
        _auth(cfg, "op1", other, digest)


def test_operator_never_injects_faults_even_on_the_simulator(station_dir):
    cfg, plan, digest = _setup(station_dir)
    with pytest.raises(InputError, match="operator 'op1' may not inject faults"):
        _auth(cfg, "op1", plan, digest, faults=["isolation_low"], sim=True)


@pytest.mark.parametrize("who", ["eng1", "admin"])
def test_engineers_and_admins_run_any_plan_and_faults_only_on_sim(station_dir, who):
    cfg, plan, _digest = _setup(station_dir, release=False)
    _auth(cfg, who, plan, "f" * 64, faults=["isolation_low"], sim=True)
    with pytest.raises(InputError, match=r"only be injected into the simulator \(--sim\)"):
        _auth(cfg, who, plan, "f" * 64, faults=["isolation_low"], sim=False)


def test_production_needs_an_operator_id_development_does_not(station_dir):
    cfg, plan, digest = _setup(station_dir, mode="development", release=False)
    _auth(cfg, "", plan, digest)  # bench/CI run without an id: engineer rules
    with pytest.raises(InputError, match="only be injected into the simulator"):
        _auth(cfg, "", plan, digest, faults=["x"], sim=False)
    prod, plan, digest = _setup(station_dir, mode="production")
    with pytest.raises(InputError, match=r"production mode: give the operator id \(--operator\)"):
        _auth(prod, "  ", plan, digest)


def test_release_problem_and_may_release(station_dir):
    cfg, plan, digest = _setup(station_dir)
    assert release_problem(cfg, plan, digest) is None
    assert release_problem(cfg, plan, digest.upper()) is None
    assert may_release(cfg, "admin").id == "admin"
    for who, role in (("eng1", "an engineer"), ("op1", "an operator")):
        with pytest.raises(InputError, match=f"'{who}' is {role}: only admins may release plans"):
            may_release(cfg, who)
