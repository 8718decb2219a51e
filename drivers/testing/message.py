"""Exact-exchange fake for message transports.

``ExpectedMessages([(sent, reply), ...])`` drives a real driver: each ``write`` must match the
next pair's ``sent`` with ``reply is None``; each ``query`` must match ``sent`` and returns
``reply``; each ``read_line`` must meet a pair with ``sent is None``. A reply that is an
exception instance is raised instead. Wrong, extra, out-of-order or unread messages fail the
test; an empty list proves a constructor silent.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType


class ExchangeMismatch(AssertionError):
    """The driver deviated from the expected exchange."""


class ExpectedMessages:
    def __init__(self, pairs: Iterable[tuple[str | None, object]], resource: str = "expected://") -> None:
        self.resource = resource
        self._pairs = list(pairs)
        self._index = 0
        self.opened = False

    def _next(self, kind: str, sent: str | None) -> object:
        if self._index >= len(self._pairs):
            raise ExchangeMismatch(f"extra {kind} {sent!r}: no more messages were expected")
        want_sent, reply = self._pairs[self._index]
        if want_sent != sent:
            raise ExchangeMismatch(
                f"message #{self._index}: expected {kind} of {want_sent!r}, got {sent!r}"
            )
        self._index += 1
        if isinstance(reply, BaseException):
            raise reply
        return reply

    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        self.opened = False

    async def write(self, command: str) -> None:
        reply = self._next("write", command)
        if reply is not None:
            raise ExchangeMismatch(f"{command!r} was expected as a query (reply {reply!r}), not a write")

    async def query(self, command: str, timeout: float | None = None) -> str:
        reply = self._next("query", command)
        if reply is None:
            raise ExchangeMismatch(f"{command!r} was expected as a write, not a query")
        return str(reply)

    async def read_line(self, timeout: float | None = None) -> str:
        reply = self._next("read", None)
        return str(reply)

    def assert_done(self) -> None:
        """Fail if any expected message was never exchanged."""
        if self._index != len(self._pairs):
            left = self._pairs[self._index :]
            raise ExchangeMismatch(f"{len(left)} expected message(s) never exchanged: {left!r}")

    async def __aenter__(self) -> ExpectedMessages:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if exc_type is None:
            self.assert_done()
