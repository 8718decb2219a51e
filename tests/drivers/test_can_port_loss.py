"""A CAN peer that goes away (the socketcand server of another process dies) is a typed error
naming the instrument and the command — never a bare BrokenPipeError, never a thread traceback."""

from __future__ import annotations

import asyncio
import itertools
import threading

import can
import pytest

from drivers.errors import ConnectError
from drivers.transports.can import CanPort
from sim.socketcand_hub import SocketcandHub

_channels = (f"losstest-{i}" for i in itertools.count())


class HubThread:
    """A socketcand hub in a loop of its own thread: a server in another process, as far as the
    port's socket is concerned."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.hub = SocketcandHub({"can0": next(_channels)})
        self.address = asyncio.run_coroutine_threadsafe(self.hub.start(), self.loop).result(5)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.hub.stop(), self.loop).result(5)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def hub():
    h = HubThread()
    yield h
    h.close()


async def test_send_after_the_peer_died_names_the_instrument_and_command(hub, monkeypatch):
    crashed: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", crashed.append)
    host, port = hub.address.rsplit(":", 1)
    can_port = CanPort(f"can://socketcand/can0?host={host}&port={port}&tcp_tune=true", instrument="bms")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, lambda: None)  # (the pool exists before the port opens)
    await can_port.open()
    frame = can.Message(arbitration_id=0x210, is_extended_id=False, data=b"\x00" * 8)
    try:
        can_port.send(frame, command="request standby")  # the peer is there: no error
        hub.stop()
        deadline = loop.time() + 5.0
        while can_port.lost is None and loop.time() < deadline:  # the receive thread notices
            await asyncio.sleep(0.02)
        with pytest.raises(ConnectError) as info:
            for _ in range(50):  # a send into a socket the peer closed fails at once or soon after
                can_port.send(frame, command="request standby")
                await asyncio.sleep(0.02)
    finally:
        await can_port.close()
    text = str(info.value)
    assert text.startswith("bms: connection lost during 'request standby'"), text
    assert info.value.command == "request standby"
    assert crashed == []  # the receive thread ended without a traceback
