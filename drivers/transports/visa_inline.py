"""pyvisa-py raw-socket sessions driven from the event loop thread, without a worker thread.

``VisaTransport`` runs pyvisa in a worker thread because pyvisa blocks. For a pyvisa-py
``TCPIP::host::port::SOCKET`` session the blocking part of a query is only the wait for the
reply: the write is one small ``send`` on a connected socket. So the query is done here: pyvisa
writes the command, the loop waits until the socket holds a whole reply line (``add_reader`` on
the session's socket, a ``MSG_PEEK``), then pyvisa reads it, which no longer waits. pyvisa and
pyvisa-py still frame every byte; only the thread hop is gone.

Measured on the bus-700 reference run (bench/bench_sim.py): the thread hop made each of the
run's ~1,070 SCPI round trips cost ~1 ms of wall time (584 us in the worker's read alone), 22 %
of the run; answering the same queries without any wire took 1.09 s less.

Anything unusual goes back to the worker thread, which handles it as before: input waiting
before the command (a late reply to drain), a reply that arrives in pieces, another backend or
session type, a pyvisa-py without the ``_pending_buffer`` this relies on.
"""

from __future__ import annotations

import asyncio
import select
import socket
from typing import Any

from drivers.clock import reply_timeout


def raw_socket_session(resource_manager: Any, inst: Any) -> Any | None:
    """pyvisa-py's session object behind ``inst`` when it is a raw socket (its ``interface`` is
    the connected ``socket.socket``), else None (another session type or VISA library)."""
    sessions = getattr(getattr(resource_manager, "visalib", None), "sessions", None)
    session = sessions.get(inst.session) if isinstance(sessions, dict) else None
    return session if isinstance(getattr(session, "interface", None), socket.socket) else None


class InlineSocket:
    """The loop-thread path of one open pyvisa-py raw-socket session (see the module doc)."""

    def __init__(self, session: Any, termination: bytes) -> None:
        self.session = session
        self.sock: socket.socket = session.interface
        self.termination = termination

    @classmethod
    def of(cls, resource_manager: Any, inst: Any, termination: str) -> InlineSocket | None:
        """The inline path for ``inst``'s session, or None if it is not a pyvisa-py raw socket
        (or the termination is empty: without one a reply has no end to wait for)."""
        session = raw_socket_session(resource_manager, inst)
        if not termination or session is None \
                or not isinstance(getattr(session, "_pending_buffer", None), (bytes, bytearray)):
            return None
        return cls(session, termination.encode("ascii"))

    def quiet(self) -> bool:
        """True when nothing is waiting to be read (neither in pyvisa-py's buffer nor on the
        socket): a command may go out inline. False also when the peer has closed (EOF reads)."""
        if self.session._pending_buffer:
            return False
        return not select.select([self.sock], [], [], 0)[0]

    async def wait_line(self, timeout: float) -> str:
        """Wait until a whole reply line is readable: "line"; "partial" when bytes came but not
        yet their termination; "closed" when the peer hung up; "timeout" after ``timeout`` s
        (on a scaled clock plus ``drivers.clock.reply_timeout``'s wall-time allowance).

        On the virtual-time loop the clock is held on real time meanwhile (the loop's
        ``hold_real_time``, as for work in an executor): the peer may be in another process, and
        the loop must not jump past ``timeout`` while it answers.
        """
        loop = asyncio.get_running_loop()
        fd = self.sock.fileno()
        ready: asyncio.Future[str] = loop.create_future()

        def readable() -> None:
            if not ready.done():
                ready.set_result("ready")

        def expired() -> None:
            if not ready.done():
                ready.set_result("timeout")

        # the station's virtual-time loop (station.clock) has these; drivers cannot name its type
        hold = getattr(loop, "hold_real_time", None)
        release = getattr(loop, "release_real_time", None)
        if hold is not None:
            hold()
        loop.add_reader(fd, readable)
        timer = loop.call_at(loop.time() + reply_timeout(timeout, loop), expired)
        try:
            outcome = await ready
        finally:
            timer.cancel()
            loop.remove_reader(fd)
            if hold is not None and release is not None:
                release()
        if outcome == "timeout":
            return outcome
        try:
            head = self.sock.recv(65536, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return "partial"  # readable but nothing there after all: let the worker wait for it
        except OSError:
            return "closed"  # reset by the peer
        if not head:
            return "closed"
        return "line" if self.termination in head else "partial"
