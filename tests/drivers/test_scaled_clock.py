"""A scaled station clock (``time_scale``, ``drivers.clock``): physics and timers run N x, but a
reply's wire and CPU time do not shrink, so waits for replies keep a wall-time allowance.

The peer here answers from another thread after a fixed wall delay, as a bench process would.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import can
import pytest

from drivers.bms.live_values import LiveValues
from drivers.bms.signals import DEFAULT_MAP, load_signal_map
from drivers.clock import REPLY_ALLOWANCE, STREAM_ALLOWANCE, ScaledTimeLoop, StationLoop, reply_timeout, stream_limit
from drivers.errors import InstrumentTimeout, StaleSignalError
from drivers.transports.serial_line import SerialTransport
from drivers.transports.visa import VisaTransport

SCALE = 30.0
WALL_DELAY = 0.2  # s: the peer's reply time, unscaled (2 s of station time at 30x would be 67 ms)


class SlowPeer:
    """A line server on loopback in a thread: answers every line with ``OK`` after ``delay`` s of wall time."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            for _line in conn.makefile("rb"):
                time.sleep(self.delay)
                conn.sendall(b"OK\r\n")

    def close(self) -> None:
        self.server.close()


def run_scaled(coro_fn, scale: float = SCALE):
    with asyncio.Runner(loop_factory=lambda: ScaledTimeLoop(scale) if scale != 1 else StationLoop()) as runner:
        return runner.run(coro_fn())


def test_allowances_are_zero_at_real_time_and_wall_seconds_when_scaled():
    async def on_loop():
        return reply_timeout(2.0), stream_limit(0.3)

    assert run_scaled(on_loop, 1.0) == (2.0, 0.3)
    assert run_scaled(on_loop) == pytest.approx((2.0 + REPLY_ALLOWANCE * (SCALE - 1), 0.3 + STREAM_ALLOWANCE * (SCALE - 1)))


@pytest.mark.parametrize("make", [
    lambda port: SerialTransport(f"socket://127.0.0.1:{port}", timeout=2.0, instrument="leak"),
    lambda port: VisaTransport(f"TCPIP::127.0.0.1::{port}::SOCKET", timeout=2.0, instrument="dmm",
                               read_termination="\n", write_termination="\n"),
], ids=["serial", "visa"])
def test_a_reply_slower_than_the_scaled_timeout_still_arrives(make):
    peer = SlowPeer(WALL_DELAY)

    async def exchange():
        transport = make(peer.port)
        await transport.open()
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            reply = await transport.query("PING?")
            return reply.strip(), loop.time() - t0
        finally:
            await transport.close()

    try:
        reply, station_s = run_scaled(exchange)
    finally:
        peer.close()
    assert reply == "OK"
    assert station_s > 2.0  # longer than the nominal timeout in station time: the allowance carried it


def test_a_silent_peer_still_times_out_within_about_the_allowance():
    peer = SlowPeer(30.0)  # never answers in time

    async def exchange():
        transport = SerialTransport(f"socket://127.0.0.1:{peer.port}", timeout=2.0, instrument="leak")
        await transport.open()
        try:
            await transport.query("PING?")
        finally:
            await transport.close()

    start = time.monotonic()
    try:
        with pytest.raises(InstrumentTimeout, match="within 2 s"):
            run_scaled(exchange)
    finally:
        peer.close()
    assert time.monotonic() - start < REPLY_ALLOWANCE + 2.0 / SCALE + 2.0  # seconds of wall time, not 60 s


def test_staleness_allows_the_stream_allowance_and_no_more():
    now = [0.0]
    live = LiveValues(load_signal_map(DEFAULT_MAP, cells=4, temperature_sensors=2), clock=lambda: now[0],
                      allowance=1.5)
    mapped = live.map.signals["soc"]
    message, period = mapped.message, mapped.period
    live.update(can.Message(arbitration_id=message.frame_id, is_extended_id=False,  # received at t = 0
                            data=message.encode({sig.name: 50 for sig in message.signals})))
    name = "soc"
    now[0] = 3 * period + 1.4
    live.get(name)  # late, within the allowance
    now[0] = 3 * period + 1.6
    with pytest.raises(StaleSignalError):
        live.get(name)
