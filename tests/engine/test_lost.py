"""Lost instruments are reported as data: ``Sequencer.lost`` names the roles whose connection a
run could not trust afterwards (the station re-opens them before the next run), from the error's
type, never from its text."""

from __future__ import annotations

import asyncio

from drivers.errors import ConnectError, DeviceError, InstrumentTimeout
from tests.engine.conftest import Harness

STEP = "main:\n  - id: v\n    dmm.voltage: {}\n"


def _failing_reads(h: Harness, err: Exception) -> None:
    async def read(range_v=None, nplc=10.0) -> float:
        if nplc != 1.0:  # the step's reading; the safe state's bus reading (NPLC 1) still works
            raise err
        return 0.0

    h.instruments["dmm"].measure_dc_voltage = read


def test_a_step_that_loses_its_instrument_reports_the_role(h: Harness):
    _failing_reads(h, ConnectError("connection reset by peer", instrument="dmm", command="READ?"))
    verdict, seq = h.run(STEP)
    assert verdict == "ERROR" and seq.lost == {"dmm"}


def test_an_instrument_error_that_leaves_the_link_sound_is_not_a_loss(h: Harness):
    _failing_reads(h, DeviceError("overload", instrument="dmm", command="READ?", code=-230))
    verdict, seq = h.run(STEP)
    assert verdict == "ERROR" and seq.lost == frozenset()


def test_a_shared_driver_named_for_another_fixture_is_found_by_its_name(h: Harness):
    """A shared driver carries the role it was built for; the loss is this fixture's role."""
    h.instruments["dmm"].name = "bus_meter"
    _failing_reads(h, InstrumentTimeout("no reply within 2 s", instrument="bus_meter", command="READ?"))
    _verdict, seq = h.run(STEP)
    assert seq.lost == {"dmm"}


def test_a_safe_state_past_its_bound_or_a_lost_link_in_it_reports_the_role(h: Harness):
    async def hangs() -> list:
        await asyncio.sleep(3600)
        return []

    h.instruments["bms"].safe_state = hangs
    h.instruments["safety"].safe_error = ConnectError("gone", instrument="safety")
    verdict, seq = h.run("main:\n  - station.wait: 1 s\n")
    assert verdict == "ERROR" and seq.lost == {"bms", "safety"}


def test_a_clean_run_loses_nothing(h: Harness):
    verdict, seq = h.run(STEP)
    assert verdict == "PASS" and seq.lost == frozenset()
