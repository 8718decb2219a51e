"""The pack's HV-safety surface: isolation per pole, IMD, withstand, bonding, HVIL.

A mixin of ``Pack``: these read only fault-facing attributes (``isolation``, ``y_cap``,
``bond``, ``breakdown_volts``, ``hvil_stuck_closed``), so they need no time integration.
"""

from __future__ import annotations

from sim.pack.insulation import ARC_OHM, apparent_resistance, parallel, withstand_response

POLES = ("HV+", "HV-")


class HvSafety:
    """Isolation, insulation monitor, hipot, ground bond and HVIL of a pack."""

    isolation: dict[str, float]  # ohm per pole
    y_cap: dict[str, float]  # F per pole
    bond: dict[str, float]  # ohm per bonding point
    breakdown_volts: float
    imd_parallel_ohm: float
    insulation_monitor_enabled: bool = True
    hvil_stuck_closed: bool = False
    _hvil_broken: bool = False

    def isolation_resistance(self, pole: str) -> float:
        """Ohm from ``pole`` to chassis as a tester sees it (IMD path in parallel while enabled)."""
        r = self.isolation[_pole(pole)]
        return parallel(r, self.imd_parallel_ohm) if self.insulation_monitor_enabled else r

    def y_capacitance(self, pole: str) -> float:
        """F from ``pole`` to chassis."""
        return self.y_cap[_pole(pole)]

    def set_insulation_monitor(self, enabled: bool) -> None:
        """Enable or disable the pack's own insulation monitor (IMD)."""
        self.insulation_monitor_enabled = bool(enabled)

    def imd_reading(self) -> float | None:
        """Ohm the IMD reports (the weaker pole, its own path excluded); None while disabled."""
        return min(self.isolation.values()) if self.insulation_monitor_enabled else None

    def withstand(self, mode: str, volts: float) -> tuple[float, bool]:
        """(leakage A, arc) with HV+ and HV- tied and ``volts`` applied to chassis, AC or DC."""
        r = parallel(*(self.isolation_resistance(p) for p in POLES))
        c = sum(self.y_cap.values())
        return withstand_response(mode, volts, r, c, self.breakdown_volts)

    @property
    def bond_points(self) -> list[str]:
        """Names of the ground-bond points."""
        return list(self.bond)

    def bond_resistance(self, point: str) -> float:
        """Ohm from bonding ``point`` to the chassis reference."""
        try:
            return self.bond[point]
        except KeyError:
            raise KeyError(f"bond point {point!r} not one of {list(self.bond)}") from None

    def set_hvil_break(self, broken: bool) -> None:
        """Open (``True``) or restore the HVIL loop, as the fixture's relay does."""
        self._hvil_broken = bool(broken)

    def hvil_closed(self) -> bool:
        """The HVIL loop reads closed (always, with the ``hvil_stuck_closed`` fault)."""
        return self.hvil_stuck_closed or not self._hvil_broken


def ir_apparent_resistance(
    pack: HvSafety, pole: str, volts: float, t_since_applied: float, source_ohm: float
) -> float:
    """Ohm the simulated IR tester reads on ``pole`` ("HV+"/"HV-") of ``pack``.

    Uses the pack's isolation as the tester sees it (the insulation monitor's path included
    while it is enabled) and that pole's Y-capacitance. Above ``pack.breakdown_volts`` the
    insulation has broken down and the reading collapses to the arc path.
    """
    r_iso = pack.isolation_resistance(pole)
    if abs(volts) > pack.breakdown_volts:
        r_iso = parallel(r_iso, ARC_OHM)
    return apparent_resistance(r_iso, pack.y_capacitance(pole), volts, t_since_applied, source_ohm)


def _pole(pole: str) -> str:
    if pole not in POLES:
        raise ValueError(f"pole {pole!r} not one of {list(POLES)}")
    return pole
