"""What every fuzzed input must satisfy: a result or an ``InputError`` whose problems are all
``PATH:LINE:COL: message`` at the file given, within a time and memory budget."""

from __future__ import annotations

import os
import re
import time
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

from drivers.base.diagnostics import InputError

DOC_SECONDS = 3.0  # per document, CPU time (a few ms typically)
DOC_BYTES = 50_000_000  # tracemalloc peak per document
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))  # FUZZ_SCALE=10 for a longer soak
PROBLEM = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+): (?P<msg>\S.*)$", re.S)


def examples(n: int) -> int:
    return max(10, int(n * SCALE))


def fuzz(n: int):
    """Hypothesis settings for ``n`` documents (times FUZZ_SCALE); the per-document time bound is ours."""
    from hypothesis import HealthCheck, settings

    # EOL_FUZZ_DERANDOMIZE=1 (.ci/run): the same documents every run, so a merge is never blocked
    # by a find unrelated to it; a developer's `make test` explores new ones each time.
    return settings(max_examples=examples(n), deadline=None, database=None, print_blob=True,
                    derandomize=os.environ.get("EOL_FUZZ_DERANDOMIZE") == "1",
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def count_lines(data: bytes) -> int:
    """Lines as YAML counts them: CRLF, CR, LF, NEL, LS and PS all end a line."""
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    return 1 + sum(text.count(ch) for ch in "\n\r\x85\u2028\u2029")


def check_problems(err: InputError, path: str | Path, text_lines: int | None = None) -> None:
    """Every problem names ``path`` with a 1-based line (within the file) and column and a message.

    A problem may also sit in a file the plan includes (an action of ``lib/bond.yaml`` whose
    instrument the mutated plan no longer lists): then it names that file, which exists beside
    the plan, and a line within it.
    """
    assert err.problems, "an InputError without problems"
    for problem in err.problems:
        shown = str(problem)
        m = PROBLEM.match(shown)
        assert m, f"not PATH:LINE:COL: message: {shown!r}"
        lines = text_lines
        if problem.file != str(path):
            included = Path(problem.file)
            assert included.is_file() and Path(path).parent.resolve() in included.resolve().parents, shown
            lines = count_lines(included.read_bytes())
        assert problem.line >= 1 and problem.col >= 1, shown
        if lines is not None:  # +1: libyaml puts end-of-stream errors on the line after the last
            assert problem.line <= lines + 1, f"line beyond the end of the file ({lines}): {shown}"
        assert "Traceback" not in problem.message, shown


@contextmanager
def bounded(what: str, seconds: float | None = None):
    """Fail if the block takes more than ``seconds`` (default DOC_SECONDS) of this process's CPU
    time. CPU, not wall time: a bound meant to catch a runaway parser must not fail because
    other processes load the 2-core machine (wall time doubled under a parallel test run)."""
    limit = DOC_SECONDS if seconds is None else seconds
    t0 = time.process_time()
    yield
    elapsed = time.process_time() - t0
    assert elapsed < limit, f"{what}: {elapsed:.2f} s of CPU (bound {limit} s)"


def peak_memory(func) -> int:
    """Peak bytes allocated (tracemalloc) while ``func()`` runs; its exceptions propagate."""
    tracemalloc.start()
    try:
        func()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak
