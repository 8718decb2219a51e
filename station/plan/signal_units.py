"""The unit of a live signal a monitor reads (``role.signal``), and its factor to SI.

Monitor limits are written with units (``max: 4.2 V``, ``max: 95 %``) and evaluated to SI; the
signal is read in the unit its driver reports, so a percent number (SOC 50.0) is scaled to the
fraction a ``%`` limit evaluates to (0.5). Signals of unknown unit are compared as read.
"""

from __future__ import annotations

from drivers.bms.logical_units import LOGICAL_UNITS

_PERCENT = 0.01  # one percent point as a fraction


def unit_of(signal: str) -> str | None:
    """The unit of ``signal`` ('bms.cell_voltage_max' -> 'V'); '' for counts, 'bool' for flags,
    None where the station cannot know it (other roles, names outside the logical set)."""
    role, _, name = signal.partition(".")
    if role != "bms":
        return None
    return LOGICAL_UNITS.get(name)


def si_factor(signal: str) -> float:
    """What a reading of ``signal`` is multiplied by to compare with limits in SI."""
    return _PERCENT if unit_of(signal) == "%" else 1.0
