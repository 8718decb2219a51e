"""Start-up: ``station --help`` and ``station validate <reference plan>`` as whole processes.

Median wall time of several cold-ish process starts (the OS file cache is warm after the
first). The station's modules load from bytecode, as on an installed station: this machine's
shell sets ``PYTHONDONTWRITEBYTECODE``, under which every start compiled the repo's ~35 modules
again (~0.05 s of a ~0.3 s ``station validate`` when quiet, more under load) and the warm-up run
warmed nothing. So the station's processes keep their bytecode in ``out/pycache``
(``PYTHONPYCACHEPREFIX``: nothing is written into the source tree, other processes never read it),
written by the warm-up run. The peer figure is ``python -c "import openhtf"`` in the OpenHTF venv
(pip compiled its bytecode at install; OpenHTF has no command line of its own): the least a
station built on it pays before doing anything.

Run: ``.venv/bin/python bench/bench_startup.py``
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, median_of, reference_plan

STATION = Path(sys.executable).with_name("station")


BYTECODE = ROOT / "out" / "pycache"


def process_seconds(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of one process run to completion; a non-zero exit is an error."""
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def station_env() -> dict[str, str]:
    """The environment for the station's processes: bytecode written to and read from out/pycache."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(BYTECODE)
    return env


def help_seconds(reps: int = 7) -> tuple[float, list[float]]:
    argv, env = [str(STATION), "--help"], station_env()
    process_seconds(argv, env)  # warm the file cache and write the bytecode
    return median_of(reps, lambda: process_seconds(argv, env))


def validate_seconds(reps: int = 7) -> tuple[float, list[float]]:
    argv, env = [str(STATION), "validate", str(reference_plan()[0])], station_env()
    process_seconds(argv, env)
    return median_of(reps, lambda: process_seconds(argv, env))


def import_seconds(python: Path, module: str, reps: int = 7) -> tuple[float, list[float]]:
    argv = [str(python), "-c", f"import {module}"]
    process_seconds(argv)
    return median_of(reps, lambda: process_seconds(argv))


def main() -> None:
    print(f"station --help:            {help_seconds()[0] * 1e3:7.0f} ms")
    print(f"station validate {reference_plan()[1]}: {validate_seconds()[0] * 1e3:7.0f} ms")


if __name__ == "__main__":
    main()
