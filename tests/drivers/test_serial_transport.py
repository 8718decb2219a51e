"""SerialTransport: resource parsing, and real pyserial I/O against in-loop peers on loopback."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import serial

from drivers.errors import ConnectError, InstrumentTimeout, ProtocolError
from drivers.transports.message import MessageTransport
from drivers.transports.serial_line import SerialTransport, parse_serial_resource
from station.clock import run


@pytest.mark.parametrize(
    "resource, url, settings",
    [
        ("serial:///dev/ttyUSB0?baud=9600&parity=N", "/dev/ttyUSB0", {"baudrate": 9600, "parity": serial.PARITY_NONE}),
        ("serial:///dev/ttyS1?baud=19200&parity=E&bytesize=7&stopbits=2&rtscts=1",
         "/dev/ttyS1", {"baudrate": 19200, "parity": serial.PARITY_EVEN, "bytesize": 7, "stopbits": 2, "rtscts": True}),
        ("serial://COM3?baud=115200", "COM3", {"baudrate": 115200}),
        ("serial:///dev/ttyACM0", "/dev/ttyACM0", {}),
        ("/dev/ttyUSB2", "/dev/ttyUSB2", {}),
        ("socket://127.0.0.1:5025", "socket://127.0.0.1:5025", {}),
        ("loop://", "loop://", {}),
    ],
)
def test_parse_resource(resource, url, settings):
    assert parse_serial_resource(resource) == (url, settings)


@pytest.mark.parametrize(
    "resource, match",
    [
        ("serial:///dev/ttyUSB0?baud=fast", "baud='fast'"),
        ("serial:///dev/ttyUSB0?parity=X", "parity='X'"),
        ("serial:///dev/ttyUSB0?stopbits=3", "stopbits='3'"),
        ("serial:///dev/ttyUSB0?speed=9600", "unknown serial setting 'speed'"),
        ("serial://?baud=9600", "no device"),
    ],
)
def test_bad_resource_refused_at_construction(resource, match):
    with pytest.raises(ConnectError, match=match):
        SerialTransport(resource, timeout=1.0)


async def test_constructor_touches_nothing_and_io_needs_open():
    transport = SerialTransport("socket://127.0.0.1:9", timeout=1.0, instrument="leak")
    assert isinstance(transport, MessageTransport)
    with pytest.raises(ConnectError, match=r"leak: transport is not open.*'PING'"):
        await transport.query("PING")


async def test_loop_url_echoes_lines():
    transport = SerialTransport("loop://", timeout=1.0)
    await transport.open()
    try:
        await transport.write("PING 1")
        await transport.write("PING 2")
        assert await transport.read_line() == "PING 1"
        assert await transport.query("PING 3") == "PING 2"
    finally:
        await transport.close()
    await transport.close()  # idempotent


class LinePeer:
    """A tiny in-loop TCP peer: ``script(line) -> (delay s, reply bytes | None)``."""

    def __init__(self, script) -> None:
        self.script = script
        self.received: list[str] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"socket://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader, writer) -> None:
        self.writers.append(writer)
        while raw := await reader.readline():
            self.received.append(raw.decode())
            delay, reply = self.script(raw.decode().strip())
            if reply is not None:
                asyncio.get_running_loop().call_later(delay, writer.write, reply)


def on_tcp(script, body, *, virtual=True, **kw):
    """Run ``body(transport, peer)`` against a ``LinePeer`` on the virtual-time loop."""

    async def main():
        peer = LinePeer(script)
        transport = SerialTransport(await peer.start(), instrument="dut", **{"timeout": 1.0, **kw})
        await transport.open()
        try:
            return await body(transport, peer)
        finally:
            await transport.close()
            await peer.stop()

    return run(main(), virtual=virtual)


def test_query_over_socket_sends_termination_and_strips_it():
    async def body(transport, peer):
        replies = [await transport.query(f"Q{i}") for i in range(3)]
        return replies, peer.received

    replies, received = on_tcp(lambda line: (0.0, f"{line}-ok\r\n".encode()), body)
    assert replies == ["Q0-ok", "Q1-ok", "Q2-ok"]
    assert received == ["Q0\r\n", "Q1\r\n", "Q2\r\n"]


def test_lines_split_across_chunks_blank_lines_and_bare_lf():
    def script(line):
        return (0.0, b"\r\n\r\npart") if line == "A" else (0.0, b"ial\nnext\r\n")

    async def body(transport, peer):
        await transport.write("A")
        await transport.write("B")
        return await transport.read_line(), await transport.read_line()

    assert on_tcp(script, body) == ("partial", "next")


def test_a_partial_line_left_by_a_timeout_does_not_start_the_next_reply():
    def script(line):
        return (0.0, b"half-a-rep") if line == "A" else (0.0, b"B-ok\r\n")

    async def body(transport, peer):
        await transport.write("A")
        with pytest.raises(InstrumentTimeout, match="partial b'half-a-rep'"):
            await transport.read_line(0.1)
        return await transport.query("B")

    assert on_tcp(script, body) == "B-ok"


def test_pushed_line_after_60s_costs_no_wall_time_on_virtual_loop():
    async def body(transport, peer):
        loop = asyncio.get_running_loop()
        await transport.write("START")
        started = loop.time()
        line = await transport.read_line(timeout=90)
        return line, loop.time() - started

    wall = time.perf_counter()
    line, waited = on_tcp(lambda line: (60.0, b"<01>:(OK): 004 Pa\r\n"), body)
    assert line == "<01>:(OK): 004 Pa"
    assert 60.0 <= waited < 60.5  # virtual s; a loaded machine stretches the real-time holds
    assert time.perf_counter() - wall < 3.0  # 60 s of waiting, in well under a second when idle


def test_silent_peer_times_out_at_the_deadline_naming_the_command():
    async def body(transport, peer):
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(InstrumentTimeout, match=r"dut: no complete line within 2 s \(command 'MEAS\?'\)"):
            await transport.query("MEAS?", timeout=2.0)
        return loop.time() - started

    assert 2.0 <= on_tcp(lambda line: (0.0, None), body) < 2.5


def test_late_reply_to_a_timed_out_query_is_dropped():
    def script(line):
        return (1.5, b"late-1\r\n") if line == "Q1" else (0.0, f"{line}-ok\r\n".encode())

    async def body(transport, peer):
        with pytest.raises(InstrumentTimeout):
            await transport.query("Q1", timeout=1.0)
        await asyncio.sleep(1.0)  # the late reply arrives meanwhile
        return await transport.query("Q2")

    assert on_tcp(script, body) == "Q2-ok"


def test_control_characters_are_protocol_error_naming_the_command():
    async def body(transport, peer):
        with pytest.raises(ProtocolError, match=r"dut: undecodable line .*\(command '\*IDN\?'\)"):
            await transport.query("*IDN?")

    on_tcp(lambda line: (0.0, b"\x15#?garbage@\r\n"), body)


def test_peer_hanging_up_is_connect_error():
    async def body(transport, peer):
        while not peer.writers:  # the accept runs in the loop after open() returned
            await asyncio.sleep(0.001)
        for writer in peer.writers:
            writer.close()
        await asyncio.sleep(0.01)
        with pytest.raises(ConnectError, match="read failed"):
            await transport.read_line(1.0)

    on_tcp(lambda line: (0.0, None), body)


def test_refused_and_missing_ports_are_connect_errors():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connect is refused

    async def main():
        for resource, said in ((f"socket://127.0.0.1:{port}", f"leak: connection to 127.0.0.1:{port} refused"),
                               ("serial:///dev/does-not-exist?baud=9600", "leak: cannot open /dev/does-not-exist: No such file or directory")):
            transport = SerialTransport(resource, timeout=1.0, instrument="leak")
            with pytest.raises(ConnectError, match=said):
                await transport.open()

    run(main(), virtual=True)


def test_reply_to_a_cancelled_query_is_dropped():
    def script(line):
        return (0.5, b"slow-ok\r\n") if line == "SLOW?" else (0.0, f"{line}-ok\r\n".encode())

    async def body(transport, peer):
        task = asyncio.create_task(transport.query("SLOW?"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(1.0)  # the orphaned reply arrives meanwhile
        return await transport.query("NEXT?")

    assert on_tcp(script, body) == "NEXT?-ok"


def test_socket_close_hangs_up_at_once_and_the_port_reopens():
    async def main():
        hung_up = []

        async def serve(reader, writer):
            while line := await reader.readline():
                writer.write(b"<" + line.strip() + b">\n")
            hung_up.append(time.perf_counter())  # EOF: the client closed its end
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        url = f"socket://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        transport = SerialTransport(url, instrument="dut", timeout=1.0)
        await transport.open()
        try:
            assert await transport.query("A") == "<A>"
            t0 = time.perf_counter()
            await transport.close()
            closed_in = time.perf_counter() - t0
            while not hung_up and time.perf_counter() - t0 < 2.0:
                await asyncio.sleep(0.01)
            await transport.open()
            again = await transport.query("B")
        finally:
            await transport.close()
            server.close()
            await server.wait_closed()
        return closed_in, len(hung_up), again

    # real time: pyserial's own socket close() sleeps 0.3 s after closing; ours must not
    closed_in, hang_ups, again = run(main(), virtual=False)
    assert closed_in < 0.2 and hang_ups == 1 and again == "<B>"
