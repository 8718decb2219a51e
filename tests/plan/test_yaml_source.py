"""drivers/base/yamlsrc.py: the YAML 1.2 core schema on plain scalars, explicit core tags honoured,
every other tag refused with its position."""

from __future__ import annotations

import pytest

from drivers.base.yamlsrc import load_text


@pytest.mark.parametrize("text, value", [
    ("yes", "yes"), ("on", "on"), ("no", "no"),  # YAML 1.1 booleans are strings in 1.2
    ("true", True), ("False", False), ("~", None), ("null", None),
    ("0x1F", 31), ("0o17", 15), ("1_000", 1000), ("-3", -3), ("1.5e3", 1500.0), ("800 V", "800 V"),
    ("'123'", "123"), ('"true"', "true"),
])
def test_plain_and_quoted_scalars_follow_the_core_schema(text, value):
    src = load_text(f"x: {text}\n", "t.yaml")
    assert src.problems == [] and src.data == {"x": value} and type(src.data["x"]) is type(value)


@pytest.mark.parametrize("text, value", [
    ("!!str 123", "123"), ("!!str yes", "yes"), ("!!str true", "true"), ("!!str", ""),
    ("!!int '7'", 7), ("!!float 1", 1.0), ("!!float '2.5'", 2.5), ("!!bool 'true'", True), ("!!null ''", None),
])
def test_explicit_core_tags_decide_the_type(text, value):
    src = load_text(f"x: {text}\n", "t.yaml")
    assert src.problems == [] and src.data == {"x": value} and type(src.data["x"]) is type(value)


@pytest.mark.parametrize("text, message", [
    ("!!int x", "'x' is not a valid !!int"),
    ("!!bool maybe", "'maybe' is not a valid !!bool"),
    ("!!float 1.2.3", "'1.2.3' is not a valid !!float"),
    ("!!binary aGk=", "YAML tag 'tag:yaml.org,2002:binary' is not allowed"),
    ("!!timestamp 2026-11-26", "YAML tag 'tag:yaml.org,2002:timestamp' is not allowed"),
    ("!custom x", "YAML tag '!custom' is not allowed"),
    ("!!python/object:os.system x", "is not allowed"),
])
def test_other_tags_and_bad_tagged_values_are_located_problems(text, message):
    src = load_text(f"a: 1\nx: {text}\n", "t.yaml")
    assert [(p.line, p.col) for p in src.problems] == [(2, 4)]
    assert message in src.problems[0].message


def test_merge_keys_are_refused_but_a_quoted_key_is_just_a_key():
    merged = load_text("base: &b {a: 1}\nother:\n  <<: *b\n", "t.yaml")
    assert [(p.line, "merge keys" in p.message) for p in merged.problems] == [(3, True)]
    quoted = load_text("'<<': 1\n", "t.yaml")
    assert quoted.problems == [] and quoted.data == {"<<": 1}
