"""What every SCPI driver shares: transport from the resource, ``*CLS`` on open, setting
commands checked against the error queue, numbers as sent and as read, ``*IDN?`` parsing.
Dialects subclass ``ScpiDriver``; none re-implements these."""

from __future__ import annotations

import math
from typing import Any

from drivers.base import IDENTITY_OPTIONS, Driver
from drivers.capabilities import Identity
from drivers.errors import ConnectError, DeviceError, InstrumentError, ProtocolError
from drivers.scpi_table import Reading, Setting, Table, scpi_number
from drivers.transports.factory import open_message_transport
from drivers.transports.message import MessageTransport

NO_ERROR = '+0,"No error"'

__all__ = ["NO_ERROR", "MessageDriver", "ScpiDriver", "scpi_number"]  # scpi_number: for the dialects


class MessageDriver(Driver):
    """A line-based instrument: its transport comes from the resource in ``open()`` (unless one
    was injected, as exact-exchange tests do); the constructor only stores config."""

    TRANSPORT = "message"
    OPTIONS = IDENTITY_OPTIONS

    def __init__(self, name: str, resource: str, **kw: Any) -> None:
        super().__init__(name, resource, **kw)
        self._owns_transport = self.transport is None

    async def open(self) -> None:
        if self.transport is None:
            self.transport = open_message_transport(self.resource, timeout=self.timeout, instrument=self.name)
        await self.transport.open()

    async def close(self) -> None:
        if self.transport is not None:
            await self.transport.close()
            if self._owns_transport:
                self.transport = None

    def _transport(self, command: str) -> MessageTransport:
        if self.transport is None:
            raise ConnectError("not open", instrument=self.name, command=command)
        transport: MessageTransport = self.transport
        return transport


class ScpiDriver(MessageDriver):
    """An SCPI instrument: error queue checked after settings, ``*IDN?`` identity; its
    commands declared as rows in ``TABLE`` (``drivers.scpi_table``)."""

    TABLE: Table | None = None

    def _command(self, key: str, value: object = None, *, validator: object = None, what: str | None = None,
                 **keys: str) -> str:
        """Row ``key`` of ``TABLE`` rendered for ``value``, checked first by the row's validator
        (or ``validator``, for ranges that come from the instrument's options): out of range
        raises ``RangeError`` naming ``what`` before a byte is sent."""
        assert self.TABLE is not None, f"{type(self).__name__} declares no TABLE"
        row = self.TABLE[key]
        assert isinstance(row, Setting), f"{key} is not a setting"
        if validator is not None:
            row = Setting(row.command, validator, row.unit, row.doc, row.format)
        return row.render(value, instrument=self.name, what=what, **keys)

    def _read_row(self, key: str) -> Reading:
        assert self.TABLE is not None, f"{type(self).__name__} declares no TABLE"
        row = self.TABLE[key]
        assert isinstance(row, Reading), f"{key} is not a reading"
        return row

    async def open(self) -> None:
        """Connect, then clear stale entries from the error queue (``*CLS``)."""
        await super().open()
        await self.transport.write("*CLS")

    async def identify(self) -> Identity:
        """``*IDN?`` → maker, model, serial, firmware (calibration due from config); a reply
        without four fields, or without a maker and model, raises ``ProtocolError``."""
        reply = await self._query("*IDN?")
        fields = [f.strip() for f in reply.split(",")]
        if len(fields) != 4 or not all(fields[:2]):
            raise ProtocolError(f"*IDN? reply {reply[:60]!r} is not maker,model,serial,firmware",
                                instrument=self.name, command="*IDN?")
        maker, model, serial, firmware = fields
        return Identity(maker, model, serial, firmware, self.calibration_due)

    async def _set(self, command: str) -> None:
        """Send a setting command, then read the error queue once; raise ``DeviceError``."""
        transport = self._transport(command)
        await transport.write(command)
        reply = await self._error_check(transport, command)
        if reply == NO_ERROR:
            return
        code_text, _, message = reply.partition(",")
        try:
            code = int(code_text)
        except ValueError:
            raise ProtocolError(f"SYST:ERR? reply {reply!r}", instrument=self.name, command=command) from None
        if code != 0:
            raise DeviceError(f"device error {code}: {message.strip().strip(chr(34))}", code=code,
                              instrument=self.name, command=command)

    async def _check_errors(self, commands: str) -> None:
        """Read the error queue once after a batch of ``commands`` written without a check each;
        anything but ``0`` raises ``DeviceError`` naming the batch."""
        reply = await self._query("SYST:ERR?")
        code_text, _, message = reply.partition(",")
        try:
            code = int(code_text)
        except ValueError:
            raise ProtocolError(f"SYST:ERR? reply {reply[:40]!r}", instrument=self.name, command="SYST:ERR?") from None
        if code != 0:
            text = message.strip().strip('"')
            raise DeviceError(f"device error {code}: {text}", code=code, instrument=self.name, command=commands)

    async def _error_check(self, transport: MessageTransport, command: str) -> str:
        """``SYST:ERR?`` after ``command``; a failure to get it names ``command`` too."""
        try:
            return (await transport.query("SYST:ERR?")).strip()
        except InstrumentError as exc:
            inner = str(exc).removeprefix(f"{exc.instrument}: ")
            raise type(exc)(f"{inner}, checking the error queue", instrument=self.name, command=command) from exc

    async def _query(self, command: str, timeout: float | None = None) -> str:
        transport = self._transport(command)
        if timeout is None:
            return await transport.query(command)
        return await transport.query(command, timeout=timeout)

    async def _query_float(self, command: str) -> float:
        """A numeric reply (its first comma-separated field), finite, else ``ProtocolError``."""
        reply = await self._query(command)
        try:
            value = float(reply.split(",")[0])
        except ValueError:
            value = float("nan")
        if not math.isfinite(value):
            raise ProtocolError(f"not a number: {reply[:40]!r}", instrument=self.name, command=command)
        return value

    async def _query_int(self, command: str, *, low: int, high: int) -> int:
        """An integer reply within ``[low, high]``, else ``ProtocolError``."""
        reply = await self._query(command)
        try:
            value = int(reply.strip())
        except ValueError:
            raise ProtocolError(f"not an integer: {reply[:40]!r}", instrument=self.name, command=command) from None
        if not low <= value <= high:
            raise ProtocolError(f"{value} outside [{low}, {high}]", instrument=self.name, command=command)
        return value
