"""Step timeouts of every running step of one run on a single, lazily re-armed loop timer.

``asyncio.timeout`` per step schedules a timer, cancels it at the step's end and leaves the
cancelled handle in the loop's heap: 6.3 µs of the engine's 25 µs per trivial step
(bench_engine, median of 9 runs, 2026-11-26). Step deadlines only grow in a sequential run (each
is "now + timeout"), so one timer armed at the earliest deadline stays valid across many steps:
when it fires it cancels the steps whose deadline has passed and re-arms at the earliest one
left. A step costs a dict insert and delete; the loop sees one timer per timeout period.

The cancellation contract is ``asyncio.timeout``'s: an expired step's task is cancelled, and the
step's ``finish`` turns that CancelledError into "timed out" unless someone else also cancelled
the task (an abort), in which case the CancelledError goes on.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any


class _Entry:
    __slots__ = ("deadline", "task", "cancelling", "expired")

    def __init__(self, deadline: float, task: asyncio.Task[Any]) -> None:
        self.deadline = deadline  # loop time, s
        self.task = task
        self.cancelling = task.cancelling()  # cancel requests the task already had
        self.expired = False


class StepDeadlines:
    """The deadlines of the steps in flight; ``start``/``finish`` around each step's await."""

    def __init__(self) -> None:
        self._entries: dict[int, _Entry] = {}
        self._next_key = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf  # loop time the armed timer fires, s

    def start(self, timeout: float) -> int:
        """Give the current task ``timeout`` s from now; return the key for ``finish``."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:  # called from a callback: there is no task a deadline could cancel
            raise RuntimeError("a step deadline needs the step's task")
        entry = _Entry(loop.time() + timeout, task)
        key = self._next_key = self._next_key + 1
        self._entries[key] = entry
        if entry.deadline < self._timer_at:
            self._arm(loop, entry.deadline)
        return key

    def finish(self, key: int) -> bool:
        """Forget the step (again is a no-op). True when its deadline expired and that is the
        only cancel request on its task: a CancelledError it raised means "timed out".

        An expired step's cancel request is withdrawn here (``Task.uncancel``), as
        ``asyncio.timeout`` does on exit, so an abort's own cancel still counts afterwards.
        """
        entry = self._entries.pop(key, None)
        if entry is None or not entry.expired:
            return False
        return entry.task.uncancel() <= entry.cancelling

    def close(self) -> None:
        """Drop the timer (at the run's end: no stale wake-up may move a virtual clock)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, math.inf

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._fire)
        self._timer_at = when

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        loop = asyncio.get_running_loop()
        now = loop.time()
        earliest = math.inf
        for entry in self._entries.values():
            if entry.expired:
                continue
            if entry.deadline <= now:
                entry.expired = True
                entry.task.cancel()
            elif entry.deadline < earliest:
                earliest = entry.deadline
        if earliest < math.inf:
            self._arm(loop, earliest)
