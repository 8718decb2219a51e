"""Modbus TCP client side for ``ModbusTransport``: MBAP framing and the PDUs of FC 1-6, 15, 16.

Layouts are those of the Modbus Application Protocol spec v1.1b3 and the Modbus Messaging on
TCP/IP Implementation Guide v1.0b. A frame is the 7-byte MBAP header (transaction id, protocol
id 0, length = bytes of unit id + PDU, unit id) and the PDU (function code + data, at most 253
bytes). ``TcpLink`` keeps one request in flight per connection and matches its reply by
transaction id; the PDU helpers build requests and check replies (echoed address/quantity for
writes, byte counts for reads).

Why not pymodbus' client: its futures, ``wait_for``, transaction manager, framer and PDU objects
about doubled the CPU cost of the station's 50 ms interlock poll of every fixture (seconds of
wall time per simulated plan, issue #8). Here a request is one ``write`` and one future (or a
callback, for the interlock poll), under one timer per link on the running loop's clock.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import deque
from collections.abc import Callable
from typing import TypeAlias

from drivers.clock import reply_timeout

MAX_PDU = 253  # bytes: function code + data (spec section 4.1)
_HEADER = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
_READ = struct.Struct(">BHH")  # function code, address, quantity (or value for FC5/FC6)
_ABANDONED_KEPT = 32  # transaction ids of unanswered requests remembered, to drop their late replies
_BITS = [tuple(bool(byte >> i & 1) for i in range(8)) for byte in range(256)]  # LSB = first bit


class LinkDown(Exception):
    """The connection is gone (refused, closed by the peer, reset, dropped); the message says how."""


class BadReply(Exception):
    """A reply that is not the answer to the request; the message says what is wrong."""


class ExceptionReply(Exception):
    """The device answered a Modbus exception response with ``code``."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(code)


# -- request PDUs --------------------------------------------------------------------------
def read_request(fc: int, address: int, count: int) -> bytes:
    """FC1-FC4: read ``count`` items from ``address``."""
    return _READ.pack(fc, address, count)


def write_single_request(fc: int, address: int, value: int | bool) -> bytes:
    """FC5 (coil: ON = 0xFF00, OFF = 0x0000) or FC6 (one 16-bit register)."""
    return _READ.pack(fc, address, (0xFF00 if value else 0) if fc == 5 else value)


