"""A station config in tmp_path: the simulated station with absolute plan paths, its own result
store, a small prompt plan and ``released:`` hashes (sim_station.yaml has none yet)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from station.config import SIM_CONFIG, load_config

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "test_plans" / "smoke.yaml"

PROMPT_PLAN = """\
schema_version: 1
id: prompt-check
version: 0.1.0
title: Small plan with an operator confirmation
instruments: [fixture, bms]
setup:
  - id: interlocks
    fixture.require: [estop_released, guard_closed, pack_present]
  - fixture.lv_power: true
  - bms.wake: {within: 5 s}
main:
  - id: label_ok
    operator.confirm: Is the pack label readable?
  - id: pack_v
    bms.pack: {}
    expect: {voltage: {min: 250 V, max: 900 V}}
teardown:
  - bms.mode: standby
  - fixture.lv_power: false
"""


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_station(tmp_path: Path, *, release: bool = True, unreleased: tuple[str, ...] = ()) -> Path:
    """Write plans + station.yaml into tmp_path; products: CAR*/BUS* smoke, PRM* prompt plan, UNR* unreleased.
    CAR has serial rules (4-20 of A-Z0-9, GS1 labels, scanner suffix '#'), a takt and a disposition."""
    plans = tmp_path / "plans"
    plans.mkdir(exist_ok=True)
    smoke = plans / "smoke.yaml"
    smoke.write_text(SMOKE.read_text())
    prompt = plans / "prompt.yaml"
    prompt.write_text(PROMPT_PLAN)
    draft = plans / "draft.yaml"
    draft.write_text(SMOKE.read_text().replace("version: 1.0.0", "version: 1.1.0-draft"))
    yaml = YAML()
    data = yaml.load(SIM_CONFIG.read_text())
    data["products"] = [
        {"pattern": "BUS[0-9A-Z]+", "plan": str(smoke), "variant": "bus-700"},
        {"pattern": "CAR[0-9A-Z]+", "plan": str(smoke), "variant": "car-400", "product": "car-pack", "min_length": 4,
         "max_length": 20, "allowed_chars": "A-Z0-9", "gs1": True, "gtin": "04012345678901", "scanner_suffix": "#",
         "takt_s": 600, "dispositions": {"isolation": "red bin HV, call the test engineer"}},
        {"pattern": "PRM[0-9A-Z]+", "plan": str(prompt), "product": "prompt-pack", "takt_s": 30},
        {"pattern": "UNR[0-9A-Z]+", "plan": str(draft), "variant": "car-400"},
    ]
    if release:
        data["released"] = {str(p): sha(p) for p in (smoke, prompt)}
    data["results"] = {"db": str(tmp_path / "results.db"), "synchronous": "NORMAL"}
    path = tmp_path / "station.yaml"
    with path.open("w") as fh:
        yaml.dump(data, fh)
    return path


@pytest.fixture
def station_file(tmp_path: Path) -> Path:
    return write_station(tmp_path)


@pytest.fixture
def station_config(station_file: Path):
    return load_config(station_file)
