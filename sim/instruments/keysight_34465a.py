"""Simulated Keysight 34465A measuring the pack's HV bus voltage (DC volts only).

``READ?`` integrates for NPLC × 20 ms on the loop clock before it answers, adds seeded
Gaussian noise scaled to the range and NPLC, and reports ``±9.9E+37`` beyond 120 % of the
range, as the real meter does. ``CONF`` resets NPLC to 10 like the real one.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np

from sim.scpi.server import ScpiError, ScpiInstrument, parse_float

RANGES_V = (0.1, 1.0, 10.0, 100.0, 1000.0)
PLC_S = 0.020  # one power-line cycle at 50 Hz
OVERRANGE = 1.2
OVERLOAD = 9.9e37
# Noise (1 sigma) as a fraction of range at 10 PLC; shorter integration is noisier (√ law).
NOISE_AT_10PLC = 1e-6


def reading(value: float) -> str:
    """The 34465A reply format: ``+4.01234567E+02``."""
    return f"{value:+.8E}"


def _optional_combinations(spec: str) -> list[str]:
    """``"[A:]B[:C]"`` -> ``["B", "B:C", "A:B", "A:B:C"]`` (bracket-free specs)."""
    head, bracket, rest = spec.partition("[")
    if not bracket:
        return [spec]
    inner, _, tail = rest.partition("]")
    return [head + choice + more for choice in ("", inner) for more in _optional_combinations(tail)]


class _DelayedWriter:
    """Holds a connection's replies until the meter's integration time has passed.

    The base server writes replies synchronously after ``execute``; this proxy makes its
    ``drain()`` wait for the pending integration time first, so ``READ?`` answers late.
    """

    def __init__(self, writer: asyncio.StreamWriter, meter: "SimKeysightDmm") -> None:
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
        c = self._command
        c("CONFigure:VOLTage[:DC]", lambda s, a: self._configure(a))
        c("CONFigure?", lambda s, a: f'"VOLT {reading(self.range or 1000.0)},{reading(self.range_value() * 1e-8)}"')
        c("[SENSe:]VOLTage[:DC]:NPLCycles", lambda s, a: self._set_nplc(a))
        c("[SENSe:]VOLTage[:DC]:NPLCycles?", lambda s, a: reading(self.nplc))
        c("[SENSe:]VOLTage[:DC]:RANGe?", lambda s, a: reading(self.range_value()))
        c("READ?", lambda s, a: self._read())
        c("MEASure:VOLTage[:DC]?", lambda s, a: (self._configure(a), self._read())[1])

    def _command(self, spec: str, handler) -> None:
        # The base table expands "[A:]B[:C]" to all-or-none of the optional parts; the meter
        # also accepts any mix (VOLT:DC:NPLC, SENS:VOLT:NPLC), so register every combination.
        for variant in _optional_combinations(spec):
            self.command(variant, handler)

    def reset(self) -> None:
        """``*RST``: DC volts, autorange, 10 PLC."""
        self.range: float | None = None  # None = autorange
        self.nplc = 10.0

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
        elif first == "MIN":
            self.range = RANGES_V[0]
        elif first == "MAX":
            self.range = RANGES_V[-1]
        else:
            wanted = abs(parse_float(first, what="range"))
            chosen = next((r for r in RANGES_V if wanted <= r), None)
            if chosen is None:
                raise ScpiError(-222, "Data out of range")
            self.range = chosen
        self.nplc = 10.0

    def _set_nplc(self, arg: str) -> None:
        if not arg.strip():
            raise ScpiError(-109, "Missing parameter")
        value = parse_float(arg, what="NPLC")
        if not 0.02 <= value <= 100.0:
            raise ScpiError(-222, "Data out of range")
        self.nplc = value

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
