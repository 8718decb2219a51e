"""What a ``Sequencer`` is built with: the run's identity, the fixture's instruments, where its
events and questions go. Frozen: nothing of it changes once the run is built."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from station.engine.emitter import Subscriber
from station.events import InstrumentInfo, PromptRequested

PromptHandler = Callable[[PromptRequested], Awaitable[str]]


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True)
class RunInfo:
    """Who and what the run is, as its ``RunStarted`` records it."""

    serial: str
    operator: str = ""
    station_id: str = "station"
    fixture_id: str = "F1"
    simulated: bool = False
    faults: tuple[str, ...] = ()  # the simulator faults injected, as given
    mes_transaction_id: str | None = None  # from the MES route check
    # RunStarted's provenance fields (station.security.provenance.fields: station mode, config and
    # release signature, audit head; sim_pack and sim_pack_sha256 for a simulated run)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    run_id: str = field(default_factory=new_run_id)


@dataclass(frozen=True)
class Opened:
    """The fixture's instruments as opening them left them."""

    drivers: Mapping[str, Any]  # role -> open driver: the safe state talks to these only
    identities: Sequence[InstrumentInfo] = ()
    error: str | None = None  # why one could not be opened: the run records it and goes safe


Opener = Callable[[], Awaitable[Opened]]


@dataclass(frozen=True)
class Instruments:
    """The fixture's instruments: ``drivers`` already open, or ``opener`` for the run to open
    them first (a stop requested meanwhile ends the run as soon as they are open)."""

    drivers: Mapping[str, Any] = field(default_factory=dict)  # role -> driver
    identities: Sequence[InstrumentInfo] = ()
    opener: Opener | None = None
    locks: Mapping[str, asyncio.Lock] = field(default_factory=dict)  # role -> lock of a shared instrument
    interlock_period: float = 0.1  # s between polls of the fixture's interlock inputs


@dataclass(frozen=True)
class Outlets:
    """Where the run's events and questions go."""

    critical: Sequence[Subscriber] = ()  # the journal: when it cannot record, the run stops
    subscribers: Sequence[Subscriber] = ()  # viewers: one that raises is detached, the run goes on
    prompt_handler: PromptHandler | None = None  # the operator; None: prompts take their default
