"""LoopBus (python-can interface ``station_loop``) and CanPort: delivery, threads, the loop."""

from __future__ import annotations

import asyncio
import itertools
import threading

import can
import pytest

from drivers.errors import ConnectError
from drivers.transports import loopbus
from drivers.transports.can import CanPort, parse_can_resource
from drivers.transports.loopbus import LoopBus
from station.clock import run

_names = (f"lb-test-{i}" for i in itertools.count())


def frame(i: int, data: bytes = b"\x01\x02") -> can.Message:
    return can.Message(arbitration_id=i, data=data, is_extended_id=False)


@pytest.fixture
def channel() -> str:
    return next(_names)


def test_peers_see_frames_but_not_their_own(channel):
    a = can.Bus(interface="station_loop", channel=channel, ignore_config=True)
    b = LoopBus(channel)
    c = LoopBus(channel)
    other = LoopBus(channel + "-other")
    try:
        assert isinstance(a, LoopBus)
        a.send(frame(0x123, b"\xAA"))
        for bus in (b, c):
            got = bus.recv(0.5)
            assert (got.arbitration_id, bytes(got.data), got.is_rx) == (0x123, b"\xAA", True)
            assert got.timestamp > 0
        assert a.recv(0) is None  # not echoed
        assert other.recv(0) is None  # another channel
    finally:
        for bus in (a, b, c, other):
            bus.shutdown()


def test_receive_own_messages_and_shutdown_unregisters(channel):
    a = LoopBus(channel, receive_own_messages=True)
    b = LoopBus(channel)
    a.send(frame(1))
    assert a.recv(0.1).arbitration_id == 1
    b.shutdown()
    b.shutdown()  # twice is fine
    a.send(frame(2))
    assert {"interface": "station_loop", "channel": channel} in LoopBus._detect_available_configs()
    a.shutdown()
    assert {"interface": "station_loop", "channel": channel} not in LoopBus._detect_available_configs()
    with pytest.raises(can.CanOperationError):
        a.send(frame(3))


def test_recv_from_a_thread_waits_for_a_later_frame(channel):
    a, b = LoopBus(channel), LoopBus(channel)
    try:
        assert b.recv(0.05) is None
        timer = threading.Timer(0.05, lambda: a.send(frame(7)))
        timer.start()
        got = b.recv(2.0)
        timer.join()
        assert got is not None and got.arbitration_id == 7
    finally:
        a.shutdown()
        b.shutdown()


def test_notifier_reads_in_the_loop_via_add_reader_and_threads_can_send(channel):
    async def main():
        loop = asyncio.get_running_loop()
        readers = []
        real_add_reader = loop.add_reader
        loop.add_reader = lambda fd, cb, *args: (readers.append(fd), real_add_reader(fd, cb, *args))
        rx, tx = LoopBus(channel), LoopBus(channel)
        got: list[tuple[int, bool]] = []
        notifier = can.Notifier(rx, [lambda m: got.append((m.arbitration_id, threading.current_thread() is threading.main_thread()))], loop=loop)
        try:
            assert readers == [rx.fileno()]
            sender = threading.Thread(target=lambda: [tx.send(frame(i)) for i in range(2000)])
            sender.start()
            while len(got) < 2000 and loop.time() < 50:
                await asyncio.sleep(0.01)
            sender.join()
            await asyncio.sleep(0.05)
            return got
        finally:
            notifier.stop()
            rx.shutdown()
            tx.shutdown()

    got = run(main(), virtual=True)
    assert [i for i, _ in got] == list(range(2000))  # all, in order, none twice
    assert all(in_loop_thread for _, in_loop_thread in got)


def test_virtual_time_delivers_before_the_clock_jumps(channel):
    async def main():
        loop = asyncio.get_running_loop()
        rx, tx = LoopBus(channel), LoopBus(channel)
        arrivals: list[float] = []
        notifier = can.Notifier(rx, [lambda m: arrivals.append(loop.time())], loop=loop)
        try:
            for i in range(10):
                tx.send(frame(i))
                await asyncio.sleep(0.1)
        finally:
            notifier.stop()
            rx.shutdown()
            tx.shutdown()
        return arrivals

    arrivals = run(main(), virtual=True)
    # each frame arrives at the virtual instant it was sent, never after a 0.1 s jump
    assert [round(t, 6) for t in arrivals] == [round(0.1 * i, 6) for i in range(10)]


def test_parse_can_resource():
    assert parse_can_resource("can://station_loop/F1") == ("station_loop", "F1", {})
    assert parse_can_resource("can:station_loop/F1") == ("station_loop", "F1", {})
    assert parse_can_resource("can://socketcand/can0?host=127.0.0.1&port=29536&tcp_tune=true") == (
        "socketcand", "can0", {"host": "127.0.0.1", "port": 29536, "tcp_tune": True})
    assert parse_can_resource("can://pcan/PCAN_USBBUS1?bitrate=500000")[2] == {"bitrate": 500000}
    for bad in ("socketcan://can0", "can://station_loop", "can:///x"):
        with pytest.raises(ValueError):
            parse_can_resource(bad)


