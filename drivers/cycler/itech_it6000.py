"""ITECH IT6000C bidirectional DC source/sink as a pack cycler (SCPI over LAN/serial).

The commands it sends are the rows of ``TABLE`` (rendered in ``docs/instrument-commands.md``);
settings are followed by one ``SYST:ERR?`` each; the readings go as one compound query.

Default ranges suit a 1000 V / ±450 A pack-cycler cabinet; set ``v_max``, ``i_charge_max``
and ``i_discharge_max`` (V, A) in ``options`` to match the installed model.

Communication watchdog: ``open()`` sends ``SYST:WDOG <watchdog>`` (option ``watchdog``, s,
default 5; 0 = leave the instrument's setting alone). With the output on and no command for
that long, the source switches its output off by itself and latches ``WDT`` in
``STAT:QUES:COND?``: a station that dies mid-charge (SIGKILL, power loss, cable) stops the
source within the timeout. A charge polls every few seconds, so keep the timeout above the
plan's longest silence with the output on. ``SYST:WDOG`` is the command of this project's
simulator; the IT6000-family programming guides we could consult do not document a
communication watchdog command in the parts available to us, so check the installed
firmware's guide at commissioning: an instrument that does not know the command answers
``-113 Undefined header`` and ``open()`` fails naming ``SYST:WDOG`` (set ``watchdog: 0`` to
run without it, or give the site's equivalent command in option ``watchdog_command``, with
``{}`` where the seconds go). The latched ``WDT`` is reported by ``energy_state()`` and cleared
by the station's start-up check only once the fixture is confirmed safe.
"""

from __future__ import annotations

import math
from typing import Any

from drivers.base.readout import fixed
from drivers.capabilities import CYCLER_IDLE_A, CyclerReading, SafeAction, StateFinding
from drivers.errors import InstrumentError, ProtocolError, RangeError
from drivers.scpi import ScpiDriver, scpi_number
from drivers.scpi_table import Checked, Reading, Setting, Table
from drivers.validators import OneOf, Range

# STAT:QUES:COND? bits, shared with sim/instruments/itech_it6000.py so both sides agree.
PROTECTION_BITS: dict[str, int] = {
    "OVP": 1 << 0,  # terminal voltage above VOLT:PROT
    "OCP": 1 << 1,  # |current| above CURR:PROT
    "OTP": 1 << 4,  # heatsink over temperature
    "WDT": 1 << 11,  # control watchdog: no command within SYST:WDOG seconds
}


TABLE = Table("ITECH IT6000C (`itech_it6000`)", {
    "voltage": Setting("VOLT {}", Checked("options v_min … v_max (0 … 1000)"), "V", "CV setpoint"),
    "current": Setting("CURR {}", Checked("-i_discharge_max … i_charge_max (±450)"), "A",
                       "CC setpoint, + charge / - discharge"),
    "limit_pos": Setting("CURR:LIM {}", Checked("0 … option i_charge_max (450)"), "A", "charge (source) current limit"),
    "limit_neg": Setting("CURR:LIM:NEG {}", Checked("0 … option i_discharge_max (450), sent negative"), "A",
                         "discharge (sink) current limit",
                         format=lambda amps: scpi_number(-amps)),
    "output": Setting("OUTP {}", OneOf(("ON", "OFF")), "", "output relay", format=str),
    "reset_ah": Setting("SENS:AH:RES", None, "", "zero the Ah counter"),
    "clear": Setting("PROT:CLE", None, "", "clear latched protection (output stays off)"),
    "output_state": Reading("OUTP?", str, "", "output relay: 1/ON or 0/OFF"),
    "voltage_read": Reading("MEAS:VOLT?", float, "V", "terminal voltage"),
    "current_read": Reading("MEAS:CURR?", float, "A", "terminal current, + into the pack"),
    "power_read": Reading("FETC:POW?", float, "W", "power, + into the pack"),
    "ah_read": Reading("FETC:AH?", float, "Ah", "Ah since SENS:AH:RES, + into the pack"),
    "protection": Reading("STAT:QUES:COND?", int, "bits", "protection bitmask (PROTECTION_BITS)"),
})
MEASURE_ALL = ";:".join(TABLE[k].command for k in ("voltage_read", "current_read", "power_read", "ah_read"))
PROTECTION = TABLE["protection"].command
WATCHDOG_COMMAND = "SYST:WDOG {}"
WATCHDOG_S = Range(0.0, 3600.0, "s")


