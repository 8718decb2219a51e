"""A new pack family is one pack file named for a variant in the station's product catalogue;
an unknown variant or pack is exit 2 with a did-you-mean (never a silent car-400, never a
traceback); the record names the pack model (name and sha256) of every simulated run."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from station.config import SIM_CONFIG

ROOT = Path(__file__).resolve().parents[2]
CAR_400 = ROOT / "sim" / "packs" / "car-400.yaml"

# the engineer's 14s 48 V pack: a plan with its variant ...
PLAN = """\
schema_version: 1
id: lv48-eol
version: 1.0.0
title: 48 V pack check
instruments: [fixture, bms]
parameters:
  n_cells: {value: 14}
variants:
  lv48-14s: {}
  lv48-16s: {parameters: {n_cells: 16}}
setup:
  - fixture.require: [estop_released, guard_closed, pack_present]
  - fixture.lv_power: true
  - bms.wake: {within: 5 s}
main:
  - id: cells
    bms.cells: {settle: 1 s}
    expect: {count: {equals: "${n_cells}"}, v_min: {min: 3.0 V}, v_max: {max: 4.2 V}}
  - id: pack_v
    bms.pack: {}
    expect: {voltage: {min: 40 V, max: 60 V}}
teardown:
  - fixture.lv_power: false
