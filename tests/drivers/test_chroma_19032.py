"""Exact-exchange tests of the Chroma 19032 driver: every method's messages, in order."""

from __future__ import annotations

import datetime as dt

import pytest

from drivers.capabilities import BondResult, Identity, InsulationTester, IrResult, SafeAction
from drivers.errors import ConnectError, DeviceError, InstrumentTimeout, ProtocolError, RangeError
from drivers.safety.chroma_19032 import Chroma19032
from drivers.testing.message import ExpectedMessages
from station.clock import run

OK = ("SYST:ERR?", '+0,"No error"')
RUNNING = ("SAFE:STAT?", "RUNNING")
STOPPED = ("SAFE:STAT?", "STOPPED")


def chroma(pairs, **kw) -> tuple[Chroma19032, ExpectedMessages]:
    fake = ExpectedMessages(pairs)
    kw.setdefault("options", {"poll": 0.5})
    return Chroma19032("safety", "TCPIP::192.0.2.5::5025::SOCKET", transport=fake, **kw), fake


def test_constructor_is_silent():
    drv, fake = chroma([], calibration_due=dt.date(2027, 6, 30))
    fake.assert_done()
    assert isinstance(drv, InsulationTester)


def test_bad_poll_option_refused_at_construction():
    with pytest.raises(RangeError, match="poll"):
        chroma([], options={"poll": 0})


async def test_open_clears_error_queue_and_close():
    drv, fake = chroma([("*CLS", None)])
    async with drv:
        assert fake.opened
    assert not fake.opened
    fake.assert_done()


async def test_identify_with_calibration_due():
    due = dt.date(2027, 6, 30)
    drv, fake = chroma([("*IDN?", "Chroma ATE,19032,190320001234,2.10")], calibration_due=due)
    assert await drv.identify() == Identity("Chroma ATE", "19032", "190320001234", "2.10", due)
    fake.assert_done()


async def test_identify_malformed_is_protocol_error():
    drv, _ = chroma([("*IDN?", "19032")])
    with pytest.raises(ProtocolError, match=r"safety: .*\*IDN\?"):
        await drv.identify()


def test_full_ir_sequence_pinned_message_by_message():
    """Old step deleted, step programmed, one error check, start, 3 polls with live readings."""
    drv, fake = chroma([
        ("SAFE:SNUM?", "1"),
        ("SAFE:STEP 1:DEL", None),
        ("SAFE:STEP 1:IR 800", None),
        ("SAFE:STEP 1:IR:LIM 500000000", None),
        ("SAFE:STEP 1:IR:TIME 1", None),
        ("SAFE:STEP 1:IR:TIME:RAMP 0.5", None),
        OK,
        ("SAFE:STAR", None), OK,
        RUNNING, ("SAFE:FETC? MMET", "+1.000000E+06"),
        RUNNING, ("SAFE:FETC? MMET", "+2.000000E+08"),
        RUNNING, ("SAFE:FETC? MMET", "+5.100000E+08"),
        STOPPED,
        ("SAFE:RES:ALL?", "116"),
        ("SAFE:RES:ALL:MMET?", "+5.230000E+08"),
    ])

    async def go():
        return await drv.insulation(voltage=800, dwell=1, low_limit=5e8, ramp=0.5)

    result = run(go(), virtual=True)
    fake.assert_done()
    assert result == IrResult(
        resistance=5.23e8, passed=True, code=116,
        samples=((0.0, 1e6), (0.5, 2e8), (1.0, 5.1e8)),
    )


def test_ir_fail_code_is_a_result_not_an_error():
    drv, fake = chroma([
        ("SAFE:SNUM?", "0"),
        ("SAFE:STEP 1:IR 500", None), ("SAFE:STEP 1:IR:LIM 1000000", None),
        ("SAFE:STEP 1:IR:TIME 2", None), ("SAFE:STEP 1:IR:TIME:RAMP 0", None), OK,
        ("SAFE:STAR", None), OK, STOPPED,
        ("SAFE:RES:ALL?", "49"), ("SAFE:RES:ALL:MMET?", "+4.000000E+05"),
    ])
    result = run(drv.insulation(500, 2, 1e6, ramp=0), virtual=True)
    fake.assert_done()
    assert (result.passed, result.code, result.resistance, result.samples) == (False, 49, 4e5, ())


