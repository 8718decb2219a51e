"""Bidirectional pack cycler over Modbus TCP, laid out by ``drivers/maps/modbus_cycler.yaml``.

Config (station.yaml)::

    cycler:
      driver: modbus_cycler
      resource: modbus-tcp://10.0.0.8:502?unit=1
      options: {map: modbus_cycler.yaml, voltage_max: 900, current_max: 500, maker: Acme}

Setpoint ranges are the map's ``min``/``max``, narrowed by the options ``voltage_max`` (V)
and ``current_max`` (A) for a smaller unit; anything outside is refused before a byte is sent.

Communication watchdog: where the map has ``watchdog_timeout`` (ours: holding register 12,
0.1 s units), ``open()`` writes option ``watchdog`` (s, default 5; 0 = leave it alone) there.
With the output on and no Modbus request for that long, the cycler switches its output off
and latches ``WDT`` in ``protection``; ``energy_state()`` reports it and the station's start-up
check clears it (``protection_clear``) once the fixture is confirmed safe.
"""

from __future__ import annotations

import math
from typing import Any

from drivers.base import IDENTITY_OPTIONS
from drivers.base.readout import fixed
from drivers.capabilities import CYCLER_IDLE_A, CyclerReading, Identity, SafeAction, StateFinding
from drivers.errors import ProtocolError, RangeError
from drivers.fixture.modbus_fixture import map_identity, run_all
from drivers.maps.regmap import Field, MapError, load_map, read_fields
from drivers.modbus_driver import ModbusDriver
from drivers.validators import Range

_MEASURED = ("measured_voltage", "measured_current", "measured_power", "measured_ah")
# What a site's map must provide (name -> table); watchdog_timeout and heartbeat are optional.
REQUIRED = {"output_enable": "coil", "protection_clear": "coil", "reset_counters": "coil",
            "voltage_setpoint": "holding", "current_setpoint": "holding",
            "charge_current_limit": "holding", "discharge_current_limit": "holding",
            "protection": "input", **{n: "input" for n in _MEASURED}}


