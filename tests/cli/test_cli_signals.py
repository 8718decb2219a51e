"""`station run` as a process, stopped by every catchable signal while it waits for the operator.

The run is held on real time by an open operator prompt on a pseudo-terminal (as at a line PC);
then the terminal is hung up (SIGHUP, the pty closed as an SSH drop does) or the process gets
SIGTERM twice, SIGINT or SIGQUIT. Each must end ABORTED (exit 3) through teardown and the safe
state, with every teardown step run, every safe-state action in the record and the later signals
noted there, and no traceback.
"""

from __future__ import annotations

import os
import pty
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PLAN = """\
schema_version: 1
id: signal-test
version: 1.0.0
title: held by an operator prompt
instruments: [fixture, bms, dmm, safety]
main:
  - id: ask
    operator.confirm: "Pack connected?"
  - id: after
    station.wait: 1 s
teardown:
  - id: td_probe
    operator.message: "Remove the HV probe"
  - id: td_last
    station.log: teardown complete
"""


def _start(tmp_path: Path) -> tuple[subprocess.Popen, int]:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "station.cli", "run", str(plan), "--sim", "--serial", "SIG1",
                             "--db", str(tmp_path / "r.db"), "--plain"],
                            stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, start_new_session=True)
    os.close(slave)
    return proc, master


def _read_until(master: int, text: bytes, timeout: float = 60.0) -> bytes:
    seen = b""
    end = time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < end, f"never saw {text!r}; got {seen[-2000:]!r}"
        try:
            seen += os.read(master, 4096)
        except OSError:
            break
    return seen


def _drain(master: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            return out
        if not chunk:
            return out
        out += chunk


def _record(tmp_path: Path) -> tuple[tuple, list, list, list]:
    with sqlite3.connect(tmp_path / "r.db") as db:
        run = db.execute("SELECT verdict, reason, status FROM runs").fetchone()
        steps = [r[0] for r in db.execute("SELECT path FROM steps WHERE phase='teardown' ORDER BY seq")]
        safe = db.execute("SELECT instrument, ok, confirmed FROM safe_actions ORDER BY seq").fetchall()
        notes = [r[0] for r in db.execute("SELECT data FROM events WHERE kind='LogMessage'")]
    return run, steps, safe, notes


@pytest.mark.parametrize("signals", [
    ("SIGHUP",), ("SIGTERM", "SIGTERM"), ("SIGINT", "SIGINT"), ("SIGQUIT",)])
def test_each_stop_signal_ends_aborted_through_the_safe_state(tmp_path, signals):
    proc, master = _start(tmp_path)
    try:
        _read_until(master, b"Pack connected?")
        proc.send_signal(getattr(signal, signals[0]))
        output = b""
        if signals[0] == "SIGHUP":
            _read_until(master, b"SIGHUP received")  # handled; then the line drops for good
            os.close(master)  # the terminal is gone: every later write and read fails
            master = -1
        else:
            # teardown holds on its own prompt: the later signals arrive while it runs
            _read_until(master, b"Remove the HV probe")
            for name in signals[1:]:
                proc.send_signal(getattr(signal, name))
                time.sleep(0.3)
            os.write(master, b"\n")
            output = _drain(master)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        if master >= 0:
            os.close(master)
    assert code == 3, output.decode(errors="replace")
    assert b"Traceback" not in output
    run, teardown, safe, notes = _record(tmp_path)
    verdict, reason, status = run
    assert (verdict, status) == ("ABORTED", "finished"), reason
    assert reason == f"signal: {signals[0]} received"
    assert teardown == ["teardown/td_probe", "teardown/td_last"]
    assert {"safety", "bms", "fixture", "dmm"} <= {row[0] for row in safe}
    assert all(ok for _, ok, _ in safe)
    again = [n for n in notes if "received again" in n]
    assert len(again) == len(signals) - 1
