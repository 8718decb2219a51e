"""The simulated BMS on CAN: a peer on the in-process ``station_loop`` bus, driven by the pack.

It sends every message of the shared signal map at its DBC cycle time (multiplexed cell and
temperature frames rotate through their mux values), answers the station's state request with
the contactor state machine, and hands UDS frames to ``sim.bms.uds_server.UdsServer`` when that
module is present. It sends nothing while ``wiring.lv_power`` is off. Everything runs in the
event loop (Notifier with ``loop=``), so it works on the virtual-time loop.

Fault hooks: ``silent_after(t)`` stops all frames from loop time ``t``; ``error_flags`` is OR-ed
into the reported ErrorFlags; ``pack.open_tap`` / ``pack.dead_sensor`` read as invalid values.
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import can

from drivers.bms.fastcodec import Layout
from drivers.bms.signals import DEFAULT_MAP, Group, load_signal_map
from drivers.transports.loopbus import notifier
from sim.bms.cyclic import Cyclic
from sim.bms.measurements import Measurements
from sim.bms.state_machine import ERR_SENSOR, BmsStateMachine

# logical min/max signal -> (kind, position in Measurements.extremes' tuple)
_EXTREMES = {f"{kind}_{which}": (kind, position) for kind in ("cell_voltage", "cell_temperature")
             for position, which in enumerate(("min", "min_index", "max", "max_index"))}


_FROM_CYCLE = frozenset(("pack_voltage", "pack_current", "pack_power", "bus_voltage", "soc",
                         "balancing_active", "balancing_cells"))


def _bounds(sig) -> tuple[float, float]:
    if sig.minimum is not None and sig.maximum is not None:
        return float(sig.minimum), float(sig.maximum)
    raw = (-(1 << (sig.length - 1)), (1 << (sig.length - 1)) - 1) if sig.is_signed else (0, (1 << sig.length) - 1)
    ends = sorted(r * sig.scale + sig.offset for r in raw)
    return ends[0], ends[1]


class SimCanBms:
    """Simulated BMS for ``pack`` behind fixture ``wiring`` on LoopBus channel ``channel``.

    ``dbc``/``signals``: the same files the driver uses (default: the project's). ``seed``
    seeds measurement noise. ``uds``: ``{"rx_id": 0x7E4, "tx_id": 0x7EC}``; ``ecu``: the
    ``sim.bms.ecu.EcuState`` behind the UDS server (default: the DID table's defaults).
    """

    def __init__(self, pack, wiring, *, channel: str, dbc: str | Path | None = None,
                 signals: str | Path = DEFAULT_MAP, seed: int = 0, uds: dict | None = None,
                 ecu=None, precharge_timeout: float | None = None, request_timeout: float = 1.0) -> None:
        self.pack = pack
        self.wiring = wiring
        self.channel = channel
        self._dbc, self._signals, self._seed = dbc, signals, seed
        self._uds_ids = {"rx_id": 0x7E4, "tx_id": 0x7EC, **(uds or {})}
        self.ecu = ecu
        spec = getattr(pack, "spec", None)
        tau = float(getattr(spec, "precharge_ohm", 50.0)) * float(getattr(spec, "link_capacitance", 3e-3))
        self.machine = BmsStateMachine(pack, precharge_timeout=precharge_timeout or max(0.5, 6 * tau),
                                       request_timeout=request_timeout)
        self.error_flags = 0
        self.frames_sent: collections.Counter[int] = collections.Counter()
        self._silent_at = float("inf")
        self._bus: can.BusABC | None = None
        self._notifier: can.Notifier | None = None
        self._cyclic = Cyclic()
        self._layouts: dict[int, object] = {}
        self._unsubscribe = None
        self._uds = None
        self._alive = 0
        self._request = (None, None)  # last applied (balancing, imd_enabled)
        self._last_request: tuple = (None, None)  # (frame data, its decoded request)

    @property
    def state(self) -> str:
        return self.machine.state

    def silent_after(self, t: float) -> None:
        """Send no frame at or after loop time ``t`` (s) — a BMS that dies on the bus."""
        self._silent_at = t
        if self._bus is not None:
            self._resume()

    def _resume(self) -> None:
        """Cycle while awake (LV power on, not silenced); sleep without timers otherwise."""
        if self._alive_now():
            self._cyclic.start()
        else:
            self._cyclic.stop()

    async def start(self) -> str:
        """Join the channel and start cycling; returns the station's resource for this bus."""
        spec = getattr(self.pack, "spec", None)
        cells = int(getattr(spec, "series", 0) or len(self.pack.cell_voltages()))
        temps = int(getattr(spec, "temp_sensors", 0) or len(self.pack.cell_temperatures()))
        self.map = load_signal_map(self._signals, dbc=self._dbc, cells=cells, temperature_sensors=temps)
        self.measure = Measurements(self.pack, seed=self._seed)
        loop = asyncio.get_running_loop()
        self._bus = can.Bus(interface="station_loop", channel=self.channel, ignore_config=True)
        self._notifier = notifier(self._bus, [self._on_message], loop)
        self._start_uds()
        self._cyclic = Cyclic()
        plain: dict[int, list] = {}
        for mapped in self.map.signals.values():
            plain.setdefault(mapped.message.frame_id, []).append(mapped)
        for entries in plain.values():
            self._cyclic.add(min(m.period for m in entries), self._plain_sender(entries))
        for kind, group in (("cells", self.map.cells), ("temps", self.map.temperatures)):
            if group is not None and group.names:
                period, sender = self._group_sender(kind, group)
                self._cyclic.add(period, sender)
        self.machine.attach(self.wiring)
        self._unsubscribe = self.wiring.on_lv_power(lambda _on: self._resume())
        self._resume()
        return f"can://station_loop/{self.channel}"

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._cyclic.stop()
        self.machine.detach()
        self.machine.open_all()
        if self._uds is not None:
            self._uds.close()
            self._uds = None
        if self._notifier is not None:
            self._notifier.stop()
            self._notifier = None
        if self._bus is not None:
            self._bus.shutdown()
            self._bus = None

    def _start_uds(self) -> None:
        try:
            from sim.bms.uds_server import UdsServer
            from sim.bms.ecu import EcuState
        except ImportError:  # the UDS server is optional for the cyclic side
            return
        if self.ecu is None:
            spec = getattr(self.pack, "spec", None)
            identity = {did: getattr(spec, attr, "") for did, attr in (
                ("part_number", "bms_part_number"), ("sw_version", "bms_sw_version"),
                ("hw_version", "bms_hw_version"))}
            self.ecu = EcuState.from_table(values={k: v for k, v in identity.items() if v}, seed=self._seed)
        self._uds = UdsServer(self.ecu, send=self._send, rx_id=self._uds_ids["rx_id"],
                              tx_id=self._uds_ids["tx_id"])

    def _alive_now(self) -> bool:
        return self.wiring.lv_power and asyncio.get_running_loop().time() < self._silent_at

    def _send(self, msg: can.Message) -> None:
        if self._bus is not None and self._alive_now():
            self._bus.send(msg)
            self.frames_sent[msg.arbitration_id] += 1

    def _send_encoded(self, message, data: dict) -> None:
        layout = self._layouts.get(message.frame_id, False)
        if layout is False:  # first frame of this message: integer packing where possible
            layout = self._layouts[message.frame_id] = Layout.compile(message)
        payload = layout.encode(data) if layout is not None else message.encode(data, scaling=True, strict=False)
        self._send(can.Message(arbitration_id=message.frame_id, data=payload,
                               is_extended_id=message.is_extended_frame))

    def _cycle(self, step):
        """Wrap a frame sender: a BMS that went silent or lost LV stops its whole schedule."""
        def send() -> None:
            if self._alive_now():
                step()
            else:
                self._cyclic.stop()
        return send

    def _plain_sender(self, entries):
        message = entries[0].message
        bounds = {s.name: _bounds(s) for s in message.signals}
        base = {s.name: min(max(0.0, bounds[s.name][0]), bounds[s.name][1]) for s in message.signals}

        def step() -> None:
            data = dict(base)
            for mapped in entries:
                value = float(self._logical(mapped.name, mapped.states))
                value = (1.0 - value) if mapped.invert else value / mapped.factor
                low, high = bounds[mapped.signal]
                data[mapped.signal] = min(max(value, low), high)
            self._send_encoded(message, data)

        return self._cycle(step)

    def _group_sender(self, kind: str, group: Group):
        """(period s, sender) for a multiplexed group: each frame carries the next mux value."""
        sigs = {s.name: s for s in group.message.signals}
        by_mux: dict[int, list[tuple[int, str, float, float]]] = {}
        for index, (name, mux_value) in enumerate(zip(group.names, group.mux_values)):
            by_mux.setdefault(mux_value, []).append((index, name, *_bounds(sigs[name])))
        order = sorted(by_mux)
        factor = group.factor
        rotation = iter(())

        def step() -> None:
            nonlocal rotation
            mux_value = next(rotation, None)
            if mux_value is None:
                rotation = iter(order)
                mux_value = next(rotation)
            self.measure.sample()
            values = self.measure.cells if kind == "cells" else self.measure.temps
            data = {group.mux: mux_value} if group.mux else {}
            for index, name, low, high in by_mux[mux_value]:
                value = values[index] if index < len(values) else None
                # An invalid reading is sent as the signal's minimum (0 V / -819.2 degC here).
                data[name] = low if value is None else min(max(value / factor, low), high)
            self._send_encoded(group.message, data)

        return group.period / len(order), self._cycle(step)

    def _logical(self, name: str, states: dict[str, int]) -> float:
        pack, m = self.pack, self.measure
        # Pack values come from the last measurement cycle (Measurements.sample), as a real
        # BMS's CAN task sends its latest measurements: one model evaluation per 100 ms instead
        # of one per signal (that was ~40 % of the simulator's wall time on the reference plan).
        if name in _FROM_CYCLE:
            m.sample()
            if name == "pack_voltage":
                return m.pack_v
            if name == "pack_current":
                return m.pack_i
            snap = m.snap
            if name == "pack_power":
                return snap.pack_voltage * snap.pack_current
            if name == "bus_voltage":
                return snap.bus_voltage
            if name == "soc":
                return 100.0 * snap.soc
            return float(snap.balancing_cells > 0) if name == "balancing_active" else float(snap.balancing_cells)
        if name == "soh":
            return 100.0
        if name in _EXTREMES:
            m.sample()
            kind, position = _EXTREMES[name]
            return m.extremes_of[kind][position]
        if name == "bms_state":
            return states.get(self.machine.state, states.get("error", 0))
        if name.startswith("contactor_"):
            return float(pack.contactor_closed(name[len("contactor_"):]))
        if name == "hvil_closed":
            return float(pack.hvil_closed())
        if name == "imd_enabled":
            return float(pack.insulation_monitor_enabled)
        if name == "imd_resistance":
            reading = pack.imd_reading() if pack.insulation_monitor_enabled else None
            return 0.0 if reading is None else float(reading)
        if name == "alive_counter":
            self._alive = (self._alive + 1) % 16
            return float(self._alive)
        flags = self.error_flags | self.machine.error_flags
        if m.sensor_fault:
            flags |= ERR_SENSOR
        return float(flags) if name == "error_flags" else float(bool(flags))

    def _on_message(self, msg: can.Message) -> None:
        if not self.wiring.lv_power:
            return
        request = self.map.request
        if request is not None and msg.arbitration_id == request.message.frame_id:
            # the station repeats one request every 100 ms: decode each distinct frame once
            data = bytes(msg.data)
            if self._last_request[0] != data:
                self._last_request = (data, request.decode(data))
            mode, balancing, imd_enabled = self._last_request[1]
            if (balancing, imd_enabled) != self._request:
                self._request = (balancing, imd_enabled)
                self.pack.set_balancing(balancing)
                self.pack.set_insulation_monitor(imd_enabled)
            if mode:
                self.machine.request(mode, asyncio.get_running_loop().time())
        elif self._uds is not None and msg.arbitration_id == self._uds_ids["rx_id"]:
            self._uds.on_message(msg)
