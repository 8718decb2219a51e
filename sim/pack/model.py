"""The simulated pack every simulated instrument reads and drives (see docs/sim_pack_api.md).

N series elements, each M parallel cells lumped into one equivalent circuit: OCV(SOC) + R0
(temperature dependent) + one R1||C1 pair, a capacity for coulomb counting and a lumped
thermal mass (I^2 R heating, transfer to ambient). State lives in numpy arrays over elements.
Time is pulled from ``clock`` and integrated lazily by every public method: exact for
piecewise-constant current (exponential RC solution), sub-stepped (<= 1 s) while the cycler's
CV law makes the current depend on the state. Current sign: + into the pack.

Parameters given as tables (``sim.pack.table``): OCV and R0 are evaluated at the state of the
moment they are read. R1 and C1 tables are held for each ``RC_GRID`` second of pack time
(counted from the pack's first clock reading) at their value for the state at its start, so
the result does not depend on how often the pack is read: 1 ms and 10 s steps give the same
voltages, and within a grid cell the RC solution stays the exact exponential.

Fault-facing attributes (sim/faults.py writes these; drivers never see them). A change made
mid-run applies from the last integration; call ``advance()`` first to make it apply from now.

- ``r0_factor``: float array per element, R0 multiplier (weak cell: ``r0_factor[i] = 3``).
- ``element_soc``: float array per element, the SOC state (imbalance: ``element_soc[i] -= .05``
  or ``offset_soc(i, -.05)``).
- ``open_tap: set[int]``: cell taps the BMS reads as 0 V / invalid (physics unaffected).
- ``dead_sensor: set[int]``: temperature sensors the BMS reports as invalid.
- ``hot_cell``: float array per temperature sensor, degC added to that sensor's reading.
- ``isolation: {"HV+": ohm, "HV-": ohm}``, ``y_cap: {"HV+": F, "HV-": F}`` per pole.
- ``bond: {point: ohm}``; ``breakdown_volts`` (V, withstand arcs above it).
- ``precharge_ohm`` (slow precharge), ``link_capacitance``, ``bleed_ohm``.
- ``welded: set[str]``: contactors that stay closed when commanded open.
- ``hvil_stuck_closed``: the HVIL reads closed even when the loop is broken.
- ``coolant_leak_rate``: Pa/min seen by the leak tester.
- ``insulation_monitor_enabled``, ``imd_parallel_ohm`` (the IMD's own path to chassis).

State arrays a fault or test may also read: ``capacity_ah``, ``r0_base`` (ohm at 25 degC and,
for a table, 50 % SOC), ``v1`` (V per RC pair), ``temperature`` (degC per element); ``r1``,
``tau1`` (scalars for constant R1/C1, arrays per element for tables).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from sim.pack import circuit
from sim.pack.circuit import DIRECT, OPEN, PRECHARGE, SOURCE_TAU, Source
from sim.pack.ocv import ocv
from sim.pack.safety import HvSafety
from sim.pack.spec import PackSpec
from sim.pack.table import Table

CONTACTORS = ("main_plus", "main_minus", "precharge")
#: s, longest internal step while nothing depends on the state (thermal stays accurate)
MAX_STEP = 10.0
#: s, longest internal step while the source law may depend on the state (CV)
MAX_STEP_CV = 1.0
#: SOC above the weakest element from which balancing bleeds an element
BALANCE_DEADBAND = 0.001
#: s of pack time for which R1/C1 tables are held at the value of the grid cell's start
RC_GRID = 1.0


# ndarray.sum() goes through numpy's Python-level _methods._sum; the ufunc's reduce is the
# same pairwise sum without that layer (~8.0k against ~9.2k instructions on 96 elements).
_sum = np.add.reduce


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def _ocv_function(spec: PackSpec) -> Callable:
    """Cell OCV (V) as f(soc, degC): the spec's own table, else its chemistry's built-in one."""
    if spec.ocv is not None:
        return spec.ocv
    chemistry = spec.chemistry
    return lambda soc, _temp: ocv(chemistry, soc)


class Snapshot(NamedTuple):
    """The pack at one instant (``Pack.snapshot``): V, A (+ charge), SOC 0..1."""

    cell_voltages: np.ndarray
    pack_voltage: float
    pack_current: float
    bus_voltage: float
    soc: float
    balancing_cells: int


class Pack(HvSafety):
    """One pack on the test station, integrated lazily up to ``clock()`` (s)."""

    def __init__(self, spec: PackSpec, *, seed: int = 0, clock: Callable[[], float] | None = None) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(seed)
        self._clock = clock or _loop_time
        self._t: float | None = None  # stamped by the first call: no loop needed until then
        n, m = spec.series, spec.parallel
        spread = np.random.default_rng([seed, 0x5EED])  # cells stay put whatever noise is drawn
        self.capacity_ah = m * spec.cell_capacity_ah * (1.0 + spec.spread_capacity * spread.standard_normal(n))
        r0 = spec.cell_r0
        self._r0_ref = r0.at(0.5, 25.0) if isinstance(r0, Table) else float(r0)
        self.r0_base = self._r0_ref / m * (1.0 + spec.spread_r0 * spread.standard_normal(n))
        self.element_soc = spec.initial_soc + spec.spread_soc * spread.standard_normal(n)
        self.r0_factor = np.ones(n)
        self._ocv = _ocv_function(spec)
        self.v1 = np.zeros(n)  # V across each RC pair
        self.temperature = np.full(n, float(spec.ambient_c))  # degC per element
        self._rc_tables = isinstance(spec.cell_r1, Table) or isinstance(spec.cell_c1, Table)
        self._rc_next: float | None = None  # pack time at which the held R1/C1 are next evaluated
        self.r1, self.tau1 = self._rc_now()
        self.heat_capacity = m * spec.cell_heat_capacity
        self.heat_transfer = m * spec.cell_heat_transfer
        groups = np.array_split(np.arange(n), spec.temp_sensors)
        self._sensor_starts = np.array([g[0] for g in groups])
        self._sensor_counts = np.array([len(g) for g in groups], dtype=float)
        # faults
        self.open_tap: set[int] = set()
        self.dead_sensor: set[int] = set()
        self.hot_cell = np.zeros(spec.temp_sensors)
        self.isolation = {"HV+": spec.isolation_plus, "HV-": spec.isolation_minus}
        self.y_cap = {"HV+": spec.y_cap_plus, "HV-": spec.y_cap_minus}
        self.imd_parallel_ohm = spec.imd_parallel_ohm
        self.bond = dict(spec.bond_points)
        self.breakdown_volts = spec.breakdown_volts
        self.precharge_ohm = spec.precharge_ohm
        self.link_capacitance = spec.link_capacitance
        self.bleed_ohm = spec.bleed_ohm
        self.welded: set[str] = set()
        self.hvil_stuck_closed = False
        self.coolant_leak_rate = spec.coolant_leak_rate
        # inputs
        self.insulation_monitor_enabled = True
        self._source = Source()
        self._closed = dict.fromkeys(CONTACTORS, False)
        self._balancing = False
        self._hvil_broken = False
        self._v_bus = 0.0  # V on the DC link while the cells are not directly connected
        self._ah = 0.0
        self._memo: tuple | None = None  # (_state_key(), r0, sum of r0, emf) of the last evaluation

    # -- time --------------------------------------------------------------------------------
    def advance(self) -> None:
        """Integrate the model up to ``clock()``; free when no time has passed."""
        now = self._clock()
        if self._t is None:
            self._t = now
            return
        dt = now - self._t
        if dt <= 0.0:
            return
        if self._rc_tables:
            self._advance_on_grid(now)
            return
        while dt > 0.0:
            reg = circuit.regime(self._closed)
            h = min(dt, MAX_STEP_CV if (self._source.on and reg != OPEN) else MAX_STEP)
            self._step(h, reg)
            dt -= h
        self._t = now

    def _advance_on_grid(self, now: float) -> None:
        """``advance`` with R1/C1 tables: steps end on every ``RC_GRID`` boundary, where the
        held R1/C1 are evaluated afresh from the state reached there."""
        t = self._t
        if self._rc_next is None:
            self._rc_next = t + RC_GRID
        while now - t > 1e-12:
            reg = circuit.regime(self._closed)
            h = min(now - t, MAX_STEP_CV if (self._source.on and reg != OPEN) else MAX_STEP)
            boundary = self._rc_next - t <= h + 1e-12
            if boundary:
                h = self._rc_next - t
            self._step(h, reg)
            t += h
            if boundary:
                t = self._rc_next
                self._rc_next += RC_GRID
                self.r1, self.tau1 = self._rc_now()
        self._t = now

    def _rc_now(self) -> tuple:
        """(R1 ohm, tau1 s) per element at the present state: scalars for constants."""
        spec, m = self.spec, self.spec.parallel
        if not self._rc_tables:
            return float(spec.cell_r1) / m, float(spec.cell_r1) * float(spec.cell_c1)
        soc, temp = self.element_soc, self.temperature
        r1 = spec.cell_r1(soc, temp) if isinstance(spec.cell_r1, Table) else np.full(len(soc), float(spec.cell_r1))
        c1 = spec.cell_c1(soc, temp) if isinstance(spec.cell_c1, Table) else float(spec.cell_c1)
        return r1 / m, r1 * c1

    def _r0(self) -> np.ndarray:
        r0 = self.spec.cell_r0
        if isinstance(r0, Table):  # the table's shape over SOC and T, scaled per element (spread, M)
            return self.r0_base * self.r0_factor * (r0(self.element_soc, self.temperature) / self._r0_ref)
        k = self.spec.r0_temp_coeff
        factor = np.exp(k * (25.0 - self.temperature)) if k else 1.0
        return self.r0_base * self.r0_factor * factor

    def _emf(self) -> float:
        """V: sum of element OCVs and RC-pair voltages (the Thevenin source of the string)."""
        return float(_sum(self._ocv(self.element_soc, self.temperature)) + _sum(self.v1))

    def _state_key(self) -> tuple:
        """Everything R0 and the EMF depend on, by value: a write in place changes the key."""
        return (self.spec, self.temperature.tobytes(), self.r0_factor.tobytes(), self.r0_base.tobytes(),
                self.element_soc.tobytes(), self.v1.tobytes())

    def _thevenin(self) -> tuple[np.ndarray, float, float]:
        """(R0 per element, its sum, EMF V) now, to start a step.

        A BMS scan evaluates the pack at the end of a step (``_terminal_in``) and the next step
        starts from that very state, so that evaluation is reused while the state's bytes are
        unchanged: R0, EMF and their sums cost ~65k instructions, the key ~13k (callgrind; a
        scan under load was ~255k). A fault written in place in between changes the bytes and
        is evaluated afresh, so the result is always that of a fresh evaluation.
        """
        memo, self._memo = self._memo, None
        if memo is not None and memo[0] == self._state_key():
            return memo[1], memo[2], memo[3]
        r0 = self._r0()
        return r0, float(_sum(r0)), self._emf()

    def _bleed(self) -> np.ndarray | float:
        if not self._balancing:
            return 0.0
        return self.spec.balance_current * self.balancing_flags()

    def _step(self, h: float, reg: str) -> None:
        """Advance ``h`` s with the current held at its law's value at the start (exact for CC)."""
        src = self._source
        r0 = None  # computed only where something flows: the BMS scans an idle pack 10 times a second
        if reg == DIRECT:
            if src.on:
                r0, r0_sum, emf = self._thevenin()
                amps = src.law(emf, r0_sum)
            else:
                amps = 0.0  # Source.law of a source that is off
            source_charge = amps * h
        elif reg == PRECHARGE:
            r0, r0_sum, emf = self._thevenin()
            ohm = self.precharge_ohm + r0_sum
            source_amps = src.law(emf, ohm)
            self._v_bus, mean_v = circuit.relax(self._v_bus, emf + source_amps * ohm, ohm * self.link_capacitance, h)
            amps = (mean_v - emf) / ohm
            source_charge = source_amps * h
        else:
            amps = 0.0
            v0, c = self._v_bus, self.link_capacitance
            if src.on:
                self._v_bus, mean_v = circuit.relax(v0, src.voltage, SOURCE_TAU, h)
                source_charge = c * (self._v_bus - v0) + mean_v * h / self.bleed_ohm
            else:
                self._v_bus, _ = circuit.relax(v0, 0.0, self.bleed_ohm * c, h)
                source_charge = 0.0
        self._ah += source_charge / 3600.0
        amps = amps - self._bleed()
        if r0 is None and (self._balancing or amps != 0.0):
            r0 = self._r0()
        self._step_cells(h, amps, r0)

    def _step_cells(self, h: float, amps, r0: np.ndarray | None) -> None:
        """Coulomb counting, exact RC solution and lumped thermal for constant ``amps`` per element.

        ``r0`` may be None when ``amps`` is 0.0: the terms the current scales are exact zeros
        (0 * finite R0, 0 / capacity), so leaving them out gives the same numbers.
        """
        if self._rc_tables:  # arrays per element (tables are positive: checked at load)
            decay = np.exp(-h / self.tau1)
            rc_heat = self.v1 * self.v1 / self.r1
        else:
            decay = math.exp(-h / self.tau1) if self.tau1 > 0.0 else 0.0
            rc_heat = self.v1 * self.v1 / self.r1 if self.r1 > 0.0 else None
        if r0 is None:
            heat = rc_heat if rc_heat is not None else np.zeros_like(self.v1)
            self.v1 = self.v1 * decay
        else:
            self.element_soc += amps * (h / 3600.0) / self.capacity_ah
            heat = amps * amps * r0
            if rc_heat is not None:
                heat = heat + rc_heat
            self.v1 = self.v1 * decay + amps * self.r1 * (1.0 - decay)
        t_inf = self.spec.ambient_c + heat / self.heat_transfer
        self.temperature = t_inf + (self.temperature - t_inf) * math.exp(-h * self.heat_transfer / self.heat_capacity)

    # -- cycler source and connector ---------------------------------------------------------
    def set_source(self, on: bool, voltage: float, current: float, charge_limit: float, discharge_limit: float) -> None:
        """Command the cycler's source: output ``on``, CV ``voltage`` (V), CC ``current`` (A, +
        charge), current limits ``charge_limit`` / ``discharge_limit`` (A, magnitudes >= 0)."""
        if charge_limit < 0 or discharge_limit < 0:
            raise ValueError("charge_limit and discharge_limit are magnitudes >= 0 A")
        self.advance()
        self._source = Source(bool(on), float(voltage), float(current), float(charge_limit), float(discharge_limit))

    def source_reading(self) -> tuple[float, float, float]:
        """(connector V, source current A into the pack side, Ah since ``reset_ah()``)."""
        self.advance()
        src, reg = self._source, circuit.regime(self._closed)
        if reg == DIRECT:
            volts, amps = self._terminal()[1:]
            return volts, amps, self._ah
        if reg == PRECHARGE:
            amps = src.law(self._emf(), self.precharge_ohm + float(_sum(self._r0())))
        elif src.on:
            v = self._v_bus
            amps = self.link_capacitance * (src.voltage - v) / SOURCE_TAU + v / self.bleed_ohm
            amps = min(max(amps, -src.discharge_limit), src.charge_limit)
        else:
            amps = 0.0
        return self._v_bus, amps, self._ah

    def reset_ah(self) -> None:
        """Zero the source's Ah counter."""
        self.advance()
        self._ah = 0.0

    def bus_voltage(self) -> float:
        """V at the HV connector (the DC link behind the contactors)."""
        self.advance()
        if circuit.regime(self._closed) == DIRECT:
            return self._terminal()[1]
        return self._v_bus

    def set_contactor(self, name: str, closed: bool) -> None:
        """Command contactor ``name``; opening a welded one leaves it closed."""
        if name not in CONTACTORS:
            raise ValueError(f"contactor {name!r} not one of {list(CONTACTORS)}")
        self.advance()
        self._v_bus = self.bus_voltage()  # the link keeps its charge across the switch
        if not closed and name in self.welded:
            return
        self._closed[name] = bool(closed)

    def contactor_closed(self, name: str) -> bool:
        """Actual state of contactor ``name`` (a welded one stays closed)."""
        if name not in CONTACTORS:
            raise ValueError(f"contactor {name!r} not one of {list(CONTACTORS)}")
        return self._closed[name]

    # -- cells -------------------------------------------------------------------------------
    def _terminal(self) -> tuple[np.ndarray, float, float]:
        """(element terminal V, pack terminal V, pack current A) now, in one pass."""
        return self._terminal_in()[:3]

    def _terminal_in(self) -> tuple[np.ndarray, float, float, str, np.ndarray | None]:
        """``_terminal()`` plus the circuit regime and the balancing flags (None: not balancing).

        The EMF and R0 are evaluated only where a current flows: as in ``_step_cells``, a zero
        current's R0 terms are exact zeros (the BMS scans an idle pack 10 times a second).
        """
        self.advance()
        ocv_e = self._ocv(self.element_soc, self.temperature)
        reg = circuit.regime(self._closed)
        src = self._source
        r0 = None
        if reg == PRECHARGE or (reg == DIRECT and src.on):
            r0 = self._r0()
            r0_sum = float(_sum(r0))
            emf = float(_sum(ocv_e) + _sum(self.v1))
            self._memo = (self._state_key(), r0, r0_sum, emf)  # where the next step starts
            if reg == DIRECT:
                amps = src.law(emf, r0_sum)
            else:
                amps = (self._v_bus - emf) / (self.precharge_ohm + r0_sum)
        else:
            amps = 0.0  # open, or direct with the source off (Source.law: 0)
        flags = self.balancing_flags() if self._balancing else None
        if flags is not None:
            volts = ocv_e + (amps - self.spec.balance_current * flags) * (self._r0() if r0 is None else r0) + self.v1
        elif amps != 0.0:
            volts = ocv_e + amps * (self._r0() if r0 is None else r0) + self.v1
        else:
            volts = ocv_e + self.v1
        return volts, float(_sum(volts)), amps, reg, flags

    def snapshot(self) -> Snapshot:
        """Every pack-level quantity a BMS reports, from one evaluation of the model now."""
        volts, pack_v, amps, reg, flags = self._terminal_in()
        bus = pack_v if reg == DIRECT else self._v_bus
        soc = self.element_soc
        # sum / n is what ndarray.mean computes (~22k instructions a call, ~9k this way)
        balancing = 0 if flags is None else int(np.count_nonzero(flags))
        return Snapshot(volts, pack_v, amps, bus, float(_sum(soc)) / len(soc), balancing)

    def pack_current(self) -> float:
        """A into the pack at the connector side of the cells (+ charge)."""
        return self._terminal()[2]

    def cell_voltages(self) -> np.ndarray:
        """True terminal V of each series element (= of each of its parallel cells)."""
        return self._terminal()[0]

    def cell_socs(self) -> np.ndarray:
        """True SOC (0..1) of each series element."""
        self.advance()
        return self.element_soc.copy()

    def cell_temperatures(self) -> np.ndarray:
        """degC per temperature sensor: mean of the elements it covers plus its ``hot_cell`` offset."""
        self.advance()
        sums = np.add.reduceat(self.temperature, self._sensor_starts)
        return sums / self._sensor_counts + self.hot_cell

    def soc(self) -> float:
        """Mean element SOC (0..1)."""
        self.advance()
        return float(_sum(self.element_soc)) / len(self.element_soc)

    def pack_voltage(self) -> float:
        """V: sum of the element terminal voltages."""
        return self._terminal()[1]

    def offset_soc(self, index: int, delta: float) -> None:
        """Shift one element's SOC by ``delta`` (imbalance fault)."""
        self.advance()
        self.element_soc[index] += delta

    def set_balancing(self, on: bool) -> None:
        """Bleed ``spec.balance_current`` from every element above the weakest one."""
        self.advance()
        self._balancing = bool(on)

    def balancing_flags(self) -> np.ndarray:
        """Bool per element: its balancing bleed is active."""
        if not self._balancing:
            return np.zeros(self.spec.series, dtype=bool)
        soc = self.element_soc
        return soc > soc.min() + BALANCE_DEADBAND
