"""Exact-exchange tests of the ATEQ-style leak tester driver and its strict line parser."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from drivers.capabilities import Identity, LeakResult, LeakTester, SafeAction
from drivers.errors import ConnectError, DeviceError, InstrumentTimeout, ProtocolError, RangeError
from drivers.leak.ateq import AteqLeakTester, parse_result
from drivers.testing.message import ExpectedMessages

OPTIONS = {"maker": "ATEQ", "model": "F5200", "serial": "F52-00731", "firmware": "v1.32"}


def leak(pairs, **kw) -> tuple[AteqLeakTester, ExpectedMessages]:
    fake = ExpectedMessages(pairs)
    kw.setdefault("options", OPTIONS)
    return AteqLeakTester("leak", "serial:///dev/ttyUSB1?baud=9600", transport=fake, **kw), fake


def test_constructor_is_silent():
    drv, fake = leak([])
    fake.assert_done()
    assert isinstance(drv, LeakTester)


async def test_open_sends_nothing_and_close():
    drv, fake = leak([])
    async with drv:
        assert fake.opened
    assert not fake.opened
    fake.assert_done()


async def test_identify_comes_from_options_without_io():
    due = dt.date(2027, 2, 28)
    drv, fake = leak([], calibration_due=due)
    assert await drv.identify() == Identity("ATEQ", "F5200", "F52-00731", "v1.32", due)
    fake.assert_done()


@pytest.mark.parametrize(
    "line, status, pressure",
    [
        ("<01>:(OK): 027 Pa", "OK", 27.0),
        ("<01>:(TD): 087 Pa", "TD", 87.0),
        ("<03>:(RD): 015 Pa", "RD", 15.0),
        ("(OK): -003 Pa", "OK", -3.0),
        ("<01>:(TD): 1.25 hPa", "TD", 125.0),
        ("<01>:(OK):0.4 mbar", "OK", 40.0),
    ],
)
async def test_cycle_start_then_pushed_result(line, status, pressure):
    drv, fake = leak([("START", None), (None, line)])
    assert await drv.test(timeout=90) == LeakResult(pressure=pressure, status=status, raw=line)
    fake.assert_done()


async def test_alarm_is_a_result_without_figure():
    drv, fake = leak([("START", None), (None, "<01>:AL: 02 FILL PRESSURE TOO LOW")])
    result = await drv.test()
    assert result.status == "AL" and math.isnan(result.pressure)
    fake.assert_done()


@pytest.mark.parametrize(
    "line",
    ["<01>:(OK): 027", "<01>:(XX): 027 Pa", "<01>:(OK): 027 psi", "OK 27 Pa", "<1>:(OK): 027 Pa", "", "<01>:AL:"],
)
async def test_garbage_line_is_protocol_error_naming_it_and_stops(line):
    drv, fake = leak([("START", None), (None, line), ("STOP", None)])
    with pytest.raises(ProtocolError, match=r"leak: unexpected line .*\(command 'START'\)"):
        await drv.test()
    fake.assert_done()


async def test_tester_refusal_is_device_error():
    drv, fake = leak([("START", None), (None, "ER: BUSY"), ("STOP", None)])
    with pytest.raises(DeviceError, match=r"leak: tester refused: BUSY.*START"):
        await drv.test()
    fake.assert_done()


async def test_no_result_in_time_is_timeout_naming_start_and_stops():
    read_timeout = InstrumentTimeout("no complete line within 60 s", instrument="leak", command="<read>")
    drv, fake = leak([("START", None), (None, read_timeout), ("STOP", None)])
    with pytest.raises(InstrumentTimeout, match=r"leak: no result line within 60 s \(command 'START'\)"):
        await drv.test(timeout=60)
    fake.assert_done()


async def test_undecodable_bytes_from_transport_name_start():
    noise = ProtocolError("undecodable line b'\\x15#?'", instrument="leak", command="<read>")
    drv, fake = leak([("START", None), (None, noise), ("STOP", None)])
    with pytest.raises(ProtocolError) as caught:
        await drv.test()
    fake.assert_done()
    # the instrument named once, the command that went wrong named once
    assert str(caught.value) == "leak: unreadable result line (undecodable line b'\\x15#?') (command 'START')"


@pytest.mark.parametrize("timeout", [0.0, -5, 7200, float("nan")])
async def test_bad_timeout_sends_nothing(timeout):
    drv, fake = leak([])
    with pytest.raises(RangeError, match="leak test timeout"):
        await drv.test(timeout=timeout)
    fake.assert_done()


async def test_safe_state_sends_stop_every_time_and_confirms_by_status():
    drv, fake = leak([("STOP", None), ("STATUS?", "STATUS: READY")] * 2)
    first = await drv.safe_state()
    assert first == await drv.safe_state()
    assert first == [SafeAction("leak cycle stopped and vented (STOP; STATUS: READY)", True)]
    fake.assert_done()


async def test_safe_state_skips_a_result_pushed_before_the_status_reply():
    drv, fake = leak([("STOP", None), ("STATUS?", "<01>:(OK): 005 Pa"), (None, "STATUS: READY")])
    assert (await drv.safe_state())[0].confirmed
    fake.assert_done()


async def test_safe_state_of_a_silent_tester_is_sent_but_not_confirmed():
    silent = InstrumentTimeout("no complete line within 2 s", instrument="leak", command="STATUS?")
    drv, fake = leak([("STOP", None), ("STATUS?", silent)])
    (action,) = await drv.safe_state()
    assert not action.confirmed and action.action.startswith("STOP sent, not confirmed (no complete line")
    fake.assert_done()


@pytest.mark.parametrize("reply, text", [("STATUS: CYCLE", "still reports a cycle"), ("ER: UNKNOWN COMMAND", "refused")])
async def test_safe_state_not_confirmed_when_the_tester_says_otherwise(reply, text):
    drv, fake = leak([("STOP", None), ("STATUS?", reply)])
    (action,) = await drv.safe_state()
    assert not action.confirmed and text in action.action
    fake.assert_done()


async def test_safe_state_raises_when_stop_cannot_be_written():
    drv, _fake = leak([("STOP", ConnectError("write failed: port gone", instrument="leak", command="STOP"))])
    with pytest.raises(ConnectError, match="STOP"):
        await drv.safe_state()


@pytest.mark.parametrize("reply, safe", [("STATUS: READY", True), ("STATUS: CYCLE", False)])
async def test_energy_state_reads_the_status(reply, safe):
    drv, fake = leak([("STATUS?", reply)])
    (finding,) = await drv.energy_state()
    assert finding.what == "cycle" and finding.safe is safe
    fake.assert_done()


async def test_status_query_can_be_mapped_to_the_site_tester():
    drv, fake = leak([("RS?", "R0")], options={**OPTIONS, "status_query": "RS?", "status_ready": "R0", "status_cycle": "R1"})
    assert await drv.status() == "READY"
    fake.assert_done()


async def test_not_open():
    drv = AteqLeakTester("leak", "serial:///dev/ttyUSB1")
    with pytest.raises(ConnectError, match=r"leak: not open.*START"):
        await drv.test()
    (action,) = await drv.safe_state()
    assert "nothing sent" in action.action and not action.confirmed


def test_parser_default_command_and_raw_kept():
    line = "<01>:(OK): 005 Pa"
    assert parse_result(line).raw == line
    with pytest.raises(ProtocolError, match="START"):
        parse_result("#?garbage")
