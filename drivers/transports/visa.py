"""SCPI line transport over VISA (pyvisa + pyvisa-py by default), safe on the station clock.

pyvisa blocks, so a call runs in this transport's own single-thread executor: the event loop
(and any simulated peer in it) keeps running, and on the virtual-time loop the executor future
holds the clock on real time while the call is pending. The exception is the common case of a
pyvisa-py raw socket (``TCPIP::…::SOCKET``): its queries and writes run in the loop thread,
pyvisa still framing every byte, with the loop waiting for the reply (``visa_inline.py``).
Calls take turns (one lock per transport), so they never interleave on the wire.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pyvisa
from pyvisa import constants

from drivers.clock import reply_timeout, time_scale
from drivers.errors import ConnectError, InstrumentError, InstrumentTimeout, ProtocolError
from drivers.transports.reach import connect_failure
from drivers.transports.visa_inline import InlineSocket, raw_socket_session

T = TypeVar("T")

_TIMEOUT_CODES = {constants.StatusCode.error_timeout}
# Printable ASCII plus tab: anything else in a reply line is line noise, not SCPI.
_ALLOWED = {9} | set(range(32, 127))
# Margin (s) on top of pyvisa's own timeout before we stop waiting for the worker thread.
_GUARD_S = 2.0
# Discarding stale input after a timeout: stop once the line has been quiet this long (s), and
# never spend more than _DRAIN_MAX_S (s) or take more than _DRAIN_MAX_BYTES doing it.
_DRAIN_QUIET_S = 0.05
_DRAIN_MAX_S = 1.0
_DRAIN_MAX_BYTES = 1 << 20


class VisaTransport:
    """``MessageTransport`` over one VISA resource (e.g. ``TCPIP::127.0.0.1::5025::SOCKET``).

    ``timeout`` (s) is the default per-operation timeout; ``backend`` is the pyvisa library
    spec (``"@py"`` = pyvisa-py). Nothing is touched until ``open()``.
    """

    def __init__(
        self,
        resource: str,
        *,
        timeout: float,
        instrument: str = "",
        backend: str = "@py",
        read_termination: str = "\n",
        write_termination: str = "\n",
    ) -> None:
        self.resource = resource
        self.timeout = timeout
        self.instrument = instrument or resource
        self.backend = backend
        self.read_termination = read_termination
        self.write_termination = write_termination
        self._rm: Any = None
        self._inst: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._inline: InlineSocket | None = None  # the loop-thread path, for a pyvisa-py raw socket
        self._turn: asyncio.Lock | None = None  # one call on the wire at a time (made by open())
        self._stale = False  # a reply may still be in flight after a timeout
        self._lost = False  # see ``lost``

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Create the ResourceManager and open the resource; ``ConnectError`` if unreachable."""
        if self._inst is not None:
            return
        self._stale = self._lost = False
        self._turn = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"visa-{self.instrument}")
        try:
            await self._call(self._open_blocking, "open", connect=True)
        except InstrumentError:
            await self.close()
            raise
        self._inline = InlineSocket.of(self._rm, self._inst, self.read_termination)

    def _open_blocking(self) -> None:
        self._rm = pyvisa.ResourceManager(self.backend)
        self._inst = self._rm.open_resource(
            self.resource,
            read_termination=self.read_termination,
            write_termination=self.write_termination,
            timeout=self._ms(self.timeout),
            open_timeout=self._ms(self.timeout),
        )
        self._check_socket_connected()

    def _check_socket_connected(self) -> None:
        # pyvisa-py's raw-socket open reports success even when the connect was refused;
        # the pending socket error tells the truth now rather than at the first query.
        sock = self._socket()
        if sock is not None:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise ConnectError(self._connect_failure(OSError(err, os.strerror(err))),
                                   instrument=self.instrument, command="open")
            # Nagle held a command's second small write (e.g. SYST:ERR? after OUTP OFF) for the
            # peer's delayed ACK: ~42 ms per setting, 90 ms for a cycler safe state (measured in
            # tests/reliability). pyvisa-py 0.8 cannot set VI_ATTR_TCPIP_NODELAY, so set it here.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _connect_failure(self, exc: Exception | None) -> str:
        """What failed in words (``drivers.transports.reach``): with ``host:port`` for a
        ``TCPIP[n]::HOST::PORT::SOCKET`` resource, else naming the resource; ``exc`` None is a
        connect that did not complete within the timeout."""
        parts = self.resource.split("::")
        if len(parts) == 4 and parts[3].upper() == "SOCKET":
            return connect_failure(parts[1], parts[2], exc, within=self.timeout)
        return f"cannot open {self.resource}: {exc if exc is not None else 'no answer'}"

    async def close(self) -> None:
        """Close the resource; idempotent, never raises.

        The ResourceManager stays open: pyvisa hands every transport of the process the same
        one, and closing it would close the other instruments' sessions too (pyvisa closes it
        at exit).
        """
        executor, self._executor = self._executor, None
        inst = self._inst
        self._inst = self._rm = self._inline = None
        if executor is None:
            return

        def shut() -> None:
            try:
                if inst is not None:
                    inst.close()
            except Exception:  # closing a dead session must not mask the cause
                pass

        try:
            await asyncio.get_running_loop().run_in_executor(executor, shut)
        finally:
            executor.shutdown(wait=False)

    # -- I/O -------------------------------------------------------------------------------
    async def write(self, command: str) -> None:
        """Send one command line."""
        async with self._take_turn(command):
            if self._inline_ready():
                self._inline_write(command)
                return
            await self._call(lambda: self._write_blocking(command), command)

    async def query(self, command: str, timeout: float | None = None) -> str:
        """Send ``command`` and return the reply line (termination stripped)."""
        limit = self.timeout if timeout is None else timeout

        wall_ms = self._wall_ms(limit)

        def work() -> bytes:
            self._write_blocking(command)
            self._inst.timeout = wall_ms
            return self._read_blocking(command)

        async with self._take_turn(command):
            if self._inline_ready():
                raw = await self._query_inline(command, limit)
            else:
                raw = await self._call(work, command, limit=limit)
        return self._decode(raw, command)

    async def read_line(self, timeout: float | None = None) -> str:
        """Read one line the instrument sends unasked."""
        limit = self.timeout if timeout is None else timeout

        wall_ms = self._wall_ms(limit)

        def work() -> bytes:
            self._inst.timeout = wall_ms
            return self._read_blocking("<read>")

        async with self._take_turn("<read>"):
            raw = await self._call(work, "<read>", limit=limit)
        return self._decode(raw, "<read>")

    # -- the loop-thread path (visa_inline.py) ----------------------------------------------
    def _take_turn(self, command: str) -> asyncio.Lock:
        if self._turn is None:
            raise ConnectError("transport is not open", instrument=self.instrument, command=command)
        return self._turn

    def _inline_ready(self) -> bool:
        """True when this call may run in the loop thread: a raw socket with nothing pending."""
        return self._inline is not None and self._inst is not None and not self._stale and self._inline.quiet()

    def _inline_write(self, command: str) -> None:
        try:
            self._inst.write(command)
        except Exception as exc:  # typed below, as the worker's are
            raise self._lose(self._typed(exc, command, self.timeout)) from exc

    async def _query_inline(self, command: str, limit: float) -> bytes:
        inline = self._inline
        if inline is None:  # _inline_ready() said it was there: closed meanwhile
            raise ConnectError("transport is not open", instrument=self.instrument, command=command)
        self._inline_write(command)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + reply_timeout(limit, loop)
        try:
            got = await inline.wait_line(limit)
        except asyncio.CancelledError:
            self._stale = True  # the reply may still come and must not answer the next command
            raise
        if got == "timeout":
            self._stale = True
            raise InstrumentTimeout(f"no reply within {limit:g} s", instrument=self.instrument, command=command)
        if got == "closed":
            raise self._lose(ConnectError("connection closed by the instrument", instrument=self.instrument,
                                          command=command))
        if got == "partial":  # the rest is on its way: the worker waits for it, as without this path
            rest = max(0.001, deadline - loop.time())

            def read_rest() -> bytes:
                self._inst.timeout = self._ms(rest / time_scale(loop))  # pyvisa waits in wall time
                return self._read_blocking(command)

            return await self._call(read_rest, command, limit=rest, scaled=False)
        try:
            raw: bytes = self._inst.read_raw()  # a whole line is waiting: pyvisa reads it without waiting
            return raw
        except Exception as exc:  # typed below, as the worker's are
            raise self._lose(self._typed(exc, command, limit)) from exc

    def _lose(self, error: Exception) -> Exception:
        """``error``, having marked the transport lost if it is a ``ConnectError`` (see ``lost``)."""
        if isinstance(error, ConnectError):
            self._lost = True
        return error

    def _write_blocking(self, command: str) -> None:
        self._settle_blocking(command)
        self._inst.timeout = self._ms(self.timeout)
        self._inst.write(command)

    def _read_blocking(self, command: str) -> bytes:
        try:
            raw: bytes = self._inst.read_raw()
            return raw
        except pyvisa.errors.VisaIOError as exc:
            # pyvisa-py reports a peer that hung up mid-read as a timeout (it polls the closed
            # socket until the deadline); say what it was.
            if exc.error_code in _TIMEOUT_CODES and self._peer_closed():
                raise ConnectError("connection closed by the instrument", instrument=self.instrument,
                                   command=command) from None
            raise

    def _peer_closed(self) -> bool:
        sock = self._socket()
        if sock is None or not select.select([sock], [], [], 0)[0]:
            return False
        try:
            return sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True  # reset by the peer

    def _settle_blocking(self, command: str) -> None:
        """Before a command: drop input nobody asked for, and fail fast on a closed connection.

        Input waiting here is a late (or half) reply to an earlier, timed-out query: it would be
        read as this command's reply. On a raw socket we drain it ourselves, bounded, because
        pyvisa-py's ``clear()`` loops forever once the peer has closed (select says readable,
        recv returns b"") — and that same b"" is how we learn the peer is gone (``ConnectError``).
        """
        sock = self._socket()
        if sock is None:
            if self._stale:
                self._inst.clear()  # viClear on a non-socket session, bounded by the VISA timeout
                self._stale = False
            return
        if not self._stale and not select.select([sock], [], [], 0)[0]:
            return  # the common case: nothing pending, connection not closed (one poll)
        # the session's own read-ahead buffer may hold a partial line (no I/O: not clear())
        self._inst.flush(constants.BufferOperation.discard_read_buffer_no_io)
        quiet = _DRAIN_QUIET_S if self._stale else 0.0  # a late reply may still be on its way
        deadline = time.monotonic() + _DRAIN_MAX_S
        dropped = 0
        while select.select([sock], [], [], quiet)[0]:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectError("connection closed by the instrument", instrument=self.instrument, command=command)
            dropped += len(chunk)
            if dropped > _DRAIN_MAX_BYTES or time.monotonic() > deadline:
                raise ProtocolError(f"instrument keeps sending unasked ({dropped} bytes dropped)",
                                    instrument=self.instrument, command=command)
        self._stale = False

    def _socket(self) -> socket.socket | None:
        """pyvisa-py's raw socket of a ``::SOCKET`` session (None for other sessions/backends)."""
        session = raw_socket_session(self._rm, self._inst)
        return None if session is None else session.interface

    # -- plumbing --------------------------------------------------------------------------
    @property
    def lost(self) -> bool:
        """True once a call failed with ``ConnectError`` (peer closed, reset, I/O error) since
        the last ``open()``: the owner should close and re-open before trusting it again."""
        return self._lost

    async def _call(
        self, func: Callable[[], T], command: str, *, limit: float | None = None, connect: bool = False,
        scaled: bool = True,
    ) -> T:
        try:
            return await self._exchange(func, command, limit=limit, connect=connect, scaled=scaled)
        except ConnectError as err:
            self._lose(err)
            raise

    async def _exchange(
        self, func: Callable[[], T], command: str, *, limit: float | None = None, connect: bool = False,
        scaled: bool = True,
    ) -> T:
        """``func`` in the worker within ``limit`` s (loop clock; ``scaled``: plus the reply
        allowance of ``drivers.clock``, as pyvisa's own wall-time timeout has), and a guard of
        ``_GUARD_S`` s of wall time for the thread hop."""
        if self._executor is None or (self._inst is None and not connect):
            raise ConnectError("transport is not open", instrument=self.instrument, command=command)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, func)
        limit = self.timeout if limit is None else limit
        guard = (reply_timeout(limit, loop) if scaled else limit) + _GUARD_S * time_scale(loop)
        try:
            return await asyncio.wait_for(future, guard)
        except asyncio.CancelledError:
            # e.g. the step's own timeout: the reply may still come and must not answer the next command
            self._stale = True
            raise
        except TimeoutError:
            self._stale = True
            raise InstrumentTimeout(f"no reply within {limit + _GUARD_S:g} s", instrument=self.instrument,
                                    command=command) from None
        except Exception as exc:  # typed by _typed; anything else goes on as it is
            typed = self._typed(exc, command, limit, connect=connect)
            if typed is exc:
                raise
            raise typed from exc

    def _typed(self, exc: Exception, command: str, limit: float, *, connect: bool = False) -> Exception:
        """The typed error for what pyvisa raised (``exc`` itself if it needs no translation)."""
        where = {"instrument": self.instrument, "command": command}
        if isinstance(exc, InstrumentError):
            return exc
        if isinstance(exc, pyvisa.errors.VisaIOError):
            if exc.error_code in _TIMEOUT_CODES:
                self._stale = True
                return InstrumentTimeout(f"no reply within {limit:g} s", **where)
            return ConnectError(f"VISA I/O error: {exc}", **where)
        if connect and isinstance(exc, OSError):
            return ConnectError(self._connect_failure(exc), **where)
        if isinstance(exc, (OSError, pyvisa.errors.Error, ValueError)):
            # Refused/reset sockets, unknown resources, malformed resource strings.
            return ConnectError(f"{type(exc).__name__}: {exc}", **where)
        if connect and "error_timeout" in str(exc):  # pyvisa-py: "could not connect: StatusCode.error_timeout"
            return ConnectError(self._connect_failure(None), **where)
        if connect:  # pyvisa-py raises bare Exception on connect failure
            return ConnectError(f"cannot open {self.resource}: {exc}", **where)
        return exc

    def _decode(self, raw: bytes, command: str) -> str:
        term = self.read_termination.encode("ascii")
        if term and raw.endswith(term):
            raw = raw[: -len(term)]
        raw = raw.rstrip(b"\r")
        if any(b not in _ALLOWED for b in raw):
            raise ProtocolError(f"undecodable reply {raw[:40]!r}", instrument=self.instrument, command=command)
        return raw.decode("ascii")

    @staticmethod
    def _ms(seconds: float) -> int:
        return max(1, round(seconds * 1000))

    def _wall_ms(self, limit: float) -> int:
        """pyvisa's timeout (wall ms) for a reply due within ``limit`` s of the running loop's
        clock (on a scaled clock: plus ``drivers.clock.reply_timeout``'s allowance)."""
        loop = asyncio.get_running_loop()
        return self._ms(reply_timeout(limit, loop) / time_scale(loop))
