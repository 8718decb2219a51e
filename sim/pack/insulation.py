"""Insulation, withstand and IR-tester responses: pure functions of resistances, capacitances
and volts (``sim.pack.safety`` applies them to a pack's state).

Each HV pole sees chassis through its isolation resistance in parallel with its Y-capacitance.
A withstand (hipot) test ties HV+ and HV- together, so both poles' paths add up.
"""

from __future__ import annotations

import math

HIPOT_AC_HZ = 50.0
#: ohm of the ionised path once a withstand test breaks down: leakage is "large" (amperes)
ARC_OHM = 1000.0


def parallel(*ohms: float) -> float:
    """Resistance (ohm) of resistors in parallel; a zero short-circuits the lot."""
    if any(r == 0 for r in ohms):
        return 0.0
    return 1.0 / sum(1.0 / r for r in ohms)


def apparent_resistance(
    r_iso: float, c_y: float, volts: float, t: float, source_ohm: float
) -> float:
    """Ohm an IR tester reads ``t`` s after stepping ``volts`` onto R_iso || C_y via ``source_ohm``.

    The tester divides the voltage at its terminals by the current it delivers. The Y-cap first
    draws charging current, so the reading starts at 0 and rises toward ``r_iso`` while the pole
    voltage settles with tau = C_y * (R_source || R_iso) (~ R_source * C_y for a healthy pack).
    """
    if t <= 0.0 or volts == 0.0:
        return 0.0
    if math.isinf(r_iso):
        # no resistive path: the current is the Y-cap's charging current alone
        tau = c_y * source_ohm
        return source_ohm * math.expm1(t / tau) if tau > 0 else math.inf
    tau = c_y * parallel(source_ohm, r_iso)
    if tau <= 0.0:
        return r_iso
    settled = -math.expm1(-t / tau)  # 1 - exp(-t/tau), exact for small t
    v_final = volts * r_iso / (source_ohm + r_iso)
    v_pole = v_final * settled
    current = (volts - v_pole) / source_ohm
    return v_pole / current


def withstand_response(
    mode: str, volts: float, r_iso: float, c_y: float, breakdown_volts: float
) -> tuple[float, bool]:
    """(leakage A, arc) of a hipot test at ``volts`` across ``r_iso`` || ``c_y`` (both poles tied).

    AC at 50 Hz: |V / Z| with Z = R || 1/(j 2 pi f C). DC: the settled V / R (Y-caps charged).
    """
    if mode not in ("AC", "DC"):
        raise ValueError(f"withstand mode {mode!r} not one of ['AC', 'DC']")
    v = abs(volts)
    arc = v > breakdown_volts
    if arc:
        r_iso = parallel(r_iso, ARC_OHM)
    conductance = 0.0 if math.isinf(r_iso) else (math.inf if r_iso == 0 else 1.0 / r_iso)
    if mode == "DC":
        return v * conductance, arc
    susceptance = 2.0 * math.pi * HIPOT_AC_HZ * c_y
    return v * math.hypot(conductance, susceptance), arc
