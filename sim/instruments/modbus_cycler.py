"""Simulated bidirectional pack cycler on Modbus TCP (map: drivers/maps/modbus_cycler.yaml).

The physics is the pack's: setpoints go to ``pack.set_source(on, V, A, charge, discharge)``,
readings come from ``pack.source_reading()`` (docs/sim_pack_api.md), as for the SCPI cycler.

Protection (latched in the ``protection`` word, output switched off):
- OVP: terminal voltage above ``ovp_level``; OCP: |current| above ``ocp_level``;
- OTP: only by injection (``trip("OTP")``); any kind can be injected with ``trip(kind)``;
- WDT: output on and no Modbus request for ``watchdog_timeout`` s (0 = off).
Switching the output on while a trip is latched is refused with exception 3; so are
setpoints outside the map's min/max. Unmapped addresses answer exception 2.
"""

from __future__ import annotations

import asyncio

from pymodbus.constants import ExcCodes

from drivers.clock import stream_limit
from drivers.maps.regmap import load_map
from sim.instruments.modbus_server import MapServer


class SimModbusCycler(MapServer):
    poll_period = 0.1  # s between protection checks while the output is on

    def __init__(self, pack, map_path: str = "modbus_cycler.yaml", *,
                 serial: int = 520001, firmware: int = 0x0103) -> None:
        super().__init__(load_map(map_path))
        self.pack = pack
        self.output = False
        self.trips: set[str] = set()
        self.values.update(serial_number=serial, firmware_version=firmware,
                           ovp_level=self.map["ovp_level"].max or 0.0, ocp_level=self.map["ocp_level"].max or 0.0)
        self._t0 = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        self._monitor: asyncio.Task | None = None
        self._on = asyncio.Event()

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, rtu: bool = False) -> str:
        self._t0 = asyncio.get_running_loop().time()
        self._on = asyncio.Event()
        self._monitor = asyncio.create_task(self._watch_protection())
        return await super().start(host, port, rtu=rtu)

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            self._monitor = None
        self._cancel_watchdog()
        await super().stop()

    # -- hooks ------------------------------------------------------------------------------
    def on_request(self) -> None:
        self._check_protection()
        self._kick_watchdog()

    def refresh(self, table: str) -> None:
        v = self.values
        if table == "input":
            volts, amps, ah = self.pack.source_reading()
            v.update(measured_voltage=volts, measured_current=amps, measured_power=volts * amps, measured_ah=ah)
            v["protection"] = self.map["protection"].word(self.trips)
            elapsed = asyncio.get_running_loop().time() - self._t0
            v["heartbeat"] = int(elapsed / 0.1) & 0xFFFF
        elif table == "discrete":
            _, amps, _ = self.pack.source_reading()
            v["output_on"] = self.output
            # in CV the source delivers less than the CC setpoint asks for
            v["cv_mode"] = self.output and abs(amps) < abs(v["current_setpoint"]) - 0.01
        elif table == "coil":
            v.update(output_enable=self.output, protection_clear=False, reset_counters=False)

    def apply(self, table: str, changes: dict) -> ExcCodes | None:
        if table == "coil":
            if changes.get("output_enable") and self.trips:
                return ExcCodes.ILLEGAL_VALUE
            if changes.get("protection_clear"):
                self.trips.clear()
            if changes.get("reset_counters"):
                self.pack.reset_ah()
            if "output_enable" in changes:
                self.output = bool(changes["output_enable"])
                if self.output:
                    self._on.set()  # wakes the protection watch
                else:
                    self._on.clear()
        self._drive()
        self._kick_watchdog()
        return None

    # -- behaviour --------------------------------------------------------------------------
    def _drive(self) -> None:
        v = self.values
        self.pack.set_source(self.output, float(v["voltage_setpoint"]), float(v["current_setpoint"]),
                             float(v["charge_current_limit"]), float(v["discharge_current_limit"]))

    def trip(self, kind: str) -> None:
        """Latch a protection trip (OVP, OCP, OTP, WDT) and switch the output off."""
        self.trips.add(kind)
        if self.output:
            self.output = False
            self._on.clear()
            self._drive()

    def _check_protection(self) -> None:
        if not self.output:
            return
        volts, amps, _ = self.pack.source_reading()
        if volts > self.values["ovp_level"]:
            self.trip("OVP")
        elif abs(amps) > self.values["ocp_level"]:
            self.trip("OCP")

    async def _watch_protection(self) -> None:
        while True:
            await self._on.wait()
            await asyncio.sleep(self.poll_period)
            self._check_protection()

    def _cancel_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _kick_watchdog(self) -> None:
        self._cancel_watchdog()
        timeout = float(self.values["watchdog_timeout"])
        if self.output and timeout > 0:
            self._watchdog = asyncio.get_running_loop().call_later(stream_limit(timeout), self.trip, "WDT")
