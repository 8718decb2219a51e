"""Asyncio SCPI line server speaking the grammar of IEEE 488.2 / SCPI-1999, as real instruments do.

A simulated instrument subclasses ``ScpiInstrument`` and registers its command tree the way
the vendors' manuals print it: ``command("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]",
handler)``. Headers are matched the SCPI way: each mnemonic in its short form (the upper-case
letters) or its long form (the whole word), case-insensitive, nothing in between; bracketed
nodes may be left out anywhere; ``<n>`` numeric suffixes (``STEP1``) are passed to the handler;
a leading ``:`` is the root. In a ``;``-compound message a header without the leading colon
continues the previous header's path (``TRIG:SOUR BUS;COUN 5``), as the standard says.

A handler gets ``(suffixes, args)`` and returns a reply string for queries or ``None`` for
commands; raising ``ScpiError`` queues an error entry. Numbers are parsed by ``parse_number``:
``MIN|MAX|DEF``, exponents, and unit suffixes with SI prefixes (``400V``, ``20mA``, ``5E+2 V``).
Unknown headers queue ``-113,"Undefined header"``; ``SYST:ERR?`` pops the queue.

The IEEE 488.2 common commands and status registers are built in: ``*IDN? *RST *CLS *ESR?
*ESE *ESE? *STB? *SRE *SRE? *OPC *OPC? *WAI *TST?``; errors set the standard event status
bits (command -1xx: CME, execution -2xx: EXE, device -3xx: DDE, query -4xx: QYE), the status
byte shows the error queue (bit 2), ESB (bit 5) and the master summary (bit 6).

``behaviour`` switches the peer into a fault mode: ``"hang"`` (reads, never answers) or
``"garbage"`` (answers queries with noise) — faults change the peer, never the driver.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

Handler = Callable[[list[int], str], "str | None"]

_MATCHES_KEPT = 512  # header matches an instrument remembers (ScpiInstrument._match)
_MNEMONIC = re.compile(r"^([A-Za-z*][A-Za-z_]*?)(\d*)$")

# Standard event status register (*ESR?) bits.
ESR_OPC, ESR_QYE, ESR_DDE, ESR_EXE, ESR_CME = 1, 4, 8, 16, 32
# Status byte (*STB?) bits.
STB_EAV, STB_ESB, STB_MSS = 4, 32, 64


class ScpiError(Exception):
    """Raised by a handler: queued as ``code,"message"`` in the error queue."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class _Node:
    short: str  # upper-case short form
    long: str  # upper-case long form
    optional: bool
    suffix: bool  # takes a numeric suffix (<n> in the spec, or any mnemonic may carry one)


@dataclass(frozen=True)
class _Pattern:
    nodes: tuple[_Node, ...]
    query: bool
    handler: Handler
    spec: str


@functools.cache  # pure; every bench start registers the same manuals' tables
def parse_spec(spec: str) -> tuple[tuple[_Node, ...], bool]:
    """``"[SOURce:]VOLTage[:LEVel]?"`` -> (nodes, is_query). A ``[...]`` group is optional."""
    query = spec.endswith("?")
    body = spec[:-1] if query else spec
    nodes: list[_Node] = []
    for optional, text in re.findall(r"(\[)?:?([A-Za-z*][A-Za-z]*(?:<n>)?):?\]?", body):
        word = text.replace("<n>", "")
        short = "".join(c for c in word if c.isupper() or c == "*") or word.upper()
        nodes.append(_Node(short.upper(), word.upper(), bool(optional), "<n>" in text))
    return tuple(nodes), query


def _word_matches(word: str, node: _Node) -> list[int] | None:
    """Suffixes taken by ``word`` at ``node`` ([] none, [n] one), or None when it does not match."""
    m = _MNEMONIC.match(word)
    if not m:
        return None
    name = m.group(1).upper()
    if name not in (node.short, node.long):
        return None
    return [int(m.group(2))] if m.group(2) else []


