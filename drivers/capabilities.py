"""Capability interfaces that plan actions use. Units are SI: V, A, s, ohm, Pa, degC, Ah, W.

Current sign convention everywhere: positive = into the pack (charge), negative = discharge.
Every instrument: no I/O in the constructor; ``open()``/``close()`` (and ``async with``);
``identify()``; an idempotent ``safe_state()`` that returns what it did, one ``SafeAction`` per
action (without the instrument's name: the record and the screen put the role in front); and
``energy_state()``, what the instrument itself reports about the energy it could put on the
pack or the operator (read back, never assumed), one ``StateFinding`` per item, for the
start-up check before a run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Identity:
    """Who an instrument is; calibration due comes from config where the device can't tell."""

    maker: str
    model: str
    serial: str
    firmware: str
    calibration_due: dt.date | None = None


@dataclass(frozen=True)
class SafeAction:
    """One thing ``safe_state()`` did.

    ``confirmed`` only when the instrument acknowledged it (a reply, an error queue read back
    empty) or a read-back proved it (``OUTP?`` answered 0, a coil read back off, the BMS's own
    frame reporting the contactors open). A command merely sent is ``confirmed=False``.
    """

    action: str
    confirmed: bool
    # Unconfirmed, but made safe by an independent bus reading below 60 V: what a BMS that is
    # silent (unpowered, it holds no contactor closed and balances nothing) or reports a contactor
    # still closed behind an open pole cannot confirm itself. The engine settles it with the DMM.
    bus_settles: bool = False


@dataclass(frozen=True)
class StateFinding:
    """One item of an instrument's ``energy_state()``, as the instrument reported it.

    ``what`` names the item ("output", "current", "protection", "test", "bus voltage",
    "contactors", "ir_hv_plus", ...); ``safe`` is False when it is energised or unknown;
    ``detail`` says what was read, with units (``"output on (OUTP? 1)"``). ``latched`` names
    latched protections (``("WDT",)``): not energy, but the instrument refuses to work until
    ``clear_protection()``, which the start-up check sends only once the fixture is safe.
    ``left_on`` names fixture outputs (``Fixture.set_output`` names, ``("lv_power",)``) that the
    safe state leaves on on purpose and a fixture at rest has off: the start-up check switches
    them off, and reads them back, only once the fixture is confirmed safe.
    """

    what: str
    safe: bool
    detail: str
    latched: tuple[str, ...] = ()
    left_on: tuple[str, ...] = ()


@runtime_checkable
class Instrument(Protocol):
    name: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def identify(self) -> Identity: ...
    async def safe_state(self) -> list[SafeAction]: ...
    async def energy_state(self) -> list[StateFinding]:
        """Read back what the instrument reports now (bounded by the driver's timeout); raises
        ``InstrumentError`` when it cannot be read."""


@dataclass(frozen=True)
class CyclerReading:
    voltage: float  # V at the output terminals
    current: float  # A, + into the pack
    power: float  # W, + into the pack
    ah: float  # Ah counted since the last reset_counters(), + into the pack


SAFE_BUS_V = 60.0  # V: at or above this the HV bus counts as energised (touch-safe limit, DC)
CYCLER_IDLE_A = 0.5  # |A| at the terminals below which a cycler counts as not driving the pack


@runtime_checkable
class Cycler(Instrument, Protocol):
    async def set_output(self, on: bool) -> None: ...
    async def set_voltage(self, volts: float) -> None:
        """CV setpoint: the output never drives the terminals beyond it (charge) / below it (discharge)."""
    async def set_current(self, amps: float) -> None:
        """CC setpoint, + charge / - discharge."""
    async def set_current_limits(self, charge_a: float, discharge_a: float) -> None:
        """Both magnitudes >= 0."""
    async def measure(self) -> CyclerReading: ...
    async def reset_counters(self) -> None: ...
    async def protection(self) -> frozenset[str]:
        """Active protection trips, e.g. {"OVP"}, {"OCP"}, {"OTP"}; empty when healthy."""
    async def measure_and_protection(self) -> tuple[CyclerReading, frozenset[str]]:
        """``measure()`` and ``protection()`` in as few exchanges as the instrument allows
        (the poll of a long charge)."""
    async def clear_protection(self) -> None: ...


