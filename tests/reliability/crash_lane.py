"""Crash lane: run ``station run PLAN --sim`` in forked children and SIGKILL each at a random moment.

Spawned by test_crash_safety.py (``python crash_lane.py PLAN DB KILLS SEED OUT.json``). This
process imports the station once, then forks one child per kill, so a kill costs the run's
time, not an interpreter start. Each child runs the CLI's own path (``prepare`` + ``execute`` on
virtual time, journal in DB; the plan is prepared once before forking) and reports events on a
pipe after the journal handled them (the journal is the sequencer's critical subscriber). A
StepFinished the child saw is committed, with its step's measurements; measurements of the step
in flight may be held in memory by the store until then. The parent kills the
child with SIGKILL after a random wall delay, then opens the store and checks it against what
the child reported. The findings go to OUT.json; the test asserts on them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time

from station import clock
from station.events import MeasurementTaken, RunFinished, RunStarted, StepFinished
from station.results.store import ResultStore
from station.runner import RunRequest, execute, prepare


def _child(req: RunRequest, prep, fd: int) -> None:
    def report(event) -> None:
        if isinstance(event, RunStarted):
            line = f"R\t{event.run_id}"
        elif isinstance(event, StepFinished):
            line = f"S\t{event.path}\t{event.attempt}\t{event.outcome}"
        elif isinstance(event, MeasurementTaken):
            line = f"M\t{event.path}\t{event.name}"
        elif isinstance(event, RunFinished):
            line = f"F\t{event.verdict}"
        else:
            return
        os.write(fd, (line + "\n").encode())

    clock.run(execute(req, prep, subscribers=[report]), virtual=True)


def _wait_for_run(fd: int, timeout: float) -> bytes:
    """Block until the child reports RunStarted (or ``timeout`` s); return what was read."""
    import select

    got = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in got and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        data = os.read(fd, 65536)
        if not data:
            break
        got += data
    return got


def _read_all(fd: int, first: bytes = b"") -> list[list[str]]:
    chunks = [first]
    while True:
        data = os.read(fd, 65536)
        if not data:
            break
        chunks.append(data)
    text = b"".join(chunks).decode()
    # a line cut by the kill has no newline: it was never fully reported, drop it
    return [line.split("\t") for line in text.split("\n")[:-1]]


def _check(db: str, lines: list[list[str]]) -> dict:
    """Open the store after a kill; compare it with what the child saw committed."""
    out: dict = {"problems": []}
    run_ids = [ln[1] for ln in lines if ln[0] == "R"]
    finished = any(ln[0] == "F" for ln in lines)
    steps = [(ln[1], int(ln[2]), ln[3]) for ln in lines if ln[0] == "S"]
    measured = [(ln[1], ln[2]) for ln in lines if ln[0] == "M"]
    out.update(started=bool(run_ids), finished=finished, steps=len(steps), measurements=len(measured))
    try:
        store = ResultStore(db).open()
    except Exception as err:  # the point of the test: record it, the test fails on it
        out["problems"].append(f"store did not open: {type(err).__name__}: {err}")
        return out
    try:
        ok = store._db().execute("PRAGMA integrity_check").fetchone()[0]
        if ok != "ok":
            out["problems"].append(f"integrity_check: {ok}")
        statuses = {r["id"]: r["status"] for r in store.runs(limit=10_000)}
        running = [rid for rid, st in statuses.items() if st == "running"]
        if running:
            out["problems"].append(f"runs still 'running' after their writer died: {running}")
        if not run_ids:
            return out
        run_id = run_ids[0]
        out["status"] = statuses.get(run_id)
        # The child reports an event after the journal committed it, so a kill can land between
        # the commit of RunFinished and its report (a few ms on a loaded machine): then the run
        # did finish and the store rightly says so. Counted, not a problem; anything else is.
        status = statuses.get(run_id)
        if not finished and status == "finished" and record_verdict(store, run_id):
            out["finished_unreported"] = True
        elif status != ("finished" if finished else "interrupted"):
            out["problems"].append(f"run {run_id} is {status!r}, expected "
                                   f"{'finished' if finished else 'interrupted'!r}")
        record = store.record(run_id)
        have = {(s["path"], s["attempt"]): s for s in record["steps"]}
        for path, attempt, outcome in steps:
            step = have.get((path, attempt))
            if step is None or step["outcome"] != outcome:
                out["problems"].append(f"step {path} (attempt {attempt}, {outcome}) missing or changed: {step}")
        in_steps = {(s["path"], m["name"]) for s in record["steps"] for m in s["measurements"]}
        done = {path for path, _attempt, _outcome in steps}
        for path, name in measured:
            # A finished step carries its measurements. The store holds a step's measurements in
            # memory until its StepFinished commits them, so the step in flight at the kill may
            # lose them: that is the "at most the step in flight" promise, not a loss.
            if path in done and (path, name) not in in_steps:
                out["problems"].append(f"measurement {path}:{name} missing")
    finally:
        store.close()
    return out


def record_verdict(store: ResultStore, run_id: str) -> str | None:
    return store.record(run_id).get("verdict")


def _spawn(req: RunRequest, prep) -> tuple[int, int]:
    """Fork the station process for ``req``; return (its pid, the read end of its event pipe)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the station process
        os.close(read_fd)
        code = 0
        try:
            _child(req, prep, write_fd)
        except BaseException:  # report through the exit code only
            code = 70
        os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _calibrate(req: RunRequest, prep, seed: int) -> tuple[float, float]:
    """Run one child to its end unkilled, on a store of its own (the lane's store holds only the
    runs it kills); return (s from fork to RunStarted, s from there to RunFinished)."""
    scratch = tempfile.mkdtemp(prefix="crash-lane-calibration-")
    req = dataclasses.replace(req, db=os.path.join(scratch, "station.db"))
    t_fork = time.monotonic()
    pid, read_fd = _spawn(dataclasses.replace(req, serial=f"SN{seed}CAL"), prep)
    got = _wait_for_run(read_fd, 30.0)
    t_run = time.monotonic()
    t_end = None
    while True:  # the window ends at RunFinished, not at the process's exit after it
        if t_end is None and b"\nF\t" in got:
            t_end = time.monotonic()
        data = os.read(read_fd, 65536)
        if not data:
            break
        got += data
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    if t_end is None or not (os.WIFEXITED(status) and os.WEXITSTATUS(status) in (0, 1)):
        raise SystemExit(f"calibration run failed: wait status {status}, RunFinished seen {t_end is not None}")
    shutil.rmtree(scratch, ignore_errors=True)
    return t_run - t_fork, t_end - t_run