def write_coils_request(address: int, values: list[bool]) -> bytes:
    """FC15: coils packed 8 to a byte, the first coil in the least significant bit."""
    packed = bytearray((len(values) + 7) // 8)
    for i, on in enumerate(values):
        if on:
            packed[i >> 3] |= 1 << (i & 7)
    return struct.pack(">BHHB", 15, address, len(values), len(packed)) + packed


def write_registers_request(address: int, values: list[int]) -> bytes:
    """FC16: big-endian 16-bit registers."""
    n = len(values)
    return struct.pack(f">BHHB{n}H", 16, address, n, 2 * n, *values)


# -- reply PDUs ----------------------------------------------------------------------------
def check_function(pdu: bytes, fc: int) -> None:
    """Raise ``ExceptionReply`` for an exception response to ``fc``, ``BadReply`` for another code."""
    if pdu[0] == fc:
        return
    if pdu[0] == fc | 0x80:
        if len(pdu) != 2:
            raise BadReply(f"exception response of {len(pdu)} bytes (a code byte after 0x{pdu[0]:02X})")
        raise ExceptionReply(pdu[1])
    raise BadReply(f"function code {pdu[0]} in the reply to function {fc}")


def bits_reply(pdu: bytes, fc: int, count: int) -> list[bool]:
    """FC1/FC2 reply: ``count`` bits; the byte count must be exactly what ``count`` needs."""
    check_function(pdu, fc)
    need = (count + 7) // 8
    if len(pdu) < 2:
        raise BadReply("no byte count")
    if pdu[1] != need or len(pdu) != 2 + need:
        raise BadReply(f"byte count {pdu[1]} and {len(pdu) - 2} data byte(s) for {count} bit(s) "
                       f"(expected {need})")
    if need == 1:
        return list(_BITS[pdu[2]][:count])
    out: list[bool] = []
    for byte in pdu[2:]:
        out += _BITS[byte]
    del out[count:]
    return out


def registers_reply(pdu: bytes, fc: int) -> list[int]:
    """FC3/FC4 reply: the registers it carries (the caller checks how many it asked for)."""
    check_function(pdu, fc)
    if len(pdu) < 2:
        raise BadReply("no byte count")
    if pdu[1] != len(pdu) - 2 or pdu[1] % 2:
        raise BadReply(f"byte count {pdu[1]} with {len(pdu) - 2} data byte(s) (expected an even count "
                       f"equal to the data)")
    return list(struct.unpack_from(f">{pdu[1] // 2}H", pdu, 2))


def echo_reply(pdu: bytes, request: bytes) -> None:
    """FC5/FC6 reply: the request echoed; FC15/FC16: its address and quantity echoed."""
    check_function(pdu, request[0])
    expected = request if request[0] in (5, 6) else request[:5]
    if pdu != expected:
        raise BadReply(f"reply {pdu.hex(' ')} does not echo the request's {expected.hex(' ')}")


# -- the connection ------------------------------------------------------------------------
async def connect(host: str, port: int, unit: int) -> TcpLink:
    """Open a Modbus TCP connection (``OSError`` if refused/unreachable); the caller bounds the wait."""
    loop = asyncio.get_running_loop()
    _transport, link = await loop.create_connection(lambda: TcpLink(unit, loop), host, port)
    return link


# What an exchange reports to: a future given the reply's PDU (or the error), or a callback
# done(reply_pdu, None) / done(None, error).
Done: TypeAlias = asyncio.Future[bytes] | Callable[[bytes | None, Exception | None], None]


class Exchange:
    """One request on a ``TcpLink``: queued for its turn, then in flight, then finished."""

    __slots__ = ("link", "pdu", "done", "deadline", "tid")

    def __init__(self, link: TcpLink, pdu: bytes, done: Done, deadline: float) -> None:
        self.link = link
        self.pdu = pdu
        self.done: Done | None = done  # None once finished
        self.deadline = deadline  # s, loop clock
        self.tid = -1  # transaction id, once sent

    def cancel(self) -> None:
        """Give up (no-op once finished): a queued request is never sent, a sent one's late
        reply is dropped when it comes, and the next request gets its turn at once."""
        if self.done is not None:
            self.link._end(self, None, None, notify=False)


class TcpLink(asyncio.Protocol):
    """One Modbus TCP connection to ``unit``; ``request`` sends a PDU and returns the reply's PDU.

    Requests take turns (one in flight, as a PLC expects), first come first served. A reply
    may arrive split over segments or several to a segment. A reply to a request that timed out
    or was cancelled arrives late with its own transaction id and is dropped; any other
    unexpected transaction id fails the waiting request (``BadReply``). A header that is not
    Modbus TCP (protocol id not 0, length outside 2..254) leaves the stream unsynchronised: the
    waiting request fails with ``BadReply`` and the connection is dropped. Once the link is
    down, every request raises ``LinkDown`` (the owner opens a new link).

    ``submit`` is the same exchange without a task: its callback runs straight from the reply's
    ``data_received`` (or the timeout's timer), for periodic polls where a task's wake-ups cost
    more than the exchange itself.
    """

    def __init__(self, unit: int, loop: asyncio.AbstractEventLoop) -> None:
        self.unit = unit
        self.down: str | None = "not connected"  # why the link is unusable; None while up
        self._transport: asyncio.Transport | None = None
        self._loop = loop
        self._buffer = bytearray()
        self._tid = 0
        self._current: Exchange | None = None  # the request in flight
        self._queue: deque[Exchange] = deque()  # requests waiting for their turn
        self._abandoned: dict[int, None] = {}  # insertion-ordered set of unanswered transaction ids
        # One timer per link, at the earliest deadline or before it, re-armed when it fires; not
        # a timer per request: creating and cancelling one per request was ~10 % of the CPU of
        # a 50 ms fixture poll, and a reply nearly always comes first.
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0  # s, loop clock

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, asyncio.Transport):  # create_connection gives a stream transport
            transport.close()
            return
        self._transport = transport
        self.down = None
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # a request is one small write: without this, Nagle holds it back for the ACK of
            # the previous segment (42 ms per exchange on the SCPI side, docs/reliability.md)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.down is None:
            partial = f" ({len(self._buffer)} byte(s) of a reply received)" if self._buffer else ""
            self.down = f"{exc}" if exc else f"connection closed by the device{partial}"
        self._fail(LinkDown(self.down))

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        if not buf and len(data) >= 8:  # the usual case, one whole reply: no copy through the buffer
            tid, protocol, length, _unit = _HEADER.unpack_from(data)
            if len(data) == 6 + length and protocol == 0 and 2 <= length <= MAX_PDU + 1:
                self._reply(tid, data[7:])
                return
        buf += data
        at, size = 0, len(buf)
        while size - at >= 8:
            tid, protocol, length, _unit = _HEADER.unpack_from(buf, at)
            if protocol != 0 or not 2 <= length <= MAX_PDU + 1:
                self._drop(f"a reply that is not Modbus TCP (protocol id {protocol}, length {length})")
                return
            end = at + 6 + length
            if end > size:
                break
            self._reply(tid, bytes(buf[at + 7:end]))
            at = end
        del buf[:at]

    # -- requests -----------------------------------------------------------------------------
    async def request(self, pdu: bytes, timeout: float) -> bytes:
        """Send ``pdu``, return the reply's PDU within ``timeout`` s of the running loop's clock
        (waiting for the turn counts).

        Raises ``TimeoutError`` (no reply in time, or no turn), ``LinkDown`` or ``BadReply``.
        """
        if self.down is not None:
            raise LinkDown(self.down)
        fut: asyncio.Future[bytes] = self._loop.create_future()
        exchange = self.submit(pdu, timeout, fut)
        try:
            return await fut
        finally:
            exchange.cancel()  # cancelled while waiting: give the turn up, drop the late reply

    def submit(self, pdu: bytes, timeout: float, done: Done) -> Exchange:
        """Queue ``pdu`` for its turn and return its ``Exchange``; ``LinkDown`` if the link is down.

        ``done`` is an ``asyncio.Future`` (given the reply's PDU or the error) or a callable
        ``done(reply_pdu, None)`` / ``done(None, error)``, called once from the loop, never from
        ``submit`` itself, unless the exchange is cancelled first. The error is ``TimeoutError``
        (no reply within ``timeout`` s of the loop's clock, turn included; on a scaled clock
        plus ``drivers.clock.reply_timeout``'s wall-time allowance), ``LinkDown`` or ``BadReply``.
        """
        if self.down is not None:
            raise LinkDown(self.down)
        exchange = Exchange(self, pdu, done, self._loop.time() + reply_timeout(timeout, self._loop))
        if self._timer is None or exchange.deadline < self._timer_when:
            self._arm(exchange.deadline)
        if self._current is None:
            self._send(exchange)
        else:
            self._queue.append(exchange)
        return exchange

    def close(self) -> None:
        """Close the connection; a waiting request fails with ``LinkDown``."""
        if self.down is None:
            self.down = "transport closed"
        if self._transport is not None:
            self._transport.close()
        self._fail(LinkDown(self.down))

    # -- internals ----------------------------------------------------------------------------
    def _send(self, exchange: Exchange) -> None:
        tid = self._tid = (self._tid + 1) & 0xFFFF
        self._abandoned.pop(tid, None)  # 65536 requests later: that late reply is not coming
        exchange.tid = tid
        self._current = exchange
        if self._transport is None:  # not reachable: submit refuses a link that never connected
            raise LinkDown(self.down or "not connected")
        self._transport.write(_HEADER.pack(tid, 0, len(exchange.pdu) + 1, self.unit) + exchange.pdu)

    def _end(self, exchange: Exchange, reply: bytes | None, error: Exception | None, *, notify: bool = True) -> None:
        """Finish ``exchange`` with ``reply`` or ``error``; the next queued request goes out."""
        done, exchange.done = exchange.done, None
        if exchange is self._current:
            self._current = None
            if reply is None:
                self._abandon(exchange.tid)  # its reply may still come: drop it then
            self._next()
        else:
            try:
                self._queue.remove(exchange)
            except ValueError:
                pass  # already taken off the queue by _next
        if not notify:
            return
        if done is None:  # already finished
            return
        if isinstance(done, asyncio.Future):
            if not done.done():
                if error is None:
                    assert reply is not None, "an exchange ends with its reply or an error"
                    done.set_result(reply)
                else:
                    done.set_exception(error)
            return
        try:
            done(reply, error)
        except Exception as exc:  # the caller's bug: reported, and it must not take the link down
            self._loop.call_exception_handler({"message": "exception in a Modbus TCP request callback",
                                               "exception": exc, "protocol": self})

    def _next(self) -> None:
        queue = self._queue
        while queue and self._current is None:
            exchange = queue.popleft()
            if self.down is None:
                self._send(exchange)
            else:
                self._end(exchange, None, LinkDown(self.down))

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_when = self._loop.call_at(when, self._expire), when

    def _expire(self) -> None:
        """The link's timer: requests due by its time fail with ``TimeoutError`` (queued ones
        first, so none is sent only to be given up), then it is re-armed for the rest."""
        self._timer = None
        due = self._timer_when
        for exchange in [e for e in self._queue if e.deadline <= due]:
            self._end(exchange, None, TimeoutError())
        if self._current is not None and self._current.deadline <= due:
            self._end(self._current, None, TimeoutError())
        pending = [e.deadline for e in self._queue]
        if self._current is not None:
            pending.append(self._current.deadline)
        if pending:
            self._arm(min(pending))

    def _reply(self, tid: int, pdu: bytes) -> None:
        if tid in self._abandoned:  # never the waiting one: _send forgets a reused id
            del self._abandoned[tid]  # the late reply to a request given up on: not an answer
            return
        exchange = self._current
        if exchange is None:
            return  # unsolicited and nobody asking: nothing it could be taken for
        if tid == exchange.tid:
            self._end(exchange, pdu, None)
        else:
            self._end(exchange, None, BadReply(f"transaction id {tid} in the reply to transaction {exchange.tid}"))

    def _abandon(self, tid: int) -> None:
        self._abandoned[tid] = None
        if len(self._abandoned) > _ABANDONED_KEPT:
            del self._abandoned[next(iter(self._abandoned))]

    def _drop(self, why: str) -> None:
        self.down = f"dropped after {why}"
        self._buffer.clear()
        if self._transport is not None:
            self._transport.abort()
        self._fail(BadReply(why))

    def _fail(self, exc: Exception) -> None:
        """The link is down: the request in flight fails with ``exc``, queued ones with ``LinkDown``."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._current is not None:
            self._end(self._current, None, exc)
        while self._queue:  # _end above sent none: the link is down
            self._end(self._queue[0], None, LinkDown(self.down or str(exc)))
