"""Simulated ITECH IT6000C source/sink driving the simulated pack, with protections and a watchdog.

Serves ITECH's SOURce/OUTPut/MEASure tree as the programming guides print it (optional nodes,
``MIN|MAX|DEF``, unit suffixes; ``tests/data/manuals/itech_it6000.txt``) over a raw SCPI socket;
the protection bits come from ``drivers/cycler/itech_it6000.py`` so both agree. Trips latch and open the output until ``PROT:CLE``:

- OVP: terminal voltage above ``VOLT:PROT`` while the output is on;
- OCP: |current| above ``CURR:PROT`` while the output is on;
- OTP: only by fault injection, ``trip("OTP")`` / ``trip_at(t, "OTP")``;
- WDT: no command for ``watchdog_s`` seconds (``SYST:WDOG <s>``, 0 = off) while the output is on.

The supervisor task runs on the event loop's clock (virtual or real) between ``start()`` and
``stop()``; it sleeps while the output is off.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from drivers.clock import stream_limit
from drivers.cycler.itech_it6000 import PROTECTION_BITS
from sim.scpi.server import ScpiError, ScpiInstrument, fmt, parse_number

_ON = {"ON": True, "1": True, "OFF": False, "0": False}


class SimItechCycler(ScpiInstrument):
    """IT6000C peer on ``pack`` (``sim.pack.model.Pack`` API); limits in V and A."""

    def __init__(
        self,
        pack: Any,
        *,
        v_max: float = 1000.0,
        i_max: float = 450.0,
        watchdog_s: float = 5.0,
        check_period: float = 1.0,
        serial: str = "800123456789012345",
        firmware: str = "1.06-1.04",
    ) -> None:
        super().__init__()
        self.pack = pack
        self.v_max = v_max
        self.i_max = i_max
        self.default_watchdog_s = watchdog_s
        # s between OVP/OCP checks while the output is on and no command arrives (every
        # command checks too); 1 s matches the pack model's own CV sub-step.
        self.check_period = check_period
        self.identity = f"ITECH Ltd., IT6015C-80-450, {serial}, {firmware}"
        self.trips: set[str] = set()
        self._output_on = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._last_activity: float | None = None
        self.reset()
        self._table()

    def reset(self) -> None:
        """``*RST``: output off, setpoints zero, limits and protections at full scale."""
        self.voltage = 0.0
        self.current = 0.0
        self.limit_pos = self.i_max
        self.limit_neg = -self.i_max
        self.ovp = self.v_max * 1.02
        self.ocp = self.i_max * 1.05
        self.watchdog_s = self.default_watchdog_s
        self.output = False
        self._output_on.clear()
        if self._task is not None:  # before start() there is no loop; start() applies it
            self._apply()

    def _table(self) -> None:
        c = self.command
        v, i = self.v_max, self.i_max
        c("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]", lambda s, a: self._setf("voltage", a, 0.0, v, "V"))
        c("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]?", lambda s, a: self._get("voltage", a, 0.0, v))
        c("[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]", lambda s, a: self._setf("current", a, -i, i, "A"))
        c("[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]?", lambda s, a: self._get("current", a, -i, i))
        c("[SOURce:]CURRent:LIMit[:POSitive][:IMMediate][:AMPLitude]", lambda s, a: self._setf("limit_pos", a, 0.0, i, "A"))
        c("[SOURce:]CURRent:LIMit[:POSitive][:IMMediate][:AMPLitude]?", lambda s, a: self._get("limit_pos", a, 0.0, i))
        c("[SOURce:]CURRent:LIMit:NEGative[:IMMediate][:AMPLitude]", lambda s, a: self._setf("limit_neg", a, -i, 0.0, "A"))
        c("[SOURce:]CURRent:LIMit:NEGative[:IMMediate][:AMPLitude]?", lambda s, a: self._get("limit_neg", a, -i, 0.0))
        c("[SOURce:]VOLTage:PROTection[:LEVel]", lambda s, a: self._setf("ovp", a, 0.0, v * 1.1, "V"))
        c("[SOURce:]VOLTage:PROTection[:LEVel]?", lambda s, a: self._get("ovp", a, 0.0, v * 1.1))
        c("[SOURce:]CURRent:PROTection[:LEVel]", lambda s, a: self._setf("ocp", a, 0.0, i * 1.1, "A"))
        c("[SOURce:]CURRent:PROTection[:LEVel]?", lambda s, a: self._get("ocp", a, 0.0, i * 1.1))
        c("OUTPut[:STATe]", lambda s, a: self._set_output(a))
        c("OUTPut[:STATe]?", lambda s, a: "1" if self.output else "0")
        c("MEASure[:SCALar]:VOLTage[:DC]?", lambda s, a: fmt(self._reading()[0]))
        c("MEASure[:SCALar]:CURRent[:DC]?", lambda s, a: fmt(self._reading()[1]))
        c("MEASure[:SCALar]:POWer[:DC]?", lambda s, a: fmt(self._power()))
        c("FETCh[:SCALar]:VOLTage[:DC]?", lambda s, a: fmt(self._reading()[0]))
        c("FETCh[:SCALar]:CURRent[:DC]?", lambda s, a: fmt(self._reading()[1]))
        c("FETCh[:SCALar]:POWer[:DC]?", lambda s, a: fmt(self._power()))
        c("FETCh[:SCALar]:AH?", lambda s, a: fmt(self._reading()[2]))
        c("SENSe:AH:RESet", lambda s, a: self.pack.reset_ah())
        c("STATus:QUEStionable:CONDition?", lambda s, a: str(self.condition()))
        c("PROTection:CLEar", lambda s, a: self.trips.clear())
        c("SYSTem:WDOG", lambda s, a: self._setf("watchdog_s", a, 0.0, 3600.0, "S"))
        c("SYSTem:WDOG?", lambda s, a: fmt(self.watchdog_s))

    # -- fault injection -------------------------------------------------------------------
    def trip(self, kind: str) -> None:
        """Latch protection ``kind`` (OVP, OCP, OTP, WDT) and open the output."""
        if kind not in PROTECTION_BITS:
            raise ValueError(f"unknown protection {kind!r}; one of {sorted(PROTECTION_BITS)}")
        self.trips.add(kind)
        self.output = False
        self._output_on.clear()
        self._apply()

    def trip_at(self, t: float, kind: str) -> asyncio.TimerHandle:
        """Trip ``kind`` at loop time ``t`` (s on the running loop's clock, virtual or real)."""
        if kind not in PROTECTION_BITS:
            raise ValueError(f"unknown protection {kind!r}; one of {sorted(PROTECTION_BITS)}")
        return asyncio.get_running_loop().call_at(t, self.trip, kind)

    def condition(self) -> int:
        """``STAT:QUES:COND?`` word of the latched trips."""
        return sum(PROTECTION_BITS[k] for k in self.trips)

    # -- server lifecycle ------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        address = await super().start(host, port)
        self._apply()
        self._last_activity = asyncio.get_running_loop().time()
        self._task = asyncio.create_task(self._supervise(), name="sim-itech-supervisor")
        return address

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await super().stop()

    def on_activity(self) -> None:
        # A command that arrives after the deadline is too late: the trip happened first.
        self._check_watchdog()
        self._last_activity = asyncio.get_running_loop().time()
        if self.output:
            self._reading()  # OVP/OCP as of now, before the command is served

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.output:
                await self._output_on.wait()
                continue
            wait = self.check_period
            if self.watchdog_s > 0 and self._last_activity is not None:
                wait = min(wait, max(0.0, self._last_activity + stream_limit(self.watchdog_s) - loop.time()))
            await asyncio.sleep(wait)
            self._check_watchdog()
            if self.output:
                self._reading()  # OVP/OCP checks happen on every reading

    def _check_watchdog(self) -> None:
        if not self.output or self.watchdog_s <= 0 or self._last_activity is None:
            return
        if asyncio.get_running_loop().time() - self._last_activity >= stream_limit(self.watchdog_s):
            self.trip("WDT")

    # -- model coupling --------------------------------------------------------------------
    def _apply(self) -> None:
        """Push the effective source state into the pack model."""
        amps = min(max(self.current, self.limit_neg), self.limit_pos)
        self.pack.set_source(self.output, self.voltage, amps, self.limit_pos, -self.limit_neg)

    def _reading(self) -> tuple[float, float, float]:
        volts, amps, ah = self.pack.source_reading()
        if self.output and volts > self.ovp:
            self.trip("OVP")
        elif self.output and abs(amps) > self.ocp:
            self.trip("OCP")
        return volts, amps, ah

    def _power(self) -> float:
        volts, amps, _ = self._reading()
        return volts * amps

    def _set_output(self, arg: str) -> None:
        state = _ON.get(arg.strip().upper())
        if state is None:
            raise ScpiError(-224, "Illegal parameter value")
        if state and self.trips:
            raise ScpiError(-221, "Settings conflict")  # latched protection: PROT:CLE first
        self.output = state
        if state:
            self._output_on.set()
        else:
            self._output_on.clear()
        self._apply()

    def _setf(self, attr: str, arg: str, low: float, high: float, unit: str | None = None) -> None:
        """A setpoint: a number (with ``unit`` suffix allowed) or ``MIN|MAX|DEF``; refused
        outside [low, high] (-222), never clipped."""
        default = 0.0 if low <= 0.0 <= high else low
        value = parse_number(arg, what=attr, unit=unit, low=low, high=high, default=default)
        if not low <= value <= high:
            raise ScpiError(-222, "Data out of range")
        setattr(self, attr, value)
        self._apply()

    def _get(self, attr: str, arg: str, low: float, high: float) -> str:
        """``X?`` the setting, ``X? MIN|MAX`` its bounds (as the manuals' query forms)."""
        which = arg.strip().upper()
        if not which:
            return fmt(getattr(self, attr))
        if which in ("MIN", "MINIMUM"):
            return fmt(low)
        if which in ("MAX", "MAXIMUM"):
            return fmt(high)
        raise ScpiError(-224, "Illegal parameter value")
