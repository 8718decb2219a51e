"""VisaTransport's loop-thread path for pyvisa-py raw sockets (drivers/transports/visa_inline.py).

The worker thread must not be used for an ordinary query; replies in pieces, concurrent callers,
late replies and hang-ups must behave exactly as on the worker path.
"""

from __future__ import annotations

import asyncio

import pytest

from drivers.errors import ConnectError, InstrumentTimeout
from drivers.transports.visa import VisaTransport
from station.clock import run


class LinePeer:
    """A raw TCP line peer: ``script(line) -> list of (delay s, bytes)`` pieces to send back."""

    def __init__(self, script) -> None:
        self.script = script
        self.lines: list[str] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"TCPIP::127.0.0.1::{self.server.sockets[0].getsockname()[1]}::SOCKET"

    async def stop(self) -> None:
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader, writer) -> None:
        self.writers.append(writer)
        while raw := await reader.readline():
            line = raw.decode().strip()
            self.lines.append(line)
            for delay, data in self.script(line):
                if delay:
                    await asyncio.sleep(delay)
                if data is None:
                    writer.close()
                    return
                writer.write(data)


def with_peer(script, body, *, virtual=True, timeout=1.0):
    async def main():
        peer = LinePeer(script)
        transport = VisaTransport(await peer.start(), timeout=timeout, instrument="dmm")
        await transport.open()
        try:
            return await body(transport, peer)
        finally:
            await transport.close()
            await peer.stop()

    return run(main(), virtual=virtual)


def _no_worker(transport):
    """Make any use of the worker thread fail loudly; return the list of what tried."""
    tried = []
    executor = transport._executor

    def submit(fn, *args, **kwargs):
        tried.append(fn)
        return type(executor).submit(executor, fn, *args, **kwargs)

    executor.submit = submit
    return tried


@pytest.mark.parametrize("virtual", [True, False])
def test_queries_and_writes_run_without_the_worker_thread(virtual):
    async def body(transport, peer):
        tried = _no_worker(transport)
        replies = [await transport.query(f"Q{i}?") for i in range(20)]
        await transport.write("SET 1")
        replies.append(await transport.query("LAST?"))
        return replies, list(tried), peer.lines  # (close() uses the worker afterwards)

    def script(line):
        return [] if line.startswith("SET") else [(0, f"<{line}>\n".encode())]

    replies, tried, lines = with_peer(script, body, virtual=virtual)
    assert replies == [f"<Q{i}?>" for i in range(20)] + ["<LAST?>"]
    assert tried == []
    assert lines[-2:] == ["SET 1", "LAST?"]


def test_a_reply_in_pieces_is_read_whole():
    def script(line):
        return [(0, b"+1.2345"), (0.05, b"67E+00"), (0.05, b"\n")]

    async def body(transport, peer):
        return await transport.query("READ?"), await transport.query("READ?")

    assert with_peer(script, body) == ("+1.234567E+00", "+1.234567E+00")


def test_concurrent_callers_each_get_their_own_reply():
    def script(line):
        return [(0.01 * (len(line) % 3), f"{line.lower()}\n".encode())]

    async def body(transport, peer):
        return await asyncio.gather(*(transport.query(f"A{i}?") for i in range(12)))

    assert with_peer(script, body) == [f"a{i}?" for i in range(12)]


def test_a_late_reply_after_a_timeout_is_not_the_next_reply():
    def script(line):
        return [(0.5 if line == "SLOW?" else 0, f"{line}\n".encode())]

    async def body(transport, peer):
        with pytest.raises(InstrumentTimeout, match="SLOW"):
            await transport.query("SLOW?", timeout=0.2)
        await asyncio.sleep(0.6)  # the late reply is now waiting on the socket
        return await transport.query("NEXT?")

    assert with_peer(script, body) == "NEXT?"


def test_a_cancelled_query_leaves_its_late_reply_behind_for_the_drain():
    def script(line):
        return [(0.3 if line == "SLOW?" else 0, f"{line}\n".encode())]

    async def body(transport, peer):
        task = asyncio.ensure_future(transport.query("SLOW?"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.4)  # the late reply has arrived: the next call drains it first
        return await transport.query("NEXT?")

    assert with_peer(script, body) == "NEXT?"


def test_a_hang_up_instead_of_a_reply_is_connect_error_and_marks_the_link_lost():
    async def body(transport, peer):
        with pytest.raises(ConnectError, match="closed by the instrument"):
            await transport.query("BYE?")
        return transport.lost

    assert with_peer(lambda line: [(0, None)], body) is True


def test_on_virtual_time_a_silent_peer_times_out_after_real_time_not_at_once():
    async def body(transport, peer):
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(InstrumentTimeout):
            await transport.query("NOTHING?", timeout=0.2)
        return loop.time() - start

    # the clock is held on real time while the reply is awaited: 0.2 s, not a jump past it
    elapsed = with_peer(lambda line: [], body, virtual=True)
    assert 0.19 <= elapsed < 1.0