@dataclass(frozen=True)
class IrResult:
    resistance: float  # ohm (final reading at the end of the dwell)
    passed: bool  # instrument's own judgement against low_limit
    code: int  # instrument result code (Chroma: 116 PASS ...)
    samples: tuple[tuple[float, float], ...] = ()  # (s since start, ohm) polled during the dwell


@dataclass(frozen=True)
class WithstandResult:
    leakage: float  # A
    arc: bool
    passed: bool
    code: int
    samples: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class BondResult:
    resistance: float  # ohm
    passed: bool
    code: int


@runtime_checkable
class InsulationTester(Instrument, Protocol):
    async def insulation(self, voltage: float, dwell: float, low_limit: float, ramp: float = 1.0) -> IrResult: ...
    async def withstand(self, mode: str, voltage: float, dwell: float, leakage_limit: float, ramp: float = 1.0) -> WithstandResult:
        """mode "AC" or "DC"."""
    async def ground_bond(self, current: float, dwell: float, high_limit: float) -> BondResult: ...
    async def stop(self) -> None: ...


@runtime_checkable
class Dmm(Instrument, Protocol):
    async def measure_dc_voltage(self, range_v: float | None = None, nplc: float = 10.0) -> float: ...


@runtime_checkable
class Fixture(Instrument, Protocol):
    """Outputs (coils) and inputs (discrete inputs) by name, from the fixture's map file.

    Outputs: clamp, lv_power, ir_hv_plus, ir_hv_minus, hvil_break, guard_lock.
    Inputs: estop_released, guard_closed, pack_present, clamp_closed.
    """

    async def set_output(self, name: str, on: bool) -> None: ...
    async def read_inputs(self) -> dict[str, bool]: ...
    async def read_outputs(self) -> dict[str, bool]: ...


@dataclass(frozen=True)
class LeakResult:
    pressure: float  # Pa, pressure decay (or leak figure) reported by the tester
    status: str  # "OK" | "TD" (test part fail) | "RD" (reference fail) | "AL" (alarm)
    raw: str  # the line as received


@runtime_checkable
class LeakTester(Instrument, Protocol):
    async def test(self, timeout: float = 180.0) -> LeakResult: ...


@dataclass(frozen=True)
class Dtc:
    code: int  # 24-bit DTC number
    status: int  # status byte


@runtime_checkable
class Bms(Instrument, Protocol):
    """The pack's BMS: live signals (CAN/DBC or Modbus polling) plus commands and UDS."""

    async def wake(self, timeout: float) -> float:
        """Wait until every mapped cyclic message has been seen; return seconds it took."""
    def signal(self, name: str) -> float:
        """Latest value of a mapped signal (pack_voltage, pack_current, soc, cell_voltage_max, ...).

        Raises StaleSignalError if its message is older than 3 cycle times.
        """
    def cell_voltages(self) -> list[float]:
        """All cell voltages (V) by index; raises StaleSignalError if any cell is stale/missing."""
    def cell_temperatures(self) -> list[float]: ...
    def add_listener(self, callback: Callable[[str, float], None]) -> None:
        """Called in the loop with (signal name, value) on every update."""
    async def request_mode(self, mode: str) -> None:
        """mode: "standby" | "normal" (contactors closed via precharge) | "charge" | "discharge"."""
    async def set_balancing(self, on: bool) -> None: ...
    async def set_insulation_monitor(self, enabled: bool) -> None: ...
    async def uds_read(self, did: int) -> bytes: ...
    async def uds_write(self, did: int, data: bytes) -> None: ...
    async def uds_unlock(self, level: int = 1) -> None: ...
    async def read_dtcs(self, status_mask: int = 0xFF) -> list[Dtc]: ...
    async def clear_dtcs(self) -> None: ...
    async def ecu_reset(self) -> None: ...
    async def routine(self, routine_id: int, data: bytes = b"") -> bytes: ...
