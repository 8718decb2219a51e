"""Line transport over pyserial (RS-232 devices, ``socket://``, ``rfc2217://``, ``loop://``).

Resource forms (``parse_serial_resource``)::

    serial:///dev/ttyUSB0?baud=9600&parity=N&bytesize=8&stopbits=1&xonxoff=0&rtscts=0
    serial://COM3?baud=19200
    /dev/ttyUSB0            COM3
    socket://127.0.0.1:5025 rfc2217://host:port   loop://

The port is opened non-blocking (``timeout=0``) and ``read_line`` polls it with
``asyncio.sleep`` until the deadline on the running loop's clock. pyserial never blocks the
loop, so a simulated peer in the same loop keeps answering and, on the virtual-time loop, a
60 s wait for a pushed line costs milliseconds of wall time.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import serial

from drivers.clock import reply_timeout
from drivers.errors import ConnectError, InstrumentTimeout, ProtocolError
from drivers.transports.reach import connect_failure

_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD,
           "M": serial.PARITY_MARK, "S": serial.PARITY_SPACE}
_STOPBITS = {"1": serial.STOPBITS_ONE, "1.5": serial.STOPBITS_ONE_POINT_FIVE, "2": serial.STOPBITS_TWO}
_BOOL = {"1": True, "on": True, "true": True, "yes": True, "0": False, "off": False, "false": False, "no": False}
# Printable ASCII plus tab: anything else in a line is line noise, not a message.
_ALLOWED = frozenset({9} | set(range(32, 127)))
_MAX_LINE = 64 * 1024  # bytes without a terminator before we call it garbage


def _close_socket_port(port: Any) -> bool:
    """Close a pyserial ``socket://`` port's socket ourselves; False for any other port.

    pyserial's socket ``close()`` sleeps 0.3 s after closing ("give the server some time" for
    quick reconnects): 0.3 s of every run's end with the leak tester on ``socket://`` (6 % of
    the bus-700 reference run's wall time). The socket is shut down and closed the same way,
    without the sleep; a reconnect opens a new connection anyway.
    """
    sock = getattr(port, "_socket", None)
    if not isinstance(sock, socket.socket):
        return False
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already reset by the peer: closing is all that is left
    sock.close()
    port._socket = None
    port.is_open = False
    return True


def parse_serial_resource(resource: str) -> tuple[str, dict[str, Any]]:
    """Split a resource into (pyserial URL or device path, ``serial_for_url`` keyword settings).

    ``serial:`` resources map their query (``baud``, ``parity``, ``bytesize``, ``stopbits``,
    ``xonxoff``, ``rtscts``) to settings; other pyserial URLs pass through untouched.
    Raises ``ConnectError`` on a malformed resource (no I/O: safe at construction).
    """
    text = resource.strip()
    if not text.lower().startswith("serial:"):
        return text, {}
    parts = urlsplit(text)
    device = (parts.netloc + parts.path) if parts.netloc else parts.path
    if not device:
        raise ConnectError(f"no device in serial resource {resource!r}", instrument=resource, command="open")
    settings: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        settings.update(_setting(resource, key.lower(), value))
    return device, settings


def _setting(resource: str, key: str, value: str) -> dict[str, Any]:
    def bad() -> ConnectError:
        return ConnectError(f"bad serial setting {key}={value!r} in {resource!r}", instrument=resource, command="open")

    if key in ("baud", "baudrate"):
        if not value.isdigit() or int(value) <= 0:
            raise bad()
        return {"baudrate": int(value)}
    if key == "parity":
        if value.upper() not in _PARITY:
            raise bad()
        return {"parity": _PARITY[value.upper()]}
    if key in ("bytesize", "databits"):
        if value not in ("5", "6", "7", "8"):
            raise bad()
        return {"bytesize": int(value)}
    if key == "stopbits":
        if value not in _STOPBITS:
            raise bad()
        return {"stopbits": _STOPBITS[value]}
    if key in ("xonxoff", "rtscts"):
        if value.lower() not in _BOOL:
            raise bad()
        return {key: _BOOL[value.lower()]}
    raise ConnectError(
        f"unknown serial setting {key!r} in {resource!r}; known: baud, parity, bytesize, stopbits, xonxoff, rtscts",
        instrument=resource,
        command="open",
    )


def _no_delay(port: Any) -> None:
    """Turn Nagle off on a TCP-backed port (``socket://``, ``rfc2217://``).

    With Nagle on, a command sent right after one that got no reply waits for the peer's
    delayed ACK (~40 ms real time); on the virtual-time loop that wait looks like silence.
    """
    try:
        fd = port.fileno()
    except (AttributeError, OSError, ValueError, serial.SerialException):
        return  # loop:// and friends have no descriptor
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            if sock.type == socket.SOCK_STREAM and sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        return  # a tty is not a socket: nothing to tune


class SerialTransport:
    """``MessageTransport`` over one pyserial port.

    ``timeout`` (s) is the default per-operation timeout; ``termination`` ends every line sent,
    and a received line ends at its last character (``\\n`` for ``\\r\\n``), with any ``\\r``/``\\n``
    stripped. ``poll`` (s) is the first poll interval; it doubles while idle up to ``poll_max``.
    Nothing is touched until ``open()``.
    """

    def __init__(
        self,
        resource: str,
        *,
        timeout: float,
        instrument: str = "",
        termination: str = "\r\n",
        poll: float = 0.002,
        poll_max: float = 0.02,
    ) -> None:
        if not termination:
            raise ValueError("termination must not be empty")
        self.resource = resource
        self.timeout = timeout
        self.instrument = instrument or resource
        self.termination = termination
        self.poll = poll
        self.poll_max = poll_max
        self._url, self._settings = parse_serial_resource(resource)
        self._port: serial.SerialBase | None = None
        self._buffer = bytearray()
        self._end = termination[-1].encode("ascii")
        self._stale = False  # a late reply to a timed-out query may still arrive
        self._lost = False  # see ``lost``

    # -- lifecycle -------------------------------------------------------------------------
    def _open_failure(self, exc: Exception) -> str:
        """What failed in words, once: ``host:port`` and the socket's error for ``socket://``, the
        device and the OS error for a serial port (pyserial wraps both in "could not open port
        <url>: ..."), else the port and pyserial's text."""
        url = urlsplit(self._url)
        cause = exc.__context__ if isinstance(exc.__context__, OSError) else exc
        if url.scheme == "socket" and isinstance(cause, OSError):
            return connect_failure(url.hostname or "?", url.port or "?", cause)
        if isinstance(cause, OSError) and cause.errno:  # a device: "No such file or directory"
            return f"cannot open {self._url}: {os.strerror(cause.errno)}"
        text = str(exc)
        prefix = f"could not open port {self._url}: "
        return f"cannot open {self._url}: {text[len(prefix):] if text.lower().startswith(prefix.lower()) else text}"

    async def open(self) -> None:
        """Open the port non-blocking; ``ConnectError`` if it cannot be opened."""
        if self._port is not None:
            return
        # loop:// sleeps for the write timeout when one is set; real ports and sockets
        # honour write_timeout=0 as non-blocking.
        write_timeout = None if self._url.lower().startswith("loop://") else 0
        opener = functools.partial(
            serial.serial_for_url, self._url, timeout=0, write_timeout=write_timeout, **self._settings
        )
        try:
            # Opening may connect (socket://) or negotiate (rfc2217://): a worker thread keeps
            # the loop free, and the virtual clock holds real time meanwhile.
            self._port = await asyncio.get_running_loop().run_in_executor(None, opener)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ConnectError(self._open_failure(exc), instrument=self.instrument, command="open") from exc
        _no_delay(self._port)
        self._buffer.clear()
        self._stale = self._lost = False

    @property
    def lost(self) -> bool:
        """True once a read or write failed with ``ConnectError`` (peer hung up, port gone) since
        the last ``open()``: the owner should close and re-open before trusting it again."""
        return self._lost

    async def close(self) -> None:
        """Close the port; idempotent. Closing a dead port never masks the caller's error."""
        port, self._port = self._port, None
        self._buffer.clear()
        if port is None:
            return
        if _close_socket_port(port):
            return
        try:
            await asyncio.get_running_loop().run_in_executor(None, port.close)
        except (serial.SerialException, OSError):
            pass  # the port is gone either way; nothing left to release

    # -- I/O -------------------------------------------------------------------------------
    async def write(self, command: str) -> None:
        """Send ``command`` plus the termination; ``InstrumentTimeout`` if it cannot drain in time."""
        port = self._require(command)
        if self._stale:
            await self._drop_input(port, command)
        data = self._encode(command)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + reply_timeout(self.timeout, loop)
        delay = self.poll
        while data:
            try:
                sent = port.write(data)
            except serial.SerialTimeoutException:
                sent = 0
            except (serial.SerialException, OSError) as exc:
                self._lost = True
                raise ConnectError(f"write failed: {exc}", instrument=self.instrument, command=command) from exc
            data = data[len(data) if sent is None else sent :]
            if not data:
                return
            if loop.time() >= deadline:
                raise InstrumentTimeout(
                    f"could not send within {self.timeout:g} s", instrument=self.instrument, command=command
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.poll_max)

    async def query(self, command: str, timeout: float | None = None) -> str:
        """Send ``command`` and return the next line received (termination stripped)."""
        await self.write(command)
        try:
            return await self.read_line(timeout, command=command)
        except BaseException:
            # Timed out or cancelled: the reply may still arrive and must not answer the next query.
            self._stale = True
            raise

    async def read_line(self, timeout: float | None = None, *, command: str = "<read>") -> str:
        """Return the next complete line; ``InstrumentTimeout`` after ``timeout`` s (loop clock;
        on a scaled clock plus ``drivers.clock.reply_timeout``'s wall-time allowance).

        ``command`` names what the line answers, for error messages.
        """
        port = self._require(command)
        limit = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + reply_timeout(limit, loop)
        delay = self.poll
        while True:
            line = self._take_line(command)
            if line is not None:
                return line
            chunk = self._read_available(port, command)
            if chunk:
                self._buffer += chunk
                if len(self._buffer) > _MAX_LINE and self._end not in self._buffer:
                    head = bytes(self._buffer[:40])
                    self._buffer.clear()
                    raise ProtocolError(f"no line end in {_MAX_LINE} bytes: {head!r}...", instrument=self.instrument, command=command)
                delay = self.poll
                continue
            now = loop.time()
            if now >= deadline:
                partial = f"; partial {bytes(self._buffer[:40])!r}" if self._buffer else ""
                self._stale = True  # a partial line, or the late rest of it, must not start the next reply
                raise InstrumentTimeout(f"no complete line within {limit:g} s{partial}", instrument=self.instrument, command=command)
            try:
                await asyncio.sleep(min(delay, deadline - now))
            except asyncio.CancelledError:
                self._stale = True  # the rest of this line may still come
                raise
            delay = min(delay * 2, self.poll_max)

    # -- plumbing --------------------------------------------------------------------------
    def _require(self, command: str) -> serial.SerialBase:
        if self._port is None:
            raise ConnectError("transport is not open", instrument=self.instrument, command=command)
        return self._port

    def _encode(self, command: str) -> bytes:
        try:
            return (command + self.termination).encode("ascii")
        except UnicodeEncodeError:
            raise ProtocolError("command is not ASCII", instrument=self.instrument, command=command) from None

    def _read_available(self, port: serial.SerialBase, command: str) -> bytes:
        try:
            return port.read(4096) or b""  # a non-blocking read of nothing may say None
        except (serial.SerialException, OSError) as exc:
            self._lost = True  # pyserial's socket:// says "socket disconnected" when recv() gives b""
            raise ConnectError(f"read failed: {exc}", instrument=self.instrument, command=command) from exc

    def _take_line(self, command: str) -> str | None:
        while (index := self._buffer.find(self._end)) >= 0:
            # Stripping both ends tolerates a peer that ends lines with \r\n when we expect \r.
            raw = bytes(self._buffer[:index]).strip(b"\r\n")
            del self._buffer[: index + 1]
            if not raw:
                continue  # blank lines carry no message
            if any(b not in _ALLOWED for b in raw):
                raise ProtocolError(f"undecodable line {raw[:40]!r}", instrument=self.instrument, command=command)
            return raw.decode("ascii")
        return None

    async def _drop_input(self, port: Any, command: str) -> None:
        """Discard what a timed-out exchange left: buffered bytes, input waiting now, and input
        arriving until the line has been quiet for ``poll_max`` s (loop clock). Bounded: a peer
        that keeps talking for ``timeout`` s or ``_MAX_LINE`` bytes is a ``ProtocolError``; a
        peer that hung up is a ``ConnectError`` (from the read)."""
        # A reply that arrived after its query timed out would pair with the next query.
        self._buffer.clear()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        quiet_until = loop.time() + self.poll_max
        dropped = 0
        while True:
            chunk = self._read_available(port, command)
            now = loop.time()
            if chunk:
                dropped += len(chunk)
                quiet_until = now + self.poll_max
                if dropped > _MAX_LINE or now >= deadline:
                    raise ProtocolError(f"peer keeps sending unasked ({dropped} bytes dropped)",
                                        instrument=self.instrument, command=command)
                continue
            if now >= quiet_until:
                break
            await asyncio.sleep(min(self.poll, quiet_until - now))
        self._stale = False
