"""Common driver plumbing: construction from config without I/O, async context management."""

from __future__ import annotations

import datetime as dt
from types import TracebackType
from typing import Any, Self

# Identity fallbacks every driver accepts in its options (for what the device cannot report).
IDENTITY_OPTIONS = frozenset({"maker", "model", "serial", "firmware"})


class Driver:
    """Base for every driver. The constructor only stores configuration: no I/O.

    ``name`` is the station role ("cycler", "bms", ...), used in every error message.
    ``transport`` may be injected (exact-exchange tests); otherwise ``open()`` builds it from
    ``resource``. ``timeout`` (s) bounds every single operation.

    What the station checks before anything is opened (``station.instruments``):
    ``TRANSPORT`` — the resource kind the driver needs (``drivers.transports.resources.KINDS``);
    ``OPTIONS`` — the option keys it reads (None: not declared, not checked); ``check()`` —
    anything else that can be refused without touching the instrument (map files, DBCs).
    """

    TRANSPORT: str | None = None
    OPTIONS: frozenset[str] | None = None

    def check(self) -> None:
        """Raise (ValueError or a driver error) for configuration the instrument would refuse;
        reads files at most, never the instrument."""

    def __init__(
        self,
        name: str,
        resource: str,
        *,
        options: dict[str, Any] | None = None,
        calibration_due: dt.date | None = None,
        timeout: float = 2.0,
        transport: Any = None,
    ) -> None:
        self.name = name
        self.resource = resource
        self.options = dict(options or {})
        self.calibration_due = calibration_due
        self.timeout = timeout
        self.transport = transport

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def open(self) -> None:  # pragma: no cover - every driver overrides
        raise NotImplementedError

    async def close(self) -> None:  # pragma: no cover - every driver overrides
        raise NotImplementedError
