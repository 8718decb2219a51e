"""The safe state: every instrument's ``safe_state()``, each even if another raised, then an
independent confirmation that the HV bus is below 60 V before the guard may unlock.

The order, which roles can hold voltage on the bus and which one reads it come from the role
table (``drivers/roles.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from drivers import roles
from drivers.base.readout import fixed
from drivers.capabilities import SafeAction
from drivers.errors import InstrumentError
from station.engine.emitter import Emit
from station.events import SETTLED_BY_BUS, SETTLES, SafeStateAction

SAFE_TIMEOUT = 5.0  # s per instrument
SAFE_VOLTAGE = 60.0  # V: above this is HV
CONFIRM_WITHIN = 30.0  # s to see the bus fall below SAFE_VOLTAGE


@dataclass
class SafeOutcome:
    """What the safe state could not confirm: role -> the actions (or the error) in question;
    ``settleable``: unconfirmed actions an independent bus reading below 60 V makes safe."""

    unconfirmed: dict[str, list[str]] = field(default_factory=dict)
    settleable: dict[str, list[str]] = field(default_factory=dict)
    lost: set[str] = field(default_factory=set)  # roles whose link failed: re-opened before the next run

    @property
    def confirmed(self) -> bool:
        return not self.unconfirmed

    def add(self, role: str, what: str) -> None:
        self.unconfirmed.setdefault(role, []).append(what)

    def describe(self) -> str:
        """``bms (requested standby: no acknowledgement); dmm (...)`` for the record's reason."""
        return "; ".join(f"{role} ({', '.join(items)})" for role, items in self.unconfirmed.items())


def link_lost(err: BaseException) -> bool:
    """Whether ``err`` leaves an instrument's connection untrusted: the peer went away, or a reply
    may still be in flight (its driver's timeout, or the safe state's own bound, expired)."""
    return (err.connection_lost if isinstance(err, InstrumentError) else False) or isinstance(err, TimeoutError)


async def run_safe_state(instruments: Mapping[str, Any], locks: Mapping[str, asyncio.Lock], emit: Emit) -> SafeOutcome:
    """Bring every instrument of ``instruments`` (role -> open driver) to its safe state, each even
    if another failed, in the role table's order; then confirm the bus below 60 V with the bus's
    voltmeter. ``locks``: the shared instruments' (role -> lock). Each action is recorded through
    ``emit`` as it completes."""
    outcome = SafeOutcome()
    for role in roles.safe_order(instruments):  # HV sources first, the bus's voltmeter last
        instrument = instruments[role]
        lock = locks.get(role)
        if lock is not None and _in_use(lock):
            # A shared instrument (one IR tester behind a relay matrix) busy with another
            # fixture's pack: stopping it would abort that pack's test. It cannot energise this
            # pack: the fixture's own safe state releases this fixture's HV relays (and confirms it).
            emit(SafeStateAction, instrument=role, ok=True, confirmed=True,
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
                emit(SafeStateAction, instrument=role, action=item.action, ok=True, confirmed=item.confirmed)
                if item.confirmed:
                    continue
                if item.bus_settles:
                    outcome.settleable.setdefault(role, []).append(item.action)
                else:
                    outcome.add(role, f"{item.action}: not acknowledged")
        except Exception as err:  # one failing safe state never stops the others
            emit(SafeStateAction, instrument=role, action="safe_state()", ok=False,
                 error=f"{type(err).__name__}: {err}")
            outcome.add(role, f"{type(err).__name__}: {err}")
            if link_lost(err):
                outcome.lost.add(role)
    voltmeter = roles.on_duty(roles.BUS_VOLTMETER)
    problem, volts = await _confirm_bus(instruments, voltmeter, emit, outcome)
    if problem:
        outcome.add(voltmeter, problem)
    for role, actions in outcome.settleable.items():
        if problem:
            for action in actions:
                outcome.add(role, f"{action}: not acknowledged, and the bus is not confirmed below {SAFE_VOLTAGE:g} V")
        else:
            reading = f"{fixed(volts)} V < {SAFE_VOLTAGE:g} V" if volts is not None else "no bus on this fixture"
            for action in actions:  # one line each: the record pairs it with the line it settles
                emit(SafeStateAction, instrument=role, ok=True, confirmed=True,
                     action=f"{SETTLED_BY_BUS} ({reading}, no HV at the connector){SETTLES}{action}")
    return outcome


def _in_use(lock: asyncio.Lock) -> bool:
    """Held by another fixture, or just handed to one: asyncio.Lock passes it to a waiter on the
    waiter's next turn, and until then ``locked()`` is False. (``_waiters`` is asyncio's own queue;
    its ``acquire()`` takes the lock without waiting exactly when this returns False.)"""
    return lock.locked() or any(not w.cancelled() for w in (getattr(lock, "_waiters", None) or ()))


async def _confirm_bus(instruments: Mapping[str, Any], voltmeter: str, emit: Emit,
                       outcome: SafeOutcome) -> tuple[str | None, float | None]:
    """Read the bus with ``instruments[voltmeter]`` until it is below ``SAFE_VOLTAGE``: (None, volts)
    when confirmed (volts None when there is no bus to read), else (what failed, None)."""
    dmm = instruments.get(voltmeter)
    if dmm is None:
        sources = [role for role in roles.energy_roles() if role in instruments]
        if not sources:  # nothing on this fixture can put or keep voltage on the bus
            emit(SafeStateAction, instrument=voltmeter, ok=True, confirmed=True,
                 action="no HV source, tester or contactor on this fixture: no bus to confirm")
            return None, None
        emit(SafeStateAction, instrument=voltmeter, action="bus voltage not confirmed: no DMM on this fixture",
             ok=True, confirmed=False)
        return f"no DMM on this fixture to confirm the bus below 60 V ({', '.join(sources)} present)", None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONFIRM_WITHIN
    volts = float("nan")
    while True:
        try:
            volts = await asyncio.wait_for(dmm.measure_dc_voltage(1000.0, 1.0), SAFE_TIMEOUT)
        except Exception as err:
            emit(SafeStateAction, instrument=voltmeter, action="confirm bus < 60 V", ok=False,
                 error=f"{type(err).__name__}: {err}")
            if link_lost(err):
                outcome.lost.add(voltmeter)
            return f"bus voltage unreadable: {type(err).__name__}: {err}", None
        if abs(volts) < SAFE_VOLTAGE:
            emit(SafeStateAction, instrument=voltmeter, action=f"bus {fixed(volts)} V < {SAFE_VOLTAGE:g} V confirmed",
                 ok=True, confirmed=True)
            return None, volts
        if loop.time() >= deadline:
            error = f"bus still {volts:.1f} V after {CONFIRM_WITHIN:g} s"
            emit(SafeStateAction, instrument=voltmeter, action="confirm bus < 60 V", ok=False, error=error)
            return error, None
        await asyncio.sleep(0.5)
