"""The message-based transport interface (SCPI-style lines) that VISA and serial implement."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class MessageTransport(Protocol):
    """Line-oriented request/reply. Every operation has a timeout (s) and raises typed errors.

    Errors: ``ConnectError`` (open/lost), ``InstrumentTimeout`` (no complete line in time),
    ``ProtocolError`` (undecodable bytes).
    """

    resource: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def write(self, command: str) -> None:
        """Send one command line (the termination is the transport's)."""
    async def query(self, command: str, timeout: float | None = None) -> str:
        """Send one command and return the reply line, without its termination."""
    async def read_line(self, timeout: float | None = None) -> str:
        """Read one line the instrument pushed on its own (e.g. an ATEQ end-of-cycle result)."""
