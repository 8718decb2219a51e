"""A station directory in tmp_path: the simulated station's config (comments and all) with a
copy of the smoke plan beside it, so tests can edit, release and run it without touching the repo."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from station.config import SIM_CONFIG

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "test_plans" / "smoke.yaml"


def write_station(folder: Path, *, mode: str = "development", released: dict[str, str] | None = None) -> Path:
    """Copy sim_station.yaml into ``folder`` with plan paths made absolute; return its path."""
    text = SIM_CONFIG.read_text(encoding="utf-8").split("\nreleased:")[0]  # the tests set their own
    text = text.replace("../test_plans/", f"{REPO / 'test_plans'}/").replace("mode: development", f"mode: {mode}")
    text = text.replace("db: ../results/station.db", f"db: {folder / 'results' / 'station.db'}")
    if released:
        text += "\nreleased:\n" + "".join(f"  {k}: {v}\n" for k, v in released.items())
    path = folder / "station.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def station_dir(tmp_path: Path) -> Path:
    (tmp_path / "plans").mkdir()
    shutil.copy(SMOKE, tmp_path / "plans" / "smoke.yaml")
    return tmp_path
