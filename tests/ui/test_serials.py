"""station.serials: a scan checked against the catalogue's rules; the CLI refuses before switching."""

from __future__ import annotations

import subprocess
import sys

import pytest

from station.config import SIM_CONFIG, ProductConfig, load_config
from station.serials import GS, SerialRefused, check_scan, parse_gs1, unvisible, visible
from tests.ui.conftest import REPO

CAR = ProductConfig(pattern="CAR[0-9A-Z]+", plan="p.yaml", product="CAR pack", min_length=8, max_length=8,
                    allowed_chars="A-Z0-9", scanner_prefix="]C1", scanner_suffix="#")
GS1 = ProductConfig(pattern="BUS[0-9]+", plan="p.yaml", product="bus pack", gs1=True, gtin="04012345678901")


def refused(scan: str, products=(CAR, GS1), **kw) -> str:
    with pytest.raises(SerialRefused) as info:
        check_scan(scan, list(products), **kw)
    return str(info.value)


def test_length_characters_prefix_suffix():
    assert check_scan("CAR00042", [CAR]).serial == "CAR00042"
    assert check_scan("]C1CAR00042#", [CAR]).serial == "CAR00042"  # what the scanner adds is stripped
    assert refused("CAR" + "0" * 497) == ("the scan has 500 characters; a CAR pack serial has 8 "
                                          "(two scans run together?): scan again")
    assert "has 8" in refused("CAR0004")
    assert "two scans run together" in refused("CAR00042CAR00042")
    assert "contains 'a'" in refused("CAR0004a", [ProductConfig(pattern="CAR.+", plan="p", allowed_chars="A-Z0-9")])
    assert "belongs to no product" in refused("XYZ12345")
    assert check_scan("XYZ12345", [CAR], require_product=False).product is None  # a plan given explicitly
    assert "at most 64" in refused("X" * 65, require_product=False)
    assert "empty" in refused("  ")


def test_control_and_foreign_characters_are_refused_in_words():
    assert "control character ESC" in refused("CAR\x1b[0042")
    assert "control character ESC" in refused(visible("CAR\x1b0042"))  # as the UI shows it: ␛
    assert "character 'ü'" in refused("CARü0042")
    assert "invisible or combining" in refused("CAR0\u0301042")
    assert "invisible or combining" in refused("\u202eCAR00042")
    assert unvisible(visible("A\x1dB\x1b")) == "A\x1dB\x1b" and visible(GS) == "␝"


def test_gs1_element_strings():
    raw = "]d2" + "0104012345678901" + "21BUS42" + GS + "10LOT7"
    scan = check_scan(raw, [CAR, GS1])
    assert scan.serial == "BUS42" and scan.elements == {"01": "04012345678901", "21": "BUS42", "10": "LOT7"}
    assert check_scan(visible(raw), [GS1]).serial == "BUS42"  # GS typed into the field as ␝
    assert check_scan("(01)04012345678901(21)BUS7", [GS1]).serial == "BUS7"
    assert "no (21) serial" in refused("0104012345678901" + GS + "10LOT7", [GS1])
    assert "GTIN (01) 04099999999999 is not" in refused("(01)04099999999999(21)BUS7", [GS1])
    assert "group separator (GS) missing" in refused("21BUS" + "4" * 30, [GS1])
    assert "no product of this station reads GS1" in refused("21CAR" + GS + "10X", [CAR])
    with pytest.raises(SerialRefused, match="cut short"):
        parse_gs1("01123")


def test_config_rejects_bad_rules(tmp_path):
    from drivers.base.diagnostics import InputError

    good = "min_length: 4, max_length: 20, allowed_chars: A-Z0-9, gs1: true, takt_s: 600"
    for bad, message in (("min_length: 4, max_length: 20, allowed_chars: z-a, gs1: true, takt_s: 600", "not a character set"),
                         ("min_length: 30, max_length: 20, allowed_chars: A-Z0-9, gs1: true, takt_s: 600", "more than max_length")):
        path = tmp_path / "station.yaml"
        path.write_text(SIM_CONFIG.read_text().replace(good, bad).replace("../test_plans/", str(REPO / "test_plans") + "/"))
        with pytest.raises(InputError) as info:
            load_config(path)
        problem = info.value.problems[0]
        assert message in problem.message and problem.line > 1  # FILE:LINE:COL of the product entry


def test_cli_refuses_a_bad_serial_before_anything_is_switched(tmp_path):
    db = tmp_path / "r.db"
    proc = subprocess.run([sys.executable, "-m", "station.cli", "run", "--sim", "--serial", "CAR" + "1" * 497,
                           "--db", str(db)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "the scan has 500 characters; a car-pack serial has at most 20" in proc.stderr
    assert "Traceback" not in proc.stderr and not db.exists()  # no store opened, no run recorded
    assert load_config(SIM_CONFIG).check_serial("]C1(01)04012345678901(21)CAR77").serial == "CAR77"
