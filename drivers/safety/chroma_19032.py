"""Chroma 19032 electrical safety analyzer: insulation, withstand (hipot) and ground bond.

Step-based SCPI; the driver always programs a one-step list (step 1): it deletes the steps a
front-panel program left (``SAFE:SNUM?`` times ``SAFE:STEP 1:DEL``), programs step 1, reads
the error queue once, starts (``SAFE:STAR``), reads the queue again, polls ``SAFE:STAT?``
(``RUNNING`` through ramp, dwell and discharge) with live readings, then reads the result code
and final reading. The commands are the rows of ``TABLE`` (rendered in
``docs/instrument-commands.md``); result codes in ``RESULT_CODES``. ``GB`` (ground bond as a
step mode) is our extension of the dialect; the manual's ramp spelling is ``IR:TIME:RAMP``.

Ranges (19032-class figures): IR 50–1000 V DC, low limit 10 kΩ–50 GΩ; AC 50–5000 V, ≤ 40 mA;
DC 50–6000 V, ≤ 10 mA; bond 3–40 A, high limit 0.1–600 mΩ; dwell 0.3–999 s; ramp 0 (off) or
0.1–999 s. Option ``poll`` (s, default 0.5) sets how often status and live reading are read.
"""

from __future__ import annotations

import asyncio
from typing import Any

from drivers.base import IDENTITY_OPTIONS
from drivers.capabilities import BondResult, IrResult, SafeAction, StateFinding, WithstandResult
from drivers.errors import DeviceError, InstrumentError, InstrumentTimeout, ProtocolError
from drivers.scpi import ScpiDriver
from drivers.scpi_table import Checked, Reading, Setting, Table
from drivers.validators import OneOf, Range

PASS = 116
# Codes that mean "no judgement was made": the step errors, it does not fail.
NOT_JUDGED: dict[int, str] = {112: "STOP", 113: "USER STOP", 114: "CAN NOT TEST", 115: "TESTING"}
# Mode-specific fail codes, by what failed; shared with the simulator so both sides agree.
# HI: above the high limit (leakage, bond ohm); LO: IR below its low limit, or no withstand
# current at all (open circuit); ARC: breakdown; OPEN: IR over range, nothing connected.
FAIL_CODES: dict[str, dict[str, int]] = {
    "AC": {"HI": 17, "LO": 18, "ARC": 19},
    "DC": {"HI": 33, "LO": 34, "ARC": 35},
    "IR": {"LO": 49, "OPEN": 52},
    "GB": {"HI": 81},
}
RESULT_CODES: dict[int, str] = {
    PASS: "PASS",
    **NOT_JUDGED,
    **{code: f"{mode} {kind}" for mode, kinds in FAIL_CODES.items() for kind, code in kinds.items()},
}
ARC_CODES = frozenset({FAIL_CODES["AC"]["ARC"], FAIL_CODES["DC"]["ARC"]})
OVER_RANGE_OHM = 9.999e9  # IR reading reported when nothing is connected
DISCHARGE_S = 0.5  # allowance (s) for the automatic discharge after an HV step

IR_VOLTS = Range(50.0, 1000.0, "V")
IR_LIMIT = Range(1e4, 5e10, "ohm")
WITHSTAND_VOLTS = {"AC": Range(50.0, 5000.0, "V"), "DC": Range(50.0, 6000.0, "V")}
LEAKAGE_LIMIT = {"AC": Range(1e-6, 0.04, "A"), "DC": Range(1e-7, 0.01, "A")}
GB_AMPS = Range(3.0, 40.0, "A")
GB_LIMIT = Range(1e-4, 0.6, "ohm")
DWELL = Range(0.3, 999.0, "s")
RAMP = Range(0.1, 999.0, "s")
POLL = Range(0.01, 10.0, "s")
MODES = OneOf(("AC", "DC"))

