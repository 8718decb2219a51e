"""VisaTransport (pyvisa-py) against in-loop loopback peers; the transport factory."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from drivers.errors import ConnectError, InstrumentTimeout, ProtocolError
from drivers.transports.factory import is_serial_resource, open_message_transport
from drivers.transports.message import MessageTransport
from drivers.transports.visa import VisaTransport
from sim.scpi.server import ScpiInstrument
from station.clock import run


def resource(address: str) -> str:
    return f"TCPIP::127.0.0.1::{address.rsplit(':', 1)[1]}::SOCKET"


class Peer(ScpiInstrument):
    identity = "ACME,Peer,1,2"

    def __init__(self) -> None:
        super().__init__()
        self.command("ECHO?", lambda s, a: a)


async def test_constructor_does_no_io():
    transport = VisaTransport("TCPIP::192.0.2.9::5025::SOCKET", timeout=1.0, instrument="dmm")
    assert isinstance(transport, MessageTransport)
    assert transport._rm is None and transport._executor is None
    with pytest.raises(ConnectError, match=r"dmm: transport is not open.*'\*IDN\?'"):
        await transport.query("*IDN?")


async def test_query_write_and_close():
    peer = Peer()
    address = await peer.start()
    transport = VisaTransport(resource(address), timeout=1.0, instrument="peer")
    try:
        await transport.open()
        assert await transport.query("*IDN?") == "ACME,Peer,1,2"
        await transport.write("NOPE")
        assert await transport.query("SYST:ERR?") == '-113,"Undefined header"'
        assert await transport.query("ECHO? a b") == "a b"
    finally:
        await transport.close()
        await transport.close()  # idempotent
        await peer.stop()
    assert peer.received == ["*IDN?", "NOPE", "SYST:ERR?", "ECHO? a b"]


async def test_refused_connection_is_connect_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    transport = VisaTransport(f"TCPIP::127.0.0.1::{port}::SOCKET", timeout=0.5, instrument="cycler")
    with pytest.raises(ConnectError, match="cycler"):
        await transport.open()
    with pytest.raises(ConnectError):
        await transport.query("*IDN?")


async def test_bad_resource_string_is_connect_error():
    transport = VisaTransport("NOT-A-RESOURCE", timeout=0.5, instrument="dmm")
    with pytest.raises(ConnectError, match="dmm"):
        await transport.open()


async def test_hanging_peer_times_out_within_timeout_then_recovers():
    peer = Peer()
    address = await peer.start()
    transport = VisaTransport(resource(address), timeout=0.3, instrument="dmm")
    try:
        await transport.open()
        peer.behaviour = "hang"
        start = time.monotonic()
        with pytest.raises(InstrumentTimeout, match=r"dmm: .*'READ\?'") as info:
            await transport.query("READ?")
        assert 0.25 <= time.monotonic() - start < 0.8
        assert isinstance(info.value, TimeoutError)
        peer.behaviour = "normal"
        assert await transport.query("*IDN?") == "ACME,Peer,1,2"
    finally:
        await transport.close()
        await peer.stop()


async def test_late_reply_is_dropped_not_paired_with_the_next_query():
    class Late(Peer):
        delay = 0.4

        def execute(self, line):
            replies = super().execute(line)
            if line.startswith("ECHO?"):
                # Answer after the client gave up (the base server writes synchronously).
                loop = asyncio.get_running_loop()
                writer = next(iter(self._writers))
                loop.call_later(self.delay, lambda: writer.write(b"late\n"))
                return []
            return replies

    peer = Late()
    address = await peer.start()
    transport = VisaTransport(resource(address), timeout=0.2, instrument="peer")
    try:
        await transport.open()
        with pytest.raises(InstrumentTimeout):
            await transport.query("ECHO? x")
        await asyncio.sleep(0.4)
        assert await transport.query("*IDN?") == "ACME,Peer,1,2"
    finally:
        await transport.close()
        await peer.stop()


async def test_a_partial_reply_left_by_a_timeout_is_dropped_before_the_next_command():
    peer = Peer()
    address = await peer.start()
    transport = VisaTransport(resource(address), timeout=0.2, instrument="dmm")
    try:
        await transport.open()
        peer.behaviour = "hang"
        with pytest.raises(InstrumentTimeout):
            await transport.query("READ?")
        next(iter(peer._writers)).write(b"+4.01")  # half a line, late; the peer then recovers
        await asyncio.sleep(0.05)
        peer.behaviour = "normal"
        assert await transport.query("*IDN?") == "ACME,Peer,1,2"
    finally:
        await transport.close()
        await peer.stop()


async def test_a_peer_that_hung_up_is_connect_error_at_once_not_a_spin():
    peer = Peer()
    address = await peer.start()
    transport = VisaTransport(resource(address), timeout=0.3, instrument="safety")
    try:
        await transport.open()
        peer.behaviour = "hang"
        with pytest.raises(InstrumentTimeout):
            await transport.query("SAFE:STAT?")
        await peer.stop()  # the instrument goes away after the timeout (pyvisa-py's clear() spun here)
        start = time.monotonic()
        with pytest.raises(ConnectError, match=r"safety: connection closed by the instrument.*'SAFE:STOP'"):
            await asyncio.wait_for(transport.write("SAFE:STOP"), 5.0)
        with pytest.raises(ConnectError):
            await asyncio.wait_for(transport.query("*IDN?"), 5.0)
        assert time.monotonic() - start < 1.0
    finally:
        await transport.close()


async def test_a_peer_hanging_up_during_a_read_is_connect_error():
    peer = Peer()
    address = await peer.start()
    transport = VisaTransport(resource(address), timeout=0.3, instrument="dmm")
    try:
        await transport.open()
        peer.behaviour = "hang"
        asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(peer.stop()))
        with pytest.raises(ConnectError, match=r"dmm: connection closed by the instrument.*'READ\?'"):
            await transport.query("READ?")
    finally:
        await transport.close()


async def test_garbage_is_protocol_error_naming_command():
    peer = Peer()
    address = await peer.start()
    transport = VisaTransport(resource(address), timeout=0.5, instrument="dmm")
    try:
        await transport.open()
        peer.behaviour = "garbage"
        with pytest.raises(ProtocolError, match=r"dmm: undecodable reply.*'\*IDN\?'"):
            await transport.query("*IDN?")
    finally:
        await transport.close()
        await peer.stop()


def test_works_on_virtual_time_with_the_peer_in_the_same_loop():
    async def main():
        peer = Peer()
        address = await peer.start()
        transport = VisaTransport(resource(address), timeout=1.0, instrument="peer")
        loop = asyncio.get_running_loop()
        try:
            await transport.open()
            replies = [await transport.query(f"ECHO? {i}") for i in range(50)]
            t0 = loop.time()
            await asyncio.sleep(600)  # a 10-minute dwell costs no wall time
            return replies, loop.time() - t0
        finally:
            await transport.close()
            await peer.stop()

    start = time.monotonic()
    replies, dwell = run(main(), virtual=True)
    assert replies == [str(i) for i in range(50)]
    assert dwell >= 600 and time.monotonic() - start < 3


@pytest.mark.parametrize(
    "res, serial",
    [
        ("serial:///dev/ttyUSB0?baud=9600", True),
        ("socket://127.0.0.1:4000", True),
        ("rfc2217://127.0.0.1:4001", True),
        ("loop://", True),
        ("/dev/ttyS1", True),
        ("COM3", True),
        ("TCPIP::10.0.0.5::5025::SOCKET", False),
        ("ASRL/dev/ttyUSB0::INSTR", False),
        ("USB0::0x2A8D::0x0101::MY1::INSTR", False),
    ],
)
def test_factory_routing(res, serial):
    assert is_serial_resource(res) is serial
    if not serial:
        transport = open_message_transport(res, timeout=2.0, instrument="dmm")
        assert isinstance(transport, VisaTransport)
        assert (transport.resource, transport.timeout, transport.instrument) == (res, 2.0, "dmm")


def test_factory_builds_serial_transport():
    serial_line = pytest.importorskip("drivers.transports.serial_line")
    transport = open_message_transport("socket://127.0.0.1:4000", timeout=1.0, instrument="leak")
    assert isinstance(transport, serial_line.SerialTransport)
    assert transport.resource == "socket://127.0.0.1:4000"
