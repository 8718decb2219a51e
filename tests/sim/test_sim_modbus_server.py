"""MapServer on the wire: literal Modbus TCP and RTU bytes over a loopback socket, checked byte for
byte against the Modbus Application Protocol spec v1.1b3 (request/response layouts of function
codes 1, 2, 3, 4, 5, 6, 15, 16, exception responses), and the framing: several requests in one
segment, one request split over segments, bad headers and CRCs, fault modes, stop()."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from pymodbus.constants import ExcCodes

from drivers.maps.regmap import parse_map
from sim.instruments.modbus_server import MapServer
from station.clock import run

COILS = "\n".join(f"  - {{name: c{i}, table: coil, address: {i}}}" for i in range(10))
MAP = f"""
name: wire_test
description: every table, 16- and 32-bit types, both word orders, gaps and read-only fields
registers:
{COILS}
  - {{name: locked, table: coil, address: 12, access: r}}
  - {{name: d0, table: discrete, address: 0}}
  - {{name: d1, table: discrete, address: 1}}
  - {{name: d2, table: discrete, address: 2}}
  - {{name: h_u16, table: holding, address: 0, min: 0, max: 1000}}
  - {{name: h_u32, table: holding, address: 1, type: uint32}}
  - {{name: h_f32, table: holding, address: 3, type: float32}}
  - {{name: ro, table: holding, address: 5, access: r}}
  - {{name: h_little, table: holding, address: 10, type: int32, word_order: little}}
  - {{name: i_u16, table: input, address: 0}}
  - {{name: i_i16, table: input, address: 1, type: int16}}
  - {{name: i_u32, table: input, address: 2, type: uint32}}
