"""A socketcand-protocol hub: TCP clients on loopback join in-process LoopBus CAN channels.

python-can's stock ``socketcand`` interface (and any socketcand client) connects, and the
exchange is socketcand's ASCII protocol, commands delimited by ``<`` and ``>``:

    hub:    < hi >
    client: < open can0 >        hub: < ok >          (now in BCM mode)
    client: < rawmode >          hub: < ok >          (now every frame on the bus is forwarded)
    hub:    < frame 7EC 1700000000.123456 0662F18C42 >    (id 3 hex digits, or 8 if extended;
                                                           wall-clock s.us; data as hex, no spaces)
    client: < send 7E4 3 22 f1 8c >                       (id, length, bytes in hex)

Also ``< echo >`` (answered ``< echo >``) and ``< bcmmode >`` (stop forwarding). Anything
else gets an error and the session goes on: ``< error unknown command >`` for an unknown or
out-of-mode command and ``< error could not open bus >`` for an unknown channel (socketcand's
own replies; the client may then open another); where socketcand only logs, this hub answers
``< error syntax error in send command >`` for a bad ``send`` and ``< error syntax error >``
for text outside ``< >`` or a command over 256 chars. (python-can's client would fail to parse
an error line, but it never sends a malformed command.) The first frame after rawmode's
``< ok >`` waits ``settle`` seconds: python-can compares that reply with one whole ``recv()``.

Each client is its own node on the channel: it sees every other node's frames (the simulated
BMS's, other clients'), never its own. Classic CAN only: FD, remote and error frames on the
bus are not forwarded. A client that stops reading loses frames (counted in ``dropped``) once
``max_backlog`` bytes are queued, like a CAN socket whose receive queue overflows.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import string
import time
from collections.abc import Mapping

import can

from drivers.transports.loopbus import LoopBus

HELLO, OK, ECHO = "< hi >", "< ok >", "< echo >"
ERR_UNKNOWN = "< error unknown command >"
ERR_SEND = "< error syntax error in send command >"
ERR_SYNTAX = "< error syntax error >"
ERR_BUS = "< error could not open bus >"
MAX_COMMAND = 256  # chars; a longer "< ..." without ">" is garbage, not a command in progress
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def take_commands(buffer: str) -> tuple[list[str | None], str]:
    """Split received text into complete ``< ... >`` commands; None marks garbage.

    Returns (commands, rest) where ``rest`` is an incomplete command to keep for the next read.
    """
    out: list[str | None] = []
    pos = 0
    while True:
        start = buffer.find("<", pos)
        if buffer[pos: len(buffer) if start < 0 else start].strip():
            out.append(None)
        if start < 0:
            return out, ""
        end = buffer.find(">", start)
        if end < 0:
            if len(buffer) - start > MAX_COMMAND:
                out.append(None)
                return out, ""
            return out, buffer[start:]
        out.append(buffer[start: end + 1] if end - start <= MAX_COMMAND else None)
        pos = end + 1


def _hex(text: str, digits: int) -> int:
    """Unsigned hex of at most ``digits`` digits (no sign, prefix or underscores)."""
    if not 0 < len(text) <= digits or any(c not in string.hexdigits for c in text):
        raise ValueError(f"not {digits} hex digits: {text!r}")
    return int(text, 16)


def parse_send(words: list[str]) -> can.Message:
    """``["send", ID, LEN, B0, ...]`` -> a classic CAN frame; ValueError if malformed.

    The id is extended when written with 8 hex digits (socketcand's rule) or above 0x7FF.
    """
    if len(words) < 3:
        raise ValueError("send needs an id and a length")
    can_id, length = _hex(words[1], 8), _hex(words[2], 2)
    data = [_hex(b, 2) for b in words[3:]]
    if length > 8 or len(data) != length:
        raise ValueError(f"length {length} does not match {len(data)} data bytes (max 8)")
    extended = len(words[1]) == 8 or can_id > 0x7FF
    if not 0 <= can_id <= (0x1FFFFFFF if extended else 0x7FF):
        raise ValueError(f"id {words[1]} out of range")
    return can.Message(arbitration_id=can_id, is_extended_id=extended, data=bytes(data))


def format_frame(msg: can.Message, wall_offset: float) -> str:
    """``< frame ID SEC.USEC DATA >``; ``wall_offset`` turns the monotonic stamp into epoch s."""
    ident = f"{msg.arbitration_id:08X}" if msg.is_extended_id else f"{msg.arbitration_id:03X}"
    return f"< frame {ident} {msg.timestamp + wall_offset:.6f} {bytes(msg.data[:msg.dlc]).hex().upper()} >"


class _Session:
    """One TCP client: the protocol state machine and its node on the CAN channel."""

    def __init__(self, hub: SocketcandHub, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.hub, self.reader, self.writer = hub, reader, writer
        self.mode = "nobus"  # -> "bcm" after open, "raw" after rawmode
        self.forwarding = False
        self.bus: LoopBus | None = None
        self._settle: asyncio.TimerHandle | None = None
        self._held: list[can.Message] = []  # frames received during the settle time

    async def run(self) -> None:
        sock = self.writer.get_extra_info("socket")
        if sock is not None:  # each reply its own segment at once: no Nagle delay on ISO-TP
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._write(HELLO)
        buffer = ""
        try:
            while data := await self.reader.read(4096):
                commands, buffer = take_commands(buffer + data.decode("ascii", errors="replace"))
                for command in commands:
                    self._handle(command)
                await self.writer.drain()
        except ConnectionError:
            pass
        finally:
            self.close()

    def _handle(self, command: str | None) -> None:
        if command is None:
            self._error(ERR_SYNTAX)
            return
        words = command[1:-1].split()
        verb = words[0] if words else ""
        if verb == "echo" and len(words) == 1:
            self._write(ECHO)
        elif self.mode == "nobus" and verb == "open" and len(words) == 2:
            self._open(words[1])
        elif self.mode != "nobus" and verb == "send":
            self._send(words)
        elif self.mode != "nobus" and verb in ("rawmode", "bcmmode") and len(words) == 1:
            self._switch(verb)
        else:
            self._error(ERR_UNKNOWN)

    def _open(self, name: str) -> None:
        channel = self.hub.buses.get(name)
        if channel is None:
            self._error(ERR_BUS)
            return
        self.bus = LoopBus(channel)
        asyncio.get_running_loop().add_reader(self.bus.fileno(), self._pump)
        self.mode = "bcm"
        self._write(OK)

    def _switch(self, verb: str) -> None:
        self.mode = "raw" if verb == "rawmode" else "bcm"
        self._write(OK)
        if self._settle is not None:
            self._settle.cancel()
            self._settle = None
        self.forwarding = False
        self._held.clear()
        if self.mode == "raw":
            # python-can reads the "< ok >" with one recv() and compares it whole: a frame in the
            # same read would fail its handshake, so the first frame waits until it has read it.
            self._settle = asyncio.get_running_loop().call_later(self.hub.settle, self._start_forwarding)

    def _start_forwarding(self) -> None:
        self._settle = None
        self.forwarding = self.mode == "raw"
        self._pump()  # frames that arrived while settling, in order

    def _send(self, words: list[str]) -> None:
        try:
            msg = parse_send(words)
        except ValueError:
            self._error(ERR_SEND)
            return
        assert self.bus is not None
        self.bus.send(msg)
        self.hub.frames_in += 1

    def _pump(self) -> None:
        """Move every queued bus frame to the client (runs in the loop when the bus is readable)."""
        if self.bus is None:
            return
        if self._settle is not None:
            self._held.extend(iter(lambda: self.bus.recv(0), None))  # sent after the settle time
            return
        hub, lines = self.hub, []
        backlog = self.writer.transport.get_write_buffer_size()
        held, self._held = self._held, []
        for msg in itertools.chain(held, iter(lambda: self.bus.recv(0), None)):
            if not self.forwarding or msg.is_fd or msg.is_remote_frame or msg.is_error_frame:
                continue
            if backlog > hub.max_backlog:
                hub.dropped += 1
                continue
            line = format_frame(msg, hub.wall_offset)
            backlog += len(line)
            lines.append(line)
        if lines and not self.writer.is_closing():
            self.writer.write("".join(lines).encode("ascii"))
            hub.frames_out += len(lines)

    def _error(self, text: str) -> None:
        self.hub.errors += 1
        self._write(text)

    def _write(self, text: str) -> None:
        if not self.writer.is_closing():
            self.writer.write(text.encode("ascii"))

    def close(self) -> None:
        """Leave the channel and drop the connection; safe to call twice."""
        if self._settle is not None:
            self._settle.cancel()
            self._settle = None
        if self.bus is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self.bus.fileno())
            self.bus.shutdown()
            self.bus = None
        self.writer.close()


class SocketcandHub:
    """socketcand server on loopback for ``buses``: client-visible name -> LoopBus channel.

    ``settle`` (s, loop clock): frames arriving within it after ``< rawmode >``'s ``< ok >``
    are held, then sent in order (so a request answered at once is never lost);
    ``max_backlog`` (bytes) caps what a slow client may have queued before frames drop.
    """

    def __init__(self, buses: Mapping[str, str], *, host: str = "127.0.0.1", settle: float = 0.05,
                 max_backlog: int = 1 << 20) -> None:
        if host not in LOOPBACK:
            raise ValueError(f"the socketcand hub serves loopback only, not {host!r}")
        if not buses:
            raise ValueError("the socketcand hub needs at least one bus")
        self.buses = dict(buses)
        self.host, self.settle, self.max_backlog = host, settle, max_backlog
        self.port = 0
        self.frames_in = self.frames_out = self.dropped = self.errors = 0
        self.wall_offset = time.time() - time.monotonic()  # LoopBus stamps are monotonic
        self._server: asyncio.AbstractServer | None = None
        self._sessions: dict[_Session, asyncio.Task] = {}

    @property
    def clients(self) -> int:
        """Connected clients."""
        return len(self._sessions)

    async def start(self) -> str:
        """Listen on ``host`` port 0; return ``"host:PORT"`` (the port the OS chose)."""
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"{self.host}:{self.port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(self, reader, writer)
        self._sessions[session] = asyncio.current_task()  # type: ignore[assignment]
        try:
            await session.run()
        finally:
            self._sessions.pop(session, None)

    async def stop(self) -> None:
        """Stop listening, disconnect every client, leave every channel (idempotent)."""
        if self._server is not None:
            self._server.close()
        tasks = list(self._sessions.values())
        for session in list(self._sessions):
            session.close()  # its reader sees EOF and the session task ends by itself
        if tasks:
            _done, stuck = await asyncio.wait(tasks, timeout=1.0)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
