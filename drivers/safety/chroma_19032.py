"""Chroma 19032 electrical safety analyzer: insulation, withstand (hipot) and ground bond.

Step-based SCPI; the driver always programs a one-step list (step 1). Command table (what
the driver sends; ``sim/instruments/chroma_19032.py`` serves the same):

==================================  ===================================================
``SAFE:SNUM?``                      number of programmed steps
``SAFE:STEP 1:DEL``                 delete step 1 (the rest move up); sent ``SNUM`` times
                                    so no step left from a front-panel program runs
``SAFE:STEP 1:IR <V>``              step 1 = insulation resistance at <V> DC
``SAFE:STEP 1:IR:LIM <ohm>``        IR low limit
``SAFE:STEP 1:IR:TIME <s>``         IR dwell
``SAFE:STEP 1:IR:TIME:RAMP <s>``    IR ramp (the manual's spelling; the sim also takes ``IR:RAMP``)
``SAFE:STEP 1:AC|DC <V>``           step 1 = withstand, AC (rms) or DC
``SAFE:STEP 1:AC|DC:LIM <A>``       leakage high limit
``SAFE:STEP 1:AC|DC:TIME[:RAMP]``   dwell / ramp (s)
``SAFE:STEP 1:GB <A>``              step 1 = ground bond at <A> (our extension of the dialect)
``SAFE:STEP 1:GB:LIM <ohm>``        bond resistance high limit
``SAFE:STEP 1:GB:TIME <s>``         bond dwell
``SYST:ERR?``                       read once after programming and once after ``SAFE:STAR``;
                                    anything but 0 → DeviceError naming the commands
``SAFE:STAR`` / ``SAFE:STOP``       start / stop (stop is idempotent)
``SAFE:STAT?``                      ``RUNNING`` (ramp, dwell, discharge) or ``STOPPED``
``SAFE:FETC? MMET``                 live reading while RUNNING (ohm, A), e.g. ``+1.234000E+08``
``SAFE:RES:ALL?``                   result code per step, see ``RESULT_CODES``
``SAFE:RES:ALL:MMET?``              final reading per step, ``+5.230000E+08``
==================================  ===================================================

Ranges (19032-class figures): IR 50–1000 V DC, low limit 10 kΩ–50 GΩ; AC 50–5000 V, ≤ 40 mA;
DC 50–6000 V, ≤ 10 mA; bond 3–40 A, high limit 0.1–600 mΩ; dwell 0.3–999 s; ramp 0 (off) or
0.1–999 s. Option ``poll`` (s, default 0.5) sets how often status and live reading are read.
"""

from __future__ import annotations

import asyncio

from drivers.base import IDENTITY_OPTIONS
from drivers.scpi import ScpiDriver, scpi_number
from drivers.capabilities import BondResult, IrResult, SafeAction, StateFinding, WithstandResult
from drivers.errors import DeviceError, InstrumentError, InstrumentTimeout, ProtocolError
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


