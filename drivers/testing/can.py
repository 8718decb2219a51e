"""Exact-exchange fake CAN port (same surface as ``drivers.transports.can.CanPort``).

``ExpectedFrames([Tx(0x200, "01 00 00 00 00 00 00 00"), Rx(0x300, b"..."), ...])``: every
``send`` must match the next ``Tx`` (id, data, extended flag); ``Rx`` entries right after it are
delivered to the listeners (in the loop, as the Notifier would). ``inject()`` delivers a frame
at any time. A wrong, extra or out-of-order frame fails at once (and again at ``assert_done``,
since a driver's background task may swallow it); frames never sent fail ``assert_done``. An
empty list proves a constructor (or an operation) silent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NoReturn

import can

from drivers.testing.message import ExchangeMismatch


def _bytes(data: bytes | str) -> bytes:
    return bytes.fromhex(data.replace(" ", "")) if isinstance(data, str) else bytes(data)


@dataclass(frozen=True)
class Tx:
    """A frame the driver must send. ``data`` as bytes or hex text (spaces allowed)."""

    frame_id: int
    data: bytes | str
    extended: bool = False

    def __str__(self) -> str:
        return f"0x{self.frame_id:X}{'x' if self.extended else ''} [{_bytes(self.data).hex(' ')}]"


@dataclass(frozen=True)
class Rx:
    """A frame the fake delivers to the listeners once the preceding Tx has matched."""

    frame_id: int
    data: bytes | str
    extended: bool = False

    def message(self) -> can.Message:
        return can.Message(arbitration_id=self.frame_id, data=_bytes(self.data),
                           is_extended_id=self.extended, is_rx=True)


class ExpectedFrames:
    def __init__(self, frames: Iterable[Tx | Rx | tuple[int, bytes | str]], resource: str = "can://expected/0",
                 instrument: str = "") -> None:
        self.resource = resource
        self.instrument = instrument
        self._frames = [Tx(*f) if isinstance(f, tuple) else f for f in frames]
        self._index = 0
        self.listeners: list[Callable[[can.Message], object]] = []
        self.sent: list[can.Message] = []
        self.error: ExchangeMismatch | None = None
        self.opened = False
        self.bus = None
        self.notifier = None

    async def open(self) -> None:
        self.opened = True
        self._deliver_pending()

    async def close(self) -> None:
        self.opened = False

    def add_listener(self, listener: Callable[[can.Message], object]) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener: Callable[[can.Message], object]) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    def send(self, msg: can.Message, *, command: str = "") -> None:
        self.sent.append(msg)
        got = Tx(msg.arbitration_id, bytes(msg.data), msg.is_extended_id)
        if self._index >= len(self._frames) or not isinstance(self._frames[self._index], Tx):
            self._fail(f"extra frame {got}: expected {self._describe_next()}")
        want = self._frames[self._index]
        if (want.frame_id, _bytes(want.data), want.extended) != (got.frame_id, _bytes(got.data), got.extended):
            self._fail(f"frame #{self._index}: expected {want}, got {got}")
        self._index += 1
        self._deliver_pending()

    def inject(self, frame_id: int, data: bytes | str, extended: bool = False) -> None:
        """Deliver one received frame to the listeners on the next loop iteration."""
        self._schedule(Rx(frame_id, data, extended).message())

    def _deliver_pending(self) -> None:
        while self._index < len(self._frames):
            frame = self._frames[self._index]
            if not isinstance(frame, Rx):
                break
            self._schedule(frame.message())
            self._index += 1

    def _schedule(self, msg: can.Message) -> None:
        def deliver() -> None:
            for listener in list(self.listeners):
                listener(msg)

        asyncio.get_running_loop().call_soon(deliver)

    def _describe_next(self) -> str:
        return str(self._frames[self._index]) if self._index < len(self._frames) else "nothing"

    def _fail(self, text: str) -> NoReturn:
        self.error = self.error or ExchangeMismatch(text)
        raise ExchangeMismatch(text)

    def assert_done(self) -> None:
        """Fail on any earlier mismatch, or if expected frames were never exchanged."""
        if self.error is not None:
            raise self.error
        if self._index != len(self._frames):
            left = ", ".join(str(f) for f in self._frames[self._index:])
            raise ExchangeMismatch(f"{len(self._frames) - self._index} expected frame(s) never exchanged: {left}")
