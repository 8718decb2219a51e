"""What an action sees while it runs: its instruments, the clock, series and prompts."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from station.engine.errors import StepError

if TYPE_CHECKING:  # pragma: no cover
    from station.engine.sequencer import Sequencer


class ActionContext:
    """Per-step handle given to an action function as its first argument."""

    def __init__(self, seq: Sequencer, path: str, names: Mapping[str, Any]) -> None:
        self._seq = seq
        self.path = path
        self.names = names

    def instrument(self, role: str) -> Any:
        """The driver bound to ``role`` for this fixture (raises StepError if the station lacks it)."""
        try:
            return self._seq.instruments[role]
        except KeyError:
            raise StepError(f"the station has no instrument '{role}' for this fixture") from None

    def has_instrument(self, role: str) -> bool:
        return role in self._seq.instruments

    def now(self) -> float:
        """Station clock, s."""
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        """A physical wait on the station clock (virtual against the in-process simulator)."""
        await asyncio.sleep(max(0.0, seconds))

    def series(self, name: str, columns: list[str], rows: list[list[float]]) -> None:
        """Record a time series (for plots in the report)."""
        self._seq.record_series(self.path, name, columns, rows)

    def log(self, message: str, level: str = "info") -> None:
        self._seq.log(message, level)

    async def prompt(self, kind: str, message: str, *, pattern: str | None = None, default: str | None = None) -> str:
        """Ask the operator; returns the answer text ("yes"/"no" for confirm)."""
        return await self._seq.prompt(self.path, kind, message, pattern, default)

    @property
    def serial(self) -> str:
        return self._seq.serial

    @property
    def parameters(self) -> Mapping[str, Any]:
        return self._seq.bound.parameters
