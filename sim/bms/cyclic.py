"""Periodic senders on the loop clock, coalesced into one timer per device.

A BMS sends a handful of messages, each at its own cycle time. One task per message meant one
event-loop wake-up per frame, and the tasks kept waking while the BMS was unpowered: the
reference EOL plan (25 simulated minutes) spent most of its 40 s of wall time there. Here all
streams of one device share a single ``loop.call_at`` timer (streams due at the same instant
run in one wake-up), and a stopped schedule costs nothing until ``start()``.

Due times are ``origin + n * period`` (no accumulated float drift), so a 40 ms and a 100 ms
stream really meet every 200 ms.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable

_SAME_INSTANT = 1e-9  # s: due times closer than this run in one wake-up


class Cyclic:
    """Streams of ``(period s, callback)``; callbacks run at ``start + n * period``, n = 0, 1, ..."""

    def __init__(self) -> None:
        self._streams: list[tuple[float, Callable[[], None]]] = []
        self._heap: list[tuple[float, int, int]] = []  # (due s, stream index, n)
        self._origin = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, period: float, callback: Callable[[], None]) -> None:
        """Register a stream; takes effect at the next ``start()``."""
        if not period > 0.0:
            raise ValueError(f"cyclic period must be > 0 s, got {period!r}")
        self._streams.append((float(period), callback))

    @property
    def running(self) -> bool:
        return self._loop is not None

    def start(self) -> None:
        """(Re)start every stream now: each sends at once, then every period. Idempotent."""
        if self.running:
            return
        self._loop = asyncio.get_running_loop()
        self._origin = self._loop.time()
        self._heap = [(self._origin, i, 0) for i in range(len(self._streams))]
        heapq.heapify(self._heap)
        self._schedule()

    def stop(self) -> None:
        """Stop every stream (no further callbacks). Idempotent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop = None
        self._heap = []

    def _schedule(self) -> None:
        if self._heap and self._loop is not None:
            self._timer = self._loop.call_at(self._heap[0][0], self._fire)

    def _fire(self) -> None:
        self._timer = None
        heap, loop = self._heap, self._loop
        if loop is None:
            return
        limit = loop.time() + _SAME_INSTANT
        try:
            while heap and heap[0][0] <= limit and self._loop is loop:
                _, index, n = heapq.heappop(heap)
                period, callback = self._streams[index]
                heapq.heappush(heap, (self._origin + (n + 1) * period, index, n + 1))
                callback()  # may stop() the schedule (a BMS that goes silent)
        finally:
            # a raising callback is asyncio's to report; the device must not fall silent for it
            if self._loop is loop and self._timer is None:
                self._schedule()
