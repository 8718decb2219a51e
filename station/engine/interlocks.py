"""What a step's ``requires:`` means in fixture inputs (the PLC's discrete inputs by name).

The sequencer checks them before a step and the interlock watcher polls them during it
(``monitors.watch_interlocks``); both read this table, so neither needs the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

REQUIRE_INPUTS: dict[str, tuple[str, ...]] = {
    "fixture_closed": ("clamp_closed",),
    "guard_closed": ("guard_closed",),
    "estop_released": ("estop_released",),
    "pack_present": ("pack_present",),
    "hv_interlock": ("estop_released", "guard_closed", "clamp_closed"),
}


def inputs_for(requires: Iterable[str]) -> list[str]:
    """The fixture inputs ``requires`` needs closed, sorted, each once."""
    return sorted({name for req in requires for name in REQUIRE_INPUTS.get(req, ())})


def open_inputs(requires: Iterable[str], inputs: Mapping[str, bool]) -> list[str]:
    """Those of ``inputs_for(requires)`` that ``inputs`` (as the PLC reports them) shows open."""
    return [name for name in inputs_for(requires) if not inputs.get(name, False)]
