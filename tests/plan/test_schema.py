"""The JSON Schema kept beside the plans matches the models, and every shipped plan uses it."""

from __future__ import annotations

import json
from pathlib import Path

from station.commands import plan_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "test_plans" / "schema" / "plan.schema.json"


def test_generated_schema_has_not_drifted():
    stored = json.loads(SCHEMA.read_text())
    assert stored == json.loads(json.dumps(plan_schema())), (
        "test_plans/schema/plan.schema.json is stale: run `station schema > test_plans/schema/plan.schema.json`"
    )


def test_schema_describes_the_language():
    schema = plan_schema()
    assert schema["properties"]["schema_version"]["const"] == 1
    assert {"ActionStep", "GroupStep", "IncludeStep", "Limit", "Monitor"} <= set(schema["$defs"])
    assert schema["$defs"]["Limit"]["additionalProperties"] is False


def test_every_plan_has_the_editor_modeline():
    plans = [p for p in (ROOT / "test_plans").rglob("*.yaml")]
    assert plans
    for plan in plans:
        first = plan.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), plan
