"""README kept true (issue 18 item 9): every `station run` option listed, the commands it shows
exist, and every file it links or names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from station.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _subparsers():
    parser = _parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def test_every_station_run_option_is_in_the_readme():
    run = _subparsers()["run"]
    options = {o for a in run._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
    missing = sorted(o for o in options if o not in README)
    assert not missing, f"README does not list: {missing}"


def test_every_command_the_readme_shows_exists():
    commands = set(re.findall(r"^station ([a-z]+)", README, re.M))
    assert {"run", "validate", "stats", "release", "actions"} <= commands
    assert commands <= set(_subparsers()), sorted(commands - set(_subparsers()))


def test_every_stats_option_is_in_the_readme():
    stats = _subparsers()["stats"]
    options = {o for a in stats._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
    lines = README.splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("station stats"))
    block = [lines[first]]  # the command and its continuation lines (indented)
    for more in lines[first + 1:]:
        if not more.startswith(" "):
            break
        block.append(more)
    text = " ".join(block)
    assert all(o in text for o in options), (sorted(o for o in options if o not in text), text)


LINKS = sorted(set(re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README)))
NAMED = sorted(set(re.findall(r"`((?:test_plans|docs|station|drivers|sim|bench|tests)/[\w./-]+\.(?:yaml|md|py|json|sql))`", README)))


@pytest.mark.parametrize("path", LINKS + NAMED)
def test_files_the_readme_names_exist(path):
    assert (ROOT / path).exists(), path
