"""docs/station.example.yaml is a real station's config that the station accepts; time_scale is
a development-only setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from station.cli import main
from station.config import InputError, load_config  # InputError as the config module raises it

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "station.example.yaml"
PLANS = [str(ROOT / "test_plans" / "pack_eol.yaml"), str(ROOT / "test_plans" / "smoke.yaml")]


def test_the_example_validates_with_the_reference_plans(capsys):
    assert main(["validate", "--station", str(EXAMPLE), *PLANS]) == 0, capsys.readouterr().err
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("  ")]  # not the notes
    assert len(lines) >= 4 and all(": OK (" in line for line in lines), lines  # every variant of both plans


def test_the_example_is_a_hardware_config_for_every_role_of_the_reference_plan():
    loaded = load_config(EXAMPLE)
    assert loaded.config.mode == "production" and loaded.config.time_scale == 1.0
    for fixture in loaded.fixture_ids():
        assert loaded.roles(fixture) == {"safety", "fixture", "cycler", "dmm", "leak", "bms"}
        for role, (_key, inst) in loaded.instruments_for(fixture).items():
            # real addresses: no simulator placeholders, nothing on loopback
            assert "{" not in inst.resource and "127.0.0.1" not in inst.resource, (fixture, role, inst.resource)
    resources = [inst.resource for f in loaded.fixture_ids() for _k, inst in loaded.instruments_for(f).values()]
    assert any(re.fullmatch(r"TCPIP::10\.0\.0\.\d+::\d+::SOCKET", r) for r in resources)


@pytest.mark.parametrize("mode, scale, problem", [
    ("production", "30", "time_scale 30 is for development against a simulated bench"),
    ("development", "0", "'time_scale': input should be greater than 0"),
    ("development", "1000", "'time_scale': input should be less than or equal to 100"),
])
def test_time_scale_is_development_only_and_bounded(tmp_path, mode, scale, problem):
    text = EXAMPLE.read_text().replace("mode: production", f"mode: {mode}").replace(
        "# time_scale: 1 ", f"time_scale: {scale}")
    path = tmp_path / "station.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_config(path)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("time_scale:"))
    located = [p for p in err.value.problems if problem in p.message]
    assert located and located[0].line == line, [str(p) for p in err.value.problems]


def test_a_development_config_may_scale_its_clock(tmp_path):
    text = EXAMPLE.read_text().replace("mode: production", "mode: development").replace(
        "# time_scale: 1 ", "time_scale: 30")
    path = ROOT / "docs" / f".scaled-{tmp_path.name}.yaml"  # next to the example: the product paths resolve
    path.write_text(text)
    try:
        assert load_config(path).config.time_scale == 30.0
    finally:
        path.unlink()
