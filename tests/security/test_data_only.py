"""Plans and configs are data: YAML tags never construct objects, expressions cannot reach Python,
and production mode runs only the released content — all through the real files and CLI."""

from __future__ import annotations

import time

import pytest

from drivers.base.diagnostics import InputError
from station.cli import main
from station.config import load_config
from station.plan.expr import interpolate
from station.plan.loader import load_plan
from station.runner import RunRequest, prepare

from .conftest import PINS, REPO, SMOKE, production_station, write_station

LIMIT = 'min: "${max(iso_floor * v_max, 20 MOhm)}"'


def _plan(tmp_path, old: str, new: str, name: str = "attack.yaml"):
    text = SMOKE.read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


def _validate(capsys, *args: str) -> tuple[int, str]:
    code = main(["validate", *map(str, args)])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.err


@pytest.mark.parametrize("tag", [
    '!!python/object/apply:os.system ["touch {canary}"]',
    "!!python/name:os.system",
    '!!python/object/new:subprocess.Popen [["touch", "{canary}"]]',
    "!include /etc/passwd",
    "!!binary aGVsbG8=",
])
def test_yaml_tags_are_refused_in_plans_and_nothing_runs(tmp_path, capsys, tag):
    canary = tmp_path / "pwned"
    plan = _plan(tmp_path, "id: smoke", "id: " + tag.format(canary=canary))
    code, err = _validate(capsys, plan)
    assert code == 2
    assert f"{plan}:5:5: YAML tag" in err and "plans and configs are plain data" in err
    assert not canary.exists()


def test_yaml_tags_and_merge_keys_are_refused_in_configs(tmp_path):
    cfg = write_station(tmp_path)
    text = cfg.read_text().replace("mode: development", "mode: !!python/object/apply:os.getcwd []")
    cfg.write_text(text + "\nextra: &x {a: 1}\nmerged: {<<: *x}\n")
    with pytest.raises(InputError) as err:
        load_config(cfg)
    messages = [str(p) for p in err.value.problems]
    assert any(":6:7: YAML tag" in m for m in messages), messages
    assert any("merge keys ('<<') are not supported" in m for m in messages), messages


@pytest.mark.parametrize("expr, message", [
    ("${__import__('os').system('touch {canary}')}", "function '__import__' is not allowed"),
    ("${v_max.__class__}", "attribute '__class__' is not allowed"),
    ("${v_max.__class__.__bases__[0].__subclasses__()}", "attribute '__class__' is not allowed"),
    ("${getattr(v_max, '__class__')}", "function 'getattr' is not allowed"),
    ("${eval('1')}", "function 'eval' is not allowed"),
    ("${open('/etc/passwd')}", "function 'open' is not allowed"),
    ("${(lambda: 1)()}", ""),
])
def test_expressions_in_a_plan_file_cannot_reach_python(tmp_path, capsys, expr, message):
    canary = tmp_path / "pwned"
    plan = _plan(tmp_path, LIMIT, f'min: "{expr.replace("{canary}", str(canary))}"')
    code, err = _validate(capsys, plan)
    assert code == 2 and f"{plan}:45:" in err and message in err, err
    assert not canary.exists()


@pytest.mark.parametrize("expr", ["9 ** 999999", "10 ** 10 ** 10", "2.0 ** 1e10", "'a' * 10 ** 9"])
def test_huge_exponentiation_is_refused_quickly_with_plan_names(expr):
    t0 = time.perf_counter()
    with pytest.raises(Exception, match=r"too large|not allowed|too long|complex|unsupported") as err:
        interpolate("${" + expr + "}", {"v_max": 403})
    assert time.perf_counter() - t0 < 2.0
    assert not isinstance(err.value, (MemoryError, RecursionError, OverflowError))


def test_validate_refuses_a_constant_huge_power(tmp_path, capsys):
    plan = _plan(tmp_path, LIMIT, 'min: "${9 ** 999999 * 1 ohm}"')
    code, err = _validate(capsys, plan)
    assert code == 2 and "too large" in err


def test_billion_laughs_config_is_refused_fast(tmp_path):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i-1}"] * 10) + "]" for i in range(1, 10)]
    cfg = write_station(tmp_path)
    cfg.write_text(cfg.read_text() + "\n" + "\n".join(lines) + "\n")
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=r"document too large|aliases expand to more than"):
        load_config(cfg)
    assert time.perf_counter() - t0 < 2


def test_production_refuses_a_changed_plan_naming_it(station_dir, capsys, monkeypatch):
    plan = station_dir / "plans" / "smoke.yaml"
    prod = production_station(station_dir)
    ok = prepare(RunRequest(plan=str(plan), sim=True, station=str(prod.config), serial="SN1", operator="op1",
                            auth=prod.auth("op1")))
    assert ok.bound.plan.id == "smoke" and ok.release[0] == "admin-2026"  # the released content itself is accepted
    plan.write_text(plan.read_text().replace("max: 100 mOhm", "max: 900 mOhm"))  # a loosened limit
    monkeypatch.setenv("STATION_PIN", PINS["op1"])
    code = main(["run", str(plan), "--sim", "--station", str(prod.config), "--serial", "SN1", "--plain", "--operator", "op1"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{plan}:1:1: plan smoke.yaml is refused: content differs from its release" in err
    assert "Traceback" not in err
    assert prod.refusals("release refused")[-1]["fields"]["plan"] == str(plan)


def test_production_refuses_a_plan_whose_included_library_changed(tmp_path, capsys, monkeypatch):
    import shutil

    plans = tmp_path / "plans"
    shutil.copytree(REPO / "test_plans", plans, ignore=shutil.ignore_patterns("schema"))
    prod = production_station(tmp_path, release=("plans/pack_eol.yaml",))
    plan = plans / "pack_eol.yaml"
    digest = load_config(prod.config).config.released["plans/pack_eol.yaml"].sha256
    assert digest != load_plan(plan).sha256  # the digest covers the libraries, not the file alone
    req = RunRequest(plan=str(plan), sim=True, station=str(prod.config), serial="CAR1", variant="car-400",
                     operator="op1", auth=prod.auth("op1"))
    assert prepare(req).bound.release_sha256 == digest  # the released content itself is accepted
    lib = plans / "lib" / "insulation.yaml"
    lib.write_text(lib.read_text(encoding="utf-8") + "# an edit to a library only\n", encoding="utf-8")
    monkeypatch.setenv("STATION_PIN", PINS["op1"])
    code = main(["run", str(plan), "--sim", "--station", str(prod.config), "--serial", "CAR1", "--variant", "car-400",
                 "--plain", "--operator", "op1"])
    err = capsys.readouterr().err
    assert code == 2 and "plan pack_eol.yaml is refused: content differs from its release" in err
    assert "Traceback" not in err


def test_production_refuses_an_unreleased_plan(station_dir, capsys, monkeypatch):
    prod = production_station(station_dir, release=())
    monkeypatch.setenv("STATION_PIN", PINS["op1"])
    code = main(["run", str(station_dir / "plans" / "smoke.yaml"), "--sim", "--station", str(prod.config), "--plain",
                 "--operator", "op1", "--serial", "SN1"])
    assert code == 2 and "not released" in capsys.readouterr().err
    assert prod.refusals("release refused")
