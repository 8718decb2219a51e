"""The action reference (issue 18 item 7): generated from the registry, docs/actions.md kept in
step, and the plan schema enumerating actions and their arguments."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from drivers.base.yamlsrc import load_file
from station.actions import reference
from station.actions.registry import all_actions
from station.cli import main
from station.commands import plan_schema

ROOT = Path(__file__).resolve().parents[2]


def test_docs_actions_md_has_not_drifted():
    stored = (ROOT / "docs" / "actions.md").read_text()
    assert stored == reference.markdown(), "docs/actions.md is stale: run `station actions --markdown > docs/actions.md`"


def test_every_action_argument_and_measurement_is_in_the_reference():
    md = reference.markdown()
    for name, spec in all_actions().items():
        assert f"## `{name}`" in md
        for arg in spec.args:
            assert arg == "*" or f"| `{arg}` |" in md, (name, arg)
        for meas in spec.measures:
            assert meas == "*" or f"| `{meas}` |" in md, (name, meas)


def test_cli_prints_one_action_with_units_defaults_preconditions(capsys):
    assert main(["actions", "cycler.dcir"]) == 0
    out = capsys.readouterr().out
    assert "current: quantity in A, default required" in out
    assert "duration: quantity in s, default 10 s" in out
    assert "r_discharge: ohm" in out
    assert "preconditions: dc_bus_connected" in out
    assert "safe state: drives pulse current" in out
    assert "safety.ground_bond" not in out


def test_cli_unknown_action_exit_2_with_suggestion(capsys):
    assert main(["actions", "cycler.dcr"]) == 2
    assert "did you mean 'cycler.dcir'" in capsys.readouterr().err


def _validator():
    return jsonschema.Draft202012Validator(plan_schema())


@pytest.mark.parametrize("plan", sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "test_plans").rglob("*.yaml")))
def test_shipped_plans_validate_against_the_schema(plan):
    data = load_file(ROOT / plan).data
    errors = sorted(_validator().iter_errors(data), key=str)
    assert not errors, [e.message for e in errors[:3]]


def _step(step: dict) -> list:
    return list(_validator().iter_errors({"schema_version": 1, "id": "p", "version": "1", "title": "t", "main": [step]}))


def test_schema_refuses_unknown_actions_and_arguments():
    assert not _step({"dmm.voltage": {"range": "1000 V"}})
    assert not _step({"action": "dmm.voltage", "with": {"range": "1000 V"}, "expect": {"voltage": {"max": "5 V"}}})
    assert _step({"dmm.voltag": {}})
    assert _step({"action": "dmm.voltag"})
    assert _step({"dmm.voltage": {"rnage": "1000 V"}})
    assert _step({"action": "dmm.voltage", "with": {"rnage": "1000 V"}})
    assert _step({"dmm.voltage": {}, "expect": {"current": {"max": "1 A"}}})
    assert _step({"safety.insulation": {"pole": "HV*", "voltage": "500 V"}})
