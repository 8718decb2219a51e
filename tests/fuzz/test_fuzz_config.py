"""Fuzz the station-config loader: mutated copies of the simulated station's config, random YAML,
random bytes, adversarial documents — a config or located problems, never a traceback, < 1 s each."""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from drivers.base.diagnostics import InputError
from station.config import SIM_CONFIG, load_config

from .bounds import DOC_BYTES, bounded, check_problems, count_lines, fuzz, peak_memory
from .mutate import mutated, yaml_like

REPO = Path(__file__).resolve().parents[2]
WORK = Path(tempfile.mkdtemp(prefix="fuzz-config-"))
atexit.register(shutil.rmtree, WORK, True)
shutil.copytree(REPO / "test_plans", WORK / "test_plans")  # the config names ../test_plans/...
(WORK / "station").mkdir()
CONFIG_TEXT = SIM_CONFIG.read_text()


def load(data: bytes) -> str:
    """Write ``data`` as station.yaml, load it; "ok", or "refused" after checking the problems."""
    path = WORK / "station" / "station.yaml"
    path.write_bytes(data)
    with bounded("station config"):
        try:
            load_config(path)
        except InputError as err:
            check_problems(err, path, count_lines(data))
            return "refused"
    return "ok"


def test_the_original_loads():
    assert load(CONFIG_TEXT.encode()) == "ok"


@fuzz(800)
@given(mutated(CONFIG_TEXT))
def test_mutated_station_config(doc):
    load(doc.encode("utf-8"))


@fuzz(600)
@given(yaml_like() | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_random_yaml_config(doc):
    load(doc.encode("utf-8", errors="surrogatepass"))


def _adversarial() -> dict[str, bytes]:
    base = CONFIG_TEXT.encode()
    laughs = b"".join(f"x{i}: &l{i} [{', '.join([f'*l{i-1}'] * 10)}]\n".encode() for i in range(1, 9))
    return {
        "laughs": base + b"\nx0: &l0 [1,1,1,1,1,1,1,1,1,1]\n" + laughs,
        "huge_timeout": base.replace(b"timeout: 2.0", b"timeout: 1e999", 1),
        "huge_int_port": re.sub(rb"interlock_period: [0-9.]+", b"interlock_period: " + b"9" * 50_000, base, count=1),
        "bad_regex": base.replace(b'"CAR[0-9A-Z]+"', b'"(a+)+$(?P<x>"'),
        "catastrophic_regex": base.replace(b'"CAR[0-9A-Z]+"', b'"(a|aa)+$"'),
        "deep": b"fixtures: " + b"{a: " * 3000 + b"1" + b"}" * 3000,
        "utf16": CONFIG_TEXT.encode("utf-16"),
        "latin1": base.replace(b"Simulated", "Simul\u00e9".encode("latin-1")),
        "nul": base.replace(b"mode:", b"mo\x00de:"),
        "tag": base.replace(b"mode: development", b"mode: !!python/object/apply:os.getcwd []"),
        "placeholder_injection": base.replace(b"{F1.dmm.port}", b"{__class__.__init__}"),
        "released_garbage": base + b"\nreleased: {../../etc/passwd: [1, 2], x: {y: z}}\n",
        "operators_dup": base + b"\noperators: []\n",
    }


@pytest.mark.parametrize("name", sorted(_adversarial()))
def test_adversarial_configs(name):
    data = _adversarial()[name]
    outcome = load(data)
    # an odd placeholder is only filled (or refused) with --sim; a slow regex is still a regex
    if name not in ("placeholder_injection", "catastrophic_regex"):
        assert outcome == "refused", name
    assert peak_memory(lambda: load(data)) < DOC_BYTES