class ItechIT6000(ScpiDriver):
    """``Cycler`` for an ITECH IT6000C; ``name`` is the station role used in every error."""

    maker = "ITECH"
    TABLE = TABLE

    def __init__(self, name: str, resource: str, **kw: Any) -> None:
        super().__init__(name, resource, **kw)
        opt = self.options
        self.voltage_range = Range(float(opt.get("v_min", 0.0)), float(opt.get("v_max", 1000.0)), "V")
        self.charge_range = Range(0.0, float(opt.get("i_charge_max", 450.0)), "A")
        self.discharge_range = Range(0.0, float(opt.get("i_discharge_max", 450.0)), "A")
        self.current_range = Range(-self.discharge_range.high, self.charge_range.high, "A")
        self.watchdog = WATCHDOG_S.check(float(opt.get("watchdog", 5.0)), what="option watchdog", instrument=name)
        self.watchdog_command = str(opt.get("watchdog_command", WATCHDOG_COMMAND))
        if self.watchdog_command.count("{}") != 1:
            raise RangeError(f"option watchdog_command {self.watchdog_command!r} needs one '{{}}' for the seconds",
                                instrument=name)

    async def open(self) -> None:
        """Connect, ``*CLS``, then arm the communication watchdog (``SYST:WDOG <s>``) unless
        option ``watchdog`` is 0; a refusal raises ``DeviceError`` naming the command."""
        await super().open()
        if self.watchdog > 0:
            await self._set(self.watchdog_command.format(scpi_number(self.watchdog)))

    # -- setpoints -------------------------------------------------------------------------
    async def set_output(self, on: bool) -> None:
        await self._set(self._command("output", "ON" if on else "OFF"))

    async def set_voltage(self, volts: float) -> None:
        """CV setpoint (V)."""
        await self._set(self._command("voltage", volts, validator=self.voltage_range, what="voltage setpoint"))

    async def set_current(self, amps: float) -> None:
        """CC setpoint (A), + charge / - discharge."""
        await self._set(self._command("current", amps, validator=self.current_range, what="current setpoint"))

    async def set_current_limits(self, charge_a: float, discharge_a: float) -> None:
        """Charge and discharge limit magnitudes (A); both checked before either is sent."""
        charge = self._command("limit_pos", charge_a, validator=self.charge_range, what="charge current limit")
        discharge = self._command("limit_neg", discharge_a, validator=self.discharge_range, what="discharge current limit")
        await self._set(charge)
        await self._set(discharge)

    async def reset_counters(self) -> None:
        await self._set(self._command("reset_ah"))

    async def clear_protection(self) -> None:
        await self._set(self._command("clear"))

    # -- readings --------------------------------------------------------------------------
    async def output_on(self) -> bool:
        """``OUTP?`` → True when the output relay is closed."""
        query = self._read_row("output_state").command
        reply = await self._query(query)
        if reply.strip().upper() in ("1", "ON"):
            return True
        if reply.strip().upper() in ("0", "OFF"):
            return False
        raise ProtocolError(f"unexpected reply {reply!r}", instrument=self.name, command=query)

    async def measure(self) -> CyclerReading:
        """Terminal V, A and W, and the Ah counter, in one compound query (one round trip).

        A charge polls this every few seconds for a quarter of an hour: four separate queries
        cost four round trips through pyvisa's worker thread each time.
        """
        reply = await self._query(MEASURE_ALL)
        return self._reading(reply.split(";"), reply, MEASURE_ALL)

    async def protection(self) -> frozenset[str]:
        """Active trips by name (``OVP``, ``OCP``, ``OTP``, ``WDT``; unknown bits as ``BITn``)."""
        reply = await self._query(PROTECTION)
        return self._trips(reply, PROTECTION)

    async def measure_and_protection(self) -> tuple[CyclerReading, frozenset[str]]:
        """The reading and the trips in one compound query: a charge's poll was two round trips
        through pyvisa's worker thread (~0.6 ms each here), 1,436 of the bus-700 run's 1,767."""
        command = f"{MEASURE_ALL};:{PROTECTION}"
        reply = await self._query(command)
        parts = reply.split(";")
        if len(parts) != 5:
            raise ProtocolError(f"expected 5 answers, got {reply[:80]!r}", instrument=self.name, command=command)
        return self._reading(parts[:4], reply, command), self._trips(parts[4], command)

    def _reading(self, parts: list[str], reply: str, command: str) -> CyclerReading:
        values = []
        for part in parts:
            try:
                value = float(part)
            except ValueError:
                value = float("nan")
            values.append(value)
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            raise ProtocolError(f"expected 4 numbers, got {reply[:60]!r}", instrument=self.name, command=command)
        return CyclerReading(voltage=values[0], current=values[1], power=values[2], ah=values[3])

    def _trips(self, reply: str, command: str) -> frozenset[str]:
        try:
            word = int(float(reply))
        except (ValueError, OverflowError):  # garbage, or 'inf' (a float that is no word)
            raise ProtocolError(f"not a number: {reply!r}", instrument=self.name, command=command) from None
        known = {name for name, bit in PROTECTION_BITS.items() if word & bit}
        rest = word & ~sum(PROTECTION_BITS.values())
        return frozenset(known | {f"BIT{n}" for n in range(rest.bit_length()) if rest >> n & 1})

    # -- safety ----------------------------------------------------------------------------
    async def safe_state(self) -> list[SafeAction]:
        """Output off, then current setpoint 0 A (each acknowledged by an empty error queue),
        then ``OUTP?`` read back: "output off" is confirmed only when it answers 0. Every step
        is tried even if one fails; the first failure is raised after. Idempotent."""
        done: list[SafeAction] = []
        first: InstrumentError | None = None
        for command, what in (("OUTP OFF", "output off"), ("CURR 0", "current setpoint 0 A")):
            try:
                await self._set(command)
                done.append(SafeAction(f"{what} ({command}, no error)", True))
            except InstrumentError as exc:
                first = first or exc
        if done and done[0].action.startswith("output off"):
            try:
                on = await self.output_on()
                done[0] = SafeAction(f"output off ({'OUTP? 1: STILL ON' if on else 'OUTP? 0'})", not on)
            except InstrumentError as exc:
                done[0] = SafeAction("output off (OUTP OFF acknowledged; OUTP? unanswered)", False)
                first = first or exc
        if first is not None:
            raise first
        return done

    async def energy_state(self) -> list[StateFinding]:
        """Output relay (``OUTP?``), terminal current and voltage, latched protections."""
        on = await self.output_on()
        reading, trips = await self.measure_and_protection()
        amps_safe = abs(reading.current) <= CYCLER_IDLE_A
        findings = [
            StateFinding("output", not on, f"output {'ON' if on else 'off'} (OUTP? {int(on)})"),
            StateFinding("current", amps_safe, f"{fixed(reading.current, 2)} A at {fixed(reading.voltage)} V on the terminals"),
        ]
        if trips:
            names = tuple(sorted(trips))
            findings.append(StateFinding("protection", False, f"latched protection {'/'.join(names)}", latched=names))
        else:
            findings.append(StateFinding("protection", True, "no protection latched"))
        return findings
