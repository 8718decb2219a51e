"""cycler.dcir samples its pulse on the station clock and always ends."""

from __future__ import annotations

import asyncio

from station.actions.cycler import _hold


def test_a_pulse_ends_when_float_times_stay_an_ulp_short():
    """cycler.dcir's sampling loop on a clock where 'now - t0' never quite reaches 'start + at'
    (found hung in a proof run at 64.7 s virtual): it must still take its sample and return."""
    class Clock:
        def __init__(self):
            self.t, self.sleeps = 64.70119, 0

        def now(self):
            return self.t

        async def sleep(self, d):
            self.sleeps += 1
            assert self.sleeps < 1000, "the pulse never ended"
            self.t += d if d > 1e-9 else 0.0  # what a loop at 64 s does with a sub-ulp wait
            self.t = self.t - 1e-14 if self.t > 70 else self.t  # and lands one ulp short

    class Cycler:
        async def measure(self):
            return type("R", (), {"voltage": 700.0, "current": -100.0})()

    ctx = Clock()
    rows: list = []
    v = asyncio.run(_hold(ctx, Cycler(), 54.70119, 10.0 + 10.0, 10.0 + 10.0, 0.5, rows))
    assert v == 700.0 and rows and ctx.sleeps < 100
