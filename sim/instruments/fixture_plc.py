"""Simulated fixture PLC on Modbus TCP: coils switch the bench ``Wiring``, inputs report it.

Behaviour, as a fixture PLC program would implement it:

- ``clamp`` on -> ``clamp_closed`` reads true ``clamp_time`` (0.5 s) later and the contact-cycle
  counter counts one; clamp off -> ``clamp_closed`` false at once (the end switch opens as
  soon as the clamp moves).
- ``ir_hv_plus`` / ``ir_hv_minus`` -> ``wiring.ir_pole`` "HV+" / "HV-" / None. Both at once is
  refused with exception 3 (ILLEGAL_DATA_VALUE): the matrix must never short the poles.
- ``hvil_break`` -> ``pack.set_hvil_break(on)``; ``lv_power``/``guard_lock`` -> ``Wiring``.
- ``bond_point`` n -> ``wiring.bond_point`` = the pack's n-th bonding point (1-based), 0 -> None;
  beyond the pack's points -> exception 3.
- An e-stop (``press_estop_at``) drops the IR relays, as the hard-wired safety relay does.
"""

from __future__ import annotations

import asyncio

from pymodbus.constants import ExcCodes

from drivers.maps.regmap import load_map
from sim.instruments.modbus_server import MapServer
from sim.wiring import Wiring


class SimFixturePlc(MapServer):
    """``pack`` per docs/sim_pack_api.md (``bond_points``, ``set_hvil_break``); ``wiring`` is shared."""

    clamp_time = 0.5  # s from clamp command to the end switch

    def __init__(self, pack, wiring: Wiring, map_path: str = "fixture_plc.yaml", *,
                 serial: int = 710001, firmware: int = 0x0102) -> None:
        super().__init__(load_map(map_path))
        self.pack = pack
        self.wiring = wiring
        self.hvil_break = False
        self.clamp_closed = False
        self._clamp_timer: asyncio.TimerHandle | None = None
        self._estop_timer: asyncio.TimerHandle | None = None
        self.values.update(serial_number=serial, firmware_version=firmware, contact_cycles=0)

    def _set(self, name: str, value) -> None:
        if name in self.values:
            self.values[name] = value

    def refresh(self, table: str) -> None:
        w = self.wiring
        if table == "discrete":
            self._set("estop_released", not w.estop_pressed)
            self._set("guard_closed", not w.guard_open)
            self._set("pack_present", bool(w.pack_present))
            self._set("clamp_closed", self.clamp_closed)
        elif table == "coil":  # outputs as they really are (an e-stop may have dropped some)
            self._set("clamp", w.clamp)
            self._set("lv_power", w.lv_power)
            self._set("ir_hv_plus", w.ir_pole == "HV+")
            self._set("ir_hv_minus", w.ir_pole == "HV-")
            self._set("hvil_break", self.hvil_break)
            self._set("guard_lock", w.guard_lock)

    def apply(self, table: str, changes: dict) -> ExcCodes | None:
        if table == "holding" and "bond_point" in changes:
            points = list(self.pack.bond_points)
            index = int(changes["bond_point"])
            if index > len(points):
                return ExcCodes.ILLEGAL_VALUE
            self.wiring.bond_point = points[index - 1] if index else None
        if table != "coil":
            return None
        v = self.values
        if v.get("ir_hv_plus") and v.get("ir_hv_minus"):
            return ExcCodes.ILLEGAL_VALUE
        w = self.wiring
        if "clamp" in changes:
            self._clamp(bool(v["clamp"]))
        w.lv_power = bool(v.get("lv_power", w.lv_power))
        w.guard_lock = bool(v.get("guard_lock", w.guard_lock))
        w.ir_pole = "HV+" if v.get("ir_hv_plus") else "HV-" if v.get("ir_hv_minus") else None
        if w.estop_pressed:  # the safety relay cuts the IR relays' coil supply
            w.ir_pole = None
        if "hvil_break" in changes and bool(changes["hvil_break"]) != self.hvil_break:
            self.hvil_break = bool(changes["hvil_break"])
            self.pack.set_hvil_break(self.hvil_break)
        return None

    def _clamp(self, on: bool) -> None:
        if on == self.wiring.clamp:
            return
        self.wiring.clamp = on
        if self._clamp_timer is not None:
            self._clamp_timer.cancel()
            self._clamp_timer = None
        if on:
            self._clamp_timer = asyncio.get_running_loop().call_later(self.clamp_time, self._clamped)
        else:
            self.clamp_closed = False

    def _clamped(self) -> None:
        self._clamp_timer = None
        self.clamp_closed = True
        self.values["contact_cycles"] = int(self.values.get("contact_cycles", 0)) + 1

    # -- fault injection --------------------------------------------------------------------
    def press_estop_at(self, t: float) -> None:
        """Press the e-stop at station-clock time ``t`` (s, the loop's ``time()``)."""
        if self._estop_timer is not None:
            self._estop_timer.cancel()
        self._estop_timer = asyncio.get_running_loop().call_at(t, self.press_estop)

    def press_estop(self) -> None:
        """Press the e-stop now: the safety relay drops the IR relays."""
        self._estop_timer = None
        self.wiring.estop_pressed = True
        self.wiring.ir_pole = None

    def release_estop(self) -> None:
        self.wiring.estop_pressed = False

    async def stop(self) -> None:
        for timer in (self._clamp_timer, self._estop_timer):
            if timer is not None:
                timer.cancel()
        await super().stop()
