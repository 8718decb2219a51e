"""The peer: OpenHTF 1.6 running 1,000 phases with one measurement each, in its own venv.

OpenHTF pins old dependencies (protobuf, ...), so it never enters the project venv: ``ensure()``
creates ``bench/.venv-openhtf`` with ``python3 -m venv`` and ``pip install -r
bench/requirements-openhtf.txt`` (``openhtf==1.6.*``) on first use; ``per_phase()`` runs this file there as a subprocess (``--child``) and reads its JSON.
The child half imports nothing from the project.

Run: ``.venv/bin/python bench/peer_openhtf.py``
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-openhtf"
PYTHON = VENV / "bin" / "python"
REQUIREMENTS = HERE / "requirements-openhtf.txt"
PHASES = 1000


def ensure() -> Path:
    """The OpenHTF venv's python, creating the venv on first use. Raises CalledProcessError."""
    if PYTHON.exists() and subprocess.run([str(PYTHON), "-c", "import openhtf"],
                                          capture_output=True).returncode == 0:
        return PYTHON
    base = shutil.which("python3") or sys.executable
    print(f"bench: creating {VENV} from {REQUIREMENTS.name} (first run only) ...", file=sys.stderr)
    subprocess.run([base, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)], check=True)
    return PYTHON


def per_phase(reps: int = 5) -> dict:
    """Median OpenHTF overhead per phase (s) over ``reps`` executions of a 1,000-phase test."""
    python = ensure()
    with tempfile.TemporaryDirectory(prefix="bench-htf-") as tmp:
        out = Path(tmp) / "htf.json"
        subprocess.run([str(python), __file__, "--child", str(out), str(reps)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp)
        return json.loads(out.read_text())


def _child(out: Path, reps: int) -> None:
    """In the OpenHTF venv: time Test.execute of 1,000 one-measurement phases with limits."""
    import logging

    import openhtf as htf

    logging.disable(logging.CRITICAL)

    def make_phase(i: int):
        @htf.PhaseOptions(name=f"s{i}")
        @htf.measures(htf.Measurement("x").in_range(0, 2).with_units(htf.units.VOLT))
        def phase(test):
            test.measurements.x = 1.0  # the same trivial measurement as our station.calc step

        return phase

    test = htf.Test(*[make_phase(i) for i in range(PHASES)])
    walls, outcomes = [], set()
    for _ in range(reps + 1):  # the first execution is a warm-up
        start = time.perf_counter()
        outcomes.add(bool(test.execute(test_start=lambda: "BENCH1")))
        walls.append(time.perf_counter() - start)
    walls = walls[1:]
    out.write_text(json.dumps({
        "per_phase_s": statistics.median(walls) / PHASES, "samples": [w / PHASES for w in walls],
        "passed": outcomes == {True}, "version": _version(),
    }))


def _version() -> str:
    from importlib.metadata import version

    return version("openhtf")


def main() -> None:
    r = per_phase()
    print(f"OpenHTF {r['version']} overhead per phase: {r['per_phase_s'] * 1e6:.0f} µs "
          f"(passed: {r['passed']})")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
