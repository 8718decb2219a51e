"""Fuzz the pack definition loader: mutated copies of a shipped pack file and random YAML — a
pack or located problems in that file, never a traceback, bounded time each."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from hypothesis import given

from drivers.base.diagnostics import InputError
from sim.pack.catalogue import load_pack
from sim.pack.model import Pack

from .bounds import bounded, check_problems, count_lines, fuzz
from .mutate import mutated, yaml_like

REPO = Path(__file__).resolve().parents[2]
TEXT = (REPO / "sim" / "packs" / "car-800.yaml").read_text()
WORK = Path(tempfile.mkdtemp(prefix="fuzz-pack-"))
atexit.register(shutil.rmtree, WORK, True)


def load(data: bytes) -> str:
    """Write ``data`` as a pack file and load it; a loaded pack must build and evaluate."""
    path = WORK / "pack.yaml"
    path.write_bytes(data)
    with bounded("pack file"):
        try:
            definition = load_pack(path)
        except InputError as err:
            check_problems(err, path, count_lines(data))
            return "refused"
        pack = Pack(definition.spec, clock=lambda: 0.0)  # what the checks let through must run
        assert len(pack.cell_voltages()) == definition.spec.series
    return "ok"


def test_the_original_loads():
    assert load(TEXT.encode()) == "ok"


@fuzz(300)
@given(mutated(TEXT))
def test_mutated_pack_file(doc):
    load(doc.encode("utf-8"))


@fuzz(200)
@given(yaml_like())
def test_random_yaml_pack_file(doc):
    load(doc.encode("utf-8", errors="surrogatepass"))
