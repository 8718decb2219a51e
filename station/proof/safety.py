"""Is the simulated pack physically safe after a run? Read from the simulator's physics, not from
what the station believes it did: the record can only say what was commanded and confirmed.

Safe means: the HV bus below 60 V (the touch-safe DC limit) after the DC link had
``BLEED_S`` to discharge, every contactor open — except one the injected fault welded, which
is the defect itself —, the cycler's output off, the insulation tester's relays released, and
the pack's insulation monitor back on.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass

BLEED_S = 30.0  # s of (virtual) time for the DC link to bleed down once the contactors are open
SAFE_BUS_V = 60.0  # V, DC touch-safe limit
CONTACTORS = ("main_plus", "main_minus", "precharge")


@dataclass(frozen=True)
class PhysicalState:
    """What the simulated bench shows, ``BLEED_S`` after the run ended."""

    bus_v: float  # V
    closed: tuple[str, ...]  # contactors closed
    welded: tuple[str, ...]  # contactors welded by a fault (they cannot open)
    cycler_on: bool
    ir_pole: str | None  # pole the insulation tester's relay matrix connects, None when released
    imd_on: bool

    def problems(self) -> list[str]:
        """Why the pack is not safe (empty when it is), one phrase each."""
        out = []
        if self.bus_v >= SAFE_BUS_V:
            out.append(f"HV bus at {self.bus_v:.1f} V (>= {SAFE_BUS_V:.0f} V) {BLEED_S:.0f} s after the run")
        stuck = [c for c in self.closed if c not in self.welded]
        if stuck:
            out.append(f"contactor(s) closed: {', '.join(stuck)}")
        if self.cycler_on:
            out.append("cycler output on")
        if self.ir_pole is not None:
            out.append(f"insulation tester relay closed on {self.ir_pole}")
        if not self.imd_on:
            out.append("insulation monitor left disabled")
        return out

    def as_dict(self) -> dict:
        return asdict(self)


async def physical_state(bench, fixture: str) -> PhysicalState:
    """Wait ``BLEED_S`` on the running (virtual-time) loop, then read ``fixture``'s pack and peers."""
    await asyncio.sleep(BLEED_S)
    fx = bench.fixtures[fixture]
    pack = fx.pack
    return PhysicalState(
        bus_v=float(pack.bus_voltage()),
        closed=tuple(c for c in CONTACTORS if pack.contactor_closed(c)),
        welded=tuple(sorted(pack.welded)),
        cycler_on=bool(fx.cycler.output),
        ir_pole=fx.wiring.ir_pole,
        imd_on=bool(pack.insulation_monitor_enabled),
    )
