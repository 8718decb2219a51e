"""bms.close_contactors judges the contactors' feedback once the BMS has reported all of it: the
mode may turn "normal" a few ms before the precharge contactor has released (its release time),
and the two come in different frames. On a loaded machine a proof's car-800 runs (12 ms release)
failed `feedback_ok` at main/contactors whenever a contactor frame fell inside those 12 ms."""

from __future__ import annotations

import asyncio

import pytest

from station import clock
from station.actions.bms import close_contactors
from station.engine.context import ActionContext, RunServices

PACK_V = 714.0  # V


class _Bms:
    """A BMS on the loop clock: precharge from the mode request, "normal" and main+ closed at
    ``normal_at`` s, the precharge contactor reported open ``release`` s later (never: None)."""

    def __init__(self, normal_at: float, release: float | None) -> None:
        self.normal_at, self.release = normal_at, release
        self.asked: float | None = None

    def _t(self) -> float:
        return -1.0 if self.asked is None else asyncio.get_running_loop().time() - self.asked

    async def request_mode(self, mode: str) -> None:
        self.asked = asyncio.get_running_loop().time()

    def state(self) -> str:
        return "normal" if self._t() >= self.normal_at else "precharge"

    def signal(self, name: str) -> float:
        t = self._t()
        if name == "pack_voltage":
            return PACK_V
        if name == "bus_voltage":
            return PACK_V * min(1.0, max(0.0, t) / self.normal_at)
        if name == "contactor_main_minus":
            return float(t >= 0.0)
        if name == "contactor_main_plus":
            return float(t >= self.normal_at)
        if name == "contactor_precharge":
            opened = self.release is not None and t >= self.normal_at + self.release
            return float(t >= 0.0 and not opened)
        raise KeyError(name)


class _Emitter:
    def series(self, *args) -> None:
        pass

    def log(self, *args) -> None:
        pass


def _close(bms: _Bms, within: float = 3.0) -> tuple[dict, float]:
    async def go() -> tuple[dict, float]:
        run = RunServices(instruments={"bms": bms}, serial="T1", parameters={}, emitter=_Emitter(), prompt=None)
        start = asyncio.get_running_loop().time()
        out = await close_contactors(ActionContext(run, "main/contactors", {}), within=within, sample=0.01)
        return out, asyncio.get_running_loop().time() - start

    return clock.run(go(), virtual=True, in_process=True)


@pytest.mark.parametrize("release", [0.0, 0.004, 0.012, 0.05])
def test_feedback_is_judged_once_the_precharge_contactor_has_released(release):
    out, took = _close(_Bms(normal_at=0.2, release=release))
    assert out["feedback_ok"] is True, out
    assert out["feedback_time"] == pytest.approx(0.2, abs=0.011)
    assert took < 0.2 + release + 0.05  # it stops sampling as soon as the feedback is complete


def test_a_precharge_contactor_that_never_releases_fails_after_within():
    out, took = _close(_Bms(normal_at=0.2, release=None), within=1.0)
    assert out["feedback_ok"] is False
    assert took == pytest.approx(1.0, abs=0.02)
