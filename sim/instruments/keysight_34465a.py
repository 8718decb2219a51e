"""Simulated Keysight 34465A measuring the pack's HV bus voltage (DC volts only).

``READ?`` integrates for NPLC × 20 ms on the loop clock before it answers, adds seeded
Gaussian noise scaled to the range and NPLC, and reports ``±9.9E+37`` beyond 120 % of the
range, as the real meter does. ``CONF`` resets NPLC to 10 like the real one. The trigger model
of the Truevolt guide is served too (``TRIG:SOUR IMM|BUS|EXT|INT``, ``TRIG:COUN``, ``SAMP:COUN``,
``INIT``, ``*TRG``, ``FETC?``), checked against ``tests/data/manuals/keysight_34465a.txt``.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np

from sim.scpi.server import ScpiError, ScpiInstrument, parse_number

RANGES_V = (0.1, 1.0, 10.0, 100.0, 1000.0)
PLC_S = 0.020  # one power-line cycle at 50 Hz
OVERRANGE = 1.2
OVERLOAD = 9.9e37
# Noise (1 sigma) as a fraction of range at 10 PLC; shorter integration is noisier (√ law).
NOISE_AT_10PLC = 1e-6


def reading(value: float) -> str:
    """The 34465A reply format: ``+4.01234567E+02``."""
    return f"{value:+.8E}"


class _DelayedWriter:
    """Holds a connection's replies until the meter's integration time has passed.

    The base server writes replies synchronously after ``execute``; this proxy makes its
    ``drain()`` wait for the pending integration time first, so ``READ?`` answers late.
    """

    def __init__(self, writer: asyncio.StreamWriter, meter: SimKeysightDmm) -> None:
        self._writer = writer
        self._meter = meter
        self._buffer: list[bytes] = []

    def write(self, data: bytes) -> None:
        self._buffer.append(data)

    async def drain(self) -> None:
        delay, self._meter.pending_delay = self._meter.pending_delay, 0.0
        if delay > 0:
            await asyncio.sleep(delay)
        for data in self._buffer:
            self._writer.write(data)
        self._buffer.clear()
        await self._writer.drain()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class SimKeysightDmm(ScpiInstrument):
    """34465A peer reading ``pack.bus_voltage()`` (V); ``seed`` fixes the noise sequence."""

    def __init__(self, pack: Any, *, seed: int = 0, serial: str = "MY60012345", firmware: str = "A.03.02-03.15-03.01-00.52-04-02") -> None:
        super().__init__()
        self.pack = pack
        self.rng = np.random.default_rng(seed)
        self.identity = f"Keysight Technologies,34465A,{serial},{firmware}"
        self.pending_delay = 0.0  # s of integration the next reply waits for
        self.reset()
        c = self.command
        c("CONFigure:VOLTage[:DC]", lambda s, a: self._configure(a))
        c("CONFigure?", lambda s, a: f'"VOLT {reading(self.range or 1000.0)},{reading(self.range_value() * 1e-8)}"')
        c("[SENSe:]VOLTage[:DC]:NPLCycles", lambda s, a: self._set_nplc(a))
        c("[SENSe:]VOLTage[:DC]:NPLCycles?", lambda s, a: reading(self.nplc))
        c("[SENSe:]VOLTage[:DC]:RANGe", lambda s, a: self._set_range(a))
        c("[SENSe:]VOLTage[:DC]:RANGe?", lambda s, a: reading(self.range_value()))
        c("[SENSe:]VOLTage[:DC]:RANGe:AUTO", lambda s, a: self._set_auto(a))
        c("[SENSe:]VOLTage[:DC]:RANGe:AUTO?", lambda s, a: "1" if self.range is None else "0")
        c("TRIGger:SOURce", lambda s, a: self._set_trigger(a))
        c("TRIGger:SOURce?", lambda s, a: self.trigger_source)
        c("TRIGger:COUNt", lambda s, a: self._set_count("trigger_count", a))
        c("TRIGger:COUNt?", lambda s, a: reading(self.trigger_count))
        c("TRIGger:DELay", lambda s, a: self._set_delay(a))
        c("TRIGger:DELay?", lambda s, a: reading(self.trigger_delay))
        c("SAMPle:COUNt", lambda s, a: self._set_count("sample_count", a))
        c("SAMPle:COUNt?", lambda s, a: reading(self.sample_count))
        c("INITiate[:IMMediate]", lambda s, a: self._initiate())
        c("*TRG", lambda s, a: self._trigger())
        c("FETCh?", lambda s, a: self._fetch())
        c("READ?", lambda s, a: self._read())
        c("MEASure:VOLTage[:DC]?", lambda s, a: (self._configure(a), self._read())[1])

    def reset(self) -> None:
        """``*RST``: DC volts, autorange, 10 PLC, immediate trigger, one sample, no readings."""
        self.range: float | None = None  # None = autorange
        self.nplc = 10.0
        self.trigger_source = "IMM"
        self.trigger_count = 1.0
        self.sample_count = 1.0
        self.trigger_delay = 0.0
        self.armed = False  # INITiate'd and waiting for a BUS trigger
        self.memory: list[str] = []  # readings taken after INITiate, for FETCh?

    def range_value(self) -> float:
        """The range in use (V): fixed, or the one autorange picks for the present input."""
        if self.range is not None:
            return self.range
        value = abs(self.pack.bus_voltage())
        return next((r for r in RANGES_V if value <= r * OVERRANGE), RANGES_V[-1])

    def _configure(self, arg: str) -> None:
        first = arg.split(",")[0].strip().upper()
        if first in ("", "AUTO", "DEF", "DEFAULT"):
            self.range = None
        else:
            self._set_range(first)
        self.nplc = 10.0

    def _set_range(self, arg: str) -> None:
        """``VOLT:DC:RANG {<range>|MIN|MAX|DEF}``: the smallest range that holds the value."""
        wanted = abs(parse_number(arg, what="range", unit="V", low=RANGES_V[0], high=RANGES_V[-1],
                                  default=RANGES_V[-1]))
        chosen = next((r for r in RANGES_V if wanted <= r), None)
        if chosen is None:
            raise ScpiError(-222, "Data out of range")
        self.range = chosen

    def _set_auto(self, arg: str) -> None:
        state = arg.strip().upper()
        if state in ("ON", "1", "ONCE"):
            self.range = None if state != "ONCE" else self.range_value()
        elif state in ("OFF", "0"):
            self.range = self.range_value()
        else:
            raise ScpiError(-224, "Illegal parameter value")

    def _set_nplc(self, arg: str) -> None:
        value = parse_number(arg, what="NPLC", low=0.02, high=100.0, default=10.0)
        if not 0.02 <= value <= 100.0:
            raise ScpiError(-222, "Data out of range")
        self.nplc = value

    def _set_trigger(self, arg: str) -> None:
        source = {"IMM": "IMM", "IMMEDIATE": "IMM", "BUS": "BUS", "EXT": "EXT", "EXTERNAL": "EXT",
                  "INT": "INT", "INTERNAL": "INT"}.get(arg.strip().upper())
        if source is None:
            raise ScpiError(-224, "Illegal parameter value")
        self.trigger_source = source

    def _set_count(self, attr: str, arg: str) -> None:
        value = parse_number(arg, what=attr, low=1.0, high=1e6, default=1.0)
        if value != int(value) or not 1 <= value <= 1e6:
            raise ScpiError(-222, "Data out of range")
        setattr(self, attr, value)

    def _set_delay(self, arg: str) -> None:
        value = parse_number(arg, what="trigger delay", unit="S", low=0.0, high=3600.0, default=0.0)
        if not 0.0 <= value <= 3600.0:
            raise ScpiError(-222, "Data out of range")
        self.trigger_delay = value

    def _initiate(self) -> None:
        """``INIT``: readings into memory now (IMM) or on ``*TRG`` (BUS)."""
        self.memory = []
        if self.trigger_source == "BUS":
            self.armed = True
        else:
            self._take()

    def _trigger(self) -> None:
        if not self.armed:
            raise ScpiError(-211, "Trigger ignored")
        self.armed = False
        self._take()

    def _take(self) -> None:
        self.memory = [self._read() for _ in range(int(self.trigger_count * self.sample_count))]

    def _fetch(self) -> str:
        if not self.memory:
            raise ScpiError(-230, "Data stale")
        return ",".join(self.memory)

    def _read(self) -> str:
        self.pending_delay += self.nplc * PLC_S
        true = self.pack.bus_voltage()
        span = self.range_value()
        if abs(true) > span * OVERRANGE:
            return reading(math.copysign(OVERLOAD, true))
        sigma = span * NOISE_AT_10PLC * math.sqrt(10.0 / self.nplc)
        return reading(true + float(self.rng.normal(0.0, sigma)))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await super()._serve(reader, _DelayedWriter(writer, self))  # type: ignore[arg-type]
