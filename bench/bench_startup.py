"""Start-up: ``station --help`` and ``station validate <reference plan>`` as whole processes.

Median wall time of several cold-ish process starts (the OS file cache is warm after the
first). The peer figure is ``python -c "import openhtf"`` in the OpenHTF venv (OpenHTF has no
command line of its own): the least a station built on it pays before doing anything.

Run: ``.venv/bin/python bench/bench_startup.py``
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, median_of, reference_plan

STATION = Path(sys.executable).with_name("station")


def process_seconds(argv: list[str]) -> float:
    """Wall seconds of one process run to completion; a non-zero exit is an error."""
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def help_seconds(reps: int = 7) -> tuple[float, list[float]]:
    process_seconds([str(STATION), "--help"])  # warm the file cache
    return median_of(reps, lambda: process_seconds([str(STATION), "--help"]))


def validate_seconds(reps: int = 7) -> tuple[float, list[float]]:
    argv = [str(STATION), "validate", str(reference_plan()[0])]
    process_seconds(argv)
    return median_of(reps, lambda: process_seconds(argv))


def import_seconds(python: Path, module: str, reps: int = 7) -> tuple[float, list[float]]:
    argv = [str(python), "-c", f"import {module}"]
    process_seconds(argv)
    return median_of(reps, lambda: process_seconds(argv))


def main() -> None:
    print(f"station --help:            {help_seconds()[0] * 1e3:7.0f} ms")
    print(f"station validate {reference_plan()[1]}: {validate_seconds()[0] * 1e3:7.0f} ms")


if __name__ == "__main__":
    main()
