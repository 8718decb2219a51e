"""Simulated Chroma 19032 safety analyzer: IR, AC/DC withstand and ground bond on the pack.

Serves the command tree of the 19032 manual's remote chapter (``[SOURce:]SAFEty:STEP<n>:...``,
limits ``LIMit[:LOW]``/``:HIGH``, ``TIME[:TEST]``/``:RAMP``/``:FALL``; ``STEP <n>`` written with a
space as the manual's examples do), checked against ``tests/data/manuals/chroma_19032.txt``;
ranges and result codes are imported from ``drivers/safety/chroma_19032.py`` so both agree.
A started step list runs in loop time, evaluated lazily whenever it is asked about: per step
ramp, dwell, then ``DISCHARGE_S`` of discharge, ``RUNNING`` throughout; a failing step ends
the list. What the tester reaches comes from ``wiring``: ``ir_pole`` ("HV+"/"HV-"; None =
nothing connected: IR over range → code 52, withstand no current → 18/34) and the bond point
``getattr(wiring, "bond_point", None)``, else the pack's first bonding point.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.safety import chroma_19032 as spec
from sim.instruments import hv_physics
from sim.scpi.server import ScpiError, ScpiInstrument, fmt, parse_number

DISCHARGE_S = 0.3  # s the tester spends discharging after each HV step (RUNNING meanwhile)
_STEP_SPACE = re.compile(r"(STEP)\s+(\d+)", re.IGNORECASE)
_DEFAULT_LIMIT = {"IR": 1e6, "AC": 0.01, "DC": 0.002, "GB": 0.1}
_LEVELS = {"IR": spec.IR_VOLTS, "AC": spec.WITHSTAND_VOLTS["AC"], "DC": spec.WITHSTAND_VOLTS["DC"], "GB": spec.GB_AMPS}
_LIMITS = {"IR": spec.IR_LIMIT, "AC": spec.LEAKAGE_LIMIT["AC"], "DC": spec.LEAKAGE_LIMIT["DC"], "GB": spec.GB_LIMIT}


@dataclass
class Step:
    """One programmed step: mode, level (V or A), limit (ohm or A), dwell and ramp (s)."""

    mode: str
    level: float
    limit: float
    dwell: float = 1.0
    ramp: float = 0.0
    fall: float = 0.0  # s; stored and answered (the discharge time is DISCHARGE_S regardless)
    other_limit: float = 0.0  # the opposite limit (IR HIGH, withstand/bond LOW), 0 = OFF, not judged

    @property
    def active(self) -> float:
        """s from start to the end of the dwell."""
        return self.ramp + self.dwell


class SimChroma19032(ScpiInstrument):
    """The safety analyzer as a SCPI peer; ``pack`` per docs/sim_pack_api.md, ``wiring`` from sim.wiring."""

    identity = "Chroma ATE,19032,SIM19032001,2.10"

    def __init__(self, pack: Any, wiring: Any, *, noise: float = 0.002, clock: Callable[[], float] | None = None) -> None:
        super().__init__()
        self.pack = pack
        self.wiring = wiring
        self.noise = noise  # relative 1-sigma reading noise
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self.steps: list[Step] = []
        self.results: list[tuple[int, float]] = []  # (code, reading) per finished step
        self._running = False
        self._index = 0
        self._step_start = 0.0
        self._table()

    # -- command table ---------------------------------------------------------------------
    def _cmd(self, spec_text: str, handler) -> None:
        self.command("[SOURce:]" + spec_text, handler)

    def _table(self) -> None:
        self._cmd("SAFEty:SNUMber?", lambda s, a: str(len(self.steps)))
        self._cmd("SAFEty:STEP<n>:DELete", self._delete)
        for mode in ("IR", "AC", "DC", "GB"):
            # The manual's limit trees: IR judges a LOW limit (HIGH optional), the others a HIGH one.
            main, other = ("LIMit[:LOW]", "LIMit:HIGH") if mode == "IR" else ("LIMit[:HIGH]", "LIMit:LOW")
            self._cmd(f"SAFEty:STEP<n>:{mode}[:LEVel]", self._setter(mode, "level"))
            self._cmd(f"SAFEty:STEP<n>:{mode}:{main}", self._setter(mode, "limit"))
            self._cmd(f"SAFEty:STEP<n>:{mode}:{other}", self._setter(mode, "other_limit"))
            self._cmd(f"SAFEty:STEP<n>:{mode}:TIME[:TEST]", self._setter(mode, "dwell"))
            self._cmd(f"SAFEty:STEP<n>:{mode}[:LEVel]?", self._getter(mode, "level"))
            self._cmd(f"SAFEty:STEP<n>:{mode}:{main}?", self._getter(mode, "limit"))
            self._cmd(f"SAFEty:STEP<n>:{mode}:{other}?", self._getter(mode, "other_limit"))
            self._cmd(f"SAFEty:STEP<n>:{mode}:TIME[:TEST]?", self._getter(mode, "dwell"))
            if mode != "GB":
                self._cmd(f"SAFEty:STEP<n>:{mode}:TIME:RAMP", self._setter(mode, "ramp"))
                self._cmd(f"SAFEty:STEP<n>:{mode}:TIME:RAMP?", self._getter(mode, "ramp"))
                self._cmd(f"SAFEty:STEP<n>:{mode}:TIME:FALL", self._setter(mode, "fall"))
                self._cmd(f"SAFEty:STEP<n>:{mode}:TIME:FALL?", self._getter(mode, "fall"))
        self._cmd("SAFEty:STARt", lambda s, a: self.start_test())
        self._cmd("SAFEty:STOP", lambda s, a: self.stop_test())
        self._cmd("SAFEty:STATus?", lambda s, a: "RUNNING" if self.running() else "STOPPED")
        self._cmd("SAFEty:FETCh?", self._fetch)
        self._cmd("SAFEty:RESult:ALL[:JUDGment]?", lambda s, a: self._result_field(0, str, 115))
        self._cmd("SAFEty:RESult:ALL:MMETer?", lambda s, a: self._result_field(1, fmt, None))

    def execute(self, line: str) -> list[str]:
        # The manual writes "STEP 1:IR"; the base parser splits the header at the first space.
        return super().execute(_STEP_SPACE.sub(r"\1\2", line))

    def reset(self) -> None:
        """``*RST``: stop, forget the step list and the results."""
        self.stop_test()
        self.steps.clear()
        self.results.clear()

    def _step(self, suffixes: list[int], mode: str | None, *, create: bool = False) -> Step:
        """The step a programming command addresses; results of the old list are forgotten."""
        n = suffixes[0] if suffixes else 1
        if self.running():
            raise ScpiError(-221, "Settings conflict")
        self.results.clear()
        if create and n == len(self.steps) + 1:
            self.steps.append(Step(mode or "IR", _LEVELS[mode or "IR"].low, _DEFAULT_LIMIT[mode or "IR"]))
        if not 1 <= n <= len(self.steps):
            raise ScpiError(-222, "Data out of range")
        step = self.steps[n - 1]
        if mode is not None and step.mode != mode and not create:
            raise ScpiError(-221, "Settings conflict")
        return step

    def _delete(self, suffixes: list[int], args: str) -> None:
        self._step(suffixes, None)
        del self.steps[(suffixes[0] if suffixes else 1) - 1]

    def _setter(self, mode: str, field: str):
        def handler(suffixes: list[int], args: str) -> None:
            unit = {"level": "A" if mode == "GB" else "V", "limit": "OHM" if mode in ("IR", "GB") else "A",
                    "other_limit": "OHM" if mode in ("IR", "GB") else "A"}.get(field, "S")
            check = {"level": _LEVELS[mode], "limit": _LIMITS[mode], "other_limit": _LIMITS[mode],
                     "dwell": spec.DWELL, "ramp": spec.RAMP, "fall": spec.RAMP}[field]
            value = parse_number(args, what=f"{mode} {field}", unit=unit, low=check.low, high=check.high,
                                 default=check.low)
            off_allowed = field in ("ramp", "fall", "other_limit") and value == 0
            if not off_allowed and not check.low <= value <= check.high:
                raise ScpiError(-222, "Data out of range")
            step = self._step(suffixes, mode, create=field == "level")
            if field == "level" and step.mode != mode:
                # Setting a level re-programs the step's mode with that mode's defaults.
                step.mode, step.limit, step.ramp = mode, _DEFAULT_LIMIT[mode], 0.0
            setattr(step, field, value)

        return handler

    def _getter(self, mode: str, field: str):
        return lambda suffixes, args: fmt(getattr(self._step_query(suffixes, mode), field))

    def _step_query(self, suffixes: list[int], mode: str) -> Step:
        n = suffixes[0] if suffixes else 1
        if not 1 <= n <= len(self.steps) or self.steps[n - 1].mode != mode:
            raise ScpiError(-221, "Settings conflict")
        return self.steps[n - 1]

    # -- running ---------------------------------------------------------------------------
    def start_test(self) -> None:
        """``SAFE:STAR``: run the step list from step 1."""
        if not self.steps or self.running():
            raise ScpiError(-221, "Settings conflict")
        self.results.clear()
        self._running, self._index, self._step_start = True, 0, self._clock()

    def stop_test(self) -> None:
        """``SAFE:STOP``: the running step ends with 112 STOP and its reading so far."""
        if self.running():
            step = self.steps[self._index]
            elapsed = min(self._clock() - self._step_start, step.active)
            self.results.append((112, self._reading(step, elapsed)))
            self._running = False

    def running(self) -> bool:
        """Advance the step list to now; True while a step ramps, dwells or discharges."""
        now = self._clock()
        while self._running:
            step = self.steps[self._index]
            end = self._step_start + step.active + DISCHARGE_S
            if now < end:
                break
            code, value = self._judge(step)
            self.results.append((code, value))
            self._index += 1
            self._step_start = end
            self._running = code == spec.PASS and self._index < len(self.steps)
        return self._running

    def _result_field(self, field: int, render, running_code) -> str:
        running = self.running()
        if not self.results and not running:
            return "112" if field == 0 else fmt(0.0)
        values = [render(r[field]) for r in self.results]
        if running:
            step = self.steps[self._index]
            live = self._reading(step, min(self._clock() - self._step_start, step.active))
            values.append(str(running_code) if field == 0 else fmt(live))
        return ",".join(values)

    def _fetch(self, suffixes: list[int], args: str) -> str:
        items = [a.strip().upper() for a in args.split(",") if a.strip()] or ["MMET"]
        running = self.running()
        step = self.steps[self._index] if running else (self.steps[len(self.results) - 1] if self.results else None)
        if step is None:
            raise ScpiError(-221, "Settings conflict")
        out = []
        for item in items:
            if item.startswith("MMET"):
                if running:
                    out.append(fmt(self._reading(step, min(self._clock() - self._step_start, step.active))))
                else:
                    out.append(fmt(self.results[-1][1]))
            elif item == "STEP":
                out.append(str((self._index if running else len(self.results) - 1) + 1))
            elif item == "MODE":
                out.append(step.mode)
            else:
                raise ScpiError(-224, "Illegal parameter value")
        return ",".join(out)

    # -- physics ---------------------------------------------------------------------------
    def _reading(self, step: Step, t: float) -> float:
        """What the meter shows ``t`` s into ``step`` (ohm for IR/GB, A for withstand)."""
        value = hv_physics.reading(self.pack, self.wiring, step.mode, step.level, step.ramp, t, self.noise)
        return min(value, spec.OVER_RANGE_OHM) if step.mode == "IR" else value

    def _judge(self, step: Step) -> tuple[int, float]:
        """Result code and final reading at the end of ``step``'s dwell."""
        value = self._reading(step, step.active)
        fail = spec.FAIL_CODES[step.mode]
        if step.mode == "GB":
            return (fail["HI"] if value > step.limit else spec.PASS), value
        if step.mode == "IR":
            if self.wiring.ir_pole is None:
                return fail["OPEN"], value
            return (fail["LO"] if value < step.limit else spec.PASS), value
        if self.wiring.ir_pole is None:
            return fail["LO"], value
        if hv_physics.arcs(self.pack, step.mode, step.level):
            return fail["ARC"], value
        return (fail["HI"] if value > step.limit else spec.PASS), value
