"""Run cases in worker processes, longest first, and hand back each result as it finishes.

Each case gets its own event loop and simulated bench, so cases share nothing but the result
store (SQLite in WAL mode takes several writers). Workers are forked from this process where
the platform allows it, after ``_warm`` loaded what each would otherwise load for itself (the
run's imports, every plan x variant prepared, the simulator's per-process tables): a worker's
first case, and its first of each variant, cost ~0.3-0.7 s of CPU more than the rest.
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


# What a run imports once its instruments open (VISA, UDS, ISO-TP, serial): a worker forked
# before these were loaded paid them on its first case, ~0.2 s each worker.
_RUN_IMPORTS = ("pyvisa", "pyvisa_py", "udsoncan", "udsoncan.client", "isotp", "serial", "can", "numpy.random",
                "station.clock", "station.proof.safety", "sim.bench", "station.runner")


def _warm(cases: list[Case]) -> None:
    """Load once, before the workers are forked, what every worker would otherwise load for itself:
    the run's imports, each plan x variant prepared (config, plan, bind, pack: ~0.3 s each), and
    the simulated bench of each variant started and stopped (its BMS encoders and SCPI tables are
    kept per process). Only the simulator starts: no store, no instrument, no line service. A
    case that cannot be prepared or simulated is left to report itself when it runs."""
    import importlib

    from drivers.base.diagnostics import InputError
    from sim.bench import _did_table
    from station.proof.execute import prepared

    for name in _RUN_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional stack this installation lacks: its runs say so
            pass
    _did_table()
    for key in dict.fromkeys((c.plan, c.variant, c.station, c.fixture) for c in cases):
        try:
            prep = prepared(*key)
        except InputError:
            continue
        try:
            _start_bench(prep)
        except Exception:  # only a head start: the case meets the same error and reports it
            continue


def _start_bench(prep) -> None:
    """Start and stop the simulated bench a run of ``prep`` gets (``station.runner.Session``)."""
    from station import clock
    from station.runner import sim_preset
    from station.simpack import sim_bench

    bench = sim_bench(prep.config, {prep.fixture: sim_preset(prep)})

    async def start_stop() -> None:
        try:
            await bench.start()
        finally:
            await bench.stop()

    clock.run(start_stop(), virtual=True, in_process=True)


def run_cases(cases: list[Case], db: str, jobs: int | None = None) -> Iterator[CaseResult]:
    """Yield one ``CaseResult`` per case, in the order they finish. ``jobs`` 1 runs them here,
    one after another; more runs that many worker processes."""
    jobs = max(1, jobs or default_jobs())
    order = sorted(cases, key=lambda c: -c.cost)  # the long runs first: the tail stays short
    if jobs == 1 or len(order) <= 1:
        for case in order:
            yield run_case(case, db)
        return
    fork = "fork" in multiprocessing.get_all_start_methods()
    if fork:  # a spawned worker imports afresh: nothing loaded here would reach it
        _warm(order)
    context = multiprocessing.get_context("fork" if fork else "spawn")
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