@pytest.mark.parametrize("mode, code, arc, passed", [("AC", 116, False, True), ("AC", 19, True, False), ("DC", 33, False, False)])
def test_withstand_sequence(mode, code, arc, passed):
    drv, fake = chroma([
        ("SAFE:SNUM?", "0"),
        (f"SAFE:STEP 1:{mode} 2000", None), (f"SAFE:STEP 1:{mode}:LIM 0.005", None),
        (f"SAFE:STEP 1:{mode}:TIME 1", None), (f"SAFE:STEP 1:{mode}:TIME:RAMP 1", None), OK,
        ("SAFE:STAR", None), OK,
        RUNNING, ("SAFE:FETC? MMET", "+1.200000E-03"),
        STOPPED,
        ("SAFE:RES:ALL?", str(code)), ("SAFE:RES:ALL:MMET?", "+2.400000E-03"),
    ])
    result = run(drv.withstand(mode, 2000, 1, 0.005), virtual=True)
    fake.assert_done()
    assert (result.leakage, result.arc, result.passed, result.code) == (2.4e-3, arc, passed, code)
    assert result.samples == ((0.0, 1.2e-3),)


def test_ground_bond_sequence_has_no_live_reading():
    drv, fake = chroma([
        ("SAFE:SNUM?", "2"), ("SAFE:STEP 1:DEL", None), ("SAFE:STEP 1:DEL", None),
        ("SAFE:STEP 1:GB 25", None), ("SAFE:STEP 1:GB:LIM 0.1", None), ("SAFE:STEP 1:GB:TIME 5", None), OK,
        ("SAFE:STAR", None), OK, RUNNING, STOPPED,
        ("SAFE:RES:ALL?", "81"), ("SAFE:RES:ALL:MMET?", "+1.500000E-01"),
    ])
    result = run(drv.ground_bond(current=25, dwell=5, high_limit=0.1), virtual=True)
    fake.assert_done()
    assert result == BondResult(resistance=0.15, passed=False, code=81)


@pytest.mark.parametrize(
    "call",
    [
        lambda d: d.insulation(1200, 10, 5e8),  # above 1000 V DC
        lambda d: d.insulation(30, 10, 5e8),
        lambda d: d.insulation(800, 0.1, 5e8),  # dwell below 0.3 s
        lambda d: d.insulation(800, 10, 1e12),
        lambda d: d.insulation(800, 10, 5e8, ramp=0.05),  # 0 or 0.1-999 s
        lambda d: d.insulation(float("nan"), 10, 5e8),
        lambda d: d.withstand("AC", 5500, 1, 0.01),
        lambda d: d.withstand("DC", 6500, 1, 0.001),
        lambda d: d.withstand("DC", 1000, 1, 0.05),  # DC leakage limit above 10 mA
        lambda d: d.withstand("ac", 1000, 1, 0.01),
        lambda d: d.ground_bond(45, 5, 0.1),
        lambda d: d.ground_bond(1, 5, 0.1),
        lambda d: d.ground_bond(25, 5, 1.0),
        lambda d: d.ground_bond(25, 1000, 0.1),
    ],
)
async def test_out_of_range_sends_nothing(call):
    drv, fake = chroma([])
    with pytest.raises(RangeError, match="safety: "):
        await call(drv)
    fake.assert_done()


async def test_device_error_names_the_programming_commands():
    drv, fake = chroma([
        ("SAFE:SNUM?", "0"),
        ("SAFE:STEP 1:IR 800", None), ("SAFE:STEP 1:IR:LIM 500000000", None),
        ("SAFE:STEP 1:IR:TIME 10", None), ("SAFE:STEP 1:IR:TIME:RAMP 1", None),
        ("SYST:ERR?", '-222,"Data out of range"'),
    ])
    with pytest.raises(DeviceError, match=r"safety: device error -222: Data out of range.*SAFE:STEP 1:IR 800") as info:
        await drv.insulation(800, 10, 5e8)
    assert info.value.code == -222
    fake.assert_done()  # never started


def test_refused_start_is_device_error_and_stops():
    drv, fake = chroma([
        ("SAFE:SNUM?", "0"),
        ("SAFE:STEP 1:GB 10", None), ("SAFE:STEP 1:GB:LIM 0.1", None), ("SAFE:STEP 1:GB:TIME 1", None), OK,
        ("SAFE:STAR", None), ("SYST:ERR?", '-221,"Settings conflict"'), ("SAFE:STOP", None),
    ])
    with pytest.raises(DeviceError, match=r"-221: Settings conflict \(command 'SAFE:STAR'\)"):
        run(drv.ground_bond(10, 1, 0.1), virtual=True)
    fake.assert_done()  # the previous run's result was never read back as this one's


