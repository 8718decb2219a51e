"""Exact-exchange tests of the Kikusui TOS9300 driver: its mode-based dialect, message by message."""

from __future__ import annotations

import math

import pytest

from drivers.capabilities import InsulationTester, SafeAction
from drivers.errors import DeviceError, ProtocolError, RangeError
from drivers.safety.kikusui_tos9300 import KikusuiTos9300
from drivers.testing.message import ExpectedMessages
from station.clock import run

OK = ("SYST:ERR?", '+0,"No error"')
TESTING = ("STAT:OPER:TEST:COND?", "+32")
READY_PASS = ("STAT:OPER:TEST:COND?", "+257")


def tos(pairs, **kw):
    fake = ExpectedMessages(pairs)
    kw.setdefault("options", {"poll": 0.5})
    return KikusuiTos9300("safety", "TCPIP::192.0.2.7::5025::SOCKET", transport=fake, **kw), fake


def result(mode, volts, amps, ohm, judgement):
    return f"+7,+1,{mode},+2026,+1,+1,+0,+0,+0,{volts:+.5E},{amps:+.5E},{ohm:+.5E},+1.00000E+01,{judgement}"


def test_constructor_is_silent_and_implements_the_capability():
    drv, fake = tos([])
    fake.assert_done()
    assert isinstance(drv, InsulationTester)


def test_ir_sequence_pinned_message_by_message():
    program = ["FUNC IR", "IR:VOLT 800", "IR:VOLT:TIM 10", "IR:VOLT:TIM:STAT ON", "IR:VOLT:SWE:TIM 1",
               "SENS:IR:JUDG:LOW 40300000", "SENS:IR:JUDG:LOW:STAT ON", "SENS:IR:JUDG 9.999e+09"]
    drv, fake = tos([*[(c, None) for c in program], OK, ("INIT:TEST", None), OK, TESTING, TESTING, READY_PASS,
                     ("RES?", result("IR", 800, 1.6e-6, 5.0e8, "PASS"))])
    res = run(drv.insulation(800, 10, 40.3e6, ramp=1), virtual=True)
    fake.assert_done()
    assert res.resistance == pytest.approx(5.0e8) and res.passed and res.code == 0


def test_a_fail_reports_no_measurement_because_the_tester_sends_its_criterion():
    program = ["FUNC EC", "EC:CURR 25", "EC:CURR:TIM 3", "EC:CURR:TIM:STAT ON", "SENS:EC:JUDG 0.1"]
    drv, fake = tos([*[(c, None) for c in program], OK, ("INIT:TEST", None), OK,
                     ("STAT:OPER:TEST:COND?", "+260"), ("RES?", result("EC", 2.5, 25, 0.1, "U-FAIL"))])
    res = run(drv.ground_bond(25, 3, 0.1), virtual=True)
    fake.assert_done()
    assert math.isnan(res.resistance) and not res.passed


def test_out_of_range_values_are_refused_before_a_byte_is_sent():
    drv, fake = tos([])
    with pytest.raises(RangeError, match="IR voltage 1500 V outside"):
        run(drv.insulation(1500, 10, 1e6), virtual=True)
    with pytest.raises(RangeError, match="DC leakage limit"):
        run(drv.withstand("DC", 1000, 2, 0.5), virtual=True)
    # the user's manual's floor for either withstand leakage limit is 0.01 mA: a real tester
    # answers a lower one with an error, so the driver refuses it before sending
    with pytest.raises(RangeError, match="AC leakage limit"):
        run(drv.withstand("AC", 1000, 2, 5e-6), virtual=True)
    with pytest.raises(RangeError, match="DC leakage limit"):
        run(drv.withstand("DC", 1000, 2, 0.025), virtual=True)
    with pytest.raises(RangeError, match="bond current"):
        run(drv.ground_bond(100, 3, 0.1), virtual=True)
    fake.assert_done()


def test_aborted_test_is_an_error_not_a_verdict():
    program = ["FUNC DCW", "DCW:VOLT 1000", "DCW:VOLT:TIM 2", "DCW:VOLT:TIM:STAT ON", "DCW:VOLT:SWE:TIM 1",
               "SENS:DCW:JUDG 0.0005"]
    drv, _ = tos([*[(c, None) for c in program], OK, ("INIT:TEST", None), OK, READY_PASS,
                  ("RES?", result("DCW", 1000, 1e-6, 1e9, "ABORT"))])
    with pytest.raises(DeviceError, match="not judged: ABORT"):
        run(drv.withstand("DC", 1000, 2, 0.0005), virtual=True)


def test_garbled_result_is_a_protocol_error():
    drv, _ = tos([("FUNC EC", None), ("EC:CURR 25", None), ("EC:CURR:TIM 3", None), ("EC:CURR:TIM:STAT ON", None),
                  ("SENS:EC:JUDG 0.1", None), OK, ("INIT:TEST", None), OK, READY_PASS, ("RES?", "PASS")])
    with pytest.raises(ProtocolError, match="RES"):
        run(drv.ground_bond(25, 3, 0.1), virtual=True)


def test_safe_state_aborts_and_reads_the_phase_back():
    drv, fake = tos([("ABOR:TEST", None), ("STAT:OPER:TEST:COND?", "+256")])
    actions = run(drv.safe_state(), virtual=True)
    fake.assert_done()
    assert actions == [SafeAction("HV test stopped and output discharged (ABOR:TEST; STAT:OPER:TEST:COND? 256)", True)]
    drv, _ = tos([("ABOR:TEST", None), ("STAT:OPER:TEST:COND?", "+64")])
    with pytest.raises(DeviceError, match="still active"):
        run(drv.safe_state(), virtual=True)
