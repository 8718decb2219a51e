"""State of the simulated BMS ECU behind its UDS server: DIDs, DTCs, routines, session, security.

DID layout and the seed/key algorithm come from the DID table shared with the driver
(drivers/maps/did_table.yaml). Every rule that can refuse a request raises ``NegativeResponse``
with its ISO 14229-1 NRC; the server (sim/bms/uds_server.py) turns that into ``7F SID NRC``.
Faults are plain state: ``add_dtc`` for present DTCs, ``set_value`` for a wrong SW version.
Times (``now``) are seconds on the loop clock, virtual or real.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from drivers.bms.did_table import DidTable, DidValueError, load_did_table
from drivers.bms.security import compute_key
from drivers.capabilities import Dtc

DEFAULT, PROGRAMMING, EXTENDED = 0x01, 0x02, 0x03
MAX_KEY_ATTEMPTS = 3  # wrong keys in a row before the lockout (NRC 0x36)
LOCKOUT_S = 10.0  # s during which seeds are refused after the lockout (NRC 0x37)
DTC_AVAILABILITY_MASK = 0xFF  # status bits this ECU supports (all eight)
ALL_DTCS = 0xFFFFFF  # ClearDiagnosticInformation group "all groups"


class Nrc(IntEnum):
    """Negative response codes used here (ISO 14229-1 Annex A.1)."""

    SERVICE_NOT_SUPPORTED = 0x11
    SUB_FUNCTION_NOT_SUPPORTED = 0x12
    INCORRECT_LENGTH = 0x13
    RESPONSE_TOO_LONG = 0x14
    CONDITIONS_NOT_CORRECT = 0x22
    REQUEST_SEQUENCE_ERROR = 0x24
    REQUEST_OUT_OF_RANGE = 0x31
    SECURITY_ACCESS_DENIED = 0x33
    INVALID_KEY = 0x35
    EXCEEDED_ATTEMPTS = 0x36
    TIME_DELAY_NOT_EXPIRED = 0x37
    RESPONSE_PENDING = 0x78
    NOT_IN_ACTIVE_SESSION = 0x7F


class NegativeResponse(Exception):
    """Refuse the request with ``nrc``; ``why`` is for humans reading a failing test."""

    def __init__(self, nrc: int, why: str = "") -> None:
        self.nrc = Nrc(nrc)
        super().__init__(f"{self.nrc.name} ({nrc:#04x}){': ' + why if why else ''}")


@dataclass
class Routine:
    """A RoutineControl (0x31) routine. ``delay`` > 0 (s, loop clock): the start request is
    answered 0x78 responsePending first and positively after the delay. ``run`` maps the
    option record to the status record (default: one byte 0x00, "completed OK")."""

    name: str
    delay: float = 0.0
    run: Callable[[bytes], bytes] | None = None

    def result(self, options: bytes) -> bytes:
        return self.run(options) if self.run is not None else b"\x00"


def default_routines() -> dict[int, Routine]:
    return {0x0203: Routine("balancing_check", delay=1.0), 0x0204: Routine("contactor_test")}


@dataclass
class EcuState:
    table: DidTable
    dids: dict[int, bytes]
    dtcs: list[Dtc] = field(default_factory=list)
    routines: dict[int, Routine] = field(default_factory=default_routines)
    session: int = DEFAULT
    unlocked_level: int = 0  # 0 = locked
    failed_attempts: int = 0
    locked_until: float = float("-inf")  # loop-clock s until which seeds are refused
    pending_seed: tuple[int, bytes] | None = None  # (level, seed) awaiting its key
    routine_results: dict[int, bytes] = field(default_factory=dict)
    running: set[int] = field(default_factory=set)
    resets: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    @classmethod
    def from_table(
        cls,
        table: DidTable | None = None,
        *,
        values: Mapping[int | str, Any] | None = None,
        dtcs: Iterable[Dtc | tuple[int, int]] = (),
        seed: int = 0,
    ) -> EcuState:
        """An ECU holding the table defaults, overridden by ``values`` (DID or name -> value,
        e.g. the product identity of the simulated pack), with ``dtcs`` present."""
        table = table or load_did_table()
        ecu = cls(table, {did: entry.default for did, entry in table.entries.items()}, rng=random.Random(seed))
        for key, value in (values or {}).items():
            ecu.set_value(key, value)
        for dtc in dtcs:
            ecu.add_dtc(*((dtc.code, dtc.status) if isinstance(dtc, Dtc) else dtc))
        return ecu

    # --- fault hooks and inspection -------------------------------------------------------------

    def set_value(self, did_or_name: int | str, value: Any) -> None:
        """Set a DID (any, writable or not) from a value in its codec's form, or raw bytes."""
        entry = self.table.resolve(did_or_name)
        self.dids[entry.did] = entry.encode(value)

    def value(self, did_or_name: int | str) -> Any:
        entry = self.table.resolve(did_or_name)
        return entry.decode(self.dids[entry.did])

    def add_dtc(self, code: int, status: int = 0x09) -> None:
        """Make DTC ``code`` present with ``status`` (default testFailed | confirmedDTC)."""
        if not 0 <= code <= 0xFFFFFF or not 0 <= status <= 0xFF:
            raise ValueError(f"DTC {code:#x} status {status:#x} out of range")
        self.dtcs = [d for d in self.dtcs if d.code != code] + [Dtc(code, status)]

    # --- session and reset ----------------------------------------------------------------------

    def change_session(self, session: int) -> None:
        if session not in (DEFAULT, PROGRAMMING, EXTENDED):
            raise NegativeResponse(Nrc.SUB_FUNCTION_NOT_SUPPORTED, f"session {session:#04x}")
        if session != self.session or session != DEFAULT:
            self.relock()  # every session transition relocks (ISO 14229-1 9.2)
        self.session = session

    def relock(self) -> None:
        self.unlocked_level = 0
        self.pending_seed = None

    def hard_reset(self) -> None:
        """0x11 01: back to the default session, relocked; DIDs (EOL data) persist."""
        self.session = DEFAULT
        self.relock()
        self.running.clear()
        self.resets += 1

    # --- security access ------------------------------------------------------------------------

    def request_seed(self, level: int, now: float) -> bytes:
        config = self._level(level)
        if now < self.locked_until:
            raise NegativeResponse(Nrc.TIME_DELAY_NOT_EXPIRED, f"{self.locked_until - now:.1f} s left")
        if self.unlocked_level == level:
            return bytes(config.seed_length)  # all zeros: already unlocked
        seed = b""
        while not any(seed):
            seed = bytes(self.rng.randrange(256) for _ in range(config.seed_length))
        self.pending_seed = (level, seed)
        return seed

    def send_key(self, level: int, key: bytes, now: float) -> None:
        config = self._level(level)
        if now < self.locked_until:
            raise NegativeResponse(Nrc.TIME_DELAY_NOT_EXPIRED, f"{self.locked_until - now:.1f} s left")
        if self.pending_seed is None or self.pending_seed[0] != level:
            raise NegativeResponse(Nrc.REQUEST_SEQUENCE_ERROR, "sendKey without requestSeed")
        seed, self.pending_seed = self.pending_seed[1], None
        if key != compute_key(config.algorithm, seed, config.params):
            self.failed_attempts += 1
            if self.failed_attempts >= MAX_KEY_ATTEMPTS:
                self.failed_attempts = 0
                self.locked_until = now + LOCKOUT_S
                raise NegativeResponse(Nrc.EXCEEDED_ATTEMPTS, f"{MAX_KEY_ATTEMPTS} wrong keys")
            raise NegativeResponse(Nrc.INVALID_KEY)
        self.failed_attempts = 0
        self.unlocked_level = level

    def _level(self, level: int):
        config = self.table.security.get(level)
        if config is None:
            raise NegativeResponse(Nrc.SUB_FUNCTION_NOT_SUPPORTED, f"security level {level}")
        return config

    # --- data identifiers -----------------------------------------------------------------------

    def read_did(self, did: int) -> bytes:
        if did not in self.dids:
            raise NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE, f"DID {did:#06x} unknown")
        return self.dids[did]

    def write_did(self, did: int, data: bytes) -> None:
        """ISO 14229-1 order of checks: DID writable (0x31), security (0x33), length (0x13), value (0x31)."""
        entry = self.table.get(did)
        if entry is None or not entry.writable:
            raise NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE, f"DID {did:#06x} not writable")
        if entry.security and self.unlocked_level != entry.security:
            raise NegativeResponse(Nrc.SECURITY_ACCESS_DENIED, f"DID {did:#06x} needs level {entry.security}")
        if len(data) != entry.length:
            raise NegativeResponse(Nrc.INCORRECT_LENGTH, f"DID {did:#06x} takes {entry.length} bytes")
        try:
            entry.decode(data)
        except DidValueError as exc:
            raise NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE, str(exc)) from None
        self.dids[did] = bytes(data)

    # --- diagnostic trouble codes ---------------------------------------------------------------

    def dtcs_matching(self, mask: int) -> list[Dtc]:
        return [d for d in self.dtcs if d.status & mask & DTC_AVAILABILITY_MASK]

    def clear_dtcs(self, group: int) -> None:
        if group == ALL_DTCS:
            self.dtcs = []
        elif any(d.code == group for d in self.dtcs):
            self.dtcs = [d for d in self.dtcs if d.code != group]
        else:
            raise NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE, f"DTC group {group:#08x}")