class Chroma19032(ScpiDriver):
    """``InsulationTester`` for a Chroma 19032; ``name`` is the station role used in every error."""

    OPTIONS = IDENTITY_OPTIONS | {"poll"}

    def __init__(self, name: str, resource: str, **kw) -> None:
        super().__init__(name, resource, **kw)
        self.poll = POLL.check(float(self.options.get("poll", 0.5)), what="option poll", instrument=name)

    # -- tests -----------------------------------------------------------------------------
    async def insulation(self, voltage: float, dwell: float, low_limit: float, ramp: float = 1.0) -> IrResult:
        """IR at ``voltage`` V DC for ``dwell`` s after ``ramp`` s; pass when ≥ ``low_limit`` ohm."""
        v = IR_VOLTS.check(voltage, what="IR voltage", instrument=self.name)
        d = DWELL.check(dwell, what="IR dwell", instrument=self.name)
        lim = IR_LIMIT.check(low_limit, what="IR low limit", instrument=self.name)
        r = self._check_ramp(ramp)
        program = [
            f"SAFE:STEP 1:IR {scpi_number(v)}",
            f"SAFE:STEP 1:IR:LIM {scpi_number(lim)}",
            f"SAFE:STEP 1:IR:TIME {scpi_number(d)}",
            f"SAFE:STEP 1:IR:TIME:RAMP {scpi_number(r)}",
        ]
        code, value, samples = await self._run("IR", program, r + d, live=True)
        return IrResult(resistance=value, passed=code == PASS, code=code, samples=samples)

    async def withstand(self, mode: str, voltage: float, dwell: float, leakage_limit: float, ramp: float = 1.0) -> WithstandResult:
        """Hipot, ``mode`` "AC"/"DC", at ``voltage`` V; pass when leakage ≤ ``leakage_limit`` A and no arc."""
        m = MODES.check(mode, what="withstand mode", instrument=self.name)
        v = WITHSTAND_VOLTS[m].check(voltage, what=f"{m} withstand voltage", instrument=self.name)
        d = DWELL.check(dwell, what="withstand dwell", instrument=self.name)
        lim = LEAKAGE_LIMIT[m].check(leakage_limit, what=f"{m} leakage limit", instrument=self.name)
        r = self._check_ramp(ramp)
        program = [
            f"SAFE:STEP 1:{m} {scpi_number(v)}",
            f"SAFE:STEP 1:{m}:LIM {scpi_number(lim)}",
            f"SAFE:STEP 1:{m}:TIME {scpi_number(d)}",
            f"SAFE:STEP 1:{m}:TIME:RAMP {scpi_number(r)}",
        ]
        code, value, samples = await self._run(m, program, r + d, live=True)
        return WithstandResult(leakage=value, arc=code in ARC_CODES, passed=code == PASS, code=code, samples=samples)

    async def ground_bond(self, current: float, dwell: float, high_limit: float) -> BondResult:
        """Bond at ``current`` A for ``dwell`` s; pass when ≤ ``high_limit`` ohm (4-wire)."""
        a = GB_AMPS.check(current, what="bond current", instrument=self.name)
        d = DWELL.check(dwell, what="bond dwell", instrument=self.name)
        lim = GB_LIMIT.check(high_limit, what="bond high limit", instrument=self.name)
        program = [
            f"SAFE:STEP 1:GB {scpi_number(a)}",
            f"SAFE:STEP 1:GB:LIM {scpi_number(lim)}",
            f"SAFE:STEP 1:GB:TIME {scpi_number(d)}",
        ]
        code, value, _ = await self._run("GB", program, d, live=False)
        return BondResult(resistance=value, passed=code == PASS, code=code)

    async def stop(self) -> None:
        """Stop any running test (``SAFE:STOP``); harmless when stopped."""
        await self._transport("SAFE:STOP").write("SAFE:STOP")

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

    async def _run(self, mode: str, program: list[str], duration: float, *, live: bool) -> tuple[int, float, tuple]:
        """Program step 1, start, poll until STOPPED; return (code, final reading, samples)."""
        transport = self._transport(program[0])
        count = await self._query_int("SAFE:SNUM?", low=0, high=999)
        commands = ["SAFE:STEP 1:DEL"] * count + program
        for command in commands:
            await transport.write(command)
        await self._check_errors("; ".join(commands))
        await transport.write("SAFE:STAR")
        try:
            # A refused start would leave the previous run's result to be read back as ours.
            await self._check_errors("SAFE:STAR")
            samples = await self._wait(duration, live)
        except BaseException as exc:
            await self._stop_after(exc)
            raise
        code = await self._result_code(mode)
        value = await self._query_float("SAFE:RES:ALL:MMET?")
        return code, value, samples

    async def _wait(self, duration: float, live: bool) -> tuple[tuple[float, float], ...]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        limit = duration + DISCHARGE_S + max(2.0, self.timeout)
        samples: list[tuple[float, float]] = []
        while await self._status() == "RUNNING":
            if live:
                value = await self._query_float("SAFE:FETC? MMET")
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