"""
BUSY = 666  # a value the probe's apply() refuses with its own exception code


class Probe(MapServer):
    """A MapServer that records its hooks and refuses ``h_u16 = 666`` with DEVICE_BUSY (6)."""

    def __init__(self) -> None:
        super().__init__(parse_map(MAP))
        self.hooks: list = []
        self.values.update(c0=True, c2=True, c9=True, d1=True, h_u16=0x0102, h_u32=0x01020304, h_f32=1.5, ro=7,
                           h_little=-2, i_u16=1, i_i16=-2, i_u32=70000)

    def on_request(self) -> None:
        self.hooks.append("request")

    def refresh(self, table: str) -> None:
        self.hooks.append(("refresh", table))

    def apply(self, table: str, changes: dict) -> ExcCodes | None:
        self.hooks.append(("apply", table, dict(changes)))
        return ExcCodes.DEVICE_BUSY if changes.get("h_u16") == BUSY else None


def served(body, *, rtu: bool = False):
    """Run ``body(server, reader, writer)`` with a Probe on loopback and one raw client, on virtual time."""

    async def main():
        server = Probe()
        host, port = (await server.start(rtu=rtu)).rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            return await body(server, reader, writer)
        finally:
            writer.close()
            await server.stop()

    return run(main(), virtual=True)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def mbap(tid: int, pdu: bytes, unit: int = 1) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


async def adu(reader, timeout: float = 0.3) -> bytes | None:
    """One whole Modbus TCP reply (header and PDU), or None if none comes within ``timeout`` s."""
    try:
        head = await asyncio.wait_for(reader.readexactly(7), timeout)
        return head + await asyncio.wait_for(reader.readexactly(struct.unpack(">H", head[4:6])[0] - 1), timeout)
    except (TimeoutError, asyncio.IncompleteReadError):
        return None


async def raw(reader, n: int, timeout: float = 0.3) -> bytes:
    """Up to ``n`` bytes arriving within ``timeout`` s."""
    out = b""
    try:
        while len(out) < n:
            chunk = await asyncio.wait_for(reader.read(n - len(out)), timeout)
            if not chunk:
                break
            out += chunk
    except TimeoutError:
        pass
    return out


def ask_all(pdus: list[str], *, unit: int = 1):
    """Send each request PDU (hex) in turn; return the reply PDUs (hex) and the server."""

    async def body(server, reader, writer):
        replies = []
        for tid, pdu in enumerate(pdus, start=0x1230):
            writer.write(mbap(tid, h(pdu), unit))
            reply = await adu(reader)
            assert reply is not None, f"no reply to {pdu}"
            assert reply[:4] == struct.pack(">HH", tid, 0) and reply[6] == unit  # MBAP echoed
            assert struct.unpack(">H", reply[4:6])[0] == len(reply) - 6  # length = unit + PDU
            replies.append(reply[7:].hex(" ").upper())
        return replies, server

    return served(body)


# -- every function code, byte for byte ------------------------------------------------------
@pytest.mark.parametrize("request_pdu, reply_pdu", [
    ("01 0000 000A", "01 02 05 02"),          # coils 0..9: c0, c2 (byte 1), c9 (byte 2, bit 1)
    ("01 0001 0003", "01 01 02"),             # coils 1..3: c2 is bit 1 of the first byte
    ("02 0000 0003", "02 01 02"),             # discrete inputs 0..2: d1
    ("03 0000 0006", "03 0C 01 02 01 02 03 04 3F C0 00 00 00 07"),  # u16, u32, f32 1.5, read-only
    ("03 0002 0002", "03 04 03 04 3F C0"),    # halves of two 32-bit fields
    ("03 000A 0002", "03 04 FF FE FF FF"),    # int32 -2, low word first
    ("04 0000 0004", "04 08 00 01 FF FE 00 01 11 70"),  # 1, -2, 70000
])
def test_reads_answer_the_spec_layout(request_pdu, reply_pdu):
    replies, _ = ask_all([request_pdu])
    assert replies == [bytes.fromhex(reply_pdu).hex(" ").upper()]


def test_writes_echo_the_spec_layout_and_set_values():
    replies, server = ask_all([
        "05 0009 0000",                # coil 9 off: the request echoed
        "05 0001 FF00",                # coil 1 on
        "06 0000 03E8",                # h_u16 := 1000 (its max)
        "0F 0000 000A 02 AA 01",       # coils 0..9 := 0,1,0,1,0,1,0,1,1,0
        "10 0001 0002 04 0005 0006",   # h_u32 := 0x00050006
        "10 000A 0002 04 0001 0000",   # h_little := 1 (low word first)
        "10 0003 0002 04 C1 20 00 00", # h_f32 := -10.0
    ])
    assert replies == ["05 00 09 00 00", "05 00 01 FF 00", "06 00 00 03 E8", "0F 00 00 00 0A",
                       "10 00 01 00 02", "10 00 0A 00 02", "10 00 03 00 02"]
    v = server.values
    assert [v[f"c{i}"] for i in range(10)] == [False, True, False, True, False, True, False, True, True, False]
    assert (v["h_u16"], v["h_u32"], v["h_little"], v["h_f32"]) == (1000, 0x00050006, 1, -10.0)


# -- exception responses ---------------------------------------------------------------------
@pytest.mark.parametrize("request_pdu, reply_pdu", [
    ("07", "87 01"),                          # Read Exception Status: not supported
    ("2B 0E 01 00", "AB 01"),                 # Read Device Identification: not supported
    ("01 0000 000D", "81 02"),                # coils 10, 11 are unmapped
    ("01 0009 0002", "81 02"),                # past the last coil of a run
    ("03 0005 0002", "83 02"),                # holding 6 is unmapped
    ("04 0004 0001", "84 02"),                # past the input table
    ("03 FFFF 0002", "83 02"),                # beyond address 65535
    ("06 0005 0001", "86 02"),                # read-only register
    ("05 000C FF00", "85 02"),                # read-only coil
    ("0F 0009 0004 01 0F", "8F 02"),          # runs into unmapped and read-only coils
    ("06 0000 03E9", "86 03"),                # above max 1000
    ("05 0000 1234", "85 03"),                # a coil value is 0000 or FF00
    ("03 0000 0000", "83 03"),                # quantity 0
    ("03 0000 007E", "83 03"),                # 126 registers: more than one PDU carries
    ("01 0000 07D1", "81 03"),                # 2001 coils
    ("10 0001 0002 03 00 05 00", "90 03"),    # byte count is not 2 x quantity
    ("0F 0000 000A 01 AA", "8F 03"),          # byte count is not ceil(quantity / 8)
    ("10 0001 0001 02 00", "90 03"),          # PDU shorter than its byte count
    ("03 0000", "83 03"),                     # PDU too short
    ("03 0000 0001 00", "83 03"),             # PDU too long
    (f"06 0000 {BUSY:04X}", "86 06"),         # the device's own refusal (apply)
])
def test_exceptions_answer_fc_plus_0x80_and_the_code(request_pdu, reply_pdu):
    replies, server = ask_all([request_pdu, "03 0000 0001"])
    assert replies == [bytes.fromhex(reply_pdu).hex(" ").upper(), "03 02 01 02"]  # and it keeps serving
    assert server.values["h_u16"] == 0x0102 and server.values["c9"]  # a refused write changes nothing


def test_a_refused_write_is_rolled_back_after_apply_saw_it():
    _, server = ask_all([f"06 0000 {BUSY:04X}"])
    assert ("apply", "holding", {"h_u16": BUSY}) in server.hooks and server.values["h_u16"] == 0x0102


def test_units_other_than_ours_answer_gateway_exception_11():
    assert ask_all(["03 0000 0001"], unit=7)[0] == ["83 0B"]
    assert ask_all(["03 0000 0001"], unit=0xFF)[0] == ["03 02 01 02"]  # the spec's "this device"


# -- hooks -------------------------------------------------------------------------------------
def test_a_repeated_read_serves_fresh_values_and_a_bad_one_keeps_failing():
    async def body(server, reader, writer):
        replies = []
        for tid, (pdu, change) in enumerate([("02 0000 0003", {}), ("02 0000 0003", {"d0": True, "d1": False}),
                                             ("04 0001 0003", {}), ("04 0001 0003", {"i_u32": 0x00050006}),
                                             ("02 0001 0003", {}), ("02 0001 0003", {})]):
            server.values.update(change)
            writer.write(mbap(tid, h(pdu)))
            replies.append((await adu(reader))[7:].hex(" ").upper())
        return replies

    assert served(body) == ["02 01 02", "02 01 01", "04 06 FF FE 00 01 11 70", "04 06 FF FE 00 05 00 06",
                            "82 02", "82 02"]


def test_hooks_run_once_per_request_in_order():
    _, server = ask_all(["03 0000 0001", "06 0000 0005", "02 0000 0001", "03 0006 0001"])
    assert server.hooks == ["request", ("refresh", "holding"),
                            "request", ("refresh", "holding"), ("apply", "holding", {"h_u16": 5}),
                            "request", ("refresh", "discrete"),
                            "request"]  # unmapped: refused before refresh
    assert server.requests == 4


# -- TCP framing ------------------------------------------------------------------------------
def test_several_requests_in_one_segment_get_one_reply_each_in_order():
    async def body(server, reader, writer):
        writer.write(mbap(1, h("03 0000 0001")) + mbap(2, h("01 0000 0003")) + mbap(3, h("07")))
        return [await adu(reader) for _ in range(3)], await adu(reader, 0.1)

    replies, extra = served(body)
    assert replies == [h("0001 0000 0005 01 03 02 01 02"), h("0002 0000 0004 01 01 01 05"),
                       h("0003 0000 0003 01 87 01")]
    assert extra is None


def test_a_request_split_over_segments_is_answered_once_complete():
    async def body(server, reader, writer):
        request = mbap(9, h("10 0001 0002 04 0005 0006")) + mbap(10, h("03 0001 0002"))
        early = []
        for i in range(len(request) - 1):  # one byte per segment, the loop runs between them
            writer.write(request[i:i + 1])
            await asyncio.sleep(0.001)
            if i == 12:
                early.append(await adu(reader, 0.01))  # half a request: nothing yet
        first = await adu(reader)
        writer.write(request[-1:])
        return early, first, await adu(reader)

    early, first, second = served(body)
    assert early == [None]
    assert first == h("0009 0000 0006 01 10 0001 0002")
    assert second == h("000A 0000 0007 01 03 04 0005 0006")


def test_a_header_that_is_not_modbus_tcp_drops_only_that_connection():
    async def body(server, reader, writer):
        writer.write(struct.pack(">HHHB", 1, 1, 6, 1) + h("03 0000 0001"))  # protocol id 1
        dropped = await raw(reader, 100)
        eof = reader.at_eof()
        host, port = writer.get_extra_info("peername")[:2]
        r2, w2 = await asyncio.open_connection(host, port)
        w2.write(mbap(5, h("03 0000 0001")))
        again = await adu(r2)
        w2.close()
        return dropped, eof, again

    assert served(body) == (b"", True, h("0005 0000 0005 01 03 02 01 02"))


# -- fault modes and stop() --------------------------------------------------------------------
def test_hang_accepts_and_never_answers_until_healed():
    async def body(server, reader, writer):
        server.behaviour = "hang"
        writer.write(mbap(1, h("03 0000 0001")))
        silent = await adu(reader, 1.0)
        counted = server.requests
        server.behaviour = "normal"
        writer.write(mbap(2, h("03 0000 0001")))
        return silent, counted, await adu(reader)

    assert served(body) == (None, 0, h("0002 0000 0005 01 03 02 01 02"))


def test_garbage_corrupts_the_whole_reply_frame():
    async def body(server, reader, writer):
        server.behaviour = "garbage"
        writer.write(mbap(1, h("03 0000 0001")))
        return await raw(reader, 11)

    good = h("0001 0000 0005 01 03 02 01 02")
    assert served(body) == bytes((b * 37 + 11) & 0xFF for b in good[::-1])


def test_stop_drops_every_connection_even_a_hung_one():
    async def body(server, reader, writer):
        server.behaviour = "hang"
        writer.write(mbap(1, h("03 0000 0001")))
        await asyncio.sleep(0.01)
        await server.stop()
        return await raw(reader, 100, 1.0), reader.at_eof()

    assert served(body) == (b"", True)


def test_binds_to_loopback_by_default():
    async def main():
        server = Probe()
        address = await server.start()
        bound = server._server.sockets[0].getsockname()[0]
        await server.stop()
        return address.rsplit(":", 1)[0], bound

    assert run(main(), virtual=True) == ("127.0.0.1", "127.0.0.1")


# -- RTU framing over the TCP socket -----------------------------------------------------------
def rtu(body):
    return served(body, rtu=True)


def test_rtu_answers_the_exact_frame_with_crc_low_byte_first():
    async def body(server, reader, writer):
        writer.write(h("01 03 0000 000A C5 CD"))  # the spec's textbook request: 10 registers from 0
        refused = await raw(reader, 5)
        writer.write(h("01 03 0000 0002 C4 0B"))
        return refused, await raw(reader, 9)

    assert rtu(body) == (h("01 83 02 C0 F1"), h("01 03 04 0102 0102 DA 5E"))


def test_rtu_frames_merged_split_and_after_noise():
    async def body(server, reader, writer):
        writer.write(h("01 03 0000 0001 84 0A") + h("01 07 41 E2"))  # two frames, one segment
        merged = await raw(reader, 7 + 5)
        frame = h("01 10 0001 0002 04 0005 0006 A2 60")
        for i in range(len(frame)):
            writer.write(frame[i:i + 1])
            await asyncio.sleep(0.001)
        split = await raw(reader, 8)
        writer.write(h("FF 00") + h("01 03 0001 0002 95 CB"))  # noise, then a frame
        resynced = await raw(reader, 9)
        return merged, split, resynced

    merged, split, resynced = rtu(body)
    assert merged == h("01 03 02 0102 38 15") + h("01 87 01 82 30")
    assert split == h("01 10 0001 0002 10 08")
    assert resynced == h("01 03 04 0005 0006 6A 30")


def test_rtu_bad_crc_and_other_units_get_no_answer_and_a_broadcast_is_executed_unanswered():
    async def body(server, reader, writer):
        writer.write(h("01 03 0000 0001 84 0B"))  # CRC off by one
        bad_crc = await raw(reader, 7, 0.1)
        writer.write(h("07 03 0000 0001 84 6C"))  # unit 7
        other = await raw(reader, 7, 0.1)
        writer.write(h("00 05 0009 0000 1C 19"))  # broadcast: coil 9 off
        broadcast = await raw(reader, 8, 0.1)
        writer.write(h("01 03 0000 0001 84 0A"))
        return bad_crc, other, broadcast, server.values["c9"], await raw(reader, 7)

    assert rtu(body) == (b"", b"", b"", False, h("01 03 02 0102 38 15"))
