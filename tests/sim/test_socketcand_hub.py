"""The socketcand hub: protocol exchange with a raw TCP client, python-can's own codec and client."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re

import can
import pytest
from can.interfaces.socketcand.socketcand import (
    convert_ascii_message_to_can_message,
    convert_can_message_to_ascii_message,
)

from drivers.transports import loopbus
from drivers.transports.loopbus import LoopBus
from sim.socketcand_hub import (
    ERR_BUS,
    ERR_SEND,
    ERR_SYNTAX,
    ERR_UNKNOWN,
    MAX_COMMAND,
    SocketcandHub,
    format_frame,
    parse_send,
    take_commands,
)

_channels = (f"hubtest-{i}" for i in itertools.count())
FRAME = re.compile(r"< frame ([0-9A-F]+) (\d+\.\d{6}) ([0-9A-F]*) >")


@contextlib.asynccontextmanager
async def rig(**hub_kw):
    """A hub on a fresh channel plus an in-loop peer node (the 'ECU') on that channel."""
    channel = next(_channels)
    hub = SocketcandHub({"can0": channel}, **hub_kw)
    address = await hub.start()
    peer = LoopBus(channel)
    try:
        yield hub, address, peer, channel
    finally:
        peer.shutdown()
        await hub.stop()


async def expect(reader: asyncio.StreamReader, text: str) -> None:
    got = await asyncio.wait_for(reader.readexactly(len(text)), 2.0)
    assert got.decode() == text


async def connect(address: str, *, raw: bool = True, bus: str = "can0"):
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    await expect(reader, "< hi >")
    if raw:
        writer.write(f"< open {bus} >".encode())
        await expect(reader, "< ok >")
        writer.write(b"< rawmode >")
        await expect(reader, "< ok >")
    return reader, writer


async def received(peer: LoopBus, timeout: float = 2.0) -> can.Message:
    deadline = asyncio.get_running_loop().time() + timeout
    while (msg := peer.recv(0)) is None:
        assert asyncio.get_running_loop().time() < deadline, "no frame reached the peer"
        await asyncio.sleep(0.005)
    return msg


async def read_frame(reader: asyncio.StreamReader) -> re.Match:
    text = (await asyncio.wait_for(reader.readuntil(b">"), 2.0)).decode()
    match = FRAME.fullmatch(text)
    assert match, text
    return match


# --- pure protocol pieces ---------------------------------------------------------------------

def test_commands_split_across_reads_and_garbage_is_marked():
    commands, rest = take_commands("< open can0 >< raw")
    assert (commands, rest) == (["< open can0 >"], "< raw")
    commands, rest = take_commands(rest + "mode >  hello < echo >")
    assert (commands, rest) == (["< rawmode >", None, "< echo >"], "")
    commands, rest = take_commands("<" + "x" * (MAX_COMMAND + 5))
    assert (commands, rest) == ([None], "")


@pytest.mark.parametrize("msg", [
    can.Message(arbitration_id=0x7E4, is_extended_id=False, data=bytes.fromhex("0322F18C00000000")),
    can.Message(arbitration_id=0x18DAF110, is_extended_id=True, data=b"\x01"),
    can.Message(arbitration_id=0x001, is_extended_id=False, data=b""),
])
def test_codec_round_trips_with_python_cans_own_socketcand_client(msg):
    sent = convert_can_message_to_ascii_message(msg)  # what python-can writes
    ours = parse_send(sent[1:-1].split())
    assert (ours.arbitration_id, ours.is_extended_id, bytes(ours.data)) == (
        msg.arbitration_id, msg.is_extended_id, bytes(msg.data))
    msg.timestamp = 12.5
    back = convert_ascii_message_to_can_message(format_frame(msg, wall_offset=1000.0))  # what it reads
    assert (back.arbitration_id, back.is_extended_id, bytes(back.data)) == (
        msg.arbitration_id, msg.is_extended_id, bytes(msg.data))
    assert back.timestamp == pytest.approx(1012.5)


@pytest.mark.parametrize("words", [
    "send 7E4 3 22 f1", "send 7E4 9 1 2 3 4 5 6 7 8 9", "send zz 1 00", "send 7E4 1 100",
    "send 7E4 1 -1", "send 7_E4 1 00", "send 7E4", "send 123456789 1 00", "send 20000000 0",
])
def test_malformed_send_is_refused(words):
    with pytest.raises(ValueError):
        parse_send(words.split())


def test_hub_binds_loopback_only():
    with pytest.raises(ValueError, match="loopback"):
        SocketcandHub({"can0": "x"}, host="0.0.0.0")


# --- over TCP ---------------------------------------------------------------------------------

async def test_frames_flow_both_ways_in_rawmode():
    async with rig() as (hub, address, peer, _):
        reader, writer = await connect(address)
        await asyncio.sleep(hub.settle * 2)
        peer.send(can.Message(arbitration_id=0x7EC, is_extended_id=False, data=bytes.fromhex("0662F18C42")))
        peer.send(can.Message(arbitration_id=0x18DAF110, is_extended_id=True, data=b"\xAB"))
        first, second = await read_frame(reader), await read_frame(reader)
        assert (first[1], first[3]) == ("7EC", "0662F18C42")
        assert (second[1], second[3]) == ("18DAF110", "AB")
        writer.write(b"< send 7E4 3 22 f1 8c >< send 18DAF110 1 ff >")
        a, b = await received(peer), await received(peer)
        assert (a.arbitration_id, a.is_extended_id, bytes(a.data)) == (0x7E4, False, b"\x22\xf1\x8c")
        assert (b.arbitration_id, b.is_extended_id, bytes(b.data)) == (0x18DAF110, True, b"\xff")
        assert hub.frames_in == 2 and hub.frames_out == 2
        writer.close()


async def test_a_frame_during_the_settle_time_after_rawmode_is_held_not_lost():
    async with rig(settle=0.2) as (_hub, address, peer, _):
        reader, writer = await connect(address)  # returns right after rawmode's "< ok >"
        peer.send(can.Message(arbitration_id=0x7EC, is_extended_id=False, data=b"\x01"))
        peer.send(can.Message(arbitration_id=0x7EC, is_extended_id=False, data=b"\x02"))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.1)
        assert [(await read_frame(reader))[3] for _ in range(2)] == ["01", "02"]
        writer.close()


async def test_malformed_input_gets_an_error_and_the_hub_keeps_serving():
    async with rig() as (hub, address, peer, _):
        reader, writer = await connect(address, raw=False)
        for sent, answer in [
            (b"< send 7E4 1 00 >", ERR_UNKNOWN),      # no bus opened yet
            (b"< open nosuch >", ERR_BUS),
            (b"hello\r\n", ERR_SYNTAX),               # text outside < >
            (b"\xff\xfe< echo >", ERR_SYNTAX + "< echo >"),
            (b"< open can0 >", "< ok >"),
            (b"< open can0 >", ERR_UNKNOWN),          # already open
            (b"< frobnicate >", ERR_UNKNOWN),
            (b"< send 7E4 3 22 f1 >", ERR_SEND),
            (b"< send 7E4 9 0 0 0 0 0 0 0 0 0 >", ERR_SEND),
            (b"< send zz 1 00 >", ERR_SEND),
            (b"<" + b"x" * (MAX_COMMAND + 10), ERR_SYNTAX),
            (b"< rawmode >", "< ok >"),
        ]:
            writer.write(sent)
            await expect(reader, answer)
        assert hub.errors == 10
        writer.write(b"< send 123 2 be ef >")  # the same session still sends
        msg = await received(peer)
        assert (msg.arbitration_id, bytes(msg.data)) == (0x123, b"\xbe\xef")
        _other_reader, other_writer = await connect(address)  # and the hub takes new clients
        assert hub.clients == 2
        writer.close()
        other_writer.close()


async def test_clients_see_each_other_but_not_themselves_and_bcmmode_stops_forwarding():
    async with rig(settle=0.0) as (_hub, address, peer, _):
        r1, w1 = await connect(address)
        r2, w2 = await connect(address)
        await asyncio.sleep(0.01)
        w1.write(b"< send 321 1 01 >")
        match = await read_frame(r2)
        assert (match[1], match[3]) == ("321", "01")
        assert (await received(peer)).arbitration_id == 0x321
        w2.write(b"< bcmmode >")
        await expect(r2, "< ok >")
        w1.write(b"< send 322 1 02 >")
        assert (await received(peer)).arbitration_id == 0x322
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(r1.read(1), 0.1)  # its own frame never comes back
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(r2.read(1), 0.1)  # no forwarding in BCM mode
        w1.close()
        w2.close()


async def test_stop_disconnects_clients_and_leaves_the_channel():
    channel = next(_channels)
    hub = SocketcandHub({"can0": channel})
    address = await hub.start()
    reader, _writer = await connect(address)
    assert len(loopbus._channels[channel]) == 1
    await hub.stop()
    assert await asyncio.wait_for(reader.read(), 2.0) == b""
    assert channel not in loopbus._channels
    await hub.stop()  # idempotent


async def test_python_can_client_handshakes_while_the_bus_is_busy_and_exchanges_frames():
    """The first frame must not share a read with rawmode's "< ok >" (python-can compares whole)."""
    async with rig() as (_hub, address, peer, _):
        loop = asyncio.get_running_loop()

        async def chatter():
            for n in itertools.count():
                peer.send(can.Message(arbitration_id=0x100 + n % 8, is_extended_id=False, data=bytes([n % 256])))
                await asyncio.sleep(0.001)

        task = asyncio.create_task(chatter())
        host, port = address.rsplit(":", 1)
        try:
            for _ in range(3):
                bus = await loop.run_in_executor(None, lambda: can.Bus(
                    interface="socketcand", host=host, port=int(port), channel="can0", tcp_tune=True))
                try:
                    msg = await loop.run_in_executor(None, bus.recv, 2.0)
                    assert msg is not None and 0x100 <= msg.arbitration_id < 0x108
                    bus.send(can.Message(arbitration_id=0x7E4, is_extended_id=False, data=b"\x02\x10\x03"))
                    while (got := await received(peer)).arbitration_id != 0x7E4:
                        pass
                    assert bytes(got.data) == b"\x02\x10\x03"
                finally:
                    bus.shutdown()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