class ModbusCycler(ModbusDriver):
    """``drivers.capabilities.Cycler`` (+ ``set_watchdog``, ``heartbeat``) over a register map."""

    OPTIONS = IDENTITY_OPTIONS | {"map", "voltage_max", "current_max"}

    def __init__(self, name: str, resource: str, **kw: Any) -> None:
        super().__init__(name, resource, **kw)
        self.map = load_map(self.options.get("map", "modbus_cycler.yaml"))
        missing = [f"{n} ({t})" for n, t in REQUIRED.items() if n not in self.map or self.map[n].table != t]
        if missing:
            raise MapError([f"{self.map.path}: a cycler map needs {', '.join(missing)}"])
        v_max = self.options.get("voltage_max")
        i_max = self.options.get("current_max")
        self.ranges = {
            "voltage_setpoint": self._range("voltage_setpoint", 0, v_max),
            "current_setpoint": self._range("current_setpoint", -i_max if i_max else None, i_max),
            "charge_current_limit": self._range("charge_current_limit", 0, i_max),
            "discharge_current_limit": self._range("discharge_current_limit", 0, i_max),
        }
        if "watchdog_timeout" in self.map:
            self.ranges["watchdog_timeout"] = self._range("watchdog_timeout", 0, None)
        self.watchdog = float(self.options.get("watchdog", 5.0 if "watchdog_timeout" in self.map else 0.0))
        if self.watchdog:
            self._check("watchdog_timeout", self.watchdog, "option watchdog")

    def _range(self, name: str, low: float | None, high: float | None) -> Range:
        """The map's range for ``name``, narrowed (never widened) by the site's rating."""
        f = self.map[name]
        lo = f.min if f.min is not None else low
        hi = f.max if f.max is not None else high
        if lo is None or hi is None:
            raise RangeError(f"map {self.map.path} gives no min/max for {name}", instrument=self.name)
        if low is not None:
            lo = max(lo, low)
        if high is not None:
            hi = min(hi, high)
        return Range(lo, hi, f.unit)

    async def open(self) -> None:
        """Connect, then arm the communication watchdog (option ``watchdog``, s; 0 = leave it)."""
        await super().open()
        if self.watchdog:
            await self.set_watchdog(self.watchdog)

    async def _write(self, *values: tuple[str, float]) -> None:
        """Write holding fields; adjacent ones go in one request. Values already checked."""
        fields = [self.map[n] for n, _ in values]
        by_name = dict(values)
        for start, _count, group in self.map.blocks(fields):
            words: list[int] = []
            for f in group:
                words += f.encode(by_name[f.name])
            await self.transport.write_registers(start, words)

    def _check(self, name: str, value: float, what: str) -> float:
        if name not in self.ranges:
            raise RangeError(f"{what}: map {self.map.path} has no {name}", instrument=self.name)
        return self.ranges[name].check(value, what=what, instrument=self.name)

    async def set_output(self, on: bool) -> None:
        if not isinstance(on, bool):
            raise RangeError(f"output must be True/False, got {on!r}", instrument=self.name)
        await self.transport.write_coil(self.map["output_enable"].address, on)

    async def set_voltage(self, volts: float) -> None:
        """CV setpoint, V."""
        await self._write(("voltage_setpoint", self._check("voltage_setpoint", volts, "voltage setpoint")))

    async def set_current(self, amps: float) -> None:
        """CC setpoint, A, + charge / - discharge."""
        await self._write(("current_setpoint", self._check("current_setpoint", amps, "current setpoint")))

    async def set_current_limits(self, charge_a: float, discharge_a: float) -> None:
        """Charge and discharge current magnitudes, A (both >= 0); both checked before sending."""
        c = self._check("charge_current_limit", charge_a, "charge current limit")
        d = self._check("discharge_current_limit", discharge_a, "discharge current limit")
        await self._write(("charge_current_limit", c), ("discharge_current_limit", d))

    async def set_watchdog(self, seconds: float) -> None:
        """Control watchdog, s: output off + WDT if no request arrives for this long; 0 = off."""
        await self._write(("watchdog_timeout", self._check("watchdog_timeout", seconds, "watchdog timeout")))

    async def measure(self) -> CyclerReading:
        """Terminal V, A, W and Ah, in one read where the map keeps them adjacent."""
        got = await read_fields(self.transport, [self.map[n] for n in _MEASURED], self.map)
        for name in _MEASURED:
            if not math.isfinite(float(got[name])):
                f = self.map[name]
                raise ProtocolError(f"{name} ({f.table} register {f.address}) holds {got[name]!r}, not a number",
                                    instrument=self.name, command=f"read {name}")
        return CyclerReading(*(float(got[n]) for n in _MEASURED))

    async def reset_counters(self) -> None:
        await self.transport.write_coil(self.map["reset_counters"].address, True)

    async def protection(self) -> frozenset[str]:
        """Latched trips named by the map's protection bits: OVP, OCP, OTP, WDT."""
        f: Field = self.map["protection"]
        word = (await read_fields(self.transport, [f], self.map))[f.name]
        return f.flags(int(word))

    async def measure_and_protection(self) -> tuple[CyclerReading, frozenset[str]]:
        """``measure()`` then ``protection()`` (two reads; the map decides the registers)."""
        return await self.measure(), await self.protection()

    async def clear_protection(self) -> None:
        await self.transport.write_coil(self.map["protection_clear"].address, True)

    async def heartbeat(self) -> int:
        """The controller's heartbeat counter (it increments while the cycler runs)."""
        if "heartbeat" not in self.map:
            raise RangeError(f"map {self.map.path} has no heartbeat register", instrument=self.name)
        f = self.map["heartbeat"]
        return int((await read_fields(self.transport, [f], self.map))[f.name])

    async def identify(self) -> Identity:
        """Maker/model from options; serial/firmware from options or the map's input registers."""
        return await map_identity(self, "Modbus pack cycler")

    async def output_on(self) -> bool:
        """The ``output_on`` status bit (discrete input): the output as the cycler reports it."""
        f = self.map["output_on"] if "output_on" in self.map else self.map["output_enable"]
        return bool((await read_fields(self.transport, [f], self.map))[f.name])

    async def safe_state(self) -> list[SafeAction]:
        """Output off, then current setpoint 0 A (each acknowledged by the write's echo), then the
        output read back: "output off" is confirmed only when the cycler reports it off."""
        current = self.map["current_setpoint"]
        done = await run_all(self.name, [
            ("output off", self.transport.write_coil, self.map["output_enable"].address, False),
            ("current setpoint 0 A", self.transport.write_registers, current.address, current.encode(0.0)),
        ])
        on = await self.output_on()
        return [SafeAction("output off (read back: STILL ON)" if on else "output off (read back off)", not on),
                SafeAction(f"{done[1]} (write acknowledged)", True)]

    async def energy_state(self) -> list[StateFinding]:
        """Output as reported, terminal current and voltage, latched protections."""
        on = await self.output_on()
        reading, trips = await self.measure_and_protection()
        findings = [
            StateFinding("output", not on, f"output {'ON' if on else 'off'} (output_on read back)"),
            StateFinding("current", abs(reading.current) <= CYCLER_IDLE_A,
                         f"{fixed(reading.current, 2)} A at {fixed(reading.voltage)} V on the terminals"),
        ]
        if trips:
            names = tuple(sorted(trips))
            findings.append(StateFinding("protection", False, f"latched protection {'/'.join(names)}", latched=names))
        else:
            findings.append(StateFinding("protection", True, "no protection latched"))
        return findings
