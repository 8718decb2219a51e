"""Run cases in worker processes, longest first, and hand back each result as it finishes.

Each case gets its own event loop and simulated bench, so cases share nothing but the result
store (SQLite in WAL mode takes several writers). Workers are forked from this process where
the platform allows it, so they start with the station and simulator already imported.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from station.proof.cases import Case
from station.proof.execute import CaseResult, run_case


def default_jobs() -> int:
    """One worker per core."""
    return os.cpu_count() or 1


def _warm() -> None:
    # what every run imports, loaded once before the workers are forked
    import sim.bench  # noqa: F401
    import station.runner  # noqa: F401
    from sim.bench import _did_table

    _did_table()


def run_cases(cases: list[Case], db: str, jobs: int | None = None) -> Iterator[CaseResult]:
    """Yield one ``CaseResult`` per case, in the order they finish. ``jobs`` 1 runs them here,
    one after another; more runs that many worker processes."""
    jobs = max(1, jobs or default_jobs())
    order = sorted(cases, key=lambda c: -c.cost)  # the long runs first: the tail stays short
    if jobs == 1 or len(order) <= 1:
        for case in order:
            yield run_case(case, db)
        return
    _warm()
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(order)), mp_context=context) as pool:
        pending = {pool.submit(run_case, case, db): case for case in order}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    case = pending.pop(future)
                    try:
                        yield future.result()
                    except Exception as err:  # the worker itself died (killed, out of memory)
                        yield CaseResult(case, ok=False, db=db, problem=f"worker failed: {type(err).__name__}: {err}")
        finally:
            for future in pending:
                future.cancel()