TABLE = Table("Chroma 19032 (`chroma_19032`)", {
    "delete": Setting("SAFE:STEP 1:DEL", None, "", "delete step 1 (the rest move up); sent SNUM times"),
    "level": Setting("SAFE:STEP 1:{mode} {}", Checked("IR 50 … 1000 V, AC 50 … 5000 V, DC 50 … 6000 V, GB 3 … 40 A"), "V or A", "step 1 = IR/AC/DC at <V>, or GB at <A>"),
    "limit": Setting("SAFE:STEP 1:{mode}:LIM {}",
                     Checked("IR 10 kΩ … 50 GΩ, AC 1 µA … 40 mA, DC 0.1 µA … 10 mA, GB 0.1 … 600 mΩ"), "ohm or A",
                     "IR low limit, AC/DC leakage high limit, GB resistance high limit"),
    "dwell": Setting("SAFE:STEP 1:{mode}:TIME {}", DWELL, "s", "dwell (test time)"),
    "ramp": Setting("SAFE:STEP 1:{mode}:TIME:RAMP {}", Checked("0 (off) or 0.1 … 999"), "s", "ramp time"),
    "start": Setting("SAFE:STAR", None, "", "start the step list"),
    "stop": Setting("SAFE:STOP", None, "", "stop (idempotent)"),
    "steps": Reading("SAFE:SNUM?", int, "", "number of programmed steps"),
    "status": Reading("SAFE:STAT?", str, "", "RUNNING (ramp, dwell, discharge) or STOPPED"),
    "live": Reading("SAFE:FETC? MMET", float, "ohm or A", "live reading while RUNNING"),
    "code": Reading("SAFE:RES:ALL?", int, "", "result code per step (RESULT_CODES)"),
    "final": Reading("SAFE:RES:ALL:MMET?", float, "ohm or A", "final reading per step"),
})


