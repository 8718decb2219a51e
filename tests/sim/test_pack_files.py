"""Pack definition files: the shipped families, their JSON Schema, nonsense refused at
``FILE:LINE:COL`` (with a did-you-mean), ``station sim packs`` and ``station sim serve --pack``."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import can
import cantools
import numpy as np
import pytest

from drivers.base.diagnostics import InputError
from sim.pack.catalogue import PACKS_DIR, find_pack, load_pack, shipped
from sim.pack.model import Pack
from sim.pack.packfile import pack_schema

ROOT = Path(__file__).resolve().parents[2]
CAR_400 = PACKS_DIR / "car-400.yaml"
SCHEMA = PACKS_DIR / "schema" / "pack.schema.json"


def lv48(tmp_path: Path, name: str = "lv48-14s", **replace: str) -> Path:
    """A 14s 48 V NMC pack file written from the car-400 file, with text replacements."""
    text = CAR_400.read_text()
    for old, new in {"name: car-400": f"name: {name}", "topology: {series: 96, parallel: 3}": "topology: {series: 14, parallel: 1}",
                     "sensors: 24": "sensors: 4", **replace}.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_the_shipped_families_are_files_and_keep_the_former_presets_physics():
    packs = shipped()
    assert list(packs) == ["bus-700", "car-400", "car-800"]
    car, bus, car800 = packs["car-400"].spec, packs["bus-700"].spec, packs["car-800"].spec
    assert (car.series, car.parallel, car.cell_capacity_ah, car.cell_r0, round(car.cell_r1 * car.cell_c1, 9)) == (96, 3, 70.0, 1e-3, 15.0)
    assert (bus.series, bus.parallel, bus.cell_capacity_ah, bus.cell_r0, round(bus.cell_r1 * bus.cell_c1, 9)) == (216, 2, 145.0, 0.35e-3, 20.0)
    assert car.bms_sw_version == "02.03.15" and bus.bms_part_number == "BMS-B700-0042"
    assert car800.series == 192 and 780 <= 192 * float(car800.ocv(1.0, 25.0)) <= 810  # 800 V class
    for name, d in packs.items():  # the record's digest is the file's own
        import hashlib

        assert d.sha256 == hashlib.sha256(d.path.read_bytes()).hexdigest() and d.name == name


def test_schema_file_is_generated_from_the_models():
    assert json.loads(SCHEMA.read_text()) == json.loads(json.dumps(pack_schema())), (
        "sim/packs/schema/pack.schema.json is stale: run `station sim packs --schema > sim/packs/schema/pack.schema.json`")
    assert pack_schema()["additionalProperties"] is False


NONSENSE = [
    # (replace old -> new, line, col, message part)
    ({"capacity_ah: 70": "capacity_ah: -70"}, 14, 16, "'capacity_ah': Input should be greater than 0"),
    ({"values: [3.00, 3.35,": "values: [3.40, 3.35,"}, 17, 20,
     "'values[1]': OCV must increase with SOC: 3.35 V at 5 % is not above 3.4 V at 0 %"),
    ({"soc_pct: [0, 5, 10, 20,": "soc_pct: [-5, 5, 10, 20,"}, 16, 14, "SOC points must lie within 0..100 %, got -5..100"),
    ({"initial: {soc_pct: 50}": "initial: {soc_pct: 120}"}, 25, 20, "'soc_pct': Input should be less than or equal to 100"),
    ({"heat_transfer_w_per_k: 0.25": "heat_transfr_w_per_k: 0.25"}, 23, 3, "did you mean 'heat_transfer_w_per_k'?"),
    ({"spreads:": "spread:"}, 24, 1, "unknown key 'spread' (did you mean 'spreads'?)"),
    ({"r1_ohm: 0.6e-3": "r1_ohm: {soc_pct: [0, 100], values: [1.0e-3, 0]}"}, 20, 48, "'values[1]': every value must be > 0, got 0"),
    ({"r1_ohm: 0.6e-3": "r1_ohm: fast"}, 20, 11, "'r1_ohm': must be a number or a table"),
    ({"did_table: did_table.yaml": "did_table: did_tabel.yaml"}, 34, 14, "file not found: did_tabel.yaml"),
    ({"topology: {series: 96, parallel: 3}": "topology: {series: 0, parallel: 3}"}, 10, 20, "'series': Input should be greater than or equal to 1"),
]


@pytest.mark.parametrize("edit, line, col, message", NONSENSE, ids=[m.split(":")[0][:30] for *_x, m in NONSENSE])
def test_nonsense_is_a_located_error(tmp_path, edit, line, col, message):
    text = CAR_400.read_text()
    for old, new in edit.items():
        assert old in text
        text = text.replace(old, new, 1)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_pack(path)
    shown = [str(p) for p in err.value.problems]
    assert any(s.startswith(f"{path}:{line}:{col}: ") and message in s for s in shown), shown


def test_a_bad_value_in_a_table_by_temperature_is_located_at_its_row_and_column(tmp_path):
    """A 2-D table spans lines: the error points at the element, not at `values:`."""
    text = (PACKS_DIR / "car-800.yaml").read_text()
    row = "      - [7.2000e-04, 6.7680e-04, 6.4320e-04,"
    assert text.count(row) == 1
    lines = text.splitlines()
    line = next(i for i, t in enumerate(lines, 1) if t.startswith(row))
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(row, "      - [7.2000e-04, 6.7680e-04, -6.4320e-04,"))
    with pytest.raises(InputError) as err:
        load_pack(path)
    shown = [str(p) for p in err.value.problems]
    col = lines[line - 1].index("6.4320e-04") + 1  # 1-based: where the added "-" stands
    assert shown == [f"{path}:{line}:{col}: 'values[2][2]': every value must be > 0, got -0.0006432"], shown


def test_unknown_pack_name_has_a_did_you_mean():
    with pytest.raises(InputError, match=r"unknown pack 'car-4000' \(did you mean 'car-400'\?\); packs: bus-700, car-400, car-800"):
        find_pack("car-4000")


def test_zero_spreads_give_identical_elements_and_one_cell_packs_work(tmp_path):
    path = lv48(tmp_path, **{"spreads: {capacity_rel: 0.002, r0_rel: 0.02, soc_pct: 0.3}": "spreads: {capacity_rel: 0, r0_rel: 0, soc_pct: 0}"})
    pack = Pack(load_pack(path).spec, clock=lambda: 0.0)
    assert np.ptp(pack.cell_voltages()) == 0.0 and np.ptp(pack.r0_base) == 0.0
    assert pack.pack_voltage() == pytest.approx(14 * 3.72)


def test_station_sim_packs_lists_and_checks(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "station.cli", "sim", "packs"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["bus-700", "car-400", "car-800"]
    assert "192s1p NMC" in lines[2] and "sha256" in lines[2]
    good = lv48(tmp_path)
    bad = lv48(tmp_path, "lv48-bad", **{"capacity_ah: 70": "capacity_ah: -1"})
    proc = subprocess.run([sys.executable, "-m", "station.cli", "sim", "packs", str(good), str(bad)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout.startswith("lv48-14s: 14s1p NMC")
    assert f"{bad}:14:16: 'capacity_ah': Input should be greater than 0" in proc.stderr
    assert "Traceback" not in proc.stderr


def packs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "station.cli", "sim", "packs", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_station_sim_packs_lists_a_folder_and_the_station_configs_packs(tmp_path):
    folder = tmp_path / "packs"
    folder.mkdir()
    lv48(folder)
    lv48(folder, "lv48-16s", **{"topology: {series: 96, parallel: 3}": "topology: {series: 16, parallel: 1}"})
    (folder / "notes.txt").write_text("not a pack")
    listed = packs(str(folder))
    assert listed.returncode == 0, listed.stderr
    assert [line.split(":")[0] for line in listed.stdout.splitlines()] == ["lv48-14s", "lv48-16s"]
    # a copy's modeline names schema/pack.schema.json beside it: not there yet, so a note says how
    note = (f"{folder / 'lv48-14s.yaml'}:1:1: note: its schema modeline names schema/pack.schema.json, which is not "
            f"beside it, so an editor cannot check the file; write it there: mkdir -p {folder / 'schema'} && "
            f"station sim packs --schema > {folder / 'schema' / 'pack.schema.json'}")
    assert note in listed.stderr.splitlines(), listed.stderr
    (folder / "schema").mkdir()
    (folder / "schema" / "pack.schema.json").write_text(packs("--schema").stdout)
    assert json.loads((folder / "schema" / "pack.schema.json").read_text()) == pack_schema()
    assert "note:" not in packs(str(folder)).stderr
    config = tmp_path / "station.yaml"
    config.write_text((ROOT / "station" / "sim_station.yaml").read_text()
                      .replace("../test_plans/", f"{ROOT / 'test_plans'}/")
                      .replace("    sim_preset: bus-700", "    sim_preset: packs/lv48-16s.yaml"))
    named = packs("--station", str(config))
    assert named.returncode == 0, named.stderr
    assert [line.split(":")[0] for line in named.stdout.splitlines()] == ["bus-700", "car-400", "car-800", "lv48-16s"]
    assert named.stdout.splitlines()[-1].endswith(str(folder / "lv48-16s.yaml"))


def test_sim_serve_serves_a_pack_file(tmp_path):
    path = lv48(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "station.cli", "sim", "serve", "--pack", str(path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
        endpoints = {}
        while "bms-can" not in endpoints:
            name, *rest = lines.get(timeout=20).split()
            endpoints[name] = rest
        host, port = next(c for c in endpoints["bms-can"] if c.startswith("127.0.0.1:")).split(":")
        dbc = cantools.database.load_file(str(ROOT / "drivers" / "maps" / "eol_bms.dbc"))
        bus = can.Bus(interface="socketcand", host=host, port=int(port), channel="can0", tcp_tune=True)
        try:
            deadline, volts = time.monotonic() + 5, None
            frame = dbc.get_message_by_name("EOL_PackValues")
            while volts is None and time.monotonic() < deadline:
                msg = bus.recv(0.5)
                if msg is not None and msg.arbitration_id == frame.frame_id:
                    volts = next(v for k, v in dbc.decode_message(msg.arbitration_id, msg.data).items() if "oltage" in k)
        finally:
            bus.shutdown()
        assert volts == pytest.approx(14 * 3.72, abs=0.5)  # the 14-cell pack of the file, not car-400
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "lv48-14s" in proc.stderr.read()


def test_sim_serve_with_a_bad_pack_file_exits_2(tmp_path):
    bad = lv48(tmp_path, **{"capacity_ah: 70": "capacity_ah: -1"})
    proc = subprocess.run([sys.executable, "-m", "station.cli", "sim", "serve", "--pack", str(bad)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and f"{bad}:14:16:" in proc.stderr and "Traceback" not in proc.stderr


def test_an_ocv_table_by_temperature_is_interpolated_between_its_rows(tmp_path):
    by_temp = ("soc_pct: [0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]\n"
               "    temp_c: [0, 20]\n"
               "    values:\n"
               "      - [2.95, 3.30, 3.40, 3.50, 3.56, 3.61, 3.67, 3.75, 3.83, 3.92, 4.02, 4.15]\n"
               "      - [3.00, 3.35, 3.45, 3.55, 3.61, 3.66, 3.72, 3.80, 3.88, 3.97, 4.07, 4.20]")
    flat = "soc_pct: [0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]\n    values: [3.00, 3.35, 3.45, 3.55, 3.61, 3.66, 3.72, 3.80, 3.88, 3.97, 4.07, 4.20]"
    spreads = {"spreads: {capacity_rel: 0.002, r0_rel: 0.02, soc_pct: 0.3}": "spreads: {capacity_rel: 0, r0_rel: 0, soc_pct: 0}"}
    for ambient, cell_v in (("0", 3.67), ("10", 3.695), ("25", 3.72)):
        path = lv48(tmp_path, **{flat: by_temp, "ambient_c: 25": f"ambient_c: {ambient}", **spreads})
        pack = Pack(load_pack(path).spec, clock=lambda: 0.0)
        assert pack.pack_voltage() == pytest.approx(14 * cell_v, abs=1e-9), ambient
