"""An in-process CAN bus whose frames are delivered inside the event loop (python-can ``station_loop``).

python-can's ``virtual`` bus is read by a Notifier *thread*, so on the virtual-time loop the
clock may jump past a staleness deadline before a frame is delivered. ``LoopBus`` instead
exposes a readable file descriptor: ``Notifier(bus, listeners, loop=loop)`` then uses
``loop.add_reader`` and every listener runs in the loop, where virtual time waits for it.

Buses that share a channel name see each other's frames, never their own (unless
``receive_own_messages=True``). ``send()`` and ``recv(timeout)`` are thread-safe, so can-isotp's
worker thread can use the same bus.
"""

from __future__ import annotations

import collections
import select
import socket
import threading
import time
from typing import Any

import can

_channels: dict[str, list["LoopBus"]] = {}
_channels_lock = threading.Lock()


class LoopBus(can.BusABC):
    """One node on an in-process CAN channel; ``fileno()`` is readable while frames are queued."""

    def __init__(self, channel: Any = "loop0", can_filters=None, receive_own_messages: bool = False,
                 rx_queue_size: int = 0, **kwargs: Any) -> None:
        self.channel = str(channel)
        self.channel_info = f"station_loop channel {self.channel!r}"
        self._own = receive_own_messages
        # rx_queue_size > 0 drops the oldest frames of a reader that falls behind (as `virtual`).
        self._queue: collections.deque[can.Message] = collections.deque(maxlen=rx_queue_size or None)
        self._lock = threading.Lock()
        # At most one wake byte sits in the pair, present exactly while the queue is non-empty
        # (both changed under _lock), so the pipe never fills and the loop never spins.
        self._signalled = False
        self._rsock, self._wsock = socket.socketpair()
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        with _channels_lock:
            _channels.setdefault(self.channel, []).append(self)
        super().__init__(channel=channel, can_filters=can_filters, **kwargs)

    def fileno(self) -> int:
        return self._rsock.fileno()

    def _deliver(self, msg: can.Message) -> None:
        with self._lock:
            if self._is_shutdown:  # a peer leaving while another thread sends to it
                return
            self._queue.append(msg)
            if not self._signalled:
                self._signalled = True
                self._wsock.send(b"\x01")

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        """Queue ``msg`` for every other bus on the channel; stamps the sender's monotonic clock."""
        if self._is_shutdown:
            raise can.CanOperationError(f"{self.channel_info}: send on a shut-down bus")
        stamp = time.monotonic()
        with _channels_lock:
            peers = list(_channels.get(self.channel, ()))
        for peer in peers:
            if peer is self and not self._own:
                continue
            # Each receiver gets its own object: listeners may keep or mutate it.
            peer._deliver(can.Message(
                timestamp=stamp, arbitration_id=msg.arbitration_id,
                is_extended_id=msg.is_extended_id, is_remote_frame=msg.is_remote_frame,
                is_error_frame=msg.is_error_frame, is_fd=msg.is_fd, bitrate_switch=msg.bitrate_switch,
                dlc=msg.dlc, data=msg.data, channel=self.channel, is_rx=peer is not self,
                check=False,
            ))

    def _pop(self) -> can.Message | None:
        with self._lock:
            if not self._queue or self._is_shutdown:
                return None
            msg = self._queue.popleft()
            if not self._queue and self._signalled:
                self._signalled = False
                try:
                    self._rsock.recv(16)
                except BlockingIOError:
                    pass
            return msg

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        msg = self._pop()
        if msg is not None or timeout == 0:
            return msg, False
        deadline = None if timeout is None else time.monotonic() + timeout
        while msg is None and not self._is_shutdown:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            # Re-check at least every 0.1 s so shutdown() from another thread ends a blocked recv.
            try:
                select.select([self._rsock], [], [], 0.1 if left is None else min(left, 0.1))
            except (OSError, ValueError):  # closed by shutdown() in another thread
                break
            msg = self._pop()
            if deadline is not None and time.monotonic() >= deadline:
                break
        return msg, False

    def shutdown(self) -> None:
        """Leave the channel and close the wake pair; safe to call twice."""
        if self._is_shutdown:
            return
        with _channels_lock:
            peers = _channels.get(self.channel, [])
            if self in peers:
                peers.remove(self)
            if not peers:
                _channels.pop(self.channel, None)
        with self._lock:
            super().shutdown()
            self._rsock.close()
            self._wsock.close()

    def pending(self) -> int:
        """Frames queued for this node now."""
        return len(self._queue)

    @staticmethod
    def _detect_available_configs() -> list[dict[str, Any]]:
        with _channels_lock:
            return [{"interface": "station_loop", "channel": name} for name in _channels]


class LoopNotifier(can.Notifier):
    """python-can's in-loop Notifier, but one readiness callback delivers every queued frame.

    The stock Notifier reads one frame per callback, so a burst of N frames sent at one instant
    cost N event-loop iterations; draining the burst costs one. Frames that arrive while the
    listeners run wait for the next callback, so a chatty peer cannot starve the loop.
    """

    def _on_message_available(self, bus: can.BusABC) -> None:
        for _ in range(max(1, bus.pending())):
            msg = bus.recv(0)
            if msg is None:
                return
            self._on_message_received(msg)


def notifier(bus: can.BusABC, listeners: list, loop) -> can.Notifier:
    """The Notifier for ``bus`` in ``loop``: draining for ``LoopBus``, python-can's otherwise."""
    kind = LoopNotifier if isinstance(bus, LoopBus) else can.Notifier
    return kind(bus, listeners, loop=loop)