"""


def pack_file(folder: Path, **replace: str) -> Path:
    """... and its pack definition, written from the car-400 file."""
    text = CAR_400.read_text()
    for old, new in {"name: car-400": "name: lv48-14s", "topology: {series: 96, parallel: 3}": "topology: {series: 14, parallel: 1}",
                     "sensors: 24": "sensors: 4", **replace}.items():
        assert old in text
        text = text.replace(old, new)
    (folder / "packs").mkdir(exist_ok=True)
    path = folder / "packs" / "lv48-14s.yaml"
    path.write_text(text)
    return path


def station(folder: Path, *, product_pack: str | None = "packs/lv48-14s.yaml", f1: str = "car-400") -> Path:
    """The simulated station's config, plus a product line for the 48 V pack."""
    text = SIM_CONFIG.read_text(encoding="utf-8").split("\nreleased:")[0]
    text = text.replace("../test_plans/", f"{ROOT / 'test_plans'}/")
    text = text.replace("db: ../results/station.db", f"db: {folder / 'station.db'}")
    text = text.replace("    sim_preset: car-400", f"    sim_preset: {f1}")
    line = '  - {pattern: "LV[0-9]+", plan: plan.yaml, variant: lv48-14s' + (f", pack: {product_pack}}}\n" if product_pack else "}\n")
    text = text.replace("products:\n", "products:\n" + line)
    (folder / "plan.yaml").write_text(PLAN)
    path = folder / "station.yaml"
    path.write_text(text)
    return path


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "station.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_a_new_family_is_one_file_named_in_the_product_catalogue(tmp_path):
    pack = pack_file(tmp_path)
    cfg = station(tmp_path)
    proc = cli("run", "--sim", "--station", str(cfg), "--serial", "LV001", "--plain", "--json", str(tmp_path / "r.json"),
               "--junit", str(tmp_path / "r.xml"), "--report", str(tmp_path / "r.html"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["variant"] == "lv48-14s"
    digest = hashlib.sha256(pack.read_bytes()).hexdigest()
    assert record["sim_pack"] == {"name": "lv48-14s", "sha256": digest}
    props = {p.get("name"): p.get("value") for p in ET.parse(tmp_path / "r.xml").getroot().iter("property")}
    assert (props["sim_pack"], props["sim_pack_sha256"]) == ("lv48-14s", digest)
    assert f"lv48-14s (sha256 {digest})" in (tmp_path / "r.html").read_text()
    count = next(m for s in record["steps"] for m in s["measurements"] if m["name"] == "count")
    assert count["value"] == 14


def test_shipped_runs_record_the_shipped_pack(tmp_path):
    cfg = station(tmp_path, product_pack=None)
    proc = cli("run", "test_plans/smoke.yaml", "--sim", "--station", str(cfg), "--variant", "bus-700", "--serial", "SN7",
               "--plain", "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    record = json.loads((tmp_path / "r.json").read_text())
    shipped = ROOT / "sim" / "packs" / "bus-700.yaml"
    assert record["sim_pack"] == {"name": "bus-700", "sha256": hashlib.sha256(shipped.read_bytes()).hexdigest()}


def test_a_variant_without_a_pack_is_exit_2_not_a_car_400(tmp_path):
    cfg = station(tmp_path, product_pack=None)
    proc = cli("run", str(tmp_path / "plan.yaml"), "--sim", "--station", str(cfg), "--variant", "lv48-16s",
               "--serial", "LV002", "--plain", "--db", str(tmp_path / "r.db"))
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "variant 'lv48-16s' has no simulated pack" in proc.stderr
    assert "pack: FILE" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r.db").exists()  # nothing was run or recorded
    # validate --station finds it too, at the catalogue line naming the variant without a pack
    # (lv48-16s, named by no product, at the config itself)
    line = next(i for i, text in enumerate(cfg.read_text().splitlines(), 1) if "variant: lv48-14s" in text)
    proc = cli("validate", "--station", str(cfg), str(tmp_path / "plan.yaml"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert f"{cfg}:{line}:" in proc.stderr and "variant 'lv48-14s' has no simulated pack" in proc.stderr
    assert f"{cfg}:1:1: variant 'lv48-16s' has no simulated pack" in proc.stderr


def test_an_unknown_sim_preset_is_a_located_error_for_validate_and_run(tmp_path):
    pack_file(tmp_path)
    cfg = station(tmp_path, f1="car-4000")
    line = next(i for i, text in enumerate(cfg.read_text().splitlines(), 1) if "sim_preset: car-4000" in text)
    want = f"{cfg}:{line}:17: unknown pack 'car-4000' (did you mean 'car-400'?); packs: bus-700, car-400, car-800"
    for args in (("validate", "--station", str(cfg), str(tmp_path / "plan.yaml")),
                 ("run", "--sim", "--station", str(cfg), "--serial", "LV003", "--plain")):
        proc = cli(*args)
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert want in proc.stderr and "Traceback" not in proc.stderr


def test_a_bad_pack_file_named_in_the_catalogue_is_located_in_the_pack_file(tmp_path):
    pack = pack_file(tmp_path, **{"capacity_ah: 70": "capacity_ah: 0"})
    cfg = station(tmp_path)
    proc = cli("validate", "--station", str(cfg), str(tmp_path / "plan.yaml"))
    assert proc.returncode == 2
    assert f"{pack}:14:16: 'capacity_ah': Input should be greater than 0" in proc.stderr
    assert "pack file packs/lv48-14s.yaml has problems" in proc.stderr
    (tmp_path / "packs" / "lv48-14s.yaml").unlink()
    proc = cli("validate", "--station", str(cfg), str(tmp_path / "plan.yaml"))
    assert proc.returncode == 2 and "pack file not found: packs/lv48-14s.yaml" in proc.stderr


def test_a_pack_file_named_without_its_path_or_misspelt_gets_a_did_you_mean(tmp_path):
    pack_file(tmp_path)  # packs/lv48-14s.yaml
    cfg = station(tmp_path, f1="lv48-14s")  # the file's name, not its path
    proc = cli("validate", "--station", str(cfg), str(tmp_path / "plan.yaml"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert "unknown pack 'lv48-14s' (did you mean 'packs/lv48-14s.yaml'?)" in proc.stderr
    cfg = station(tmp_path, f1="packs/lv48-41s.yaml")
    proc = cli("validate", "--station", str(cfg), str(tmp_path / "plan.yaml"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert "pack file not found: packs/lv48-41s.yaml (did you mean 'packs/lv48-14s.yaml'?)" in proc.stderr


@pytest.mark.parametrize("pack", ["car-400", "packs/lv48-14s.yaml"])
def test_a_fixture_may_hold_a_shipped_pack_or_a_pack_file(tmp_path, pack):
    pack_file(tmp_path)
    cfg = station(tmp_path, f1=pack)
    proc = cli("validate", "--station", str(cfg), "--variant", "lv48-14s", str(tmp_path / "plan.yaml"))
    assert proc.returncode == 0, proc.stderr


def test_a_session_never_runs_a_variant_on_another_pack(tmp_path):
    from drivers.base.diagnostics import InputError
    from station import clock
    from station.runner import RunRequest, Session, prepare

    req = RunRequest(plan=str(ROOT / "test_plans" / "smoke.yaml"), variant="bus-700", sim=True, serial="SN9",
                     db=str(tmp_path / "r.db"))
    prep = prepare(req)
    assert prep.pack.name == "bus-700"

    async def run():
        async with Session(prep.config, sim=True, presets={prep.fixture: "car-400"}, db=req.db) as session:
            return await session.run(req, prep, signals=False)

    with pytest.raises(InputError, match="fixture F1 holds the simulated car-400 pack; variant bus-700 is the bus-700 pack"):
        clock.run(run(), virtual=True)
