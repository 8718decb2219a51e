"""ModbusTransport's own Modbus TCP client against a raw asyncio peer on loopback.

The peer checks the exact request bytes (MBAP header + PDU as the Modbus Application Protocol
spec v1.1b3 lays them out, written out by hand here) and answers crafted frames: split over
segments, glued to a stale reply, with a wrong transaction or protocol id, exception responses,
short PDUs, EOF in the middle of a reply.
"""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from drivers.errors import ConnectError, DeviceError, InstrumentTimeout, ProtocolError, RangeError
from drivers.transports.modbus import ModbusTransport
from station.clock import run

CLOSE = None  # in an answer: close the connection instead of writing


def mbap(frame: bytes, pdu: bytes, *, tid: int | None = None, protocol: int = 0) -> bytes:
    """A reply frame to request ``frame``: its transaction id (unless ``tid``) and unit id."""
    tid = struct.unpack_from(">H", frame)[0] if tid is None else tid
    return struct.pack(">HHHB", tid, protocol, len(pdu) + 1, frame[6]) + pdu


class Peer(asyncio.Protocol):
    """A raw Modbus TCP device: records each request frame; ``answer(frame)`` returns
    ``[(delay_s, bytes or CLOSE), ...]`` to send, each chunk a separate write after its delay."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.frames: list[bytes] = []
        self.events: list[str] = []
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 6 and len(self.buffer) >= 6 + int.from_bytes(self.buffer[4:6], "big"):
            size = 6 + int.from_bytes(self.buffer[4:6], "big")
            frame = bytes(self.buffer[:size])
            del self.buffer[:size]
            self.frames.append(frame)
            self.events.append(f"request {frame[0:2].hex()}")
            loop = asyncio.get_running_loop()
            for delay, chunk in self.answer(frame) or ():
                loop.call_later(delay, self._send, chunk)

    def _send(self, chunk: bytes | None) -> None:
        if self.transport.is_closing():
            return
        if chunk is CLOSE:
            self.transport.close()
        else:
            self.events.append(f"reply {chunk[0:2].hex()}")
            self.transport.write(chunk)


def talk(answer, body, *, timeout: float = 0.5, unit: int = 1):
    """Run ``body(transport, peers)`` against ``Peer(answer)`` on the virtual clock; return
    ``(result, peers)`` (one peer per accepted connection)."""
    peers: list[Peer] = []

    def factory() -> Peer:
        peers.append(Peer(answer))
        return peers[-1]

    async def main():
        server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        t = ModbusTransport(f"modbus-tcp://127.0.0.1:{port}?unit={unit}", timeout=timeout, instrument="plc")
        await t.open()
        try:
            return await body(t, peers)
        finally:
            await t.close()
            server.close()

    return run(main(), virtual=True), peers


def echo(frame: bytes) -> list:
    """The answer of a device that accepts any write (FC5/6 echo the request, FC15/16 its first 5 PDU bytes)."""
    pdu = frame[7:]
    return [(0, mbap(frame, pdu if pdu[0] in (5, 6) else pdu[:5]))]


# -- request layouts and reply decoding ------------------------------------------------------
def test_every_function_code_sends_the_spec_layout_and_decodes_the_reply():
    replies = {
        1: bytes.fromhex("01 02 cd 01"),  # 10 coils: bytes LSB first
        2: bytes.fromhex("02 03 ac db 35"),  # 22 inputs (spec example)
        3: bytes.fromhex("03 06 02 2b 00 00 00 64"),  # 3 registers (spec example)
        4: bytes.fromhex("04 02 00 0a"),
    }

    def answer(frame):
        fc = frame[7]
        return [(0, mbap(frame, replies[fc]))] if fc in replies else echo(frame)

    async def body(t, peers):
        return [await t.read_coils(0x13, 10), await t.read_discrete_inputs(0xC4, 22),
                await t.read_holding(0x6B, 3), await t.read_input(0x08, 1),
                await t.write_coil(0xAC, True), await t.write_coil(0xAC, False),
                await t.write_register(0x01, 0x0003),
                await t.write_coils(0x13, [True, False, True, True, False, False, True, True, True, False]),
                await t.write_registers(0x01, [0x000A, 0x0102])]

    values, (peer,) = talk(answer, body, unit=17)
    assert values[:4] == [
        [True, False, True, True, False, False, True, True, True, False],
        [False, False, True, True, False, True, False, True, True, True, False, True, True, False, True, True,
         True, False, True, False, True, True],
        [0x022B, 0x0000, 0x0064],
        [0x000A],
    ]
    assert values[4:] == [None] * 5
    # transaction id counts up from 1, protocol id 0, length = unit id + PDU, unit id 17
    assert [f.hex(" ") for f in peer.frames] == [
        "00 01 00 00 00 06 11 01 00 13 00 0a",
        "00 02 00 00 00 06 11 02 00 c4 00 16",
        "00 03 00 00 00 06 11 03 00 6b 00 03",
        "00 04 00 00 00 06 11 04 00 08 00 01",
        "00 05 00 00 00 06 11 05 00 ac ff 00",
        "00 06 00 00 00 06 11 05 00 ac 00 00",
        "00 07 00 00 00 06 11 06 00 01 00 03",
        "00 08 00 00 00 09 11 0f 00 13 00 0a 02 cd 01",
        "00 09 00 00 00 0b 11 10 00 01 00 02 04 00 0a 01 02",
    ]


def test_the_socket_has_nagle_off():
    async def body(t, peers):
        sock = t._link._transport.get_extra_info("socket")
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

    assert talk(echo, body)[0] != 0


# -- segmentation ----------------------------------------------------------------------------
def test_a_reply_split_over_segments_is_reassembled():
    def answer(frame):
        whole = mbap(frame, bytes.fromhex("03 04 12 34 56 78"))
        return [(0, whole[:3]), (0.01, whole[3:8]), (0.02, whole[8:])]  # header split, PDU split

    async def body(t, peers):
        return await t.read_holding(0, 2)

    assert talk(answer, body)[0] == [0x1234, 0x5678]


def test_a_stale_reply_glued_to_the_answer_is_dropped_and_the_answer_taken():
    def answer(frame):
        tid = struct.unpack_from(">H", frame)[0]
        if tid == 1:
            return []  # the first request times out
        if tid == 2:  # the late reply to request 1 and the reply to request 2 in one segment
            return [(0, mbap(frame, bytes.fromhex("03 02 00 01"), tid=1) + mbap(frame, bytes.fromhex("03 02 00 02")))]
        return [(0, mbap(frame, bytes.fromhex("03 02 00 03")))]

    async def body(t, peers):
        with pytest.raises(InstrumentTimeout):
            await t.read_holding(0, 1)
        return await t.read_holding(0, 1), await t.read_holding(0, 1)

    assert talk(answer, body)[0] == ([2], [3])


def test_a_late_reply_arriving_alone_is_not_the_next_answer():
    def answer(frame):
        tid = struct.unpack_from(">H", frame)[0]
        if tid == 1:  # answered after the client gave up (timeout 0.5 s)
            return [(0.8, mbap(frame, bytes.fromhex("03 02 00 01")))]
        return [(0.1, mbap(frame, bytes.fromhex("03 02 00 02")))]

    async def body(t, peers):
        with pytest.raises(InstrumentTimeout):
            await t.read_holding(0, 1)
        await asyncio.sleep(0.2)  # request 2 goes out at 0.7 s: the stale reply lands at 0.8 s
        return await t.read_holding(0, 1)

    assert talk(answer, body)[0] == [2]


def test_requests_take_turns_one_in_flight():
    def answer(frame):
        value = frame[8:10]  # the register address, sent back as the value
        return [(0.1, mbap(frame, b"\x03\x02" + value))]

    async def body(t, peers):
        return await asyncio.gather(t.read_holding(5, 1), t.read_holding(6, 1), t.read_holding(7, 1))

    values, (peer,) = talk(answer, body)
    assert values == [[5], [6], [7]]
    assert peer.events == ["request 0001", "reply 0001", "request 0002", "reply 0002", "request 0003", "reply 0003"]


# -- replies that are not the answer ---------------------------------------------------------
def test_a_wrong_transaction_id_is_a_protocol_error_naming_the_command_and_the_link_stays_usable():
    def answer(frame):
        tid = struct.unpack_from(">H", frame)[0]
        if tid == 1:
            return [(0, mbap(frame, bytes.fromhex("03 02 00 01"), tid=77))]
        return [(0, mbap(frame, bytes.fromhex("03 02 00 02")))]

    async def body(t, peers):
        with pytest.raises(ProtocolError) as err:
            await t.read_holding(3, 1)
        return err.value, await t.read_holding(3, 1), t.lost

    err, after, lost = talk(answer, body)[0]
    assert err.command == "read_holding(3, 1)" and "transaction id 77" in str(err) and err.instrument == "plc"
    assert after == [2] and lost is False


def test_a_wrong_protocol_id_drops_the_link_until_it_is_opened_again():
    requests = []

    def answer(frame):
        requests.append(frame)
        return [(0, mbap(frame, bytes.fromhex("02 01 01"), protocol=1 if len(requests) == 1 else 0))]

    async def body(t, peers):
        with pytest.raises(ProtocolError) as err:
            await t.read_discrete_inputs(0, 1)
        lost = t.lost
        with pytest.raises(ConnectError) as dead:
            await t.read_discrete_inputs(0, 1)
        await t.open()
        return err.value, lost, dead.value, await t.read_discrete_inputs(0, 1), len(peers)

    err, lost, dead, after, connections = talk(answer, body)[0]
    assert err.command == "read_discrete_inputs(0, 1)" and "protocol id 1" in str(err)
    assert lost and "connection lost" in str(dead) and dead.command == "read_discrete_inputs(0, 1)"
    assert after == [True] and connections == 2 and len(requests) == 2  # nothing sent on the dead link


@pytest.mark.parametrize("call, pdu, why", [
    (lambda t: t.read_holding(0, 2), "03 04 00 01", "byte count 4"),  # short PDU
    (lambda t: t.read_holding(0, 2), "03 03 00 01 00", "byte count 3"),  # odd byte count
    (lambda t: t.read_holding(0, 1), "03 04 00 01 00 02", "2 registers in the reply to a read of 1"),
    (lambda t: t.read_coils(0, 9), "01 01 ff", "for 9 bit(s)"),  # 9 bits need 2 bytes
    (lambda t: t.read_coils(0, 8), "01", "no byte count"),
    (lambda t: t.read_holding(0, 1), "03", "no byte count"),
    (lambda t: t.read_input(0, 1), "03 02 00 01", "function code 3 in the reply to function 4"),
    (lambda t: t.read_input(0, 1), "84", "exception response of 1 bytes"),
    (lambda t: t.write_register(4, 9), "06 00 04 00 08", "does not echo"),
    (lambda t: t.write_registers(4, [9, 9]), "10 00 04 00 01", "does not echo"),
    (lambda t: t.write_coil(4, True), "05 00 04 00 00", "does not echo"),
])
def test_a_malformed_reply_is_a_protocol_error(call, pdu, why):
    async def body(t, peers):
        with pytest.raises(ProtocolError) as err:
            await call(t)
        return err.value

    err = talk(lambda frame: [(0, mbap(frame, bytes.fromhex(pdu)))], body)[0]
    assert why in str(err) and "bad reply" in str(err) and err.command, str(err)


def test_fewer_registers_than_asked_keep_the_transport_message():
    async def body(t, peers):
        with pytest.raises(ProtocolError) as err:
            await t.read_input(10, 2)
        return err.value

    err = talk(lambda frame: [(0, mbap(frame, bytes.fromhex("04 02 00 01")))], body)[0]
    assert "read_input at address 10: 1 of 2 registers returned" in str(err)
    assert err.command == "read_input(10, 2)"


def test_an_exception_response_is_a_device_error_with_its_code():
    async def body(t, peers):
        errors = []
        for call in (lambda: t.read_input(3, 1), lambda: t.write_coils(0, [True]), lambda: t.read_coils(0, 1)):
            with pytest.raises(DeviceError) as err:
                await call()
            errors.append(err.value)
        return errors

    codes = iter([2, 4, 0x42])
    errors = talk(lambda frame: [(0, mbap(frame, bytes((frame[7] | 0x80, next(codes)))))], body)[0]
    assert [e.code for e in errors] == [2, 4, 0x42]
    assert "read_input at address 3 answered Modbus exception 2 ILLEGAL_DATA_ADDRESS" in str(errors[0])
    assert errors[0].command == "read_input(3, 1)"
    assert "write_coils at address 0 answered Modbus exception 4 SERVER_DEVICE_FAILURE" in str(errors[1])
    assert "exception 66 UNKNOWN_EXCEPTION" in str(errors[2])


# -- the link going away ---------------------------------------------------------------------
def test_eof_in_the_middle_of_a_reply_is_connect_error_until_reopened():
    def answer(frame):
        return [(0, mbap(frame, bytes.fromhex("03 02 00 01"))[:9]), (0.01, CLOSE)]

    async def body(t, peers):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(ConnectError) as err:
            await t.read_holding(0, 1)
        elapsed = loop.time() - t0
        with pytest.raises(ConnectError) as again:
            await t.write_register(0, 1)
        return err.value, elapsed, again.value, t.lost

    err, elapsed, again, lost = talk(answer, body)[0]
    assert "connection lost" in str(err) and "closed by the device" in str(err) and "9 byte(s)" in str(err)
    assert elapsed < 0.5  # reported when it happens, not after the timeout
    assert "connection lost" in str(again) and again.command == "write_register(0, 1)" and lost


def test_the_timeout_runs_on_the_loop_clock():
    async def body(t, peers):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(InstrumentTimeout) as err:
            await t.read_coils(0, 1)
        return loop.time() - t0, err.value, len(peers[0].frames)

    elapsed, err, sent = talk(lambda frame: [], body, timeout=0.25)[0]
    assert 0.25 <= elapsed < 0.3 and sent == 1  # one request: no retries
    assert "no reply within 0.25 s" in str(err) and err.command == "read_coils(0, 1)"


def test_writes_no_pdu_can_carry_are_refused_before_sending():
    async def body(t, peers):
        for call in (lambda: t.write_registers(0, [0] * 124), lambda: t.write_coils(0, [False] * 1969)):
            with pytest.raises(RangeError):
                await call()
        await t.write_registers(0, [0] * 123)
        await t.write_coils(0, [False] * 1968)
        return [len(f) for f in peers[0].frames]

    # the largest writes fill the 253-byte PDU: 7 header bytes + 6 + 246, 7 + 6 + 246
    assert talk(echo, body)[0] == [7 + 6 + 246, 7 + 6 + 246]


# -- requests from callbacks (TcpLink.submit, the fixture's interlock poll) -----------------
def test_a_submitted_request_is_answered_from_the_reply_callback_in_turn_with_awaited_ones():
    def answer(frame):
        return [(0.1, mbap(frame, b"\x03\x02" + frame[8:10]))]  # the address, sent back as the value

    async def body(t, peers):
        link, got = t._link, []
        read = t.read_poll(3, 7, 1)
        first = asyncio.ensure_future(t.read_holding(5, 1))
        await asyncio.sleep(0)  # read 5 is in flight
        read.start(lambda values, err: got.append((asyncio.get_running_loop().time(), values, err)))
        assert got == [] and len(link._queue) == 1  # queued; never answered from start() itself
        last = asyncio.ensure_future(t.read_holding(6, 1))
        return await first, await last, got

    (first, last, got), (peer,) = talk(answer, body)
    assert first == [5] and last == [6]
    assert [(round(t, 6), values, err) for t, values, err in got] == [(0.2, [7], None)]
    assert peer.events == ["request 0001", "reply 0001", "request 0002", "reply 0002", "request 0003", "reply 0003"]


def test_a_cancelled_queued_request_is_never_sent_and_a_cancelled_one_in_flight_frees_the_link():
    def answer(frame):
        return [(0.1, mbap(frame, b"\x03\x02" + frame[8:10]))]

    async def body(t, peers):
        got = []
        in_flight, queued = t.read_poll(3, 1, 1), t.read_poll(3, 2, 1)
        in_flight.start(lambda *a: got.append(a))
        queued.start(lambda *a: got.append(a))
        queued.cancel()
        in_flight.cancel()
        t0 = asyncio.get_running_loop().time()
        value = await t.read_holding(3, 1)  # its reply comes, the abandoned one's is dropped
        return got, value, asyncio.get_running_loop().time() - t0

    (got, value, waited), (peer,) = talk(answer, body)
    assert got == [] and value == [3] and waited == pytest.approx(0.1)
    assert [f[8:10] for f in peer.frames] == [b"\x00\x01", b"\x00\x03"]  # address 2 never sent


def test_every_request_times_out_at_its_own_deadline_with_one_timer_per_link():
    def answer(frame):
        tid = struct.unpack_from(">H", frame)[0]
        return [(0.1, mbap(frame, b"\x03\x02\x00\x01"))] if tid == 1 else []

    async def body(t, peers):
        loop = asyncio.get_running_loop()
        await t.read_holding(0, 1)  # answered at 0.1 s: the link's timer (0.5 s) stays armed
        await asyncio.sleep(0.2)
        t0 = loop.time()
        with pytest.raises(InstrumentTimeout):
            await t.read_holding(0, 1)  # sent at 0.3 s: fails at 0.8 s, not at the timer's 0.5 s
        t1 = loop.time()
        got = []
        read = t.read_poll(2, 0, 1)
        read.start(lambda values, err: got.append((loop.time(), err)))
        await asyncio.sleep(1.0)
        return t0, t1, got

    (t0, t1, [(t2, err)]), _ = talk(answer, body)
    assert t1 - t0 == pytest.approx(0.5) and t2 - t1 == pytest.approx(0.5)
    assert isinstance(err, InstrumentTimeout) and err.command == "read_discrete_inputs(0, 1)"


def test_a_raising_callback_is_reported_and_the_link_stays_usable():
    reported = []

    def answer(frame):
        return [(0, mbap(frame, b"\x03\x02\x00\x09"))]

    def broken(values, err):
        raise RuntimeError("callback bug")

    async def body(t, peers):
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: reported.append(context["exception"]))
        t.read_poll(3, 0, 1).start(broken)
        await asyncio.sleep(0.01)
        return await t.read_holding(0, 1), t.lost

    (value, lost), _ = talk(answer, body)
    assert [str(e) for e in reported] == ["callback bug"] and value == [9] and not lost


def test_a_callback_read_on_a_lost_link_raises_at_once():
    async def body(t, peers):
        read = t.read_poll(2, 0, 1)
        t._link.close()
        with pytest.raises(ConnectError) as err:
            read.start(lambda *a: None)
        return err.value

    err, _ = talk(echo, body)
    assert "connection lost" in str(err) and err.command == "read_discrete_inputs(0, 1)"
