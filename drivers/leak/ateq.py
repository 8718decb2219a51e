"""ATEQ-style pressure-decay leak tester over an RS-232 line (or ``socket://`` to the simulator).

The line protocol (what the driver sends and parses; ``sim/instruments/ateq_leak.py`` serves
the same):

=====================================  ==================================================
``START``                              start a cycle of the selected program (no reply)
``STOP``                               stop/reset: abort the cycle and vent (no reply)
``STATUS?``                            ``STATUS: READY`` (idle, circuit vented) or
                                       ``STATUS: CYCLE`` (filling, stabilising, measuring)
``<01>:(OK): 027 Pa``                  pushed at the end of the cycle: program, status, figure
``<01>:(TD): 087 Pa``                  test part leak above the limit (bad part)
``<01>:(RD): 015 Pa``                  reference part fail (bad reference / test set-up)
``<01>:AL: 02 FILL PRESSURE TOO LOW``  alarm: the cycle could not measure
``ER: <text>``                         the tester refused the command (unknown, busy)
=====================================  ==================================================

``STATUS?`` is how ``safe_state()`` confirms a ``STOP`` and ``energy_state()`` reads the tester;
map it to your tester's own status request if it differs (option ``status_query``, and the
two replies ``status_ready`` / ``status_cycle``). The program prefix ``<NN>:`` is optional; the figure is a signed decimal in ``Pa``, ``hPa``,
``kPa`` or ``mbar`` and is returned in Pa. Anything else is a ``ProtocolError`` naming the line.
The line protocol cannot identify the tester: ``identify()`` reports ``maker``, ``model``,
``serial`` and ``firmware`` from ``options`` and the calibration due date from config.
"""

from __future__ import annotations

import math
import re

from drivers.capabilities import Identity, LeakResult, SafeAction, StateFinding
from drivers.errors import DeviceError, InstrumentError, InstrumentTimeout, ProtocolError
from drivers.scpi import MessageDriver
from drivers.validators import Range

START = "START"
STOP = "STOP"
STATUS = "STATUS?"
READY = "STATUS: READY"
CYCLE = "STATUS: CYCLE"
STATUS_LINES = 4  # lines read past pushed results before the status reply is given up
_PROGRAM = r"(?:<(?P<program>\d{2})>:)?"
RESULT_LINE = re.compile(
    _PROGRAM + r"\((?P<status>OK|TD|RD)\):\s*(?P<value>[+-]?\d+(?:\.\d+)?)\s*(?P<unit>Pa|hPa|kPa|mbar)"
)
ALARM_LINE = re.compile(_PROGRAM + r"AL:\s*(?P<text>\S.*)")
ERROR_LINE = re.compile(r"ER:\s*(?P<text>.*)")
TO_PA = {"Pa": 1.0, "hPa": 100.0, "mbar": 100.0, "kPa": 1000.0}
TEST_TIMEOUT = Range(1.0, 3600.0, "s")


def parse_result(line: str, *, instrument: str = "", command: str = START) -> LeakResult:
    """Parse one pushed line strictly: result → ``LeakResult``; ``ER:`` → ``DeviceError``."""
    text = line.strip()
    if m := RESULT_LINE.fullmatch(text):
        pressure = float(m["value"]) * TO_PA[m["unit"]]
        return LeakResult(pressure=pressure, status=m["status"], raw=line)
    if ALARM_LINE.fullmatch(text):
        # An alarm means nothing was measured: no figure, the status says why.
        return LeakResult(pressure=math.nan, status="AL", raw=line)
    if m := ERROR_LINE.fullmatch(text):
        raise DeviceError(f"tester refused: {m['text'] or text}", code=text, instrument=instrument, command=command)
    raise ProtocolError(f"unexpected line {text[:60]!r}", instrument=instrument, command=command)


