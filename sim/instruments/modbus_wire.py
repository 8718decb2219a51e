"""The Modbus wire for the simulator's servers: request PDUs, Modbus TCP (MBAP) and RTU framing.

Layouts are those of the Modbus Application Protocol spec v1.1b3 for function codes 1, 2, 3, 4,
5, 6, 15 and 16; any other code answers exception 1. Checks run in the spec's order: function
code (exception 1), quantity, byte count and PDU length (exception 3), address range
(exception 2); the device decides the rest.

``ModbusConnection`` answers in ``data_received`` itself, before returning to the loop. Serving
through pymodbus 3.16 (``ModbusTcpServer`` + ``SimDevice``) cost 6 event-loop callbacks per
request beyond the socket read (a self-pipe wake-up via ``run_coroutine_threadsafe``, task
hops); the station polls the fixture PLC every 50 ms, and CPU per poll through the real driver
fell from 250-530 us to 165-290 us (virtual time, shared 2-core machine).
"""

from __future__ import annotations

import asyncio
import struct
from typing import NamedTuple, Protocol

from pymodbus.constants import ExcCodes

from drivers.transports.rtu_link import crc16, frame

READ_FCS = (1, 2, 3, 4)
MAX_COUNT = {1: 2000, 2: 2000, 3: 125, 4: 125, 15: 1968, 16: 123}  # values one request may carry
MAX_PDU = 253
MAX_RTU_FRAME = 256  # unit + PDU + CRC
_MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id


class Request(NamedTuple):
    """A decoded request; ``values`` (bools for coils, 0..65535 for registers) is None for a read."""

    fc: int
    address: int
    count: int
    values: list | None


