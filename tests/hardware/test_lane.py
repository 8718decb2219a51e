"""Hardware mode in CI: the reference plan (both variants) and the smoke plan, bench and station
in separate processes over real sockets (no ``--sim``), end with the verdict and measurements of
the in-process ``--sim`` run."""

from __future__ import annotations

import math
import time

import pytest

from tests.hardware.bench import Bench, load_record, measurements, run_station, station_args

# What "within noise" means per unit: the larger of a relative band and an absolute floor. Times
# (s) measured by polling differ by the polls' phase (the bench's clock is not the station's);
# a voltage read while the DC link bleeds down depends on the moment it is read (teardown's
# bus_safe: 1.7 V on --sim, 0.8-1.1 V on hardware, against a 60 V limit).
RELATIVE = 0.15
FLOOR = {"s": 1.0, "V": 2.0, "A": 0.2, "%": 0.1, "ohm": 0.002, "degC": 0.5, "Pa": 2.0, "Ah": 0.2}

CASES = [
    ("test_plans/pack_eol.yaml", "car-400", "CAR0001"),
    ("test_plans/pack_eol.yaml", "bus-700", "BUS0001"),
    ("test_plans/smoke.yaml", "car-400", "SN0001"),
]


def differences(reference: dict, hardware: dict) -> list[str]:
    """Every measurement that is missing, judged differently, or outside noise; [] if none."""
    ref, got = measurements(reference), measurements(hardware)
    problems = [f"{path} {name}: missing on hardware" for path, name in ref.keys() - got.keys()]
    problems += [f"{path} {name}: only on hardware" for path, name in got.keys() - ref.keys()]
    for key in ref.keys() & got.keys():
        a, b = ref[key], got[key]
        where = f"{key[0]} {key[1]}: sim {a['value']!r} {a['unit']} vs hardware {b['value']!r}"
        if a["verdict"] != b["verdict"]:
            problems.append(f"{where}: verdict {a['verdict']} vs {b['verdict']}")
        elif isinstance(a["value"], (int, float)) and isinstance(b["value"], (int, float)):
            band = max(RELATIVE * max(abs(a["value"]), abs(b["value"])), FLOOR.get(a["unit"] or "", 0.05))
            if not math.isclose(a["value"], b["value"], abs_tol=band):
                problems.append(f"{where}: outside noise (±{band:g})")
        elif a["value"] != b["value"]:
            problems.append(where)
    return sorted(problems)


@pytest.mark.timeout(400)
@pytest.mark.parametrize("plan, variant, serial", CASES, ids=[f"{p.split('/')[-1][:-5]}-{v}" for p, v, _ in CASES])
def test_hardware_mode_matches_the_simulator(tmp_path, plan, variant, serial):
    (tmp_path / "sim").mkdir()
    sim = run_station(station_args(plan, tmp_path, variant=variant, serial=serial, workdir=tmp_path / "sim", sim=True))
    assert sim.returncode == 0, sim.stdout + sim.stderr
    bench = Bench(tmp_path / "bench", preset=variant).start()
    try:
        started = time.monotonic()
        hw = run_station(station_args(plan, bench.station_file, variant=variant, serial=serial, workdir=tmp_path))
        wall = time.monotonic() - started
    finally:
        code = bench.stop()
    assert (hw.returncode, "Traceback" in hw.stderr) == (0, False), hw.stdout + hw.stderr
    assert code == 0, bench.stderr()
    reference, record = load_record(tmp_path / "sim", serial), load_record(tmp_path, serial)
    assert (reference["verdict"], record["verdict"]) == ("PASS", "PASS")
    assert (reference["simulated"], record["simulated"]) == (True, False)
    assert differences(reference, record) == []
    # the station's clock ran on the bench's scale (the run's duration is in station seconds;
    # the wall time includes the station's start-up at real speed)
    assert record["duration_s"] > 3 * wall, (record["duration_s"], wall)


def test_differences_catch_a_changed_value_and_verdict():
    ref = {"steps": [{"path": "main/x", "measurements": [
        {"name": "v", "value": 400.0, "unit": "V", "verdict": "pass"},
        {"name": "t", "value": 0.1, "unit": "s", "verdict": "pass"}]}]}
    same = {"steps": [{"path": "main/x", "measurements": [
        {"name": "v", "value": 401.0, "unit": "V", "verdict": "pass"},
        {"name": "t", "value": 0.6, "unit": "s", "verdict": "pass"}]}]}
    off = {"steps": [{"path": "main/x", "measurements": [
        {"name": "v", "value": 300.0, "unit": "V", "verdict": "pass"},
        {"name": "t", "value": 0.1, "unit": "s", "verdict": "fail"}]}]}
    assert differences(ref, same) == []
    assert len(differences(ref, off)) == 2
