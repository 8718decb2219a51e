"""The safe state: every instrument's ``safe_state()``, each even if another raised, then an
independent confirmation that the HV bus is below 60 V before the guard may unlock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from drivers.base.readout import fixed
from drivers.capabilities import SafeAction
from station.events import SETTLED_BY_BUS, SETTLES, SafeStateAction

if TYPE_CHECKING:  # pragma: no cover
    from station.engine.sequencer import Sequencer

# HV sources first (hipot, cycler), then the pack (contactors open, IMD back on), then relays.
ORDER = ("safety", "cycler", "bms", "leak", "fixture", "dmm")
SAFE_TIMEOUT = 5.0  # s per instrument
SAFE_VOLTAGE = 60.0  # V: above this is HV
CONFIRM_WITHIN = 30.0  # s to see the bus fall below SAFE_VOLTAGE
ENERGY_ROLES = ("safety", "cycler", "bms")  # what can put or keep voltage on the bus (contactors)


def _ordered(roles) -> list[str]:
    return sorted(roles, key=lambda r: ORDER.index(r) if r in ORDER else len(ORDER))


@dataclass
class SafeOutcome:
    """What the safe state could not confirm: role -> the actions (or the error) in question;
    ``settleable``: unconfirmed actions an independent bus reading below 60 V makes safe."""

    unconfirmed: dict[str, list[str]] = field(default_factory=dict)
    settleable: dict[str, list[str]] = field(default_factory=dict)

    @property
    def confirmed(self) -> bool:
        return not self.unconfirmed

    def add(self, role: str, what: str) -> None:
        self.unconfirmed.setdefault(role, []).append(what)

    def describe(self) -> str:
        """``bms (requested standby: no acknowledgement); dmm (...)`` for the record's reason."""
        return "; ".join(f"{role} ({', '.join(items)})" for role, items in self.unconfirmed.items())


async def run_safe_state(seq: Sequencer) -> SafeOutcome:
    """Bring every instrument to its safe state, each even if another failed; then confirm the
    bus below 60 V with the DMM. Each action is journalled as it completes."""
    outcome = SafeOutcome()
    for role in _ordered(seq.instruments):
        instrument = seq.instruments[role]
        lock = seq.locks.get(role)
        if lock is not None and _in_use(lock):
            # A shared instrument (one IR tester behind a relay matrix) busy with another
            # fixture's pack: stopping it would abort that pack's test. It cannot energise this
            # pack: the fixture's own safe state releases this fixture's HV relays (and confirms it).
            seq.emit(SafeStateAction, instrument=role, ok=True, confirmed=True,
                     action="shared, in use by another fixture: left running; this fixture's relays are released")
            continue
        try:
            if lock is None:
                done = await asyncio.wait_for(instrument.safe_state(), SAFE_TIMEOUT)
            else:
                # Free: taken at once (no wait), and held until the stop is confirmed, so no
                # other fixture starts a test between this SAFE:STOP and its check.
                async with lock:
                    done = await asyncio.wait_for(instrument.safe_state(), SAFE_TIMEOUT)
            for item in done or ["safe state reached"]:
                # A plain string comes from a driver not yet reporting confirmation: it is
                # taken at its word, as before SafeAction existed.
                if not isinstance(item, SafeAction):
                    item = SafeAction(str(item), True)
                seq.emit(SafeStateAction, instrument=role, action=item.action, ok=True, confirmed=item.confirmed)
                if item.confirmed:
                    continue
                if item.bus_settles:
                    outcome.settleable.setdefault(role, []).append(item.action)
                else:
                    outcome.add(role, f"{item.action}: not acknowledged")
        except Exception as err:  # one failing safe state never stops the others
            seq.emit(SafeStateAction, instrument=role, action="safe_state()", ok=False,
                     error=f"{type(err).__name__}: {err}")
            outcome.add(role, f"{type(err).__name__}: {err}")
    problem, volts = await _confirm_bus(seq)
    if problem:
        outcome.add("dmm", problem)
    for role, actions in outcome.settleable.items():
        if problem:
            for action in actions:
                outcome.add(role, f"{action}: not acknowledged, and the bus is not confirmed below {SAFE_VOLTAGE:g} V")
        else:
            reading = f"{fixed(volts)} V < {SAFE_VOLTAGE:g} V" if volts is not None else "no bus on this fixture"
            for action in actions:  # one line each: the record pairs it with the line it settles
                seq.emit(SafeStateAction, instrument=role, ok=True, confirmed=True,
                         action=f"{SETTLED_BY_BUS} ({reading}, no HV at the connector){SETTLES}{action}")
    return outcome


def _in_use(lock: asyncio.Lock) -> bool:
    """Held by another fixture, or just handed to one: asyncio.Lock passes it to a waiter on the
    waiter's next turn, and until then ``locked()`` is False. (``_waiters`` is asyncio's own queue;
    its ``acquire()`` takes the lock without waiting exactly when this returns False.)"""
    return lock.locked() or any(not w.cancelled() for w in (getattr(lock, "_waiters", None) or ()))


async def _confirm_bus(seq: Sequencer) -> tuple[str | None, float | None]:
    """Read the bus until it is below ``SAFE_VOLTAGE``: (None, volts) when confirmed (volts None
    when there is no bus to read), else (what failed, None)."""
    dmm = seq.instruments.get("dmm")
    if dmm is None:
        sources = [role for role in ENERGY_ROLES if role in seq.instruments]
        if not sources:  # nothing on this fixture can put or keep voltage on the bus
            seq.emit(SafeStateAction, instrument="dmm", ok=True, confirmed=True,
                     action="no HV source, tester or contactor on this fixture: no bus to confirm")
            return None, None
        seq.emit(SafeStateAction, instrument="dmm", action="bus voltage not confirmed: no DMM on this fixture",
                 ok=True, confirmed=False)
        return f"no DMM on this fixture to confirm the bus below 60 V ({', '.join(sources)} present)", None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONFIRM_WITHIN
    volts = float("nan")
    while True:
        try:
            volts = await asyncio.wait_for(dmm.measure_dc_voltage(1000.0, 1.0), SAFE_TIMEOUT)
        except Exception as err:
            seq.emit(SafeStateAction, instrument="dmm", action="confirm bus < 60 V", ok=False,
                     error=f"{type(err).__name__}: {err}")
            return f"bus voltage unreadable: {type(err).__name__}: {err}", None
        if abs(volts) < SAFE_VOLTAGE:
            seq.emit(SafeStateAction, instrument="dmm", action=f"bus {fixed(volts)} V < {SAFE_VOLTAGE:g} V confirmed",
                     ok=True, confirmed=True)
            return None, volts
        if loop.time() >= deadline:
            error = f"bus still {volts:.1f} V after {CONFIRM_WITHIN:g} s"
            seq.emit(SafeStateAction, instrument="dmm", action="confirm bus < 60 V", ok=False, error=error)
            return error, None
        await asyncio.sleep(0.5)