def decode_request(pdu: bytes) -> Request | ExcCodes:
    """The request carried by ``pdu``, or the exception code its layout earns."""
    fc = pdu[0]
    if fc in READ_FCS:
        if len(pdu) != 5:
            return ExcCodes.ILLEGAL_VALUE
        address, count = struct.unpack_from(">HH", pdu, 1)
        if not 1 <= count <= MAX_COUNT[fc]:
            return ExcCodes.ILLEGAL_VALUE
        values = None
    elif fc in (5, 6):
        if len(pdu) != 5:
            return ExcCodes.ILLEGAL_VALUE
        address, value = struct.unpack_from(">HH", pdu, 1)
        if fc == 5 and value not in (0x0000, 0xFF00):
            return ExcCodes.ILLEGAL_VALUE
        count, values = 1, [value == 0xFF00] if fc == 5 else [value]
    elif fc in (15, 16):
        if len(pdu) < 6:
            return ExcCodes.ILLEGAL_VALUE
        address, count, nbytes = struct.unpack_from(">HHB", pdu, 1)
        bits = fc == 15
        if not 1 <= count <= MAX_COUNT[fc] or nbytes != ((count + 7) // 8 if bits else 2 * count) \
                or len(pdu) != 6 + nbytes:
            return ExcCodes.ILLEGAL_VALUE
        data = pdu[6:]
        values = [bool(data[i >> 3] >> (i & 7) & 1) for i in range(count)] if bits \
            else list(struct.unpack(f">{count}H", data))
    else:
        return ExcCodes.ILLEGAL_FUNCTION
    if address + count > 0x10000:
        return ExcCodes.ILLEGAL_ADDRESS
    return Request(fc, address, count, values)


def encode_response(request: Request, pdu: bytes, result: list | None) -> bytes:
    """The response PDU to ``request`` (received as ``pdu``): ``result`` holds the values read."""
    fc = request.fc
    if fc in (1, 2):
        bits = 0  # the first value in the least significant bit of the first byte
        for i, bit in enumerate(result):
            if bit:
                bits |= 1 << i
        size = (len(result) + 7) // 8
        return bytes((fc, size)) + bits.to_bytes(size, "little")
    if fc in (3, 4):
        return struct.pack(f">BB{len(result)}H", fc, 2 * len(result), *result)
    if fc in (5, 6):
        return bytes(pdu)  # the spec's response is the request, echoed
    return struct.pack(">BHH", fc, request.address, request.count)


def exception_response(fc: int, code: int) -> bytes:
    """The exception response PDU: the function code with bit 7 set, then the code."""
    return bytes((fc | 0x80, int(code)))


class Device(Protocol):
    """What a connection needs from the server it belongs to."""

    device_id: int

    def answer(self, unit: int, pdu: bytes) -> bytes | None:
        """The response PDU to a request PDU for ``unit``, or None to leave it unanswered."""

    def outgoing(self, data: bytes) -> bytes:
        """A framed response as it leaves (a fault mode may corrupt it)."""


class ModbusConnection(asyncio.Protocol):
    """One client of ``device``: Modbus TCP, or RTU frames (``rtu=True``) over the same stream.

    Requests may arrive several to a segment or split over segments; each goes to
    ``device.answer``. A TCP header that is not Modbus (protocol id not 0, length outside
    2..254) drops the connection: the stream cannot be re-synchronised. RTU has no length
    field: a frame's size follows from its function code, or (unknown codes) ends at the first
    valid CRC. Frames for other units and bad CRCs get no answer; bytes that start no frame are
    skipped up to the next whole valid one. Unit 0 is a broadcast: executed, never answered.
    """

    def __init__(self, device: Device, connections: set[asyncio.Transport], *, rtu: bool = False) -> None:
        self.device, self.connections, self.rtu = device, connections, rtu
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.connections.add(transport)

    def connection_lost(self, exc) -> None:
        self.connections.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        if not self.buffer and not self.rtu:  # the usual case: whole requests, no copy through the buffer
            used = self._tcp_frames(data)
            if used < len(data):
                self.buffer += data[used:]
            return
        self.buffer += data
        used = self._rtu_frames() if self.rtu else self._tcp_frames(self.buffer)
        del self.buffer[:used]

    def _send(self, data: bytes) -> None:
        self.transport.write(self.device.outgoing(data))

    def _tcp_frames(self, buf: bytes | bytearray) -> int:
        """Answer the whole requests at the start of ``buf``; return the bytes used."""
        at, dev = 0, self.device
        while len(buf) - at >= 8:
            tid, proto, length, unit = _MBAP.unpack_from(buf, at)
            if proto != 0 or not 2 <= length <= MAX_PDU + 1:
                self.transport.abort()
                return len(buf)
            end = at + 6 + length
            if end > len(buf):
                break
            reply = dev.answer(unit, bytes(buf[at + 7:end]))
            at = end
            if reply is not None:
                self._send(_MBAP.pack(tid, 0, len(reply) + 1, unit) + reply)
        return at

    def _rtu_frames(self) -> int:
        buf, at, dev = self.buffer, 0, self.device
        while len(buf) - at >= 4:
            size = _rtu_size(buf, at)
            if size is None:  # unknown function code and no CRC yet: a frame to come, or noise
                later = next((j for j in range(at + 1, len(buf) - 3) if _is_frame(buf, j)), None)
                if later is not None or len(buf) - at >= MAX_RTU_FRAME:
                    at = later or at + 1  # noise before a frame, or more than any frame holds
                    continue
                break
            if size > len(buf) - at:
                break
            if not _is_frame(buf, at):
                at += 1  # a bad CRC: look for a frame one byte later
                continue
            unit, pdu = buf[at], bytes(buf[at + 1:at + size - 2])
            at += size
            if unit not in (0, dev.device_id):
                continue  # another device on the bus
            reply = dev.answer(unit, pdu)
            if reply is not None and unit != 0:
                self._send(frame(unit, reply))
        return at


def _rtu_size(buf: bytearray, at: int) -> int | None:
    """Bytes of the RTU frame starting at ``buf[at]`` (maybe more than are in): from its function
    code, else up to the first valid CRC (a line ends such a frame by silence); None if none yet."""
    left = len(buf) - at
    fc = buf[at + 1]
    if 1 <= fc <= 6:
        return 8
    if fc in (15, 16):
        return 9 + buf[at + 6] if left >= 7 else 9
    crc = 0xFFFF
    for k in range(min(left, MAX_RTU_FRAME) - 1):  # k bytes of frame so far, then their CRC?
        if k >= 2 and crc == buf[at + k] | buf[at + k + 1] << 8:
            return k + 2
        crc ^= buf[at + k]
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return None


def _is_frame(buf: bytearray, at: int) -> bool:
    """A whole frame with a valid CRC starts at ``buf[at]``."""
    size = _rtu_size(buf, at) if len(buf) - at >= 4 else None
    return size is not None and size <= len(buf) - at and \
        crc16(buf[at:at + size - 2]) == int.from_bytes(buf[at + size - 2:at + size], "little")
