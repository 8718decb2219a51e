"""The simulated bench's wiring between peers: what the fixture PLC switches, others see.

One ``Wiring`` per simulated fixture. The fixture PLC simulator writes it (relays, LV power,
clamp) and reads its inputs from it (e-stop, guard, pack present); the IR/hipot simulator reads
which pole its relay matrix connects; the BMS simulator is awake only while LV power is on.
"""

from __future__ import annotations

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
