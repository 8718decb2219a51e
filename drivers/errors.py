"""Typed instrument errors, by lifecycle, carrying the instrument and the command.

The sequencer decides outcomes from these types: any ``InstrumentError`` makes a step ERROR
and takes the run to the safe state; ``RangeError`` is raised before a byte is sent.
"""

from __future__ import annotations

from typing import ClassVar


class InstrumentError(Exception):
    """Base of every driver error. ``instrument`` names the station role or resource.

    ``connection_lost``: after this error the connection cannot be trusted (the peer went
    away, or a reply may still be in flight on it); the station re-opens the instrument before
    its next run.
    """

    connection_lost: ClassVar[bool] = False

    def __init__(self, message: str, *, instrument: str = "", command: str = "") -> None:
        self.message = message  # without the instrument and command (for wrapping in another error)
        self.instrument = instrument
        self.command = command
        where = f"{instrument}: " if instrument else ""
        what = f" (command {command!r})" if command else ""
        super().__init__(f"{where}{message}{what}")


class ConnectError(InstrumentError):
    """The transport could not be opened, or was lost."""

    connection_lost = True


class InstrumentTimeout(InstrumentError, TimeoutError):
    """No (complete) reply within the configured timeout."""

    connection_lost = True


class ProtocolError(InstrumentError):
    """A reply that does not parse: garbage, partial, wrong framing or CRC."""


class DeviceError(InstrumentError):
    """The instrument reported an error (SCPI error queue, Modbus exception, UDS NRC, protection trip)."""

    def __init__(self, message: str, *, code: int | str | None = None, instrument: str = "",
                 command: str = "") -> None:
        self.code = code
        super().__init__(message, instrument=instrument, command=command)


class RangeError(InstrumentError, ValueError):
    """A setpoint outside the validated range; refused before any byte is sent, never clipped."""


class StaleSignalError(InstrumentError):
    """A live signal whose frame has not arrived within 3 cycle times."""


class UnknownDriverError(InstrumentError, LookupError):
    """A driver key that is not registered."""
