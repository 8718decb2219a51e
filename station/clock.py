"""The station clock: real time on hardware, virtual time against the in-process simulator.

Real time may run scaled (``time_scale`` in a development station config, against a bench
served at the same speed): ``drivers.clock`` holds the real-time loops, shared with ``sim``.

All physical waits in the station, the drivers and the simulator are ``asyncio.sleep`` /
``loop.time()`` on the running loop, so the loop *is* the clock. ``VirtualTimeLoop`` is a
selector loop whose time jumps to the next timer whenever no I/O is ready: loopback sockets
between peers in the same loop still carry every byte, but a 10-minute charge costs no wall time.

The one trap: a peer answering from another thread looks "not ready" and
the loop would jump past its timeout. Work handed to an executor therefore holds the clock on
real time until it finishes, and so does code inside ``real_time()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import selectors
import sys
import time
from collections.abc import Iterator
from typing import Any

from drivers.clock import StationLoop, loop_factory


class _VirtualSelector:
    """Wraps a selector; a would-be-blocking select advances virtual time instead."""

    def __init__(self, loop: VirtualTimeLoop, inner: selectors.BaseSelector) -> None:
        self._loop = loop
        self._inner = inner

    def select(self, timeout: float | None = None) -> list[Any]:
        loop = self._loop
        if loop._holds:
            start = time.monotonic()
            events = self._inner.select(timeout)
            loop._virtual += time.monotonic() - start
            return events
        events = self._inner.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            # Nothing scheduled at all: only outside I/O can wake us, so really block.
            return self._inner.select(None)
        loop._virtual += timeout
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class VirtualTimeLoop(StationLoop):
    """An event loop whose ``time()`` is virtual seconds that jump across idle periods.

    ``in_process``: every peer answers from this loop or from threads this process started
    (the simulated bench in the same loop, nothing in another process). A hold taken for a
    peer that "may be in another process" (``hold_real_time``) is then void: the loop would only
    wait in real time for an answer nobody else can send (a hung instrument cost its whole
    timeout in wall time). Holds for work in threads (executors, ``real_time()``) always count.
    """

    def __init__(self, *, in_process: bool = False) -> None:
        super().__init__(_VirtualSelector(self, selectors.DefaultSelector()))  # type: ignore[arg-type]
        self._virtual = 0.0
        self._holds = 0
        self.in_process = in_process

    def time(self) -> float:
        return self._virtual

    @property
    def real_time_held(self) -> bool:
        """True while the clock runs on real time (a hold is taken)."""
        return self._holds > 0

    def hold_real_time(self) -> None:
        """Real time until ``release_real_time``: a peer outside this loop is working."""
        if not self.in_process:
            self._holds += 1

    def release_real_time(self) -> None:
        if not self.in_process:
            self._holds -= 1

    def _hold_for_thread(self) -> None:
        self._holds += 1

    def _release_for_thread(self) -> None:
        self._holds -= 1

    def run_in_executor(self, executor, func, *args):  # type: ignore[override]
        future = super().run_in_executor(executor, func, *args)
        self._hold_for_thread()
        future.add_done_callback(lambda _f: self._release_for_thread())
        return future


def is_virtual(loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """True when the running (or given) loop runs on virtual time."""
    return isinstance(loop or asyncio.get_running_loop(), VirtualTimeLoop)


@contextlib.contextmanager
def real_time() -> Iterator[None]:
    """Hold the clock on real time inside the block (no-op on a real-time loop).

    Use around work whose answer comes from another thread or process with real-time
    timeouts (python-can's own threads, can-isotp, udsoncan).
    """
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualTimeLoop):
        yield
        return
    loop._hold_for_thread()
    try:
        yield
    finally:
        loop._release_for_thread()


def now() -> float:
    """Station clock in seconds (monotonic; virtual when the loop is)."""
    return asyncio.get_running_loop().time()


# On virtual time the loop thread hands the GIL to worker threads (pyvisa queries, the
# ISO-TP stack) and waits for it back: with CPython's default 5 ms switch interval the
# reference EOL plan took 24 s of wall time; at 0.1 ms it took 16 s (pack_eol, car-400).
VIRTUAL_SWITCH_INTERVAL = 1e-4  # s


def run(coro, *, virtual: bool = False, scale: float = 1.0, in_process: bool = False):
    """Run a coroutine on a fresh loop: virtual (``in_process``: see ``VirtualTimeLoop``), or real
    time running ``scale`` x (``drivers.clock``)."""
    factory = functools.partial(VirtualTimeLoop, in_process=in_process) if virtual else loop_factory(scale)
    previous = sys.getswitchinterval()
    if virtual or scale != 1.0:  # on a scaled clock a GIL wait costs ``scale`` times its wall time
        sys.setswitchinterval(VIRTUAL_SWITCH_INTERVAL)
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coro)
    finally:
        sys.setswitchinterval(previous)
