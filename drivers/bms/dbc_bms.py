"""A BMS on CAN described by any DBC plus a small signal map (drivers/maps/*_signals.yaml).

Options (station config): ``dbc`` (path; default the map's own, i.e. drivers/maps/eol_bms.dbc),
``signals`` (the BMS profile: signal map, command path, diagnostics; default
eol_bms_signals.yaml), ``cells``, ``temperature_sensors``,
``uds: {tx_id, rx_id, key_algorithm, did_table}``, and identity fallbacks ``maker``, ``model``,
``serial``, ``firmware``. The resource is a CAN resource (``can://station_loop/F1``, ...).
``dbc`` and ``signals`` are ``PATH_OPTIONS``: the station resolves them from its config file's
folder; a bare name not found there is one of drivers/maps/.

Commands go the profile's command path (drivers/bms/commands.py). Path ``can``: the request
frame is re-sent every request cycle (100 ms by default) while the station holds anything but
the default request (standby, balancing off, monitor enabled): a BMS drops contactors when its
master's request stops. Path ``uds``: each command is its UDS steps (session, security access,
then the service), acknowledged by the ECU's positive reply. Path ``none``: commands are
refused. The caller waits for the state feedback itself, except in ``safe_state()``, which
confirms the standby from the BMS's own state frame (option ``confirm_within``, s, default 1)
and ``energy_state()``, which waits as long for a fresh frame.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import can

from drivers.base import IDENTITY_OPTIONS, Driver
from drivers.bms import readback
from drivers.bms.live_values import LiveValues
from drivers.bms.signal_map import SignalMap
from drivers.bms.signals import DEFAULT_MAP, MAPS, load_signal_map
from drivers.capabilities import Dtc, Identity, SafeAction, StateFinding
from drivers.clock import STREAM_ALLOWANCE, stream_limit, wall_allowance
from drivers.errors import ConnectError, InstrumentError, InstrumentTimeout
from drivers.validators import OneOf, Range

if TYPE_CHECKING:  # imported where used: only stations with UDS or a DID table load them
    from drivers.bms.commands import UdsStep
    from drivers.bms.did_table import DidTable
    from drivers.bms.uds_client import UdsClient
    from drivers.transports.can import CanPort

MODES = OneOf(("standby", "normal", "charge", "discharge"))
WAKE_POLL_S = 0.01
CONTACTORS = ("contactor_main_plus", "contactor_main_minus", "contactor_precharge")
CONFIRM_WITHIN = Range(0.05, 4.0, "s")  # under the engine's 5 s per instrument
STALE_CYCLES = 3  # cycle times without a state frame after which the BMS counts as silent


class DbcBms(Driver):
    """``drivers.capabilities.Bms`` over CAN: live values from cyclic frames, commands, UDS."""

    TRANSPORT = "can"
    OPTIONS = IDENTITY_OPTIONS | {"dbc", "signals", "cells", "temperature_sensors", "uds"}
    PATH_OPTIONS = frozenset({"dbc", "signals"})  # resolved by the station from its config's folder

    def __init__(self, name: str, resource: str, **kw: Any) -> None:
        super().__init__(name, resource, **kw)
        self.map: SignalMap | None = None
        self.live: LiveValues | None = None
        self.port: CanPort | None = None  # or the exact-exchange fake injected as transport
        self._uds: UdsClient | None = None
        self._listeners: list[Callable[[str, float], None]] = []
        self._mode, self._balancing, self._imd_enabled = "standby", False, True
        # (what it encodes, the can.Message): the cyclic request's frame, built once per content
        self._request_frame: tuple[tuple[int, str, bool, bool] | None, can.Message | None] = (None, None)
        self._cyclic: asyncio.TimerHandle | None = None  # the next cyclic request
        self.cycle_error: InstrumentError | None = None  # why the cyclic request stopped, if it failed
        self.confirm_within = CONFIRM_WITHIN.check(float(self.options.get("confirm_within", 1.0)),
                                                   what="option confirm_within", instrument=name)

    # --- lifecycle -------------------------------------------------------------------------------

    def check(self) -> None:
        """The profile (signal map, DBC, command path, diagnostics) loads and agrees (files only):
        a broken one is a config error."""
        signal_map = self.load_map()
        self._did_table()  # a broken DID table or ODX file is a config error too
        if signal_map.commands.path == "uds" and not self.options.get("uds"):
            raise InstrumentError("the BMS profile commands it over UDS: give option 'uds: {tx_id, rx_id}'",
                                  instrument=self.name, command="check")

    def load_map(self) -> SignalMap:
        """Load and validate the signal map against the DBC (no bus I/O; usable before open)."""
        if self.map is None:
            opts = self.options
            dbc = opts.get("dbc")
            signals = Path(opts.get("signals", DEFAULT_MAP))
            if not signals.is_absolute():
                # a bare name is a shipped map; the station makes configured paths absolute
                # (from its config's folder), so nothing here depends on the working directory
                signals = MAPS / signals
            self.map = load_signal_map(signals, dbc=dbc, cells=int(opts.get("cells", 0)),
                                       temperature_sensors=int(opts.get("temperature_sensors", 0)))
        return self.map

    def offers(self) -> dict[str, Any]:
        """What this BMS offers plans (SignalMap.offers, plus whether UDS is configured)."""
        return {**self.load_map().offers(), "uds": bool(self.options.get("uds"))}

    async def open(self) -> None:
        """Open the CAN port, start decoding into live values, and connect UDS if configured."""
        if self.port is not None:
            return
        signal_map = self.load_map()
        loop = asyncio.get_running_loop()
        self.live = LiveValues(signal_map, clock=loop.time, instrument=self.name,
                               allowance=wall_allowance(STREAM_ALLOWANCE, loop))
        self.live.listeners.extend(self._listeners)
        port = self.transport
        if port is None:
            from drivers.transports.can import CanPort

            port = CanPort(self.resource, instrument=self.name)
        await port.open()
        port.add_listener(self.live.update)
        self.port = port
        uds = self.options.get("uds")
        if uds:
            from drivers.bms.uds_client import UdsClient  # lazy: only stations with UDS need it

            self._uds = UdsClient(port, tx_id=int(uds["tx_id"]), rx_id=int(uds["rx_id"]),
                                  did_table=uds.get("did_table") or self._did_table(),
                                  key_algorithm=uds.get("key_algorithm"),
                                  timeout=self.timeout, instrument=self.name)
            await self._uds.open()

    async def close(self) -> None:
        self._stop_cyclic()
        if self._uds is not None:
            uds, self._uds = self._uds, None
            await uds.close()
        if self.port is not None:
            port, self.port = self.port, None
            if self.live is not None:
                port.remove_listener(self.live.update)
            await port.close()

    async def identify(self) -> Identity:
        """Identity from options, without bus I/O.

        The BMS belongs to the pack under test, not to the station: it may still be asleep when
        the station opens its instruments (LV power comes later), and its serial and software
        versions are measurements of the pack (``bms.identity`` reads them over UDS).
        """
        opts = self.options
        return Identity(str(opts.get("maker", "unknown")), str(opts.get("model", "DBC BMS")),
                        str(opts.get("serial", "")), str(opts.get("firmware", "")), self.calibration_due)

    def did_table(self) -> DidTable:
        """The DID table plans' DID names resolve in: the profile's, else the shipped one."""
        from drivers.bms.did_table import load_did_table

        uds = self.options.get("uds") or {}
        return self._did_table() or load_did_table(uds.get("did_table"))

    def _did_table(self) -> DidTable | None:
        """The profile's diagnostic description (DID table or ODX), or None for the default table."""
        from drivers.bms.diagnostics import load_diagnostics  # lazy: ODX only where a profile names it

        diag = self.load_map().diagnostics
        return load_diagnostics(diag) if diag else None

    async def safe_state(self) -> list[SafeAction]:
        """Request standby (contactors open), monitor enabled, balancing off; stop cycling.

        A CAN frame has no reply: each request is confirmed only by the BMS's own state frame
        received after it, showing every contactor open (and the monitor on, balancing off),
        waited for up to ``confirm_within`` s on the loop clock, or until the BMS has sent
        nothing for 3 cycles. A BMS that is silent (asleep with LV power off, dead, unplugged)
        cannot be asked: its last state frame decides. Contactors it last reported open are
        confirmed (unpowered or mute, a BMS cannot close a contactor, and the DMM checks the bus
        independently); contactors it last reported closed, or never reported, are not.
        Path ``uds``: each request acknowledged by the ECU; path ``none`` (a read-only BMS) is
        sent nothing: its contactors are the fixture's to drop (LV off, in the fixture's own safe
        state), and what it reports is recorded. Idempotent; only a failed send raises.
        """
        if self.port is None:
            return [SafeAction("not open, no request sent", False)]
        self._mode, self._balancing, self._imd_enabled = "standby", False, True
        self._stop_cyclic()
        path = self.load_map().commands.path
        if path == "none":
            return await self._read_only_safe_state()
        if path == "uds":
            return await self._uds_safe_state()
        loop = asyncio.get_running_loop()
        live = self._live("safe_state")
        was_alive = self._alive(live)
        sent = loop.time()
        self._send_request("request standby")
        state = await self._fresh_state(sent, self.confirm_within, until_open=True) if was_alive else None
        stopped = SafeAction("cyclic request stopped", True)  # ours: nothing for the BMS to confirm
        if state is not None:
            return self._judged(state, "BMS state frame") + [stopped]
        last = {n: v for n in (*CONTACTORS, "imd_enabled", "balancing_active")
                if n in live.map.signals and (v := live.latest(n)) is not None}
        stamp = live.stamp(CONTACTORS[0])
        if stamp is None or not all(n in last for n in CONTACTORS):
            why = "BMS silent, never reported its contactors"
            return [SafeAction(f"requested standby (contactors open): {why}, not confirmed", False, bus_settles=True),
                    SafeAction(f"insulation monitor enabled: {why}, not confirmed", False, bus_settles=True),
                    SafeAction(f"balancing off: {why}, not confirmed", False, bus_settles=True), stopped]
        age = loop.time() - stamp
        return self._judged(last, f"BMS silent; its last state frame, {age:.1f} s ago") + [stopped]

    def _judged(self, state: dict[str, float], source: str) -> list[SafeAction]:
        """The three requests judged by what ``state`` (one state frame's signals) shows."""
        closed = [n.removeprefix("contactor_") for n in CONTACTORS if state.get(n)]
        imd, balancing = state.get("imd_enabled"), state.get("balancing_active")
        return [
            SafeAction(f"requested standby: contactors STILL CLOSED ({', '.join(closed)}; {source})" if closed
                       else f"requested standby: contactors open ({source})", not closed, bus_settles=bool(closed)),
            SafeAction(f"insulation monitor enabled ({source})" if imd
                       else f"insulation monitor enabled: not reported on ({source})", bool(imd)),
            SafeAction(f"balancing off ({source})" if balancing == 0
                       else f"balancing off: not reported off ({source})", balancing == 0),
        ]

    async def energy_state(self) -> list[StateFinding]:
        """Contactors (main +/-, precharge) and BMS state from a state frame received after the
        call, waited for up to ``confirm_within`` s (3 cycle times of silence end the wait). A silent BMS is reported as such: unpowered
        it cannot hold a contactor closed, and the DMM's bus reading is the independent check."""
        live = self._live("energy_state")
        state = await self._fresh_state(asyncio.get_running_loop().time(), self.confirm_within)
        if state is None:
            return [StateFinding("contactors", True, "BMS silent: no state frame (asleep or unpowered: it cannot "
                                 "hold a contactor closed; the bus voltage is checked too)")]
        closed = [n.removeprefix("contactor_") for n in CONTACTORS if state.get(n)]
        try:
            mode = live.state()
        except InstrumentError:
            mode = "unknown"
        detail = (f"contactors CLOSED: {', '.join(closed)}" if closed else "contactors open") + f" (BMS state {mode})"
        return [StateFinding("contactors", not closed, detail)]

    def _alive(self, live: LiveValues) -> bool:
        """The contactor feedback was received within 3 cycles (the BMS is talking)."""
        try:
            live.get(CONTACTORS[0])
            return True
        except InstrumentError:
            return False

    async def _fresh_state(self, since: float, within: float, *, until_open: bool = False) -> dict[str, float] | None:
        """The state signals from a frame received at or after ``since`` (loop time); with
        ``until_open`` keep waiting for one that shows every contactor open. None if no frame
        came within ``within`` s; the last fresh state if the contactors never opened."""
        live = self._live("state")
        names = [n for n in (*CONTACTORS, "imd_enabled", "balancing_active") if n in live.map.signals]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        quiet = stream_limit(STALE_CYCLES * live.map.signals[CONTACTORS[0]].period)  # no frame this long: silent
        last, seen = None, None
        while True:
            # ">=": on virtual time a frame handled in the same instant as the request is no older
            stamp = live.stamp(CONTACTORS[0])
            if stamp is not None and stamp >= since and stamp != seen:
                seen = stamp
                last = {n: live.get(n) for n in names if (live.stamp(n) or -1.0) >= since}
                if not until_open or not any(last.get(n) for n in CONTACTORS):
                    return last
            now = loop.time()
            if now >= deadline or now - max(since, stamp or since) > quiet:
                return last
            await asyncio.sleep(WAKE_POLL_S)

    # --- live values -----------------------------------------------------------------------------

    async def wake(self, timeout: float) -> float:
        """Wait until every mapped cyclic message is being received; return the seconds it took."""
        live = self._live("wake")
        loop = asyncio.get_running_loop()
        start = loop.time()
        # only frames from now on count: values still fresh from the previous pack must not
        # make a BMS that has not woken up look alive
        while missing := live.missing_messages(since=start):
            if loop.time() - start >= timeout:
                raise InstrumentTimeout(f"BMS not awake after {timeout:g} s: no {', '.join(missing)}",
                                        instrument=self.name, command="wake")
            await asyncio.sleep(WAKE_POLL_S)
        return loop.time() - start

    def signal(self, name: str) -> float:
        return self._live(name).get(name)

    def state(self) -> str:
        """The BMS state as text from the map (``standby``, ``precharge``, ``normal``, ...)."""
        return self._live("bms_state").state()

    def cell_voltages(self) -> list[float]:
        return self._live("cell_voltages").group("cell_voltage")

    def cell_temperatures(self) -> list[float]:
        return self._live("cell_temperatures").group("cell_temperature")

    def add_listener(self, callback: Callable[[str, float], None]) -> None:
        self._listeners.append(callback)
        if self.live is not None:
            self.live.listeners.append(callback)

    # --- commands --------------------------------------------------------------------------------

    async def request_mode(self, mode: str) -> None:
        MODES.check(mode, what="BMS mode", instrument=self.name)
        self._require_port(f"request_mode {mode}")
        if await self._command("mode", mode):
            return
        self._mode = mode
        self._apply(f"request_mode {mode}")

    async def set_balancing(self, on: bool) -> None:
        self._require_port("set_balancing")
        if await self._command("balancing", "on" if on else "off"):
            return
        self._balancing = bool(on)
        self._apply(f"set_balancing {'on' if on else 'off'}")

    async def set_insulation_monitor(self, enabled: bool) -> None:
        self._require_port("set_insulation_monitor")
        if await self._command("insulation_monitor", "enabled" if enabled else "disabled"):
            return
        self._imd_enabled = bool(enabled)
        self._apply(f"set_insulation_monitor {'enabled' if enabled else 'disabled'}")

    async def _command(self, kind: str, value: str) -> bool:
        """Send ``kind``/``value`` over UDS if that is the profile's path (True), refuse it if the
        BMS does not offer it; False: the CAN request path handles it."""
        commands = self.load_map().commands
        offered = commands.offered().get(kind, ())
        if value not in offered:
            why = ("a read-only BMS (command path none)" if commands.path == "none"
                   else f"its profile offers {kind} {', '.join(offered) or 'not at all'}")
            raise InstrumentError(f"cannot command {kind} {value}: {why}", instrument=self.name,
                                  command=f"{kind} {value}")
        if commands.path != "uds":
            return False
        await self._uds_steps(commands.steps(kind, value), f"{kind} {value}")
        return True

    async def _uds_steps(self, steps: Iterable[UdsStep] | None, command: str) -> list[str]:
        """Run one command's UDS steps: session, security access, then the service; each
        positive reply is the ECU's acknowledgement."""
        client = self._client(command)
        if steps is None:  # offered() lists only commands with steps
            raise InstrumentError("the profile has no UDS steps for this command", instrument=self.name,
                                  command=command)
        done = []
        for step in steps:
            if client.session_kind != step.session:
                await client.session(step.session)
            if step.security and client.unlocked_level != step.security:
                await client.unlock(step.security)
            await client.request(step.sid, step.payload(), step.describe(service=False))
            done.append(step.describe())
        return done

    async def _read_only_safe_state(self) -> list[SafeAction]:
        """A BMS the station cannot command: nothing is sent, which is all this driver does;
        then the read-back of its contactors. Opening them otherwise is the fixture's safe state
        (LV off), recorded there, not claimed here."""
        return [SafeAction("read-only BMS (command path none): no command sent", True),
                await readback.contactors(self._live("safe_state"))]

    async def _uds_safe_state(self) -> list[SafeAction]:
        """Standby, monitor enabled, balancing off, each through its UDS steps where offered."""
        commands = self.load_map().commands
        live = self._live("safe_state")
        if not await readback.answers(live):  # asleep (LV off) or gone: a UDS request would only time out
            return [SafeAction("BMS silent: no UDS command sent (nothing answers on the bus)", True),
                    await readback.contactors(live)]
        out = []
        for kind, value, what in (("mode", "standby", "requested standby (contactors open)"),
                                  ("insulation_monitor", "enabled", "insulation monitor enabled"),
                                  ("balancing", "off", "balancing off")):
            steps = commands.steps(kind, value)
            if steps:
                done = await self._uds_steps(steps, f"safe state: {kind} {value}")
                out.append(SafeAction(f"{what} over UDS ({'; '.join(done)}): acknowledged", True))
        return out

    def _apply(self, command: str) -> None:
        self._send_request(command)
        if (self._mode, self._balancing, self._imd_enabled) == ("standby", False, True):
            self._stop_cyclic()
        elif self._cyclic is None:
            self._schedule_cyclic(asyncio.get_running_loop())

    def _send_request(self, command: str) -> None:
        request = self.load_map().request
        if request is None:
            raise InstrumentError("the signal map has no request message", instrument=self.name,
                                  command=command)
        port = self._require_port(command)
        # The cyclic request repeats the same frame every 100 ms: build it once per content
        # (buses copy or serialise what they send; none keeps or changes the sender's object).
        key = (id(request), self._mode, self._balancing, self._imd_enabled)
        built, frame = self._request_frame
        if built != key or frame is None:
            data = request.encode(self._mode, self._balancing, self._imd_enabled)
            frame = can.Message(arbitration_id=request.message.frame_id, data=data,
                                is_extended_id=request.message.is_extended_frame)
            self._request_frame = (key, frame)
        port.send(frame, command=command)

    # The cyclic request is a timer callback, not a task looping on asyncio.sleep: a task costs
    # two loop iterations per period (timer, then the task step), ~39 us a wake-up on the
    # reference run (15.6k requests); a timer costs one. Same cycle: one period after the
    # previous send, on the loop clock.
    def _schedule_cyclic(self, loop: asyncio.AbstractEventLoop) -> None:
        request = self.load_map().request
        if request is None:  # nothing to repeat: _send_request refuses a map without one
            return
        self._cyclic = loop.call_at(loop.time() + request.period, self._cycle, loop)

    def _cycle(self, loop: asyncio.AbstractEventLoop) -> None:
        self._schedule_cyclic(loop)  # before sending, so a stop from inside the send holds
        try:
            self._send_request("cyclic request")
        except InstrumentError as err:
            # A timer callback has no caller to raise to (asyncio would print a traceback on the
            # operator's screen). The cycle ends — a BMS whose master falls silent drops its
            # contactors — and the loss stays with the port: the next command raises it, naming
            # the instrument and the command.
            self._stop_cyclic()
            self.cycle_error = err
        except BaseException:
            self._stop_cyclic()  # a failed send ends the cycle (as it ended the task); a command restarts it
            raise

    def _stop_cyclic(self) -> None:
        timer, self._cyclic = self._cyclic, None
        if timer is not None:
            timer.cancel()

    def _require_port(self, command: str) -> CanPort:
        if self.port is None:
            raise ConnectError("BMS is not open", instrument=self.name, command=command)
        return self.port

    def _live(self, command: str) -> LiveValues:
        if self.live is None:
            raise ConnectError("BMS is not open", instrument=self.name, command=command)
        return self.live

    # --- UDS (delegated to drivers.bms.uds_client.UdsClient) ------------------------------------

    def _client(self, command: str) -> UdsClient:
        if self._uds is None:
            raise InstrumentError("UDS is not configured (option 'uds')", instrument=self.name,
                                  command=command)
        return self._uds

    async def uds_session(self, kind: str) -> None:
        """0x10 DiagnosticSessionControl: "default", "extended" or "programming"."""
        await self._client(f"session {kind}").session(kind)

    async def uds_read(self, did: int) -> bytes:
        return await self._client(f"read DID {did:#06x}").read_did(did)

    async def uds_write(self, did: int, data: bytes) -> None:
        await self._client(f"write DID {did:#06x}").write_did(did, data)

    async def uds_unlock(self, level: int = 1) -> None:
        await self._client(f"unlock level {level}").unlock(level)

    async def read_dtcs(self, status_mask: int = 0xFF) -> list[Dtc]:
        return await self._client("read DTCs").read_dtcs(status_mask)

    async def clear_dtcs(self) -> None:
        await self._client("clear DTCs").clear_dtcs()

    async def ecu_reset(self) -> None:
        await self._client("ECU reset").ecu_reset()

    async def routine(self, routine_id: int, data: bytes = b"") -> bytes:
        return await self._client(f"routine {routine_id:#06x}").routine(routine_id, data)


def _text(raw: bytes) -> str:
    return raw.decode("ascii", "replace").strip("\x00 \xff")