def _match_nodes(words: list[str], nodes: tuple[_Node, ...]) -> list[int] | None:
    """Match header ``words`` against ``nodes`` (optional nodes may be skipped); the suffixes."""
    if not nodes:
        return [] if not words else None
    node, rest = nodes[0], nodes[1:]
    if words:
        taken = _word_matches(words[0], node)
        if taken is not None:
            tail = _match_nodes(words[1:], rest)
            if tail is not None:
                return taken + tail
    if node.optional:
        return _match_nodes(words, rest)
    return None


class ScpiInstrument:
    """Base simulated SCPI instrument served over TCP (raw socket, ``\\n`` terminated)."""

    identity = "SIM,Instrument,0,0"

    def __init__(self) -> None:
        self._patterns: list[_Pattern] = []
        # header -> (pattern, suffixes) or None: a driver repeats a handful of headers (a poll every
        # 2 s), and matching one against the whole table cost ~1 ms (~200 nodes tried)
        self._matched: dict[str, tuple[_Pattern, tuple[int, ...]] | None] = {}
        self.errors: deque[tuple[int, str]] = deque(maxlen=20)
        self.behaviour = "normal"
        self.received: list[str] = []
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.esr = 0  # standard event status register
        self.ese = 0  # its enable mask
        self.sre = 0  # service request enable mask
        c = self.command
        c("*IDN?", lambda s, a: self.identity)
        c("*CLS", lambda s, a: self.clear_status())
        c("*ESR?", lambda s, a: str(self._read_esr()))
        c("*ESE", lambda s, a: setattr(self, "ese", parse_mask(a)))
        c("*ESE?", lambda s, a: str(self.ese))
        c("*STB?", lambda s, a: str(self.status_byte()))
        c("*SRE", lambda s, a: setattr(self, "sre", parse_mask(a) & ~STB_MSS))
        c("*SRE?", lambda s, a: str(self.sre))
        c("*OPC", lambda s, a: self._set_esr(ESR_OPC))
        c("*OPC?", lambda s, a: "1")  # every command here completes before the next is read
        c("*WAI", lambda s, a: None)
        c("*TST?", lambda s, a: "0")  # self-test passed
        c("*RST", lambda s, a: self.reset())
        c("SYSTem:ERRor[:NEXT]?", lambda s, a: self._pop_error())

    # -- table -----------------------------------------------------------------------------
    def command(self, spec: str, handler: Handler) -> None:
        """Register ``spec`` as the manual prints it (``"[SOURce:]VOLTage[:LEVel]"``,
        ``"MEASure:VOLTage[:DC]?"``, ``"SAFEty:STEP<n>:IR"``); a trailing ``?`` makes a query."""
        nodes, query = parse_spec(spec)
        self._patterns.append(_Pattern(nodes, query, handler, spec))
        self._matched.clear()

    def reset(self) -> None:
        """``*RST``: subclasses restore defaults."""

    def push_error(self, code: int, message: str) -> None:
        """Queue an error and set its standard event status bit."""
        self.errors.append((code, message))
        bit = ESR_CME if -199 <= code <= -100 else ESR_EXE if -299 <= code <= -200 else \
            ESR_QYE if -499 <= code <= -400 else ESR_DDE
        self._set_esr(bit)

    def clear_status(self) -> None:
        """``*CLS``: error queue and event status register cleared (enable masks kept)."""
        self.errors.clear()
        self.esr = 0

    def status_byte(self) -> int:
        """``*STB?``: EAV (errors queued), ESB (enabled events), MSS (enabled summary)."""
        stb = (STB_EAV if self.errors else 0) | (STB_ESB if self.esr & self.ese else 0)
        return stb | (STB_MSS if stb & self.sre else 0)

    def _set_esr(self, bit: int) -> None:
        self.esr |= bit

    def _read_esr(self) -> int:
        value, self.esr = self.esr, 0
        return value

    def _pop_error(self) -> str:
        if not self.errors:
            return '+0,"No error"'
        code, message = self.errors.popleft()
        return f'{code:+d},"{message}"'

    # -- dispatch --------------------------------------------------------------------------
    def _match(self, header: str) -> tuple[_Pattern, list[int]] | None:
        try:
            found = self._matched[header]
        except KeyError:
            if len(self._matched) >= _MATCHES_KEPT:  # a client sending ever new headers (noise)
                self._matched.clear()
            found = self._matched[header] = self._match_table(header)
        return None if found is None else (found[0], list(found[1]))

    def _match_table(self, header: str) -> tuple[_Pattern, tuple[int, ...]] | None:
        query = header.endswith("?")
        words = header.rstrip("?").lstrip(":").split(":")
        if any(not w for w in words):
            return None
        for pattern in self._patterns:
            if pattern.query != query:
                continue
            suffixes = _match_nodes(words, pattern.nodes)
            if suffixes is not None:
                return pattern, tuple(suffixes)
        return None

    def _resolve(self, header: str, path: list[str]) -> tuple[tuple[_Pattern, list[int]] | None, list[str]]:
        """Match ``header`` relative to the compound message's ``path`` (then from the root);
        returns the match and the path the next header continues from."""
        absolute = header.startswith(":") or header.startswith("*") or not path
        words = header.lstrip(":").rstrip("?").split(":")
        if not absolute:
            found = self._match(":".join(path + [header]))
            if found is not None:
                return found, path + words[:-1]
        found = self._match(header)
        return found, ([] if header.startswith("*") else words[:-1])

    def execute(self, line: str) -> list[str]:
        """Run one received line (``;``-separated commands); return the replies to send."""
        replies = []
        path: list[str] = []
        for unit in filter(None, (u.strip() for u in line.split(";"))):
            header, _, args = unit.partition(" ")
            found, path = self._resolve(header, path)
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


