"""What an electrical-safety tester's leads see on the simulated pack, whatever its dialect.

Every simulated safety tester (Chroma 19032, Kikusui TOS9300, ...) asks the same questions:
the reading ``t`` s into a test (ohm for IR and bond, A for withstand) and whether it passes.
The dialects differ only in their commands and result codes, so the physics lives here once.
``wiring.ir_pole`` is "HV+"/"HV-" or None (nothing connected); the bond point is
``getattr(wiring, "bond_point", None)``, else the pack's first bonding point.
"""

from __future__ import annotations

from typing import Any

from sim.pack.safety import ir_apparent_resistance

SOURCE_OHM = 2e6  # IR source resistance: a ~0.5 mA current limit at 1 kV
OVER_RANGE_OHM = 9.999e9  # IR reading when nothing is connected


def noisy(pack: Any, value: float, noise: float) -> float:
    """``value`` with relative 1-sigma ``noise`` from the pack's seeded generator."""
    return value * (1.0 + noise * float(pack.rng.standard_normal()))


def bond_point(pack: Any, wiring: Any) -> str:
    point = getattr(wiring, "bond_point", None)
    return point if point is not None else pack.bond_points[0]


def reading(pack: Any, wiring: Any, mode: str, level: float, ramp: float, t: float, noise: float) -> float:
    """The meter ``t`` s into a ``mode`` test ("IR", "AC", "DC", "GB") at ``level`` (V or A)
    after a linear ``ramp`` (s): ohm for IR and GB, leakage A for withstand."""
    pole = wiring.ir_pole
    if mode == "GB":
        return noisy(pack, pack.bond_resistance(bond_point(pack, wiring)), noise)
    if mode == "IR":
        if pole is None:
            return OVER_RANGE_OHM
        # A linear ramp charges the Y-caps like a step applied half-way through it.
        applied = max(0.0, t - ramp / 2)
        ohm = ir_apparent_resistance(pack, pole, level, applied, SOURCE_OHM)
        return min(noisy(pack, ohm, noise), OVER_RANGE_OHM)
    if pole is None:
        return 0.0
    volts = level * (min(1.0, t / ramp) if ramp > 0 else 1.0)
    leakage, _ = pack.withstand(mode, volts)
    return abs(noisy(pack, leakage, noise))


def arcs(pack: Any, mode: str, level: float) -> bool:
    """True when a withstand test at ``level`` V breaks down (dielectric arc)."""
    return bool(pack.withstand(mode, level)[1])
