"""A BMS on CAN described by any DBC plus a small signal map (drivers/maps/*_signals.yaml).

Options (station config): ``dbc`` (path; default the map's own, i.e. drivers/maps/eol_bms.dbc),
``signals`` (map file; default eol_bms_signals.yaml), ``cells``, ``temperature_sensors``,
``uds: {tx_id, rx_id, key_algorithm, did_table}``, and identity fallbacks ``maker``, ``model``,
``serial``, ``firmware``. The resource is a CAN resource (``can://station_loop/F1``, ...).

The request frame is re-sent every request cycle (100 ms by default) while the station holds
anything but the default request (standby, balancing off, monitor enabled): a BMS drops
contactors when its master's request stops. The caller waits for the state feedback itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import can

from drivers.base import Driver
from drivers.bms.live_values import LiveValues
from drivers.clock import STREAM_ALLOWANCE, wall_allowance
from drivers.bms.signals import DEFAULT_MAP, MAPS, SignalMap, load_signal_map
from drivers.capabilities import Dtc, Identity
from drivers.errors import ConnectError, InstrumentError, InstrumentTimeout
from drivers.validators import OneOf

MODES = OneOf(("standby", "normal", "charge", "discharge"))
WAKE_POLL_S = 0.01


class DbcBms(Driver):
    """``drivers.capabilities.Bms`` over CAN: live values from cyclic frames, commands, UDS."""

    def __init__(self, name: str, resource: str, **kw: Any) -> None:
        super().__init__(name, resource, **kw)
        self.map: SignalMap | None = None
        self.live: LiveValues | None = None
        self.port = None
        self._uds = None
        self._listeners: list[Callable[[str, float], None]] = []
        self._mode, self._balancing, self._imd_enabled = "standby", False, True
        self._request_frame: tuple = (None, None)  # (what it encodes, the can.Message)
        self._cyclic: asyncio.TimerHandle | None = None  # the next cyclic request

    # --- lifecycle -------------------------------------------------------------------------------

    def load_map(self) -> SignalMap:
        """Load and validate the signal map against the DBC (no bus I/O; usable before open)."""
        if self.map is None:
            opts = self.options
            dbc = opts.get("dbc")
            signals = Path(opts.get("signals", DEFAULT_MAP))
            if not signals.is_absolute() and not signals.exists():
                signals = MAPS / signals
            self.map = load_signal_map(signals, dbc=dbc, cells=int(opts.get("cells", 0)),
                                       temperature_sensors=int(opts.get("temperature_sensors", 0)))
        return self.map

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
                                  did_table=uds.get("did_table"), key_algorithm=uds.get("key_algorithm"),
                                  timeout=self.timeout, instrument=self.name)
            await self._uds.open()

    async def close(self) -> None:
        self._stop_cyclic()
        if self._uds is not None:
            uds, self._uds = self._uds, None
            await uds.close()
        if self.port is not None:
            port, self.port = self.port, None
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

    async def safe_state(self) -> list[str]:
        """Request standby (contactors open), monitor enabled, balancing off; stop cycling."""
        if self.port is None:
            return ["not open, no request sent"]
        self._mode, self._balancing, self._imd_enabled = "standby", False, True
        self._stop_cyclic()
        self._send_request("safe_state")
        return ["requested standby (contactors open)", "insulation monitor enabled",
                "balancing off", "cyclic request stopped"]

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
        self._mode = mode
        self._apply(f"request_mode {mode}")

    async def set_balancing(self, on: bool) -> None:
        self._require_port("set_balancing")
        self._balancing = bool(on)
        self._apply(f"set_balancing {'on' if on else 'off'}")

    async def set_insulation_monitor(self, enabled: bool) -> None:
        self._require_port("set_insulation_monitor")
        self._imd_enabled = bool(enabled)
        self._apply(f"set_insulation_monitor {'enabled' if enabled else 'disabled'}")

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
        self._require_port(command)
        # The cyclic request repeats the same frame every 100 ms: build it once per content
        # (buses copy or serialise what they send; none keeps or changes the sender's object).
        key = (id(request), self._mode, self._balancing, self._imd_enabled)
        if self._request_frame[0] != key:
            data = request.encode(self._mode, self._balancing, self._imd_enabled)
            self._request_frame = (key, can.Message(arbitration_id=request.message.frame_id, data=data,
                                                    is_extended_id=request.message.is_extended_frame))
        self.port.send(self._request_frame[1])

    # The cyclic request is a timer callback, not a task looping on asyncio.sleep: a task costs
    # two loop iterations per period (timer, then the task step), ~39 us a wake-up on the
    # reference run (15.6k requests); a timer costs one. Same cycle: one period after the
    # previous send, on the loop clock.
    def _schedule_cyclic(self, loop: asyncio.AbstractEventLoop) -> None:
        self._cyclic = loop.call_at(loop.time() + self.load_map().request.period, self._cycle, loop)

    def _cycle(self, loop: asyncio.AbstractEventLoop) -> None:
        self._schedule_cyclic(loop)  # before sending, so a stop from inside the send holds
        try:
            self._send_request("cyclic request")
        except BaseException:
            self._stop_cyclic()  # a failed send ends the cycle (as it ended the task); a command restarts it
            raise

    def _stop_cyclic(self) -> None:
        timer, self._cyclic = self._cyclic, None
        if timer is not None:
            timer.cancel()

    def _require_port(self, command: str) -> None:
        if self.port is None:
            raise ConnectError("BMS is not open", instrument=self.name, command=command)

    def _live(self, command: str) -> LiveValues:
        if self.live is None:
            raise ConnectError("BMS is not open", instrument=self.name, command=command)
        return self.live

    # --- UDS (delegated to drivers.bms.uds_client.UdsClient) ------------------------------------

    def _client(self, command: str):
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
