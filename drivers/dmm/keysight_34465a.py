"""Keysight 34465A digital multimeter, DC voltage (SCPI over LAN, raw socket 5025).

Command table:

=========================  ==============================================================
``CONF:VOLT:DC <range>``   DC volts on a fixed range (0.1, 1, 10, 100, 1000 V) or ``AUTO``;
                           like the real meter, CONF also resets NPLC to its default, 10
``VOLT:DC:NPLC <n>``       integration time in power-line cycles, 0.02 … 100
``READ?``                  one reading, ``+4.01234567E+02``; ``±9.9E+37`` = overload
``SYST:ERR?``              error queue, read once after every setting command
=========================  ==============================================================

CONF and NPLC are only sent when they change, so repeated readings cost one query each.
"""

from __future__ import annotations

import math

from drivers.capabilities import SAFE_BUS_V, SafeAction, StateFinding
from drivers.errors import DeviceError, ProtocolError
from drivers.scpi import ScpiDriver
from drivers.validators import OneOf, Range

RANGES_V = (0.1, 1.0, 10.0, 100.0, 1000.0)
NPLC_RANGE = Range(0.02, 100.0, "PLC")
DEFAULT_NPLC = 10.0  # what CONF leaves behind
OVERLOAD = 9.9e37
# One power-line cycle at 50 Hz (the longer of 50/60 Hz); autozero doubles the integration.
PLC_S = 0.020


class Keysight34465A(ScpiDriver):
    """``Dmm`` for a Keysight 34465A; ``name`` is the station role used in every error."""

    def __init__(self, name: str, resource: str, **kw) -> None:
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
        else:
            conf = float(OneOf(RANGES_V).check(float(range_v), what="DC voltage range (V)", instrument=self.name))
        n = NPLC_RANGE.check(nplc, what="NPLC", instrument=self.name)
        if conf != self._range:
            self._range = self._nplc = None  # unknown until the device accepted it
            await self._set(f"CONF:VOLT:DC {conf if isinstance(conf, str) else format(conf, 'g')}")
            self._range, self._nplc = conf, DEFAULT_NPLC
        if n != self._nplc:
            self._nplc = None
            await self._set(f"VOLT:DC:NPLC {format(n, 'g')}")
            self._nplc = n
        reply = await self._transport("READ?").query("READ?", timeout=self.timeout + 2 * n * PLC_S)
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
        return [StateFinding("bus voltage", safe, f"bus {volts:.1f} V ({'<' if safe else '>='} {SAFE_BUS_V:g} V)")]
