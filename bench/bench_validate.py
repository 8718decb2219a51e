"""Plan validation: load (YAML with positions → frozen models) + bind (every variant) in-process.

Two plans: the generated 1,000-step plan (written to a file, as an engineer's would be) and the
reference EOL plan. Median of several repetitions, after one warm-up (imports excluded: those are
counted by the start-up figure).

Run: ``.venv/bin/python bench/bench_validate.py``
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import generated_plan, median_of, reference_plan, timed
from station.plan.bind import bind_plan
from station.plan.loader import load_plan


def validate(path: Path) -> None:
    """What ``station validate PLAN`` does: load, then bind every variant."""
    loaded = load_plan(path)
    for variant in list(loaded.plan.variants) or [None]:
        bind_plan(loaded, variant)


def seconds(path: Path, reps: int = 7) -> tuple[float, list[float]]:
    validate(path)
    return median_of(reps, lambda: timed(lambda: validate(path)))


def generated_seconds(reps: int = 7) -> tuple[float, list[float]]:
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        path = Path(tmp) / "bench-1000.yaml"
        path.write_text(generated_plan(1000))
        return seconds(path, reps)


def main() -> None:
    med, _ = generated_seconds()
    print(f"validate 1,000-step plan: {med * 1e3:8.1f} ms")
    path, label = reference_plan()
    med, _ = seconds(path)
    print(f"validate {label}: {med * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
