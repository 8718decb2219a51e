"""Kikusui TOS9300 series (TOS9301/9303) multifunction safety tester: insulation (IR), DC/AC
withstand (DCW/ACW) and earth continuity (EC) as the station's ``InsulationTester``.

Kikusui's SCPI dialect is mode-based where the Chroma's is step-based: ``FUNC`` selects the
test, each mode has its own subtree (``IR:VOLT``, ``DCW:VOLT:TIM``, ``SENS:IR:JUDG:LOW``),
``INIT:TEST`` starts, ``ABOR:TEST`` stops (harmless when idle), ``STAT:OPER:TEST:COND?`` tells
the phase (bits below) and ``RES?`` returns the last test's result line::

    +3,+1,DCW,+2024,+1,+28,+12,+42,+6,+4.85010E+01,+1.91900E-06,+2.52640E+07,+2.00000E+00,PASS
    test no, program no, mode, start yyyy,mm,dd,hh,mm,ss, V, A, ohm, test time s, judgement

Judgements: ``PASS``, ``U-FAIL`` (above the upper limit), ``L-FAIL`` (below the lower limit),
``PROT`` (a protection stopped the test) and ``ABORT`` (stopped): the last two are no
judgement and raise ``DeviceError``. On a FAIL the tester reports its judgement criterion in
place of the measured value (the manual's rule), so there is no measurement to report: the
result's value is NaN with ``passed=False``, which every plan limit fails. (Reporting the
criterion would let a plan limit equal to the instrument's pass a failed part.) The TOS93 has no
separate arc judgement: a breakdown is a withstand U-FAIL, so ``arc`` is always False.

IR also sets an upper limit at the top of the range: with nothing connected (a lead off) the
reading is over range and judged ``U-FAIL``, never a pass. The command table is ``TABLE``
(rows: command, validator, unit), rendered into ``docs/instrument-commands.md``.
Where the forms come from (``tests/data/manuals/kikusui_tos9300.txt`` says it per line): the DCW
subtree, ``INIT:TEST``, ``ABOR:TEST`` and ``RES?`` as logged with a TOS9301; the IR subtree as
Kikusui's own TOS9300 sample sends it; the EC subtree and ``IR:VOLT:TIM:STAT`` by analogy only,
not yet checked against the interface manual (IB033871/IB033875).
Ranges: from the TOS93 User's Manual (IB032282), EC upper limit 0.1 mΩ–10 Ω, test time
0.1–1000 s, rise time 0.1–200 s, ACW 50–5000 V, leakage upper limit 0.01–110 mA AC and
0.01–21 mA DC; TOS9303-class figures not found in a vendor text, IR 25–1000 V, IR lower limit
0.001 MΩ–9.99 GΩ, DCW 50–7200 V, EC 3–42 A. Option ``poll`` (s, default 0.5): status poll period.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from drivers.base import IDENTITY_OPTIONS
from drivers.capabilities import BondResult, IrResult, SafeAction, StateFinding, WithstandResult
from drivers.errors import DeviceError, InstrumentError, InstrumentTimeout, ProtocolError
from drivers.scpi import ScpiDriver
from drivers.scpi_table import Checked, Reading, Setting, Table
from drivers.validators import OneOf, Range

# STAT:OPER:TEST:COND? bits (TESTing status register), shared with the simulated peer.
TEST_BITS: dict[str, int] = {"PASS": 1, "L-FAIL": 2, "U-FAIL": 4, "RISE": 16, "TEST": 32, "FALL": 64,
                             "READY": 256, "STOP": 1024}
ACTIVE = TEST_BITS["RISE"] | TEST_BITS["TEST"] | TEST_BITS["FALL"]  # HV on, or discharging
JUDGEMENTS = ("PASS", "U-FAIL", "L-FAIL", "PROT", "ABORT")
NOT_JUDGED = ("PROT", "ABORT")
CODES = {name: i for i, name in enumerate(JUDGEMENTS)}  # the result's ``code``: index of the judgement
IR_UPPER_OHM = 9.999e9  # top of the IR range: over range (open leads) is a U-FAIL
FALL_S = 0.5  # allowance (s) for the fall and discharge after a test

IR_VOLTS = Range(25.0, 1000.0, "V")
IR_LOWER = Range(1e3, 9.99e9, "ohm")
WITHSTAND_VOLTS = {"AC": Range(50.0, 5000.0, "V"), "DC": Range(50.0, 7200.0, "V")}
LEAKAGE_UPPER = {"AC": Range(1e-5, 0.11, "A"), "DC": Range(1e-5, 0.021, "A")}
EC_AMPS = Range(3.0, 42.0, "A")
EC_UPPER = Range(1e-4, 10.0, "ohm")
TEST_TIME = Range(0.1, 1000.0, "s")
RISE_TIME = Range(0.1, 200.0, "s")
POLL = Range(0.01, 10.0, "s")
MODES = OneOf(("AC", "DC"))
_MODE_KEY = {"AC": "ACW", "DC": "DCW"}


def _result(reply: str) -> tuple[str, float, float, float, str]:
    """``RES?`` -> (mode, volts, amps, ohm, judgement); raises ValueError when malformed."""
    fields = [f.strip() for f in reply.split(",")]
    if len(fields) != 14 or fields[13] not in JUDGEMENTS:
        raise ValueError(f"{len(fields)} fields, want 14 ending in one of {'|'.join(JUDGEMENTS)}")
    return fields[2], float(fields[9]), float(fields[10]), float(fields[11]), fields[13]


def _measured(value: float, judgement: str) -> float:
    """The reading as a measurement: on a FAIL the tester sent its criterion, not a reading."""
    return value if judgement == "PASS" else math.nan


TABLE = Table("Kikusui TOS9300 (`kikusui_tos9300`)", {
    "function": Setting("FUNC {}", OneOf(("ACW", "DCW", "IR", "EC")), "", "test mode", format=str),
    "ir_volts": Setting("IR:VOLT {}", IR_VOLTS, "V", "IR test voltage"),
    "ir_time": Setting("IR:VOLT:TIM {}", TEST_TIME, "s", "IR test time"),
    "ir_timer_on": Setting("IR:VOLT:TIM:STAT ON", None, "", "IR test time on (PASS at its end)"),
    "ir_rise": Setting("IR:VOLT:SWE:TIM {}", RISE_TIME, "s", "IR voltage rise time"),
    "ir_lower": Setting("SENS:IR:JUDG:LOW {}", IR_LOWER, "ohm", "IR lower limit (L-FAIL at or below)"),
    "ir_lower_on": Setting("SENS:IR:JUDG:LOW:STAT ON", None, "", "IR lower judgement on"),
    "ir_upper": Setting("SENS:IR:JUDG {}", Range(IR_UPPER_OHM, IR_UPPER_OHM, "ohm"), "ohm",
                        "IR upper limit, top of range (open leads: U-FAIL)"),
    "w_volts": Setting("{mode}:VOLT {}", Checked("ACW 50 … 5000, DCW 50 … 7200"), "V", "withstand test voltage (ACW/DCW)"),
    "w_time": Setting("{mode}:VOLT:TIM {}", TEST_TIME, "s", "withstand test time"),
    "w_timer_on": Setting("{mode}:VOLT:TIM:STAT ON", None, "", "withstand test time on"),
    "w_rise": Setting("{mode}:VOLT:SWE:TIM {}", RISE_TIME, "s", "withstand voltage rise time"),
    "w_upper": Setting("SENS:{mode}:JUDG {}", Checked("ACW 10 µA … 110 mA, DCW 10 µA … 21 mA"), "A", "leakage upper limit (U-FAIL at or above)"),
    "ec_amps": Setting("EC:CURR {}", EC_AMPS, "A", "earth-continuity test current"),
    "ec_time": Setting("EC:CURR:TIM {}", TEST_TIME, "s", "earth-continuity test time"),
    "ec_timer_on": Setting("EC:CURR:TIM:STAT ON", None, "", "earth-continuity test time on"),
    "ec_upper": Setting("SENS:EC:JUDG {}", EC_UPPER, "ohm", "bond resistance upper limit"),
    "start": Setting("INIT:TEST", None, "", "start the test"),
    "stop": Setting("ABOR:TEST", None, "", "stop the test (harmless when idle)"),
    "status": Reading("STAT:OPER:TEST:COND?", int, "bits", "test phase: RISE 16, TEST 32, FALL 64, READY 256, ..."),
    "result": Reading("RES?", _result, "", "last result: mode, V, A, ohm, judgement (criterion on FAIL)"),
})


class KikusuiTos9300(ScpiDriver):
    """``InsulationTester`` for a Kikusui TOS9300-series tester; ``name`` is the station role."""

    OPTIONS = IDENTITY_OPTIONS | {"poll"}
    TABLE = TABLE

    def __init__(self, name: str, resource: str, **kw: Any) -> None:
        super().__init__(name, resource, **kw)
        self.poll = POLL.check(float(self.options.get("poll", 0.5)), what="option poll", instrument=name)

    # -- tests -----------------------------------------------------------------------------
    async def insulation(self, voltage: float, dwell: float, low_limit: float, ramp: float = 1.0) -> IrResult:
        """IR at ``voltage`` V DC for ``dwell`` s after a ``ramp`` s rise; pass when above
        ``low_limit`` ohm. The result's resistance is the criterion on a FAIL (see module)."""
        program = [
            self._command("ir_volts", voltage, what="IR voltage"),
            self._command("ir_time", dwell, what="IR dwell"),
            self._command("ir_timer_on"),
            self._command("ir_rise", ramp, what="ramp"),
            self._command("ir_lower", low_limit, what="IR low limit"),
            self._command("ir_lower_on"),
            self._command("ir_upper", IR_UPPER_OHM),
        ]
        _, _, _, ohm, judgement = await self._run("IR", program, ramp + dwell)
        return IrResult(resistance=_measured(ohm, judgement), passed=judgement == "PASS", code=CODES[judgement])

    async def withstand(self, mode: str, voltage: float, dwell: float, leakage_limit: float, ramp: float = 1.0) -> WithstandResult:
        """Hipot, ``mode`` "AC"/"DC", at ``voltage`` V; pass when leakage stays below
        ``leakage_limit`` A (a breakdown is a U-FAIL: leakage NaN, see module)."""
        m = MODES.check(mode, what="withstand mode", instrument=self.name)
        key = _MODE_KEY[m]
        program = [
            self._command("w_volts", voltage, validator=WITHSTAND_VOLTS[m], what=f"{m} withstand voltage", mode=key),
            self._command("w_time", dwell, what="withstand dwell", mode=key),
            self._command("w_timer_on", mode=key),
            self._command("w_rise", ramp, what="ramp", mode=key),
            self._command("w_upper", leakage_limit, validator=LEAKAGE_UPPER[m], what=f"{m} leakage limit", mode=key),
        ]
        _, _, amps, _, judgement = await self._run(key, program, ramp + dwell)
        return WithstandResult(leakage=_measured(abs(amps), judgement), arc=False, passed=judgement == "PASS",
                               code=CODES[judgement])

    async def ground_bond(self, current: float, dwell: float, high_limit: float) -> BondResult:
        """Earth continuity at ``current`` A for ``dwell`` s; pass when below ``high_limit`` ohm."""
        program = [
            self._command("ec_amps", current, what="bond current"),
            self._command("ec_time", dwell, what="bond dwell"),
            self._command("ec_timer_on"),
            self._command("ec_upper", high_limit, what="bond high limit"),
        ]
        _, _, _, ohm, judgement = await self._run("EC", program, dwell)
        return BondResult(resistance=_measured(ohm, judgement), passed=judgement == "PASS", code=CODES[judgement])

    async def stop(self) -> None:
        """Stop any running test (``ABOR:TEST``); harmless when idle."""
        await self._transport("ABOR:TEST").write(self._command("stop"))

    # -- safety ----------------------------------------------------------------------------
    async def safe_state(self) -> list[SafeAction]:
        """``ABOR:TEST``, then the TESTing condition read back: confirmed when no RISE, TEST
        or FALL bit is set (output off and discharged); still active raises. Idempotent."""
        if self.transport is None:
            return [SafeAction("not connected, no test running (nothing sent)", False)]
        await self.stop()
        bits = await self._status()
        if bits & ACTIVE:
            raise DeviceError(f"test still active (STAT:OPER:TEST:COND? {bits}) after ABOR:TEST",
                              instrument=self.name, command="ABOR:TEST")
        return [SafeAction(f"HV test stopped and output discharged (ABOR:TEST; STAT:OPER:TEST:COND? {bits})", True)]

    async def energy_state(self) -> list[StateFinding]:
        """The TESTing condition: RISE/TEST/FALL mean HV on the leads or discharging."""
        bits = await self._status()
        if bits & ACTIVE:
            return [StateFinding("test", False, f"test active: HV on the leads or discharging (STAT:OPER:TEST:COND? {bits})")]
        return [StateFinding("test", True, f"idle, output off (STAT:OPER:TEST:COND? {bits})")]

    # -- sequence --------------------------------------------------------------------------
    async def _run(self, function: str, program: list[str], duration: float) -> tuple[str, float, float, float, str]:
        """Select ``function``, program it, start, poll until idle; return the parsed result."""
        commands = [self._command("function", function), *program]
        transport = self._transport(commands[0])
        for command in commands:
            await transport.write(command)
        await self._check_errors("; ".join(commands))
        await transport.write(self._command("start"))
        try:
            # A refused start would leave the previous test's result to be read back as ours.
            await self._check_errors("INIT:TEST")
            await self._wait(duration)
        except BaseException as exc:
            await self._stop_after(exc)
            raise
        row = self._read_row("result")
        mode, volts, amps, ohm, judgement = row.parse(await self._query(row.command), instrument=self.name)
        if mode != function:
            raise ProtocolError(f"result is for a {mode} test, not {function}", instrument=self.name, command="RES?")
        if judgement in NOT_JUDGED:
            raise DeviceError(f"{function} test not judged: {judgement}", code=judgement, instrument=self.name,
                              command="RES?")
        return mode, volts, amps, ohm, judgement

    async def _wait(self, duration: float) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        limit = duration + FALL_S + max(2.0, self.timeout)
        while await self._status() & ACTIVE:
            if loop.time() - start >= limit:
                raise InstrumentTimeout(f"test still active after {limit:g} s", instrument=self.name,
                                        command="STAT:OPER:TEST:COND?")
            await asyncio.sleep(self.poll)

    async def _stop_after(self, exc: BaseException) -> None:
        # HV must not stay on because we gave up waiting; the caller still sees ``exc``.
        try:
            await self.stop()
        except InstrumentError as stop_exc:
            exc.add_note(f"{self.name}: ABOR:TEST after the error also failed: {stop_exc}")

    async def _status(self) -> int:
        row = self._read_row("status")
        return await self._query_int(row.command, low=0, high=65535)
