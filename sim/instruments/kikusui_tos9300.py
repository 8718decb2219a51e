"""Simulated Kikusui TOS9300-series safety tester: IR, ACW/DCW and EC on the simulated pack.

Serves the mode-based dialect documented in ``drivers/safety/kikusui_tos9300.py`` (ranges,
status bits and judgements imported from there). A started test runs in loop time, evaluated
whenever it is asked about: RISE for the rise time, TEST for the test time, FALL while the
output discharges; then the TESTing condition shows READY plus the judgement bit. ``RES?``
answers the last test the way the manual describes, the judgement criterion in place of the
measurement on a FAIL. What the leads reach comes from ``wiring`` (see ``hv_physics``).
The forms it must accept, and where each comes from, are listed in
``tests/data/manuals/kikusui_tos9300.txt``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.safety import kikusui_tos9300 as spec
from drivers.validators import Range
from sim.instruments import hv_physics
from sim.scpi.server import ScpiError, ScpiInstrument, fmt, parse_number

FALL_S = 0.3  # s the tester spends in FALL (output discharging) after a test
JUDGE_DELAY = Range(0.1, 100.0, "s")  # the user's manual's withstand Judge Delay range, reused for IR
_PHYSICS_MODE = {"IR": "IR", "ACW": "AC", "DCW": "DC", "EC": "GB"}
_LEVELS = {"IR": spec.IR_VOLTS, "ACW": spec.WITHSTAND_VOLTS["AC"], "DCW": spec.WITHSTAND_VOLTS["DC"], "EC": spec.EC_AMPS}
_UPPERS = {"IR": Range(0.0, 1e10, "ohm"), "ACW": spec.LEAKAGE_UPPER["AC"], "DCW": spec.LEAKAGE_UPPER["DC"],
           "EC": spec.EC_UPPER}


@dataclass
class Conditions:
    """One mode's test conditions: level (V or A), test and rise time (s), limits."""

    level: float
    time: float = 1.0
    rise: float = 0.1
    upper: float | None = None
    lower: float | None = None
    protection: float = 7700.0  # V; voltage protection (stored: the simulator never exceeds a setpoint)
    delay: float = 0.1  # s; judgement delay (stored: the simulator judges at the end of the test time)


@dataclass
class Result:
    number: int
    mode: str
    volts: float
    amps: float
    ohm: float
    elapsed: float
    judgement: str


