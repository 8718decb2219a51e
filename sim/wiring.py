"""The simulated bench's wiring between peers: what the fixture PLC switches, others see.

One ``Wiring`` per simulated fixture. The fixture PLC simulator writes it (relays, LV power,
clamp) and reads its inputs from it (e-stop, guard, pack present); the IR/hipot simulator reads
which pole its relay matrix connects; the BMS simulator is awake only while LV power is on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Wiring:
    # outputs the fixture PLC drives
    clamp: bool = False
    lv_power: bool = False
    ir_pole: str | None = None  # "HV+" | "HV-" | None: which pole the safety tester reaches
    bond_point: str | None = None  # bonding point the bond probe is switched to
    guard_lock: bool = False
    # inputs the fixture PLC reports
    estop_pressed: bool = False
    guard_open: bool = False
    pack_present: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lv_listeners", [])

    def on_lv_power(self, listener: Callable[[bool], None]) -> Callable[[], None]:
        """Call ``listener(on)`` whenever ``lv_power`` changes; returns the unsubscribe function.

        Lets an unpowered BMS simulator sleep without polling the wiring (it wakes on LV on).
        """
        self._lv_listeners.append(listener)
        return lambda: self._lv_listeners.remove(listener) if listener in self._lv_listeners else None

    def __setattr__(self, name: str, value) -> None:
        changed = name == "lv_power" and getattr(self, "lv_power", value) != value
        object.__setattr__(self, name, value)
        if changed:
            for listener in list(self.__dict__.get("_lv_listeners", ())):
                listener(bool(value))