_PREFIX = {"": 1.0, "N": 1e-9, "U": 1e-6, "M": 1e-3, "K": 1e3, "MA": 1e6, "G": 1e9, "T": 1e12}
_NUMBER = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)$")
_KEYWORDS = {"MIN": "min", "MINIMUM": "min", "MAX": "max", "MAXIMUM": "max", "DEF": "default", "DEFAULT": "default"}


def parse_number(text: str, *, what: str = "value", unit: str | None = None, low: float | None = None,
                 high: float | None = None, default: float | None = None) -> float:
    """An SCPI decimal numeric parameter: ``400``, ``5E+2``, ``-0.5``; ``MIN|MAX|DEF`` when the
    caller gives ``low``/``high``/``default``; a unit suffix (``400V``, ``20mA``, ``5E+2 V``,
    ``1.5kV``; ``MOHM``/``MHZ`` are mega, other ``M`` milli, as the standard says) when the
    caller gives ``unit``. Anything else raises ``ScpiError`` (-109 missing, -131 bad suffix,
    -138 suffix not allowed, -224 illegal value)."""
    raw = text.strip()
    if not raw:
        raise ScpiError(-109, "Missing parameter")
    keyword = _KEYWORDS.get(raw.upper())
    if keyword is not None:
        value = {"min": low, "max": high, "default": default}[keyword]
        if value is None:
            raise ScpiError(-224, f"Illegal parameter value for {what}")
        return value
    m = _NUMBER.match(raw)
    if not m:
        raise ScpiError(-224, f"Illegal parameter value for {what}")
    value = float(m.group(1))
    suffix = m.group(2).upper()
    if suffix:
        if unit is None:
            raise ScpiError(-138, "Suffix not allowed")
        u = unit.upper()
        if not suffix.endswith(u):
            raise ScpiError(-131, "Invalid suffix")
        prefix = suffix[: -len(u)]
        if prefix == "M" and u in ("OHM", "HZ"):
            prefix = "MA"  # SCPI: MOHM and MHZ are mega
        if prefix not in _PREFIX:
            raise ScpiError(-131, "Invalid suffix")
        value *= _PREFIX[prefix]
    if value != value or value in (float("inf"), float("-inf")):
        raise ScpiError(-224, f"Illegal parameter value for {what}")
    return value


def parse_mask(text: str) -> int:
    """A register mask 0…255 (``*ESE``, ``*SRE``)."""
    value = parse_number(text, what="mask")
    if value != int(value) or not 0 <= value <= 255:
        raise ScpiError(-222, "Data out of range")
    return int(value)


def fmt(value: float) -> str:
    """Format a reading the way these instruments do: ``+5.230000E+08``."""
    return f"{value:+.6E}"