class SimKikusuiTos9300(ScpiInstrument):
    """TOS9300 peer; ``pack`` per docs/sim_pack_api.md, ``wiring`` from sim.wiring."""

    identity = "KIKUSUI,TOS9303,SIM93001,1.30"

    def __init__(self, pack: Any, wiring: Any, *, noise: float = 0.002, clock: Callable[[], float] | None = None) -> None:
        super().__init__()
        self.pack = pack
        self.wiring = wiring
        self.noise = noise
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self.power_on_clear = 1  # *PSC; *RST leaves it (stored: the simulator is never power-cycled)
        self.reset()
        self._table()

    def reset(self) -> None:
        """``*RST``: IR mode, default conditions, no test running, results kept."""
        self.function = "IR"
        self.conditions = {mode: Conditions(r.low) for mode, r in _LEVELS.items()}
        self._started: float | None = None
        self._running_mode = ""
        self.last: Result | None = getattr(self, "last", None)
        self._count = getattr(self, "_count", 0)

    # -- command table ---------------------------------------------------------------------
    def _table(self) -> None:
        c = self.command
        c("*OPT?", lambda s, a: "0")  # no options installed
        c("*PSC", self._set_power_on_clear)
        c("*PSC?", lambda s, a: str(self.power_on_clear))
        c("FUNCtion", self._set_function)
        c("FUNCtion?", lambda s, a: self.function)
        for mode in ("IR", "ACW", "DCW"):
            c(f"{mode}:VOLTage", self._setter(mode, "level"))
            c(f"{mode}:VOLTage?", self._getter(mode, "level"))
            c(f"{mode}:VOLTage:TIMe", self._setter(mode, "time"))
            c(f"{mode}:VOLTage:TIMe?", self._getter(mode, "time"))
            c(f"{mode}:VOLTage:TIMe:STATe", self._on_only)
            c(f"{mode}:VOLTage:SWEep:TIMe", self._setter(mode, "rise"))
            c(f"{mode}:VOLTage:SWEep:TIMe?", self._getter(mode, "rise"))
            c(f"SENSe:{mode}:JUDGment", self._setter(mode, "upper"))
            c(f"SENSe:{mode}:JUDGment?", self._getter(mode, "upper"))
            c(f"SENSe:{mode}:JUDGment:LOWer", self._setter(mode, "lower"))
            c(f"SENSe:{mode}:JUDGment:LOWer?", self._getter(mode, "lower"))
            c(f"SENSe:{mode}:JUDGment:LOWer:STATe", self._on_only)
            c(f"SENSe:{mode}:JUDGment:DELay", self._setter(mode, "delay"))
            c(f"SENSe:{mode}:JUDGment:DELay?", self._getter(mode, "delay"))
        c("EC:CURRent", self._setter("EC", "level"))
        c("EC:CURRent?", self._getter("EC", "level"))
        c("EC:CURRent:TIMe", self._setter("EC", "time"))
        c("EC:CURRent:TIMe:STATe", self._on_only)
        c("SENSe:EC:JUDGment", self._setter("EC", "upper"))
        c("SENSe:EC:JUDGment?", self._getter("EC", "upper"))
        for mode in ("ACW", "DCW"):
            c(f"{mode}:VOLTage:PROTection", self._setter(mode, "protection"))
            c(f"{mode}:VOLTage:PROTection?", self._getter(mode, "protection"))
        c("TRIGger:TEST:SOURce", self._trigger_source)
        c("TRIGger:TEST:SOURce?", lambda s, a: "IMM")
        c("STATus:OPERation:PROTecting:CONDition?", lambda s, a: "0")  # no protection modelled
        c("INITiate:TEST", lambda s, a: self.start_test())
        c("ABORt[:TEST]", lambda s, a: self.stop_test())  # Kikusui's own sample sends a bare ABOR
        c("STATus:OPERation:TESTing:CONDition?", lambda s, a: str(self.condition()))
        c("RESult?", lambda s, a: self._result())

    def _set_function(self, suffixes: list[int], args: str) -> None:
        mode = args.strip().upper()
        if mode not in _LEVELS:
            raise ScpiError(-224, "Illegal parameter value")
        self._idle_or_conflict()
        self.function = mode

    def _set_power_on_clear(self, suffixes: list[int], args: str) -> None:
        value = parse_number(args, what="*PSC")
        if value not in (0.0, 1.0):
            raise ScpiError(-224, "Illegal parameter value")
        self.power_on_clear = int(value)

    def _trigger_source(self, suffixes: list[int], args: str) -> None:
        if args.strip().upper() not in ("IMM", "IMMEDIATE"):
            raise ScpiError(-224, "Illegal parameter value")  # the simulator starts on INIT:TEST only

    def _on_only(self, suffixes: list[int], args: str) -> None:
        if args.strip().upper() not in ("ON", "1"):
            raise ScpiError(-224, "Illegal parameter value")  # the simulator models timed tests only

    def _setter(self, mode: str, name: str):
        check = {"level": _LEVELS[mode], "time": spec.TEST_TIME, "rise": spec.RISE_TIME, "upper": _UPPERS[mode],
                 "lower": Range(0.0, 1e10, ""), "protection": Range(0.0, 7700.0, "V"),
                 "delay": JUDGE_DELAY}[name]
        unit = {"level": "A" if mode == "EC" else "V", "time": "S", "rise": "S", "protection": "V", "delay": "S",
                "upper": "OHM" if mode in ("IR", "EC") else "A", "lower": "OHM" if mode in ("IR", "EC") else "A"}[name]

        def handler(suffixes: list[int], args: str) -> None:
            # The tester takes units on every value (DCW:VOLT 1000V, DCW:VOLT:TIM 2S, ...:JUDG 5UA).
            value = parse_number(args, what=f"{mode} {name}", unit=unit, low=check.low, high=check.high)
            if not check.low <= value <= check.high:
                raise ScpiError(-222, "Data out of range")
            self._idle_or_conflict()
            setattr(self.conditions[mode], name, value)

        return handler

    def _getter(self, mode: str, name: str):
        return lambda s, a: fmt(getattr(self.conditions[mode], name) or 0.0)

    def _idle_or_conflict(self) -> None:
        if self.running():
            raise ScpiError(-221, "Settings conflict")

    # -- running ---------------------------------------------------------------------------
    def start_test(self) -> None:
        """``INIT:TEST``: run the selected mode's test now."""
        self._idle_or_conflict()
        self._started, self._running_mode = self._clock(), self.function

    def stop_test(self) -> None:
        """``ABOR:TEST``: a running test ends with ABORT and its reading so far."""
        if self.running():
            cond = self.conditions[self._running_mode]
            elapsed = min(self._clock() - (self._started or 0.0), cond.rise + cond.time)
            self._finish(self._measure(self._running_mode, elapsed), elapsed, "ABORT")

    def running(self) -> bool:
        """Advance to now; True while RISE, TEST or FALL."""
        if self._started is None:
            return False
        cond = self.conditions[self._running_mode]
        end = self._started + cond.rise + cond.time
        if self._clock() < end + FALL_S:
            return True
        reading = self._measure(self._running_mode, cond.rise + cond.time)
        self._finish(reading, cond.time, self._judge(self._running_mode, reading))
        return False

    def condition(self) -> int:
        """The TESTing condition register: phase bits while running, READY plus judgement after."""
        bits = spec.TEST_BITS
        if self.running():
            cond, t = self.conditions[self._running_mode], self._clock() - (self._started or 0.0)
            return bits["RISE"] if t < cond.rise else bits["TEST"] if t < cond.rise + cond.time else bits["FALL"]
        judged = self.last.judgement if self.last is not None else ""
        return bits["READY"] | bits.get(judged, 0)

    def _finish(self, reading: tuple[float, float, float], elapsed: float, judgement: str) -> None:
        mode = self._running_mode
        volts, amps, ohm = reading
        cond = self.conditions[mode]
        if judgement in ("U-FAIL", "L-FAIL"):  # the manual: the criterion replaces the measurement
            criterion = cond.upper if judgement == "U-FAIL" else cond.lower
            if mode in ("IR", "EC"):
                ohm = criterion if criterion is not None else ohm
            else:
                amps = criterion if criterion is not None else amps
        self._count += 1
        self.last = Result(self._count, mode, volts, amps, ohm, elapsed, judgement)
        self._started, self._running_mode = None, ""

    def _result(self) -> str:
        self.running()
        r = self.last
        if r is None:
            raise ScpiError(-230, "Data corrupt or stale")
        return (f"{r.number:+d},+1,{r.mode},+2026,+1,+1,+0,+0,+0,{fmt(r.volts)},{fmt(r.amps)},{fmt(r.ohm)},"
                f"{fmt(r.elapsed)},{r.judgement}")

    # -- physics ---------------------------------------------------------------------------
    def _measure(self, mode: str, t: float) -> tuple[float, float, float]:
        """(V, A, ohm) ``t`` s into a ``mode`` test."""
        cond = self.conditions[mode]
        value = hv_physics.reading(self.pack, self.wiring, _PHYSICS_MODE[mode], cond.level, cond.rise, t, self.noise)
        if mode == "EC":
            return value * cond.level, cond.level, value
        if mode == "IR":
            return cond.level, cond.level / value if value > 0 else 0.0, value
        return cond.level, value, cond.level / value if value > 0 else hv_physics.OVER_RANGE_OHM

    def _judge(self, mode: str, reading: tuple[float, float, float]) -> str:
        cond = self.conditions[mode]
        _, amps, ohm = reading
        if mode == "IR":
            if cond.lower is not None and ohm <= cond.lower:
                return "L-FAIL"
            if cond.upper is not None and ohm >= cond.upper:
                return "U-FAIL"
            return "PASS"
        if mode == "EC":
            return "U-FAIL" if cond.upper is not None and ohm >= cond.upper else "PASS"
        if hv_physics.arcs(self.pack, _PHYSICS_MODE[mode], cond.level):
            return "U-FAIL"  # breakdown: the current runs to the limit and the output is cut
        if cond.upper is not None and amps >= cond.upper:
            return "U-FAIL"
        return "PASS"
