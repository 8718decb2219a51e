"""Keysight 34465A digital multimeter, DC voltage (SCPI over LAN, raw socket 5025).

The commands it sends are the rows of ``TABLE`` (rendered in ``docs/instrument-commands.md``):
``CONF:VOLT:DC <range>|AUTO`` (like the real meter, CONF also resets NPLC to its default, 10),
``VOLT:DC:NPLC <n>``, ``READ?`` (``+4.01234567E+02``; ``±9.9E+37`` = overload) and
``SYST:ERR?`` once after every setting command. CONF and NPLC are only sent when they change,
so repeated readings cost one query each.
"""

from __future__ import annotations

import math
from typing import Any

from drivers.base.readout import fixed
from drivers.capabilities import SAFE_BUS_V, SafeAction, StateFinding
from drivers.errors import DeviceError, ProtocolError
from drivers.scpi import ScpiDriver
from drivers.scpi_table import Reading, Setting, Table
from drivers.validators import OneOf, Range

RANGES_V = (0.1, 1.0, 10.0, 100.0, 1000.0)
NPLC_RANGE = Range(0.02, 100.0, "PLC")
DEFAULT_NPLC = 10.0  # what CONF leaves behind
OVERLOAD = 9.9e37
# One power-line cycle at 50 Hz (the longer of 50/60 Hz); autozero doubles the integration.
PLC_S = 0.020


def _g(value: float) -> str:
    return format(value, "g")


TABLE = Table("Keysight 34465A (`keysight_34465a`)", {
    "range": Setting("CONF:VOLT:DC {}", OneOf(RANGES_V), "V", "DC volts on a fixed range (resets NPLC to 10)", format=_g),
    "autorange": Setting("CONF:VOLT:DC AUTO", None, "", "DC volts, autorange (resets NPLC to 10)"),
    "nplc": Setting("VOLT:DC:NPLC {}", NPLC_RANGE, "PLC", "integration time in power-line cycles", format=_g),
    "read": Reading("READ?", float, "V", "one reading; ±9.9E+37 = overload"),
})


class Keysight34465A(ScpiDriver):
    """``Dmm`` for a Keysight 34465A; ``name`` is the station role used in every error."""

    TABLE = TABLE

    def __init__(self, name: str, resource: str, **kw: Any) -> None:
        super().__init__(name, resource, **kw)
        self._range: float | str | None = None  # last CONF sent (None = unknown)
        self._nplc: float | None = None

    async def open(self) -> None:
        """Connect and clear stale entries from the error queue (``*CLS``)."""
        await super().open()
        self._range = self._nplc = None

    async def measure_dc_voltage(self, range_v: float | None = None, nplc: float = 10.0) -> float:
        """One DC voltage reading (V) on ``range_v`` (None = autorange) at ``nplc``.

        Raises ``DeviceError`` (code ``"overload"``) when the input exceeds the range.
        """
        if range_v is None:
            conf: float | str = "AUTO"
            command = self._command("autorange")
        else:
            conf = float(range_v)
            command = self._command("range", conf, what="DC voltage range (V)")
        n = NPLC_RANGE.check(nplc, what="NPLC", instrument=self.name)
        if conf != self._range:
            self._range = self._nplc = None  # unknown until the device accepted it
            await self._set(command)
            self._range, self._nplc = conf, DEFAULT_NPLC
        if n != self._nplc:
            self._nplc = None
            await self._set(self._command("nplc", n, what="NPLC"))
            self._nplc = n
        read = self._read_row("read").command
        reply = await self._transport(read).query(read, timeout=self.timeout + 2 * n * PLC_S)
        try:
            value = float(reply)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ProtocolError(f"not a number: {reply[:40]!r}", instrument=self.name, command="READ?")
        if abs(value) >= OVERLOAD:
            raise DeviceError(f"overload on the {conf} V range", code="overload", instrument=self.name, command="READ?")
        return value

    async def safe_state(self) -> list[SafeAction]:
        """A DMM sources nothing: no I/O, one line saying so (confirmed: there is nothing that
        could be left on)."""
        return [SafeAction("measurement only, nothing to switch off", True)]

    async def energy_state(self) -> list[StateFinding]:
        """The HV bus voltage on the 1000 V range at 1 NPLC: safe below ``SAFE_BUS_V`` (60 V)."""
        volts = await self.measure_dc_voltage(1000.0, 1.0)
        safe = abs(volts) < SAFE_BUS_V
        return [StateFinding("bus voltage", safe, f"bus {fixed(volts)} V ({'<' if safe else '>='} {SAFE_BUS_V:g} V)")]
