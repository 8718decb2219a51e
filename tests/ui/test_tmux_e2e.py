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
