"""Simulated ATEQ-style leak tester on the coolant circuit, served as a raw TCP line peer.

The driver reaches it as ``socket://127.0.0.1:PORT`` through pyserial, exactly as it reaches a
real tester's RS-232 port. Line protocol as documented in ``drivers/leak/ateq.py``: ``START``
runs one cycle of ``test_time`` s in loop time, then pushes ``<01>:(OK): 027 Pa`` (decay at or
below ``limit`` Pa) or ``(TD)``; the decay is the pack's ``coolant_leak_rate`` (Pa/min) over
the test time plus seeded noise. ``STOP`` aborts a cycle silently; ``STATUS?`` answers
``STATUS: CYCLE`` during a cycle, else ``STATUS: READY``. ``START`` during a cycle
answers ``ER: BUSY``; any other line ``ER: UNKNOWN COMMAND``.

``behaviour`` is a fault mode of the peer: ``"hang"`` (reads, never answers nor pushes),
``"garbage"`` (pushes line noise instead of the result), ``"alarm"`` (the cycle ends in
``<01>:AL: 02 FILL PRESSURE TOO LOW``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from drivers.leak.ateq import CYCLE, READY, START, STATUS, STOP

ALARM_TEXT = "02 FILL PRESSURE TOO LOW"


def result_line(program: int, decay_pa: float, limit_pa: float) -> str:
    """The pushed end-of-cycle line for ``decay_pa`` judged against ``limit_pa``."""
    status = "OK" if decay_pa <= limit_pa else "TD"
    magnitude = f"{abs(round(decay_pa)):03d}"
    value = magnitude if round(decay_pa) >= 0 else "-" + magnitude
    return f"<{program:02d}>:({status}): {value} Pa"


class SimAteqLeak:
    """Leak tester peer. ``test_time`` (s) per cycle, ``limit`` (Pa) of decay judged OK,
    ``noise`` (Pa, 1 sigma) drawn from ``pack.rng``, ``program`` number shown in results."""

    def __init__(self, pack: Any, *, test_time: float = 30.0, limit: float = 50.0, noise: float = 0.5, program: int = 1) -> None:
        self.pack = pack
        self.test_time = test_time
        self.limit = limit
        self.noise = noise
        self.program = program
        self.behaviour = "normal"
        self.received: list[str] = []
        self.pushed: list[str] = []
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._cycle: asyncio.Task | None = None

    @property
    def cycling(self) -> bool:
        """True while a cycle is filling, stabilising or measuring."""
        return self._cycle is not None and not self._cycle.done()

    # -- server ----------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 = any free port); return ``"host:PORT"``."""
        self._server = await asyncio.start_server(self._serve, host, port)
        return f"{host}:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        self._abort()
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while raw := await reader.readline():
                line = raw.decode("ascii", errors="replace").strip()
                if line:
                    self.received.append(line)
                    self._handle(line, writer)
                    await writer.drain()
        except ValueError:  # a line longer than the stream limit
            writer.write(b"ER: OVERRUN\r\n")
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _handle(self, line: str, writer: asyncio.StreamWriter) -> None:
        if self.behaviour == "hang":
            return
        if line == START:
            if self.cycling:
                self._send(writer, "ER: BUSY")
            else:
                self._cycle = asyncio.create_task(self._run_cycle(writer))
        elif line == STOP:
            self._abort()
        elif line == STATUS:
            self._send(writer, CYCLE if self.cycling else READY)
        else:
            self._send(writer, "ER: UNKNOWN COMMAND")

    # -- cycle -----------------------------------------------------------------------------
    async def _run_cycle(self, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(self.test_time)
        if self.behaviour == "alarm":
            line = f"<{self.program:02d}>:AL: {ALARM_TEXT}"
        else:
            decay = self.pack.coolant_leak_rate * self.test_time / 60.0
            decay += self.noise * float(self.pack.rng.standard_normal())
            line = result_line(self.program, decay, self.limit)
        if self.behaviour == "garbage":
            line = "\x15#?garbage@" + line[::-1]
        if not writer.is_closing():
            self._send(writer, line)
            with contextlib.suppress(ConnectionError):  # the client hung up: nobody to tell
                await writer.drain()

    def _abort(self) -> None:
        if self._cycle is not None:
            self._cycle.cancel()
            self._cycle = None

    def _send(self, writer: asyncio.StreamWriter, line: str) -> None:
        self.pushed.append(line)
        writer.write(line.encode("ascii", errors="replace") + b"\r\n")