@pytest.mark.parametrize("code", [112, 113, 114, 999])
def test_unjudged_result_codes_are_device_errors(code):
    drv, fake = chroma([
        ("SAFE:SNUM?", "0"),
        ("SAFE:STEP 1:GB 10", None), ("SAFE:STEP 1:GB:LIM 0.1", None), ("SAFE:STEP 1:GB:TIME 1", None), OK,
        ("SAFE:STAR", None), OK, STOPPED, ("SAFE:RES:ALL?", str(code)),
    ])
    with pytest.raises(DeviceError, match=r"SAFE:RES:ALL\?") as info:
        run(drv.ground_bond(10, 1, 0.1), virtual=True)
    assert info.value.code == code
    fake.assert_done()


def test_still_running_past_deadline_times_out_and_stops_hv():
    # 0.3 s dwell + 0.5 s discharge + 2 s margin = 2.8 s: polls at 0, 0.5 ... 3.0 s, then stop.
    polls = [RUNNING] * 7
    drv, fake = chroma([
        ("SAFE:SNUM?", "0"),
        ("SAFE:STEP 1:GB 10", None), ("SAFE:STEP 1:GB:LIM 0.1", None), ("SAFE:STEP 1:GB:TIME 0.3", None), OK,
        ("SAFE:STAR", None), OK, *polls, ("SAFE:STOP", None),
    ], timeout=1.0)
    with pytest.raises(InstrumentTimeout, match=r"still RUNNING.*SAFE:STAT\?"):
        run(drv.ground_bond(10, 0.3, 0.1), virtual=True)
    fake.assert_done()


def test_transport_error_while_waiting_still_sends_stop():
    drv, fake = chroma([
        ("SAFE:SNUM?", "0"),
        ("SAFE:STEP 1:GB 10", None), ("SAFE:STEP 1:GB:LIM 0.1", None), ("SAFE:STEP 1:GB:TIME 1", None), OK,
        ("SAFE:STAR", None), OK, ("SAFE:STAT?", "R#NN?NG"), ("SAFE:STOP", None),
    ])
    with pytest.raises(ProtocolError, match=r"SAFE:STAT\?"):
        run(drv.ground_bond(10, 1, 0.1), virtual=True)
    fake.assert_done()


async def test_garbage_reading_is_protocol_error():
    drv, _ = chroma([("SAFE:SNUM?", "one")])
    with pytest.raises(ProtocolError, match=r"SAFE:SNUM\?"):
        await drv.ground_bond(10, 1, 0.1)


async def test_stop_and_safe_state_are_idempotent():
    drv, fake = chroma([
        ("SAFE:STOP", None),
        ("SAFE:STOP", None), STOPPED,
        ("SAFE:STOP", None), STOPPED,
    ])
    await drv.stop()
    first = await drv.safe_state()
    assert first == await drv.safe_state()
    assert first == [SafeAction("HV test stopped and output discharged (SAFE:STOP; SAFE:STAT? STOPPED)", True)]
    fake.assert_done()


@pytest.mark.parametrize("reply, safe", [("STOPPED", True), ("RUNNING", False)])
async def test_energy_state_reads_the_tester_status(reply, safe):
    drv, fake = chroma([("SAFE:STAT?", reply)])
    (finding,) = await drv.energy_state()
    assert finding.what == "test" and finding.safe is safe and f"SAFE:STAT? {reply}" in finding.detail
    fake.assert_done()


async def test_safe_state_refuses_to_report_safe_while_running():
    drv, fake = chroma([("SAFE:STOP", None), RUNNING])
    with pytest.raises(DeviceError, match="still RUNNING"):
        await drv.safe_state()
    fake.assert_done()


async def test_not_open_is_connect_error_and_safe_state_sends_nothing():
    drv = Chroma19032("safety", "TCPIP::192.0.2.5::5025::SOCKET")
    with pytest.raises(ConnectError, match=r"safety: not open.*\*IDN\?"):
        await drv.identify()
    (action,) = await drv.safe_state()
    assert "nothing sent" in action.action and not action.confirmed
