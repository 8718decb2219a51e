"""The simulated BMS's contactor state machine: standby -> precharge -> normal/charge/discharge.

Drives the pack's contactors through the public ``Pack`` API only (docs/sim_pack_api.md). All
waiting is ``asyncio.sleep`` on the loop clock, so precharge runs on virtual time like the rest.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from drivers.clock import stream_limit

STATES = ("standby", "precharge", "normal", "charge", "discharge", "error")
CLOSED_MODES = ("normal", "charge", "discharge")

# ErrorFlags bits of eol_bms.dbc (see its CM_ comment)
ERR_CELL_OV, ERR_CELL_UV, ERR_OVERTEMP, ERR_SENSOR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
ERR_PRECHARGE, ERR_REQUEST_TIMEOUT, ERR_HVIL, ERR_INSULATION, ERR_CONTACTOR = (
    1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8)

PRECHARGE_DONE = 0.95  # bus must reach this fraction of pack voltage before main+ closes
POLL_S = 0.005  # s between bus-voltage checks during precharge
SUPERVISE_S = 0.1  # s between HVIL/request-watchdog checks while engaged: the state-frame cycle


@dataclass(eq=False)
class _Release:
    """Contactors commanded open, opening when ``handle`` fires (their release time)."""

    names: tuple[str, ...]
    handle: asyncio.TimerHandle | None = None


class BmsStateMachine:
    """Contactor sequencing of one pack. ``error_flags`` latches faults until a standby request.

    ``precharge_timeout`` (s): precharge fails (state error, flag ERR_PRECHARGE) if the bus has
    not reached 95 % of pack voltage by then. ``request_timeout`` (s): in a closed state, no
    request frame for this long opens the contactors (ERR_REQUEST_TIMEOUT).
    """

    def __init__(self, pack, *, precharge_timeout: float = 1.0, request_timeout: float = 1.0) -> None:
        self.pack = pack
        self.state = "standby"
        self.mode = "standby"  # last requested
        self.error_flags = 0
        self.precharge_timeout = precharge_timeout
        self.request_timeout = request_timeout
        self._last_request = float("-inf")
        self._task: asyncio.Task | None = None
        self._wiring = None
        self._unsubscribe = None
        self._timer: asyncio.TimerHandle | None = None
        # contactor operate / release times of the pack (s): a close command takes effect
        # close_s later, an open command open_s later (0: at once)
        spec = getattr(pack, "spec", None)
        self.close_s = float(getattr(spec, "contactor_close_s", 0.0) or 0.0)
        self.open_s = float(getattr(spec, "contactor_open_s", 0.0) or 0.0)
        self._releasing: list[_Release] = []

    # -- supervision: a timer only while engaged, LV loss as an event --------------------------
    def attach(self, wiring) -> None:
        """Supervise against ``wiring`` (a ``sim.wiring.Wiring``) until ``detach()``.

        LV loss is handled the moment ``wiring.lv_power`` drops; the HVIL and request watchdog
        are checked every ``SUPERVISE_S`` only while precharging or closed, so an idle BMS
        costs no event-loop wake-ups.
        """
        self.detach()
        self._wiring = wiring
        self._unsubscribe = wiring.on_lv_power(self._lv_changed)
        self._arm()

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = self._wiring = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _lv_changed(self, on: bool) -> None:
        if not on:
            self.supervise(asyncio.get_running_loop().time(), False)

    def _engaged(self) -> bool:
        return self.state in CLOSED_MODES or self.state == "precharge"

    def _arm(self) -> None:
        if self._timer is None and self._wiring is not None and self._engaged():
            self._timer = asyncio.get_running_loop().call_later(SUPERVISE_S, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self._wiring is not None:
            self.supervise(asyncio.get_running_loop().time(), self._wiring.lv_power)
            self._arm()

    def request(self, mode: str, now: float) -> None:
        """A request frame arrived asking for ``mode`` at loop time ``now``."""
        self._last_request = now
        self.mode = mode
        if mode == "standby":
            if self.state != "standby":
                self.open_all()
            self.state, self.error_flags = "standby", 0
        elif self.state == "standby":
            self._start_precharge(mode)
        elif self.state in CLOSED_MODES:
            self.state = mode
        self._arm()

    def open_all(self) -> None:
        """Open every contactor (main+ first, as a real BMS breaks the load side first); with a
        release time the contacts open that long after the command."""
        self._cancel()
        self._release(("main_plus", "precharge", "main_minus"))

    def _release(self, names: tuple[str, ...]) -> None:
        """Command ``names`` open: at once, or ``open_s`` later (their release time)."""
        if self.open_s <= 0.0:
            for name in names:
                self.pack.set_contactor(name, False)
            return
        pending = _Release(names)
        pending.handle = asyncio.get_running_loop().call_later(self.open_s, self._released, pending)
        self._releasing.append(pending)

    def _released(self, pending: _Release) -> None:
        if pending in self._releasing:
            self._releasing.remove(pending)
        for name in pending.names:
            self.pack.set_contactor(name, False)

    def _finish_releases(self) -> None:
        """Contacts commanded open are open before anything is closed again (a close command
        right after an open waits for the release, as the contactor's own coil does)."""
        pending, self._releasing = self._releasing, []
        for release in pending:
            if release.handle is not None:
                release.handle.cancel()
            for name in release.names:
                self.pack.set_contactor(name, False)

    async def _operate(self) -> None:
        """The operate time of a close command (nothing to wait for without one)."""
        if self.close_s > 0.0:
            await asyncio.sleep(self.close_s)

    def fail(self, flag: int) -> None:
        self.open_all()
        self.state = "error"
        self.error_flags |= flag

    def supervise(self, now: float, lv_power: bool) -> None:
        """LV loss, HVIL and request-watchdog checks (by ``attach``'s timer, or a caller's)."""
        if not lv_power:
            if self.state != "standby":
                self.open_all()
            self.state, self.mode, self.error_flags = "standby", "standby", 0
            return
        if self.state in CLOSED_MODES or self.state == "precharge":
            if not self.pack.hvil_closed():
                self.fail(ERR_HVIL)
            elif now - self._last_request > stream_limit(self.request_timeout):
                self.fail(ERR_REQUEST_TIMEOUT)

    def _start_precharge(self, mode: str) -> None:
        self._cancel()
        self.state = "precharge"
        self._task = asyncio.get_running_loop().create_task(self._precharge(mode))

    async def _precharge(self, mode: str) -> None:
        loop = asyncio.get_running_loop()
        pack = self.pack
        deadline = loop.time() + self.precharge_timeout  # from the command: operate time included
        self._finish_releases()
        await self._operate()
        pack.set_contactor("main_minus", True)
        pack.set_contactor("precharge", True)
        while pack.bus_voltage() < PRECHARGE_DONE * pack.pack_voltage():
            if loop.time() >= deadline:
                self._task = None
                self.fail(ERR_PRECHARGE)
                return
            await asyncio.sleep(POLL_S)
        await self._operate()
        pack.set_contactor("main_plus", True)
        self._task = None
        self._release(("precharge",))
        self.state = self.mode if self.mode in CLOSED_MODES else mode

    def _cancel(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
