"""End to end in a real terminal: ``station ui --sim`` in tmux, keys in, the verdict read off the pane."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.ui.conftest import REPO, write_station

# Textual's headless test runs leave COLUMNS/LINES in the environment; the real terminal must size itself
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install -y tmux)")


class Tmux:
    def __init__(self) -> None:
        self.socket = f"eol-ui-{uuid.uuid4().hex[:8]}"  # a private server: never touches the user's tmux

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True,
                              env=CLEAN_ENV).stdout

    def pane(self) -> str:
        return self("capture-pane", "-p", "-t", "eol")

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.pane()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on screen after {timeout} s:\n{screen}")
            time.sleep(0.1)


def _exit_status(tmux: Tmux) -> str:
    deadline = time.monotonic() + 15
    while tmux("display-message", "-p", "-t", "eol", "#{pane_dead}").strip() != "1":
        assert time.monotonic() < deadline, f"station ui did not exit\n{tmux.pane()}"
        time.sleep(0.1)
    status = ":"
    for _ in range(20):  # tmux fills in the dead pane's status a moment after marking it dead
        status = tmux("display-message", "-p", "-t", "eol", "#{pane_dead_status}:#{pane_dead_signal}").strip()
        if status != ":":
            break
        time.sleep(0.1)
    return status


def test_station_ui_in_tmux_runs_a_pack_at_80x24(tmp_path: Path):
    """A real terminal of 80x24: a wedge-style scan (with a GS1 label's group separator sent as
    Ctrl+]), a doubled scan that must replace, the run to its verdict in block letters."""
    station = write_station(tmp_path)
    tmux = Tmux()
    command = f"cd {REPO} && exec {REPO}/.venv/bin/station ui --sim --station {station}"
    tmux("new-session", "-d", "-s", "eol", "-x", "80", "-y", "24", command)
    try:
        tmux("set-option", "-t", "eol", "remain-on-exit", "on")  # keep a crash's traceback readable
        tmux.wait_for("Operator id")  # the first frame: only now are keys read
        tmux("send-keys", "-t", "eol", "op1", "Enter")
        tmux.wait_for("scan pack serial")
        tmux("send-keys", "-t", "eol", "-l", "CAR0001")
        tmux("send-keys", "-t", "eol", "Enter")
        tmux.wait_for("to start")
        # the next scan replaces the first; a GS1 label: (01) GTIN, (21) serial, GS, (10) batch
        tmux("send-keys", "-t", "eol", "-l", "0104012345678901" + "21CAR001")
        tmux("send-keys", "-t", "eol", "C-]")
        tmux("send-keys", "-t", "eol", "-l", "10LOT7")
        tmux("send-keys", "-t", "eol", "Enter")
        screen = tmux.wait_for("CAR001: smoke")  # the serial read from AI (21)
        assert "CAR0001" not in screen and "␝" in screen
        tmux("send-keys", "-t", "eol", "Enter")
        screen = tmux.wait_for("scan the next pack")
        assert "CAR001: PASS" in screen and "record" in screen and "safe state:" in screen
        assert "███" in screen  # the verdict in block letters
        tmux("send-keys", "-t", "eol", "C-q")
        status = _exit_status(tmux)
        assert status in ("0:", ":"), f"exit {status}\n{tmux.pane()}"  # ":" = status never reported
    finally:
        subprocess.run(["tmux", "-L", tmux.socket, "kill-server"], capture_output=True)


@pytest.mark.parametrize("how", ["hangup", "SIGTERM", "SIGINT", "SIGQUIT"])
def test_closing_the_terminal_or_sigterm_mid_run_ends_the_run_through_the_safe_state(tmp_path: Path, how: str):
    """The run waits on an operator prompt; then the terminal goes away (the tmux server killed:
    the UI gets SIGHUP, as when an SSH session drops) or the UI gets SIGTERM, SIGINT or SIGQUIT
    from outside (a service manager, ``kill``). The record must show the run ABORTED by that
    signal, with its teardown and every safe-state action done."""
    import signal
    import sqlite3

    station = write_station(tmp_path)
    tmux = Tmux()
    command = f"cd {REPO} && exec {REPO}/.venv/bin/station ui --sim --station {station}"
    tmux("new-session", "-d", "-s", "eol", "-x", "80", "-y", "24", command)
    try:
        tmux.wait_for("Operator id")
        pid = int(tmux("display-message", "-p", "-t", "eol", "#{pane_pid}").strip())
        tmux("send-keys", "-t", "eol", "op1", "Enter")
        tmux.wait_for("scan pack serial")
        tmux("send-keys", "-t", "eol", "-l", "PRM0001")
        tmux("send-keys", "-t", "eol", "Enter")
        tmux.wait_for("to start")
        tmux("send-keys", "-t", "eol", "Enter")
        tmux.wait_for("label readable", timeout=60)  # the prompt dialog: the run waits for the operator
        if how == "hangup":
            subprocess.run(["tmux", "-L", tmux.socket, "kill-server"], capture_output=True)
        else:
            os.kill(pid, getattr(signal, how))
        deadline = time.monotonic() + 60
        while _alive(pid):
            assert time.monotonic() < deadline, f"station ui did not end after the signal: {_state(pid)}"
            time.sleep(0.1)
    finally:
        subprocess.run(["tmux", "-L", tmux.socket, "kill-server"], capture_output=True)
    with sqlite3.connect(tmp_path / "results.db") as db:
        verdict, reason, status = db.execute("SELECT verdict, reason, status FROM runs").fetchone()
        teardown = [r[0] for r in db.execute("SELECT outcome FROM steps WHERE phase='teardown'")]
        safe = db.execute("SELECT instrument, ok FROM safe_actions").fetchall()
    assert (verdict, status) == ("ABORTED", "finished"), reason
    assert reason == f"signal: {'SIGHUP' if how == 'hangup' else how} received"
    assert teardown and all(outcome == "passed" for outcome in teardown)
    assert {"bms", "fixture"} <= {instrument for instrument, _ok in safe} and all(ok for _i, ok in safe)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text()[:200] + " " + Path(f"/proc/{pid}/cmdline").read_text()[:200]
    except OSError as err:
        return str(err)


def _alive(pid: int) -> bool:
    """Running (a zombie left by the killed tmux server, which nobody may reap here, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state != "Z"
