"""The coalesced periodic sender of the simulated devices (sim/bms/cyclic.py), on virtual time."""

from __future__ import annotations

import asyncio

import pytest

from sim.bms.cyclic import Cyclic
from station.clock import run


def _collect(periods: dict[str, float], seconds: float, *, raising: str = "") -> dict[str, list[float]]:
    async def main() -> dict[str, list[float]]:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, _ctx: None)  # the raising stream's reports
        seen: dict[str, list[float]] = {name: [] for name in periods}
        cyclic = Cyclic()
        for name, period in periods.items():
            def send(name=name) -> None:
                seen[name].append(round(loop.time(), 9))
                if name == raising:
                    raise RuntimeError("encoder broke")
            cyclic.add(period, send)
        cyclic.start()
        await asyncio.sleep(seconds)
        cyclic.stop()
        return seen

    return run(main(), virtual=True)


def test_streams_meet_on_their_common_multiple_without_drift():
    seen = _collect({"fast": 0.04, "slow": 0.1}, 1.0)
    assert len(seen["fast"]) == 26 and len(seen["slow"]) == 11  # t = 0 .. 1.0 s inclusive
    assert seen["fast"][5] == seen["slow"][2] == pytest.approx(0.2, abs=1e-9)
    assert seen["fast"][-1] == pytest.approx(1.0, abs=1e-9)


def test_a_raising_callback_does_not_silence_the_device():
    seen = _collect({"bad": 0.1, "good": 0.1}, 1.05, raising="bad")
    # both keep their schedule; the one due with a raising one runs in the next loop turn
    assert seen["bad"] == seen["good"] == pytest.approx([i / 10 for i in range(11)], abs=1e-9)


def test_stop_inside_a_callback_ends_every_stream_and_start_restarts():
    async def main() -> tuple[int, int]:
        cyclic = Cyclic()
        count = [0]

        def send() -> None:
            count[0] += 1
            if count[0] == 3:
                cyclic.stop()
        cyclic.add(0.1, send)
        cyclic.start()
        await asyncio.sleep(1.0)
        stopped = count[0]
        cyclic.start()
        await asyncio.sleep(0.25)
        cyclic.stop()
        return stopped, count[0]

    assert run(main(), virtual=True) == (3, 6)


def test_a_period_must_be_positive():
    with pytest.raises(ValueError, match="period must be > 0"):
        Cyclic().add(0.0, lambda: None)
