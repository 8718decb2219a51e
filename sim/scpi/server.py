"""Asyncio SCPI line server with an error queue, as real instruments behave.

A simulated instrument subclasses ``ScpiInstrument`` and registers its command table with
``command("SOURce:VOLTage", handler)``: headers are matched the SCPI way (short form = the
upper-case letters, long form = the whole word, case-insensitive; numeric suffixes such as
``STEP1`` are passed to the handler). A handler gets ``(suffixes, args)`` and returns a reply
string for queries or ``None`` for commands; raising ``ScpiError`` queues an error entry.
Unknown headers queue ``-113,"Undefined header"``; ``SYST:ERR?`` pops the queue.

``behaviour`` switches the peer into a fault mode: ``"hang"`` (reads, never answers) or
``"garbage"`` (answers queries with noise) — faults change the peer, never the driver.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

Handler = Callable[[list[int], str], "str | None"]

_MNEMONIC = re.compile(r"^([A-Za-z*]+?)(\d*)$")


class ScpiError(Exception):
    """Raised by a handler: queued as ``code,"message"`` in the error queue."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class _Pattern:
    parts: tuple[tuple[str, str], ...]  # (short upper, long upper) per mnemonic
    query: bool
    handler: Handler


def _split_spec(spec: str) -> tuple[tuple[str, str], ...]:
    parts = []
    for word in spec.strip(":").split(":"):
        short = "".join(c for c in word if c.isupper() or c in "*?") or word.upper()
        parts.append((short.upper(), word.upper()))
    return tuple(parts)


class ScpiInstrument:
    """Base simulated SCPI instrument served over TCP (raw socket, ``\\n`` terminated)."""

    identity = "SIM,Instrument,0,0"

    def __init__(self) -> None:
        self._patterns: list[_Pattern] = []
        self.errors: deque[tuple[int, str]] = deque(maxlen=20)
        self.behaviour = "normal"
        self.received: list[str] = []
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.command("*IDN?", lambda s, a: self.identity)
        self.command("*CLS", lambda s, a: self.errors.clear())
        self.command("*OPC?", lambda s, a: "1")
        self.command("*RST", lambda s, a: self.reset())
        self.command("SYSTem:ERRor?", lambda s, a: self._pop_error())
        self.command("SYSTem:ERRor:NEXT?", lambda s, a: self._pop_error())

    # -- table -----------------------------------------------------------------------------
    def command(self, spec: str, handler: Handler) -> None:
        """Register ``spec`` (e.g. ``"[SOURce:]VOLTage"``, ``"MEASure:VOLTage?"``).

        A trailing ``?`` makes it a query; ``[WORD:]`` marks an optional mnemonic.
        """
        query = spec.endswith("?")
        body = spec.rstrip("?")
        variants = {body.replace("[", "").replace("]", ""), re.sub(r"\[[^\]]*\]", "", body)}
        for variant in variants:
            self._patterns.append(_Pattern(_split_spec(variant), query, handler))

    def reset(self) -> None:
        """``*RST``: subclasses restore defaults."""

    def push_error(self, code: int, message: str) -> None:
        self.errors.append((code, message))

    def _pop_error(self) -> str:
        if not self.errors:
            return '+0,"No error"'
        code, message = self.errors.popleft()
        return f'{code:+d},"{message}"'

    # -- dispatch --------------------------------------------------------------------------
    def _match(self, header: str) -> tuple[_Pattern, list[int]] | None:
        query = header.endswith("?")
        words = header.rstrip("?").strip(":").split(":")
        for pattern in self._patterns:
            if pattern.query != query or len(pattern.parts) != len(words):
                continue
            suffixes: list[int] = []
            for word, (short, long) in zip(words, pattern.parts):
                m = _MNEMONIC.match(word)
                if not m:
                    break
                name = m.group(1).upper()
                if not (long.startswith(name) and len(name) >= len(short)):
                    break
                if m.group(2):
                    suffixes.append(int(m.group(2)))
            else:
                return pattern, suffixes
        return None

    def execute(self, line: str) -> list[str]:
        """Run one received line (``;``-separated commands); return the replies to send."""
        replies = []
        for unit in filter(None, (u.strip() for u in line.split(";"))):
            header, _, args = unit.partition(" ")
            found = self._match(header)
            if found is None:
                self.push_error(-113, "Undefined header")
                continue
            pattern, suffixes = found
            try:
                reply = pattern.handler(suffixes, args.strip())
            except ScpiError as err:
                self.push_error(err.code, err.message)
                continue
            except ValueError:
                self.push_error(-224, "Illegal parameter value")
                continue
            if pattern.query and reply is not None:
                replies.append(str(reply))
        return replies

    # -- server ----------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 = any free port); return ``"host:PORT"``."""
        self._server = await asyncio.start_server(self._serve, host, port)
        real_port = self._server.sockets[0].getsockname()[1]
        return f"{host}:{real_port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                line = raw.decode("ascii", errors="replace").strip()
                if not line:
                    continue
                self.received.append(line)
                self.on_activity()
                if self.behaviour == "hang":
                    continue
                replies = self.execute(line)
                if replies:
                    # IEEE 488.2: the answers to one compound query share one line, ';'-separated.
                    reply = ";".join(replies)
                    if self.behaviour == "garbage":
                        reply = "\x15#?garbage@" + reply[::-1]
                    writer.write(reply.encode("ascii", errors="replace") + b"\n")
                await writer.drain()
        except ValueError:  # a line longer than the stream limit: what an instrument does, then hang up
            self.push_error(-363, "Input buffer overrun")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def on_activity(self) -> None:
        """Called on every received line (a control watchdog feeds on it)."""


def parse_float(text: str, *, what: str = "value") -> float:
    """Parse an SCPI numeric argument or raise ``ScpiError(-224)`` (also for MIN/MAX/garbage)."""
    try:
        value = float(text.strip())
    except ValueError:
        raise ScpiError(-224, f"Illegal parameter value for {what}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ScpiError(-224, f"Illegal parameter value for {what}")
    return value


def fmt(value: float) -> str:
    """Format a reading the way these instruments do: ``+5.230000E+08``."""
    return f"{value:+.6E}"
