"""Mutated BMS profiles (the vehicle-style one: value tables, pages, UDS commands): every one
loads or is refused with located problems, never a traceback, in bounded time."""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from pathlib import Path

from hypothesis import given

from drivers.bms.did_table import DidTableError
from drivers.bms.signals import MAPS, SignalMapError, load_signal_map

from .bounds import bounded, count_lines, fuzz
from .mutate import mutated

WORK = Path(tempfile.mkdtemp(prefix="fuzz-bms-profile-"))
atexit.register(shutil.rmtree, WORK, True)
for name in ("vehicle_bms.dbc", "vehicle_did.yaml"):
    shutil.copy(MAPS / "vehicle" / name, WORK / name)
PROFILE_TEXT = (MAPS / "vehicle" / "vehicle_bms.yaml").read_text()
LOCATED = re.compile(r"^(.+):(\d+):(\d+): \S")


def load(data: bytes) -> str:
    path = WORK / "profile.yaml"
    path.write_bytes(data)
    with bounded("BMS profile"):
        try:
            load_signal_map(path, cells=96, temperature_sensors=24)
        except (SignalMapError, DidTableError) as err:
            lines = count_lines(data)
            for problem in err.problems:
                found = LOCATED.match(problem)
                assert found, problem
                if found.group(1) == str(path):
                    assert 1 <= int(found.group(2)) <= lines + 1 and int(found.group(3)) >= 1, problem
            return "refused"
    return "ok"


def test_the_original_loads():
    assert load(PROFILE_TEXT.encode()) == "ok"


@fuzz(400)
@given(mutated(PROFILE_TEXT))
def test_mutated_bms_profile(doc):
    load(doc.encode("utf-8"))