def test_can_port_lifecycle_and_typed_errors(channel):
    async def main():
        port = CanPort(f"can://station_loop/{channel}", instrument="bms")
        with pytest.raises(ConnectError, match=r"bms: .*not open"):
            port.send(frame(1))
        peer = LoopBus(channel)
        got = []
        async with port:
            port.add_listener(got.append)
            port.add_listener(lambda m: None)  # one Notifier, many listeners
            port.send(frame(0x55))
            peer.send(frame(0x66))
            await asyncio.sleep(0.01)
            assert peer.recv(0.1).arbitration_id == 0x55
        peer.shutdown()
        assert port.bus is None
        bad = CanPort("can://no_such_interface_xyz/0", instrument="bms")
        with pytest.raises(ConnectError, match="bms: cannot open CAN bus"):
            await bad.open()
        return got

    got = run(main(), virtual=True)
    assert [m.arbitration_id for m in got] == [0x66]


def test_a_sender_in_the_loop_thread_wakes_the_notifier_without_the_descriptor(channel):
    async def main():
        loop = asyncio.get_running_loop()
        rx, tx = LoopBus(channel), LoopBus(channel)
        got: list[tuple[int, float]] = []
        notifier = loopbus.notifier(rx, [lambda m: got.append((m.arbitration_id, loop.time()))], loop)
        try:
            for i in range(5):
                tx.send(frame(i))
                tx.send(frame(100 + i))
                with pytest.raises(BlockingIOError):
                    rx._rsock.recv(16)  # no wake byte written: a call_soon delivers
                await asyncio.sleep(0.1)
            return got
        finally:
            notifier.stop()
            rx.shutdown()
            tx.shutdown()

    got = run(main(), virtual=True)
    assert [i for i, _ in got] == [j for i in range(5) for j in (i, 100 + i)]
    # delivered at the virtual instant they were sent, before the 0.1 s jump
    assert [round(t, 6) for _, t in got] == [round(0.1 * i, 6) for i in range(5) for _ in range(2)]


def test_loop_and_thread_senders_interleave_without_loss_or_duplicates(channel):
    async def main():
        loop = asyncio.get_running_loop()
        rx, from_loop, from_thread = LoopBus(channel), LoopBus(channel), LoopBus(channel)
        got: list[int] = []
        notifier = loopbus.notifier(rx, [lambda m: got.append(m.arbitration_id)], loop)
        try:
            sender = threading.Thread(target=lambda: [from_thread.send(frame(0x400 + i)) for i in range(1000)])
            sender.start()
            for i in range(1000):
                from_loop.send(frame(i))
                if i % 7 == 0:
                    await asyncio.sleep(0)
            while len(got) < 2000 and loop.time() < 50:
                await asyncio.sleep(0.01)
            sender.join()
            await asyncio.sleep(0.05)
            return got, rx.pending(), rx._wake
        finally:
            notifier.stop()
            for bus in (rx, from_loop, from_thread):
                bus.shutdown()

    got, pending, wake = run(main(), virtual=True)
    assert [i for i in got if i < 0x400] == list(range(1000))
    assert [i - 0x400 for i in got if i >= 0x400] == list(range(1000))
    assert (pending, wake) == (0, loopbus._IDLE)


def test_a_raising_listener_loses_no_frame_and_the_rest_follow(channel):
    async def main():
        loop = asyncio.get_running_loop()
        errors: list[BaseException] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context.get("exception")))
        rx, tx = LoopBus(channel), LoopBus(channel)
        got: list[int] = []

        def listener(m):
            got.append(m.arbitration_id)
            if m.arbitration_id == 2:
                raise ValueError("listener bug")

        notifier = loopbus.notifier(rx, [listener], loop)
        try:
            for i in range(5):
                tx.send(frame(i))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return got, errors
        finally:
            notifier.stop()
            rx.shutdown()
            tx.shutdown()

    got, errors = run(main(), virtual=True)
    assert got == [0, 1, 2, 3, 4]
    assert len(errors) == 1 and isinstance(errors[0], ValueError)


def test_filters_apply_and_a_stopped_notifier_leaves_frames_to_recv(channel):
    async def main():
        loop = asyncio.get_running_loop()
        rx = LoopBus(channel, can_filters=[{"can_id": 0x10, "can_mask": 0x7F0}])
        tx = LoopBus(channel)
        got: list[int] = []
        notifier = loopbus.notifier(rx, [lambda m: got.append(m.arbitration_id)], loop)
        for i in (0x10, 0x20, 0x11):
            tx.send(frame(i))
        await asyncio.sleep(0)
        tx.send(frame(0x12))  # its call_soon is pending when the notifier stops
        notifier.stop()
        await asyncio.sleep(0)
        left = rx.recv(0.5)
        rx.shutdown()
        tx.shutdown()
        return got, left

    got, left = run(main(), virtual=True)
    assert got == [0x10, 0x11]
    assert left is not None and left.arbitration_id == 0x12


def test_each_receiver_gets_its_own_copy(channel):
    a, b, c = LoopBus(channel), LoopBus(channel), LoopBus(channel)
    try:
        sent = can.Message(arbitration_id=0x1ABCDEF, data=b"\x01\x02\x03", is_extended_id=True, dlc=3)
        a.send(sent)
        one, two = b.recv(0.5), c.recv(0.5)
        assert one is not two and one.data is not two.data and one.data is not sent.data
        one.data[0] = 0xFF
        assert bytes(two.data) == bytes(sent.data) == b"\x01\x02\x03"
        for got in (one, two):
            assert (got.arbitration_id, got.is_extended_id, got.dlc, got.channel, got.is_rx) == (
                0x1ABCDEF, True, 3, channel, True)
            assert not (got.is_remote_frame or got.is_error_frame or got.is_fd or got.bitrate_switch)
    finally:
        for bus in (a, b, c):
            bus.shutdown()
