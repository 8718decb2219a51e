"""A real-time event loop whose clock runs ``speed`` times faster than the wall clock.

``station sim serve --speed 10`` runs the bench on this loop: ``loop.time()`` (the clock every
simulated peer and the pack model read) advances 10 s per wall-clock second, and every timer
(``asyncio.sleep``, ``call_later``) fires after 1/10 of its nominal wall time. Unlike the
virtual-time loop it never jumps, so clients in other processes see a steady, scaled bench.
"""

from __future__ import annotations

import asyncio
import math
import selectors
import time
from typing import Any

from station.clock import StationLoop

MAX_SPEED = 100.0  # above this, 10 ms CAN cycles become 10 k frames/s of wall time per message


class _ScaledSelector:
    """Wraps a selector: a wait of ``t`` loop seconds is ``t / speed`` wall seconds."""

    def __init__(self, inner: selectors.BaseSelector, speed: float) -> None:
        self._inner = inner
        self._speed = speed

    def select(self, timeout: float | None = None) -> list[Any]:
        return self._inner.select(None if timeout is None else max(0.0, timeout) / self._speed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class ScaledTimeLoop(StationLoop):
    """Selector loop whose ``time()`` is wall-clock monotonic seconds × ``speed`` (s).

    ``speed`` must be finite and in (0, MAX_SPEED]; ValueError otherwise.
    """

    def __init__(self, speed: float) -> None:
        check_speed(speed)
        self.speed = float(speed)
        self._origin = time.monotonic()  # set before the base class may read time()
        super().__init__(_ScaledSelector(selectors.DefaultSelector(), self.speed))  # type: ignore[arg-type]

    def time(self) -> float:
        return (time.monotonic() - self._origin) * self.speed


def check_speed(speed: float) -> None:
    """Raise ValueError unless ``speed`` is a usable time scale."""
    if not (isinstance(speed, (int, float)) and math.isfinite(speed) and 0 < speed <= MAX_SPEED):
        raise ValueError(f"--speed must be a number in (0, {MAX_SPEED:g}], got {speed!r}")


def loop_factory(speed: float):
    """The loop factory for ``asyncio.Runner``: the station's real-time loop at speed 1."""
    check_speed(speed)
    if speed == 1.0:
        return StationLoop
    return lambda: ScaledTimeLoop(speed)
