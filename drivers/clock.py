"""Real-time event loops shared by the station and the simulator: plain, or scaled N x.

``StationLoop`` is the selector loop every real-time process runs on (small socket reads).
``ScaledTimeLoop`` runs its clock ``scale`` times faster than the wall clock: ``loop.time()``
advances ``scale`` s per wall-clock second and every timer (``asyncio.sleep``, ``call_later``)
fires after 1/``scale`` of its nominal wall time. It never jumps (unlike the station's virtual
time), so peers in other processes on the same scale see one steady, consistent clock:
``station sim serve --speed N`` runs the bench on it, and a station config's ``time_scale: N``
runs the station on it.

Waiting for a *reply* is not only physics: the peer's CPU, the kernel and the wire take wall
time that does not shrink with the scale. ``reply_timeout`` gives such waits their wall-time
allowance back, so a 2 s instrument timeout at 30x does not become a 67 ms one.

Lives in ``drivers`` because drivers wait on it and both ``station`` and ``sim`` import it.
"""

from __future__ import annotations

import asyncio
import math
import selectors
import socket
import time
from collections.abc import Callable
from typing import Any

MAX_SCALE = 100.0  # above this, 10 ms CAN cycles become 10 k frames/s of wall time per message

# Wall time (s) a reply may take on top of its nominal timeout on a scaled clock: scheduling,
# the kernel, a peer process busy with its own loop. At scale 1 it adds nothing.
REPLY_ALLOWANCE = 1.0
# Wall time (s) periodic traffic (a CAN frame, a polled register, a watchdog's kick) may come
# late on top of its limit on a scaled clock, for the same reasons; short, so a silent peer is
# still noticed within a wall second. At 30x without it, a 1 s BMS request watchdog is 33 ms of
# wall time: one scheduling hiccup of the station opened the contactors mid-charge.
STREAM_ALLOWANCE = 0.5

# asyncio's socket transports read with recv(256 KiB): CPython allocates that buffer with mmap
# and frees it with munmap on every read, ~40 us per recv on this 2-core VM (an asyncio TCP
# round trip on loopback: 150 us of CPU; with 64 KiB reads: 46 us). Instrument and simulator
# messages are a few hundred bytes, so a smaller read costs nothing in throughput.
READ_CHUNK = 64 * 1024  # bytes per socket read


class StationLoop(asyncio.SelectorEventLoop):
    """The real-time loop: a selector loop whose socket reads are ``READ_CHUNK`` bytes."""

    # A private hook of asyncio's selector loop (typeshed leaves it out): the one place the read
    # size of a socket transport can be set.
    def _make_socket_transport(self, sock: socket.socket, protocol: asyncio.BaseProtocol,
                               waiter: asyncio.Future[None] | None = None, *, extra: dict[str, Any] | None = None,
                               server: asyncio.AbstractServer | None = None) -> Any:
        transport = super()._make_socket_transport(  # type: ignore[misc]  # not in typeshed
            sock, protocol, waiter, extra=extra, server=server)
        transport.max_size = READ_CHUNK
        return transport


class _ScaledSelector:
    """Wraps a selector: a wait of ``t`` loop seconds is ``t / scale`` wall seconds."""

    def __init__(self, inner: selectors.BaseSelector, scale: float) -> None:
        self._inner = inner
        self._scale = scale

    def select(self, timeout: float | None = None) -> list[Any]:
        return self._inner.select(None if timeout is None else max(0.0, timeout) / self._scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class ScaledTimeLoop(StationLoop):
    """Selector loop whose ``time()`` is wall-clock monotonic seconds x ``scale`` (s).

    ``scale`` must be finite and in (0, MAX_SCALE]; ValueError otherwise.
    """

    def __init__(self, scale: float) -> None:
        check_scale(scale)
        self.scale = float(scale)
        self._origin = time.monotonic()  # set before the base class may read time()
        super().__init__(_ScaledSelector(selectors.DefaultSelector(), self.scale))  # type: ignore[arg-type]

    def time(self) -> float:
        return (time.monotonic() - self._origin) * self.scale


def scale_problem(scale: object) -> str | None:
    """Why ``scale`` is not a usable time scale (None if it is)."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) \
            or not 0 < scale <= MAX_SCALE:
        return f"must be a number in (0, {MAX_SCALE:g}], got {scale!r}"
    return None


def check_scale(scale: float) -> None:
    """Raise ValueError unless ``scale`` is a usable time scale."""
    if (problem := scale_problem(scale)) is not None:
        raise ValueError(f"time scale {problem}")


def loop_factory(scale: float = 1.0) -> Callable[[], asyncio.AbstractEventLoop]:
    """The loop factory for ``asyncio.Runner``: the plain real-time loop at scale 1."""
    check_scale(scale)
    if scale == 1.0:
        return StationLoop
    return lambda: ScaledTimeLoop(scale)


def time_scale(loop: asyncio.AbstractEventLoop | None = None) -> float:
    """How many loop seconds pass per wall second on the running (or given) loop (1 unless scaled)."""
    return getattr(loop or asyncio.get_running_loop(), "scale", 1.0)


def wall_allowance(wall_seconds: float, loop: asyncio.AbstractEventLoop | None = None) -> float:
    """Loop seconds that ``wall_seconds`` of unscaled latency add on the running (or given) loop
    beyond what they would at real time: 0 at scale 1 (and on virtual time)."""
    return wall_seconds * (time_scale(loop) - 1.0)


def stream_limit(limit: float, loop: asyncio.AbstractEventLoop | None = None) -> float:
    """Loop seconds after which periodic traffic nominally due within ``limit`` s counts as
    missing (staleness, communication watchdogs): ``limit`` plus ``STREAM_ALLOWANCE`` s of wall
    time on a scaled clock."""
    return limit + wall_allowance(STREAM_ALLOWANCE, loop)


def reply_timeout(timeout: float, loop: asyncio.AbstractEventLoop | None = None) -> float:
    """Loop seconds to wait for a reply nominally due within ``timeout`` s: ``timeout`` itself at
    scale 1 (and on virtual time), plus ``REPLY_ALLOWANCE`` s of wall time on a scaled clock."""
    return timeout + wall_allowance(REPLY_ALLOWANCE, loop)
