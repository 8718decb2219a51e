"""Only the step's own deadline is a step timeout (docs/reliability.md, change 3).

``StepRunner._call`` (station/engine/steps.py) runs the action under the step's deadline. A
``TimeoutError`` raised *inside* the action — an ``InstrumentTimeout`` of a driver, or any
other timeout the action's code gives up on — must reach the record unchanged, with the
instrument and command it names; ``timeout: step did not finish within N s`` is reserved for the step's own deadline.
The engine is the component under test here; the instruments are the engine suite's fakes.
"""

from __future__ import annotations

import asyncio

from drivers.errors import InstrumentTimeout
from tests.engine.conftest import Harness
from tests.engine.fakes import FakeDmm
from tests.reliability import rig

PLAN = """
main:
  - id: read
    dmm.voltage: {}
    timeout: %s
"""


class TimingOutDmm(FakeDmm):
    """A DMM whose read gives up after ``after`` s with ``error`` (station clock)."""

    def __init__(self, name, rec, *, error: Exception, after: float) -> None:
        super().__init__(name, rec)
        self.error, self.after = error, after

    async def measure_dc_voltage(self, range_v=None, nplc=10.0) -> float:
        if nplc == 1.0:  # the safe state's bus confirmation: answer
            return await super().measure_dc_voltage(range_v, nplc)
        await asyncio.sleep(self.after)
        raise self.error


def _run(tmp_path, dmm_error: Exception | None, *, after: float = 0.5, timeout: str = "10 s"):
    h = Harness(tmp_path)
    if dmm_error is None:
        h.instruments["dmm"].delay = 100.0  # hangs past the step's deadline
    else:
        h.instruments["dmm"] = TimingOutDmm("dmm", h.rec, error=dmm_error, after=after)
    verdict, _seq = h.run(PLAN % timeout)
    (step,) = [e for e in h.of("StepFinished") if e.path == "main/read"]
    safe = {e.instrument for e in h.of("SafeStateAction") if e.ok}
    return verdict, step, safe


def test_only_the_steps_own_deadline_is_a_step_timeout(tmp_path):
    instrument = InstrumentTimeout("no reply within 0.5 s", instrument="dmm", command="READ?")
    v1, by_instrument, safe1 = _run(tmp_path, instrument)
    v2, by_action, safe2 = _run(tmp_path, TimeoutError("settling wait gave up after 0.5 s"))
    v3, by_step, safe3 = _run(tmp_path, None, timeout="2 s")
    rig.report("step timeouts: what the record says (station clock)", [
        f"driver InstrumentTimeout after 0.5 s (step timeout 10 s): {by_instrument.error!r} at {by_instrument.duration_s} s",
        f"bare TimeoutError inside the action after 0.5 s:          {by_action.error!r} at {by_action.duration_s} s",
        f"step deadline 2 s passed (instrument still busy):          {by_step.error!r} at {by_step.duration_s} s"])
    assert v1 == v2 == v3 == "ERROR"
    assert by_instrument.error == "InstrumentTimeout: dmm: no reply within 0.5 s (command 'READ?')"
    assert by_action.error == "TimeoutError: settling wait gave up after 0.5 s"
    assert by_step.error == "timeout: step did not finish within 2 s"
    assert by_instrument.duration_s == by_action.duration_s == 0.5 and by_step.duration_s == 2.0
    assert safe1 == safe2 == safe3 == {"dmm", "fixture", "bms", "safety"}
