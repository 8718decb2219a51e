"""The HV circuit outside the cells: cycler source law, contactors, precharge and DC link.

Topology: cells -- contactors (main_plus, or precharge + its resistor; main_minus) -- DC link
(capacitance, active-discharge bleed) = the HV connector, where the cycler's source sits.
All functions are pure; ``Pack`` holds the state. Current sign: + into the pack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: s, how fast the cycler drives an unloaded DC link to its voltage setpoint (a stiff source)
SOURCE_TAU = 0.01

DIRECT, PRECHARGE, OPEN = "direct", "precharge", "open"


@dataclass
class Source:
    """The cycler's bidirectional CC/CV source at the connector (setpoints as commanded)."""

    on: bool = False
    voltage: float = 0.0  # V, CV limit
    current: float = 0.0  # A, CC setpoint, + charge
    charge_limit: float = 0.0  # A >= 0
    discharge_limit: float = 0.0  # A >= 0

    def law(self, emf: float, ohm: float) -> float:
        """Current (A, + into the load) into a Thevenin load ``emf`` V behind ``ohm``.

        CC at ``current`` clamped to the limits; a charging current is cut so the terminal
        never rises above ``voltage``, a discharging one so it never falls below it (the source
        sinks or sources whatever CV needs, within the limits).
        """
        if not self.on:
            return 0.0
        lo, hi = -self.discharge_limit, self.charge_limit
        cc = min(max(self.current, lo), hi)
        cv = (self.voltage - emf) / ohm if ohm > 0 else math.copysign(math.inf, self.voltage - emf)
        # CV only cuts the commanded direction back towards zero; it never reverses it
        # (CURR 0 with VOLT 0 must not discharge the pack at the sink limit).
        amps = max(0.0, min(cc, cv)) if cc >= 0 else min(0.0, max(cc, cv))
        return min(max(amps, lo), hi)


def regime(closed: dict[str, bool]) -> str:
    """How the cells reach the connector: DIRECT, through PRECHARGE, or OPEN."""
    if not closed["main_minus"]:
        return OPEN
    if closed["main_plus"]:
        return DIRECT
    return PRECHARGE if closed["precharge"] else OPEN


def relax(v0: float, v_inf: float, tau: float, h: float) -> tuple[float, float]:
    """First-order step toward ``v_inf``: (value after ``h`` s, mean value over the ``h`` s)."""
    if tau <= 0.0:
        return v_inf, v_inf
    decay = math.exp(-h / tau)
    mean_factor = -math.expm1(-h / tau) * tau / h
    return v_inf + (v0 - v_inf) * decay, v_inf + (v0 - v_inf) * mean_factor
