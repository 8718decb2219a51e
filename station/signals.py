"""Stop signals: SIGINT, SIGTERM, SIGHUP and SIGQUIT all end a run through the safe state.

Shared by ``station run`` and ``station ui``. The first signal asks every attached run to stop
(its sequencer aborts main, then teardown and the safe state run); a run attached later (the
signal arrived during the start-up check) is stopped as soon as it is attached. Every further
signal is only noted, in the record of each attached run and on stderr: teardown and the safe
state, once begun, are never cancelled. SIGKILL cannot be caught; the next start-up check finds
what it left energised.

A terminal that was closed (SIGHUP) also takes stdout and stderr with it: ``note()`` never
raises for output that cannot be written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, Protocol


class Stoppable(Protocol):
    def abort(self, reason: str, *, source: str = "operator") -> None: ...
    def log(self, message: str, level: str = "info") -> None: ...


STOP_SIGNALS: dict[int, str] = {
    signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP", signal.SIGQUIT: "SIGQUIT",
}


def detach_terminal() -> None:
    """Point stdout and stderr at /dev/null: after a hang-up every write to the terminal fails
    (EIO), and a full-screen UI that keeps writing while it shuts down (Textual's writer thread)
    can wedge there instead of ending through the safe state."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            os.dup2(null, fd)
    os.close(null)


def note(text: str) -> None:
    """A line on stderr that never raises (the terminal may be gone after SIGHUP)."""
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr, flush=True)


class StopSignals:
    """Catch the stop signals on the running loop while the ``with`` block runs.

    ``on_first``: called once with the signal's name after the attached runs were asked to stop
    (the UI uses it to leave once every fixture is safe). Handlers need the main thread; where
    they cannot be installed (a worker thread) ``installed`` stays empty and nothing changes.
    """

    def __init__(self, on_first: Callable[[str], None] | None = None) -> None:
        self.received: list[str] = []
        self.installed: list[int] = []
        self._runs: list[Stoppable] = []
        self._on_first = on_first
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def stop_requested(self) -> str | None:
        """The first signal's name, once one arrived."""
        return self.received[0] if self.received else None

    def __enter__(self) -> StopSignals:
        self._loop = asyncio.get_running_loop()
        for sig, name in STOP_SIGNALS.items():
            try:
                self._loop.add_signal_handler(sig, self._received, name)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                continue
            self.installed.append(sig)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._loop is not None
        for sig in self.installed:
            self._loop.remove_signal_handler(sig)
        self.installed.clear()

    def attach(self, run: Stoppable) -> None:
        """A run that must stop on a signal; stopped at once if one already arrived."""
        self._runs.append(run)
        if self.received:
            run.abort(f"{self.received[0]} received before the run started", source="signal")

    def detach(self, run: Stoppable) -> None:
        with contextlib.suppress(ValueError):
            self._runs.remove(run)

    def _received(self, name: str) -> None:
        first = not self.received
        self.received.append(name)
        if first:
            for run in list(self._runs):
                run.abort(f"{name} received", source="signal")
            note(f"station: {name} received: stopping through the safe state")
            if self._on_first is not None:
                self._on_first(name)
            return
        for run in list(self._runs):
            run.log(f"{name} received again (signal {len(self.received)}): noted; "
                    "teardown and the safe state go on", "warning")
        note(f"station: {name} received again: noted; the safe state is not interrupted")
