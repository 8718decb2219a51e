"""Step timeouts on the run's one shared timer: each step times out at its own deadline."""

from __future__ import annotations

import asyncio

import pytest

from station import clock
from station.engine.deadlines import StepDeadlines


async def _step(deadlines: StepDeadlines, timeout: float, work: float) -> str:
    """A step of ``work`` s under ``timeout``: "done", or "timeout at T" (loop time)."""
    key = deadlines.start(timeout)
    try:
        await asyncio.sleep(work)
        return "done"
    except asyncio.CancelledError:
        if deadlines.finish(key):
            return f"timeout at {asyncio.get_running_loop().time():g}"
        raise
    finally:
        deadlines.finish(key)


def test_a_long_timeout_after_a_short_one_fires_at_its_own_deadline():
    async def main():
        d = StepDeadlines()
        got = [await _step(d, 600, 1), await _step(d, 1, 0.5), await _step(d, 600, 1000)]
        d.close()
        return got

    # the timer armed for the 1 s step is stale when it fires; it re-arms at 1.5 + 600 s
    assert clock.run(main(), virtual=True) == ["done", "done", "timeout at 601.5"]


def test_parallel_steps_each_time_out_at_their_own_deadline():
    async def main():
        d = StepDeadlines()
        got = await asyncio.gather(_step(d, 5, 100), _step(d, 3, 100), _step(d, 50, 10), _step(d, 8, 100))
        d.close()
        return got

    assert clock.run(main(), virtual=True) == ["timeout at 5", "timeout at 3", "done", "timeout at 8"]


def test_an_outside_cancel_is_not_a_timeout_even_when_the_deadline_also_passed():
    async def main():
        d = StepDeadlines()
        task = asyncio.create_task(_step(d, 2, 100))
        await asyncio.sleep(1)
        task.cancel()  # an abort: the step must see CancelledError, not a timeout
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelling()

    assert clock.run(main(), virtual=True) == 1


def test_a_step_that_swallows_its_timeout_leaves_no_cancel_request_behind():
    async def main():
        d = StepDeadlines()
        key = d.start(1)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            pass  # an action that ignores cancellation and returns normally
        timed_out = d.finish(key)
        await asyncio.sleep(1)  # the task is not cancelled again at its next await
        return timed_out, asyncio.current_task().cancelling()

    assert clock.run(main(), virtual=True) == (True, 0)


def test_close_drops_the_timer_so_an_idle_virtual_clock_does_not_jump():
    async def main():
        d = StepDeadlines()
        key = d.start(600)
        d.finish(key)
        d.close()
        loop = asyncio.get_running_loop()
        t = loop.time()
        await asyncio.sleep(0)
        return loop.time() - t, len(loop._scheduled)  # nothing left on the heap

    moved, scheduled = clock.run(main(), virtual=True)
    assert moved == 0 and scheduled == 0