class AteqLeakTester(MessageDriver):
    """``LeakTester`` for an ATEQ-style tester; ``name`` is the station role used in every error."""

    async def identify(self) -> Identity:
        """From ``options`` (``maker`` default "ATEQ", ``model``, ``serial``, ``firmware``): no I/O."""
        opt = self.options
        return Identity(
            maker=str(opt.get("maker", "ATEQ")),
            model=str(opt.get("model", "")),
            serial=str(opt.get("serial", "")),
            firmware=str(opt.get("firmware", "")),
            calibration_due=self.calibration_due,
        )

    # -- test ------------------------------------------------------------------------------
    async def test(self, timeout: float = 180.0) -> LeakResult:
        """Run one cycle: ``START``, then wait up to ``timeout`` s for the pushed result line."""
        limit = TEST_TIMEOUT.check(timeout, what="leak test timeout", instrument=self.name)
        transport = self._transport(START)
        await transport.write(START)
        try:
            line = await transport.read_line(limit)
            return parse_result(line, instrument=self.name, command=START)
        except BaseException as exc:
            err = self._about_start(exc, limit)
            await self._stop_after(err)
            if err is exc:
                raise
            raise err from exc

    async def safe_state(self) -> list[SafeAction]:
        """``STOP`` (abort any cycle and vent), then the status read back: confirmed only when
        the tester answers READY. A tester that does not answer leaves the STOP sent but
        unconfirmed; a STOP that cannot be written raises. Idempotent."""
        if self.transport is None:
            return [SafeAction("not connected, no cycle running (nothing sent)", False)]
        await self.transport.write(STOP)
        try:
            state = await self.status()
        except InstrumentError as exc:
            why = str(exc).removeprefix(f"{self.name}: ")
            return [SafeAction(f"STOP sent, not confirmed ({why})", False)]
        if state == "READY":
            return [SafeAction("leak cycle stopped and vented (STOP; STATUS: READY)", True)]
        return [SafeAction("STOP sent, but the tester still reports a cycle (STATUS: CYCLE)", False)]

    async def status(self) -> str:
        """``"READY"`` (idle, vented) or ``"CYCLE"``; a result line pushed before the reply is
        skipped (at most ``STATUS_LINES``); anything else is a ``ProtocolError``."""
        query = str(self.options.get("status_query", STATUS))
        replies = {str(self.options.get("status_ready", READY)): "READY",
                   str(self.options.get("status_cycle", CYCLE)): "CYCLE"}
        transport = self._transport(query)
        line = (await transport.query(query)).strip()
        for _ in range(STATUS_LINES):
            if line in replies:
                return replies[line]
            if ERROR_LINE.fullmatch(line):
                raise DeviceError(f"tester refused: {line}", code=line, instrument=self.name, command=query)
            if not (RESULT_LINE.fullmatch(line) or ALARM_LINE.fullmatch(line)):
                break
            line = (await transport.read_line()).strip()  # a result pushed before our reply
        raise ProtocolError(f"unexpected status reply {line[:60]!r}", instrument=self.name, command=query)

    async def energy_state(self) -> list[StateFinding]:
        """The tester's status: READY is idle with the circuit vented."""
        if await self.status() == "READY":
            return [StateFinding("cycle", True, "idle, circuit vented (STATUS: READY)")]
        return [StateFinding("cycle", False, "cycle running: circuit pressurised (STATUS: CYCLE)")]

    # -- plumbing --------------------------------------------------------------------------
    def _about_start(self, exc: BaseException, limit: float) -> BaseException:
        """Errors from the bare read name ``START``, the command whose answer never came right."""
        if not isinstance(exc, InstrumentError) or exc.command == START:
            return exc
        if isinstance(exc, InstrumentTimeout):
            return InstrumentTimeout(f"no result line within {limit:g} s", instrument=self.name, command=START)
        if isinstance(exc, ProtocolError):
            return ProtocolError(f"unreadable result line ({exc.message})", instrument=self.name, command=START)
        return exc

    async def _stop_after(self, exc: BaseException) -> None:
        # A cycle we stopped waiting for must not keep the circuit pressurised.
        try:
            await self._transport(STOP).write(STOP)
        except InstrumentError as stop_exc:
            exc.add_note(f"{self.name}: STOP after the error also failed: {stop_exc}")