def main(plan: str, db: str, kills: int, seed: int, out_path: str, max_delay: float) -> None:
    rng = random.Random(seed)
    results = []
    # Load and bind the plan once, before forking (it touches no instrument), and import the
    # simulator: each child then starts at the bench, not at the interpreter.
    req = RunRequest(plan=plan, sim=True, serial=f"SN{seed}", db=db)
    prep = prepare(req)
    import sim.bench  # noqa: F401
    # The run's length changes with the code and the machine's load (a fixed window once let
    # half the kills land after the run ended): time one unkilled run and draw kill moments
    # within it; a run that still ends before its kill shrinks the window.
    boot_s, run_s = _calibrate(req, prep, seed)
    window = min(max_delay, 0.9 * run_s)
    k = 0
    while sum(r["killed"] for r in results) < kills and k < 3 * kills:  # a run may end before its kill
        k += 1
        pid, read_fd = _spawn(dataclasses.replace(req, serial=f"SN{seed}K{k}"), prep)
        # One kill in ten lands during start-up (bench, store, instruments); the rest at a
        # random moment after RunStarted was committed, up to about the run's length.
        early = rng.random() < 0.1
        t_fork = time.monotonic()
        first = b"" if early else _wait_for_run(read_fd, 30.0)
        waited = time.monotonic() - t_fork
        delay = rng.uniform(0.0, 1.2 * boot_s if early else window)
        time.sleep(delay)  # test harness, not product code: wall-clock kill moment
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        lines = _read_all(read_fd, first)
        os.close(read_fd)
        result = _check(db, lines)
        result.update(delay_s=round(delay, 3), startup_s=round(waited, 3), killed=os.WIFSIGNALED(status),
                      exit_code=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None)
        result.update(window_s=round(window, 3))
        results.append(result)
        if not result["killed"] and not early:
            window = max(0.02, min(window, 0.9 * delay))
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(results, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], float(sys.argv[6]))
