"""The README's production worked example, run as written: its station config block (the shape
of ``trusted_keys`` and ``users_file``) goes into a copy of the simulated station, its shell
blocks run in bash, and the key ``station keys new`` prints is pasted where the README says.
Edit the README's blocks and this test runs the new text."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from station.config import SIM_CONFIG, load_config

ROOT = Path(__file__).resolve().parents[2]
MARK = "<!-- tests/security/test_readme_production.py"
PLACEHOLDER = "ed25519:PASTE-THE-KEY-station-keys-new-PRINTED"


def readme_blocks() -> list[tuple[str, str]]:
    """(language, text) of each fenced block right after a comment naming this test, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(re.escape(MARK) + r"[^\n]*-->\n```(\w+)\n(.*?)```", text, re.S)


def base_config(folder: Path) -> str:
    """The simulated station's config without what the README block brings (mode, operators,
    releases), its paths made to work from ``folder``."""
    text = SIM_CONFIG.read_text(encoding="utf-8").split("\nreleased:")[0]
    text = re.sub(r"^mode: .*\n", "", text, flags=re.M)
    text = re.sub(r"^operators:\n(?:  .*\n)+", "", text, flags=re.M)
    return text.replace("../test_plans/", f"{ROOT / 'test_plans'}/").replace(
        "db: ../results/station.db", f"db: {folder / 'results' / 'station.db'}")


def bash(script: str, folder: Path) -> subprocess.CompletedProcess:
    bindir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k != "STATION_PIN"}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=folder, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)


def test_the_readme_production_example_runs_as_written(tmp_path):
    if shutil.which("bash") is None or not (Path(sys.executable).parent / "station").exists():
        pytest.skip("needs bash and the installed `station` command beside this Python")
    blocks = readme_blocks()
    assert [lang for lang, _ in blocks] == ["yaml", "sh", "sh"], blocks
    (_, config_block), (_, make_key), (_, the_rest) = blocks
    (tmp_path / "plans").mkdir()
    shutil.copy(ROOT / "test_plans" / "smoke.yaml", tmp_path / "plans" / "smoke.yaml")

    keys = bash(make_key, tmp_path)
    assert keys.returncode == 0, keys.stderr
    (entry,) = re.findall(r'- \{id: (\S+), owner: (\S+), public_key: "(ed25519:[^"]+)"\}', keys.stdout)
    # the key the README makes is the one its config names, held by the admin it names
    assert f"id: {entry[0]}" in config_block and f"owner: {entry[1]}" in config_block
    assert PLACEHOLDER in config_block
    station = tmp_path / "station.yaml"
    station.write_text(base_config(tmp_path) + "\n" + config_block.replace(PLACEHOLDER, entry[2]), encoding="utf-8")
    loaded = load_config(station)
    assert loaded.config.mode == "production" and loaded.config.users_file == "users.yaml"
    assert [(k.id, k.owner) for k in loaded.config.trusted_keys] == [(entry[0], entry[1])]

    rest = bash(the_rest, tmp_path)
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert "1/1 releases verify" in rest.stdout and "PASS" in rest.stdout, rest.stdout
    assert re.search(r"audit log .*: intact", rest.stdout), rest.stdout
    assert (tmp_path / "users.yaml").stat().st_mode & 0o077 == 0  # the PINs' file is private