class Chroma19032(ScpiDriver):
    """``InsulationTester`` for a Chroma 19032; ``name`` is the station role used in every error."""

    OPTIONS = IDENTITY_OPTIONS | {"poll"}
    TABLE = TABLE

    def __init__(self, name: str, resource: str, **kw: Any) -> None:
        super().__init__(name, resource, **kw)
        self.poll = POLL.check(float(self.options.get("poll", 0.5)), what="option poll", instrument=name)

    # -- tests -----------------------------------------------------------------------------
    async def insulation(self, voltage: float, dwell: float, low_limit: float, ramp: float = 1.0) -> IrResult:
        """IR at ``voltage`` V DC for ``dwell`` s after ``ramp`` s; pass when ≥ ``low_limit`` ohm."""
        level = self._command("level", voltage, validator=IR_VOLTS, what="IR voltage", mode="IR")
        time = self._command("dwell", dwell, what="IR dwell", mode="IR")
        limit = self._command("limit", low_limit, validator=IR_LIMIT, what="IR low limit", mode="IR")
        r = self._check_ramp(ramp)
        program = [level, limit, time, self._command("ramp", r, mode="IR")]
        code, value, samples = await self._run("IR", program, r + dwell, live=True)
        return IrResult(resistance=value, passed=code == PASS, code=code, samples=samples)

    async def withstand(self, mode: str, voltage: float, dwell: float, leakage_limit: float, ramp: float = 1.0) -> WithstandResult:
        """Hipot, ``mode`` "AC"/"DC", at ``voltage`` V; pass when leakage ≤ ``leakage_limit`` A and no arc."""
        m = MODES.check(mode, what="withstand mode", instrument=self.name)
        level = self._command("level", voltage, validator=WITHSTAND_VOLTS[m], what=f"{m} withstand voltage", mode=m)
        time = self._command("dwell", dwell, what="withstand dwell", mode=m)
        limit = self._command("limit", leakage_limit, validator=LEAKAGE_LIMIT[m], what=f"{m} leakage limit", mode=m)
        r = self._check_ramp(ramp)
        program = [level, limit, time, self._command("ramp", r, mode=m)]
        code, value, samples = await self._run(m, program, r + dwell, live=True)
        return WithstandResult(leakage=value, arc=code in ARC_CODES, passed=code == PASS, code=code, samples=samples)

    async def ground_bond(self, current: float, dwell: float, high_limit: float) -> BondResult:
        """Bond at ``current`` A for ``dwell`` s; pass when ≤ ``high_limit`` ohm (4-wire)."""
        level = self._command("level", current, validator=GB_AMPS, what="bond current", mode="GB")
        time = self._command("dwell", dwell, what="bond dwell", mode="GB")
        limit = self._command("limit", high_limit, validator=GB_LIMIT, what="bond high limit", mode="GB")
        code, value, _ = await self._run("GB", [level, limit, time], dwell, live=False)
        return BondResult(resistance=value, passed=code == PASS, code=code)

    async def stop(self) -> None:
        """Stop any running test (``SAFE:STOP``); harmless when stopped."""
        command = self._command("stop")
        await self._transport(command).write(command)

    # -- safety ----------------------------------------------------------------------------
    async def safe_state(self) -> list[SafeAction]:
        """``SAFE:STOP``, then ``SAFE:STAT?`` read back: confirmed when ``STOPPED`` (the tester
        reports RUNNING through ramp, dwell and discharge); still RUNNING raises. Idempotent."""
        if self.transport is None:
            return [SafeAction("not connected, no test running (nothing sent)", False)]
        await self.stop()
        status = await self._status()
        if status != "STOPPED":
            raise DeviceError(f"still {status} after SAFE:STOP", instrument=self.name, command="SAFE:STOP")
        return [SafeAction("HV test stopped and output discharged (SAFE:STOP; SAFE:STAT? STOPPED)", True)]

    async def energy_state(self) -> list[StateFinding]:
        """``SAFE:STAT?``: STOPPED is idle with the output discharged; RUNNING is a test in its
        ramp, dwell or automatic discharge (HV may be on the leads)."""
        status = await self._status()
        if status == "STOPPED":
            return [StateFinding("test", True, "idle, output discharged (SAFE:STAT? STOPPED)")]
        return [StateFinding("test", False, "test RUNNING: HV on the leads or discharging (SAFE:STAT? RUNNING)")]

    # -- sequence --------------------------------------------------------------------------
    def _check_ramp(self, ramp: float) -> float:
        if ramp == 0 and not isinstance(ramp, bool):
            return 0.0  # 0 = ramp off
        return RAMP.check(ramp, what="ramp", instrument=self.name)

    async def _run(self, mode: str, program: list[str], duration: float, *,
                   live: bool) -> tuple[int, float, tuple[tuple[float, float], ...]]:
        """Program step 1, start, poll until STOPPED; return (code, final reading, samples)."""
        transport = self._transport(program[0])
        count = await self._query_int(self._read_row("steps").command, low=0, high=999)
        commands = [self._command("delete")] * count + program
        for command in commands:
            await transport.write(command)
        await self._check_errors("; ".join(commands))
        await transport.write(self._command("start"))
        try:
            # A refused start would leave the previous run's result to be read back as ours.
            await self._check_errors("SAFE:STAR")
            samples = await self._wait(duration, live)
        except BaseException as exc:
            await self._stop_after(exc)
            raise
        code = await self._result_code(mode)
        value = await self._query_float(self._read_row("final").command)
        return code, value, samples

    async def _wait(self, duration: float, live: bool) -> tuple[tuple[float, float], ...]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        limit = duration + DISCHARGE_S + max(2.0, self.timeout)
        samples: list[tuple[float, float]] = []
        while await self._status() == "RUNNING":
            if live:
                value = await self._query_float(self._read_row("live").command)
                samples.append((loop.time() - start, value))
            if loop.time() - start >= limit:
                raise InstrumentTimeout(f"test still RUNNING after {limit:g} s", instrument=self.name, command="SAFE:STAT?")
            await asyncio.sleep(self.poll)
        return tuple(samples)

    async def _stop_after(self, exc: BaseException) -> None:
        # HV must not stay on because we gave up waiting; the caller still sees ``exc``.
        try:
            await self.stop()
        except InstrumentError as stop_exc:
            exc.add_note(f"{self.name}: SAFE:STOP after the error also failed: {stop_exc}")

    async def _result_code(self, mode: str) -> int:
        reply = await self._query("SAFE:RES:ALL?")
        try:
            code = int(reply.split(",")[0])
        except ValueError:
            raise ProtocolError(f"result code {reply[:40]!r} is not an integer", instrument=self.name, command="SAFE:RES:ALL?") from None
        if code == PASS or code in FAIL_CODES[mode].values():
            return code
        what = NOT_JUDGED.get(code) or RESULT_CODES.get(code) or "unknown code"
        raise DeviceError(f"{mode} step not judged: {code} {what}", code=code, instrument=self.name, command="SAFE:RES:ALL?")

    async def _status(self) -> str:
        reply = (await self._query("SAFE:STAT?")).strip().upper()
        if reply not in ("RUNNING", "STOPPED"):
            raise ProtocolError(f"status {reply[:40]!r} is not RUNNING|STOPPED", instrument=self.name, command="SAFE:STAT?")
        return reply
