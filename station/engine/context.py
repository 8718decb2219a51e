"""What an action sees while it runs: its instruments, the clock, series and prompts."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from station.engine.emitter import Emitter
from station.engine.errors import StepError


class Prompt(Protocol):
    """Ask the operator for the step at ``path``; returns the answer text."""

    async def __call__(self, path: str, kind: str, message: str, pattern: str | None, default: str | None) -> str: ...


@dataclass(frozen=True)
class RunServices:
    """What every step of one run shares: the fixture's open instruments (role -> driver), the
    pack's serial and the plan's parameters, the run's record and the operator."""

    instruments: Mapping[str, Any]
    serial: str
    parameters: Mapping[str, Any]
    emitter: Emitter
    prompt: Prompt


class ActionContext:
    """Per-step handle given to an action function as its first argument."""

    __slots__ = ("_run", "path", "names")

    def __init__(self, run: RunServices, path: str, names: Mapping[str, Any]) -> None:
        self._run = run
        self.path = path
        self.names = names

    def instrument(self, role: str) -> Any:
        """The driver bound to ``role`` for this fixture (raises StepError if the station lacks it)."""
        try:
            return self._run.instruments[role]
        except KeyError:
            raise StepError(f"the station has no instrument '{role}' for this fixture") from None

    def has_instrument(self, role: str) -> bool:
        return role in self._run.instruments

    def now(self) -> float:
        """Station clock, s."""
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        """A physical wait on the station clock (virtual against the in-process simulator)."""
        await asyncio.sleep(max(0.0, seconds))

    def series(self, name: str, columns: list[str], rows: list[list[float]]) -> None:
        """Record a time series (for plots in the report)."""
        self._run.emitter.series(self.path, name, columns, rows)

    def log(self, message: str, level: str = "info") -> None:
        self._run.emitter.log(message, level)

    async def prompt(self, kind: str, message: str, *, pattern: str | None = None, default: str | None = None) -> str:
        """Ask the operator; returns the answer text ("yes"/"no" for confirm)."""
        return await self._run.prompt(self.path, kind, message, pattern, default)

    @property
    def serial(self) -> str:
        return self._run.serial

    @property
    def parameters(self) -> Mapping[str, Any]:
        return self._run.parameters
