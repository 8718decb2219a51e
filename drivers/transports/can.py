"""CAN transport: one python-can bus plus ONE in-loop Notifier shared by every listener.

Resource syntax: ``can://<interface>/<channel>?bitrate=500000&key=value...``, e.g.
``can://station_loop/F1`` (the in-process bus the simulator joins), ``can://socketcan/can0``,
``can://socketcand/can0?host=127.0.0.1&port=29536``, ``can://pcan/PCAN_USBBUS1``,
``can://virtual/x``. Query values that look like integers/floats/booleans are converted; every
option goes to ``can.Bus(...)``. ``can:station_loop/F1`` (no slashes) is accepted too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import can

from drivers.errors import ConnectError, InstrumentError
from drivers.transports.reach import probe

Listener = Callable[[can.Message], Any]
# s to wait for a socketcand server to accept the connection (python-can's own connect is not
# bounded by anything but its 10 s loop, see ``CanPort.open``)
SOCKETCAND_CONNECT = 3.0


def _coerce(text: str) -> Any:
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for kind in (int, float):
        try:
            return kind(text, 0) if kind is int else kind(text)
        except ValueError:
            pass
    return text


def parse_can_resource(resource: str) -> tuple[str, str, dict[str, Any]]:
    """``can://iface/channel?k=v`` -> (interface, channel, options); ValueError if malformed."""
    parts = urlsplit(resource)
    if parts.scheme != "can":
        raise ValueError(f"not a CAN resource (want can://<interface>/<channel>): {resource!r}")
    if parts.netloc:
        interface, channel = parts.netloc, parts.path.lstrip("/")
    else:
        interface, _, channel = parts.path.lstrip("/").partition("/")
    if not interface or not channel:
        raise ValueError(f"CAN resource needs an interface and a channel: {resource!r}")
    options = {key: _coerce(value) for key, value in parse_qsl(parts.query, keep_blank_values=True)}
    return interface, channel, options


def _cause(exc: BaseException) -> str:
    """One line saying why the bus went away. python-can's socketcand interface puts a whole
    formatted traceback into its exception's text; the record and the screen get its first line."""
    text = str(exc).split("Traceback (most recent call last)")[0].strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no detail'}"


class CanPort:
    """An opened CAN bus with one Notifier running its listeners in the event loop.

    ``bus`` and ``notifier`` are public so protocol stacks (can-isotp's NotifierBasedCanStack)
    can share them; python-can refuses a second Notifier on the same bus.
    """

    def __init__(self, resource: str, *, instrument: str = "") -> None:
        self.resource = resource
        self.instrument = instrument
        self.interface, self.channel, self.options = parse_can_resource(resource)
        self.bus: can.BusABC | None = None
        self.notifier: can.Notifier | None = None
        self.lost: BaseException | None = None  # why the bus went away (peer gone), once it did

    def on_error(self, exc: Exception) -> None:
        """The receive thread ended on this error (in the loop): the bus is lost."""
        self.lost = self.lost or exc

    async def open(self) -> None:
        """Create the bus and its in-loop Notifier. Raises ConnectError if the interface refuses."""
        if self.bus is not None:
            return
        host, port = self.options.get("host"), self.options.get("port")
        if self.interface == "socketcand" and host and isinstance(port, int):
            # python-can retries a refused connect in a loop without a pause for 10 s (a core
            # busy for 10 s when the server is down); one bounded connect of ours comes first.
            failure = await probe(str(host), port, SOCKETCAND_CONNECT)
            if failure is not None:
                raise ConnectError(f"socketcand: {failure}", instrument=self.instrument, command="open")
        try:
            self.bus = can.Bus(interface=self.interface, channel=self.channel,
                               ignore_config=True, **self.options)
        except (can.CanError, ImportError, OSError, ValueError, TypeError, NotImplementedError) as exc:
            raise ConnectError(f"cannot open CAN bus: {_cause(exc)}",
                               instrument=self.instrument, command="open") from exc
        from drivers.transports.loopbus import notifier

        self.lost = None
        self.notifier = notifier(self.bus, [], asyncio.get_running_loop(), on_lost=self.on_error)

    def add_listener(self, listener: Listener) -> None:
        """``listener(msg)`` is called in the loop for every received frame."""
        self._require("add_listener").add_listener(listener)

    def remove_listener(self, listener: Listener) -> None:
        notifier = self._require("remove_listener")
        if listener in notifier.listeners:
            notifier.remove_listener(listener)

    def send(self, msg: can.Message, *, command: str = "") -> None:
        """Transmit one frame. A peer that went away (a closed socketcand connection) is a
        ``ConnectError`` "connection lost during '<command>'"; any other CanError an
        ``InstrumentError``; both name the instrument and the command (default: the frame id)."""
        command = command or f"send 0x{msg.arbitration_id:X}"
        self._require(command)
        if self.lost is not None:
            raise ConnectError(f"connection lost during {command!r} ({_cause(self.lost)})", instrument=self.instrument,
                               command=command)
        try:
            self.bus.send(msg, timeout=0.1)  # type: ignore[union-attr]
        except OSError as exc:  # BrokenPipeError, ConnectionResetError: the bus is gone
            self.lost = exc
            raise ConnectError(f"connection lost during {command!r} ({type(exc).__name__}: {exc})",
                               instrument=self.instrument, command=command) from exc
        except can.CanError as exc:
            raise InstrumentError(f"CAN send failed on {self.resource}: {exc}",
                                  instrument=self.instrument, command=command) from exc

    async def close(self) -> None:
        """Stop the Notifier and shut the bus down; safe to call twice."""
        if self.notifier is not None:
            self.notifier.stop(timeout=0.5)
            self.notifier = None
        if self.bus is not None:
            self.bus.shutdown()
            self.bus = None

    def _require(self, command: str) -> can.Notifier:
        if self.notifier is None:
            raise ConnectError(f"CAN port {self.resource} is not open", instrument=self.instrument,
                               command=command)
        return self.notifier

    async def __aenter__(self) -> CanPort:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
