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
import itertools
import re
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import can

from drivers.bms.fastcodec import packer
from drivers.bms.signal_map import Group
from drivers.bms.signals import DEFAULT_MAP, load_signal_map
from drivers.transports.loopbus import notifier
from sim.bms.cyclic import Cyclic
from sim.bms.measurements import Measurements, unwrap
from sim.bms.state_machine import ERR_SENSOR, BmsStateMachine

# logical min/max signal -> (kind, position in Measurements.extremes' tuple)
_EXTREMES = {f"{kind}_{which}": (kind, position) for kind in ("cell_voltage", "cell_temperature")
             for position, which in enumerate(("min", "min_index", "max", "max_index"))}


_NOT_A_STATE = re.compile(r"SNA|INVALID|INIT|UNKNOWN|FAULT|ERROR|NOT_AVAIL", re.I)

_FROM_CYCLE = frozenset(("pack_voltage", "pack_current", "pack_power", "bus_voltage", "soc",
                         "balancing_active", "balancing_cells"))


# message -> {(names, constants): encoder}. The DBC is parsed once per file and its messages
# shared (drivers.bms.signals), but every bench start built each encoder again: one per mux page,
# each compiling the whole message's layout (~220 signals for 216 cells), ~0.1 s of a short proof
# run. Encoders are immutable, so one per message, signals and constants serves every run.
_PACKERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _packer(message, names: Sequence[str], constants: dict[str, float] | None = None):
    """``fastcodec.packer(message, names, constants)``, built once per process."""
    key = (tuple(names), tuple(sorted((constants or {}).items())))
    cached = _PACKERS.setdefault(message, {})
    if key not in cached:
        cached[key] = packer(message, names, constants)
    return cached[key]


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
        if self.map.commands.path != "can":
            # commanded over UDS (or not at all): no cyclic request whose silence opens the contactors
            self.machine.request_timeout = float("inf")
        self.measure = Measurements(self.pack, seed=self._seed)
        loop = asyncio.get_running_loop()
        self._bus = can.Bus(interface="station_loop", channel=self.channel, ignore_config=True)
        self._notifier = notifier(self._bus, [self._on_message], loop)
        self._start_uds()
        self._cyclic = Cyclic()
        self._bind_commands()
        plain: dict[int, list] = {}
        for mapped in self.map.signals.values():
            plain.setdefault(mapped.message.frame_id, []).append(mapped)
        for entries in plain.values():
            self._add_plain(entries)
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
            from sim.bms.ecu import EcuState
            from sim.bms.uds_server import UdsServer
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

    def _bind_commands(self) -> None:
        """The profile's UDS commands, as the ECU applies them (the same steps the driver sends)."""
        commands = self.map.commands
        if self._uds is None or commands.path != "uds":
            return
        loop = asyncio.get_running_loop()
        effects = {
            "mode": lambda value: self.machine.request(value, loop.time()),
            "balancing": lambda value: self.pack.set_balancing(value == "on"),
            "insulation_monitor": lambda value: self.pack.set_insulation_monitor(value == "enabled"),
        }
        for (kind, value), steps in commands.uds.items():
            # a multi-step command takes effect with its last step
            for i, step in enumerate(steps):
                effect = (lambda k=kind, v=value: effects[k](v)) if i == len(steps) - 1 else (lambda: None)
                self._uds.commands[bytes([step.sid]) + step.payload()] = (step, effect)

    def _alive_now(self) -> bool:
        return self.wiring.lv_power and asyncio.get_running_loop().time() < self._silent_at

    def _send(self, msg: can.Message) -> None:
        if self._bus is not None and self._alive_now():
            self._bus.send(msg)
            self.frames_sent[msg.arbitration_id] += 1

    def _sender(self, message, body: Callable[[], bytes]) -> Callable[[], None]:
        """The cyclic callback of ``message``: ``body()`` gives each frame's payload.

        A BMS that went silent or lost LV stops its whole schedule instead of sending. The
        liveness and measurement-cycle checks and the send are inline, and one can.Message per
        id is refilled (LoopBus.send copies each frame for every receiver): the simulator's
        frames were half of the reference run's 21 s (Cyclic._fire 199 us a wake-up, ~70
        frames per simulated second); a frame is now ~26k instructions against ~69k.
        """
        loop, wiring, measure, counts = asyncio.get_running_loop(), self.wiring, self.measure, self.frames_sent
        frame = can.Message(arbitration_id=message.frame_id, data=bytes(message.length),
                            is_extended_id=message.is_extended_frame)
        frame_id = message.frame_id

        def send() -> None:
            now = loop.time()
            bus = self._bus
            if not (wiring.lv_power and now < self._silent_at and bus is not None):
                self._cyclic.stop()
                return
            # a frame carries the BMS's last measurement cycle, as a real BMS's CAN task sends
            # its latest measurements (Measurements.sample's own check, without the call)
            if not now - measure.taken < measure.sample_period:
                measure.sample(now)
            frame.data = body()
            bus.send(frame)
            counts[frame_id] += 1

        return send

    def _add_plain(self, entries) -> None:
        """Schedule one plain message. Mapped signals on several pages of a multiplexed message
        (a min/max message whose page 0 carries voltages, page 1 temperatures) are sent page
        after page, each page once per cycle time."""
        message, period = entries[0].message, min(m.period for m in entries)
        mux = next((s.name for s in message.signals if s.is_multiplexer), None)

        def ids(m) -> list[int]:
            return message.get_signal_by_name(m.signal).multiplexer_ids or []

        pages = sorted({page for m in entries for page in ids(m)})
        if mux is None or not pages:
            self._cyclic.add(period, self._plain_sender(entries))
            return
        rotation = itertools.cycle([self._plain_sender([m for m in entries if not ids(m) or page in ids(m)],
                                                       page=(mux, page)) for page in pages])
        self._cyclic.add(period / len(pages), lambda: next(rotation)())

    def _plain_sender(self, entries, page: tuple[str, int] | None = None):
        """The sender of one plain message: every mapped signal, the message's others constant.

        Each signal's value getter is chosen once here (the per-signal string dispatch cost
        6.9 us a signal on the reference run). Logical signals that share one DBC signal (three
        contactors from one state enum, ``true_when``) are encoded together: the raw value
        chosen is the one the driver reads back as every one of them.
        """
        message = entries[0].message
        bounds = {s.name: _bounds(s) for s in message.signals}
        by_signal: dict[str, list] = {}
        for m in entries:
            by_signal.setdefault(m.signal, []).append(m)
        mapped_signals = list(by_signal)
        constants = {s.name: min(max(0.0, bounds[s.name][0]), bounds[s.name][1])
                     for s in message.signals if s.name not in by_signal
                     and (page is None or not s.multiplexer_ids or page[1] in s.multiplexer_ids)}
        if page is not None:
            constants[page[0]] = page[1]  # this frame's page
        plan = []
        for sig, items in by_signal.items():
            if len(items) == 1 and items[0].true_when is None:
                m = items[0]
                how = 1 if m.invert else (0 if m.factor == 1.0 and m.offset == 0.0 else 2)
                plan.append((self._getter(m.name, m.states), how, m.factor, m.offset, *bounds[sig]))
            else:
                plan.append((self._enum_getter(message.get_signal_by_name(sig), items), 0, 1.0, 0.0, *bounds[sig]))
        plan = tuple(plan)
        encode = _packer(message, mapped_signals, constants).pack

        def body() -> bytes:
            pack = unwrap(self.pack)
            values = []
            for get, how, factor, offset, low, high in plan:
                value = get(pack)
                if how:
                    value = (1.0 - value) if how == 1 else (value - offset) / factor
                # min(max(value, low), high), compared inline (same result, NaN included)
                if value < low:
                    value = low
                elif value > high:
                    value = high
                values.append(value)
            return encode(values)

        return self._sender(message, body)

    def _enum_getter(self, sig, items) -> Callable[[object], float]:
        """The physical value of enum DBC signal ``sig`` that reads back as the logical flags
        of ``items`` (each ``true_when`` or plain) for the pack's present state."""
        # values whose name says "no valid state" come last: a BMS reports OPEN, not SNA
        names = {float(k) * sig.scale + sig.offset: str(v) for k, v in (sig.choices or {}).items()}
        candidates = sorted(set(names) | {v for m in items for v in (m.true_when or ())},
                            key=lambda v: (bool(_NOT_A_STATE.search(names.get(v, ""))), v))
        getters = [self._getter(m.name, m.states) for m in items]
        table: dict[tuple[bool, ...], float] = {}
        for want in itertools.product((False, True), repeat=len(items)):
            # the value read back as the most of the wanted flags (all of them where the enum can)
            def matches(value: float, want: tuple[bool, ...] = want) -> int:
                return sum((value in m.true_when) == w if m.true_when is not None else bool(value) == w
                           for m, w in zip(items, want))
            table[want] = max(candidates, key=matches, default=0.0)  # max keeps the first of equals

        def get(pack) -> float:
            return table[tuple(bool(g(pack)) for g in getters)]

        return get

    def _group_sender(self, kind: str, group: Group):
        """(period s, sender) for a multiplexed group: each frame carries the next mux value."""
        sigs = {s.name: s for s in group.message.signals}
        by_mux: dict[int, list[tuple[int, str, float, float]]] = {}
        for index, (name, mux_value) in enumerate(zip(group.names, group.mux_values)):
            by_mux.setdefault(mux_value, []).append((index, name, *_bounds(sigs[name])))
        order = sorted(by_mux)
        # per mux value in rotation order: (encoder with the mux pre-packed, (index, low, high) per signal)
        rotation = itertools.cycle([(_packer(group.message, [name for _, name, _, _ in by_mux[mux_value]],
                                            {group.mux: mux_value} if group.mux else None).pack,
                                     tuple((index, low, high) for index, _, low, high in by_mux[mux_value]))
                                    for mux_value in order])
        factor, offset = group.factor, group.offset
        measure = self.measure

        def body() -> bytes:
            encode, rows = next(rotation)
            values = measure.cells if kind == "cells" else measure.temps
            count = len(values)
            out = []
            for index, low, high in rows:
                value = values[index] if index < count else None
                if value is None:  # an invalid reading is sent as the signal's minimum (0 V / -819.2 degC here)
                    out.append(low)
                    continue
                if factor != 1.0 or offset:
                    value = (value - offset) / factor
                if value < low:
                    value = low
                elif value > high:
                    value = high
                out.append(value)
            return encode(out)

        return group.period / len(order), self._sender(group.message, body)

    def _getter(self, name: str, states: dict[str, int]) -> Callable[[object], float]:
        """The value source ``get(pack)`` of logical signal ``name``, chosen once per sender.

        Pack values come from the last measurement cycle (``Measurements.sample``, which the
        sender runs before reading them); the rest are read from ``pack`` (the unwrapped pack)
        and the state machine now.
        """
        m = self.measure
        if name in _FROM_CYCLE:
            return {
                "pack_voltage": lambda pack: m.pack_v,
                "pack_current": lambda pack: m.pack_i,
                "pack_power": lambda pack: m.snap.pack_voltage * m.snap.pack_current,
                "bus_voltage": lambda pack: m.snap.bus_voltage,
                "soc": lambda pack: 100.0 * m.snap.soc,
                "balancing_active": lambda pack: float(m.snap.balancing_cells > 0),
                "balancing_cells": lambda pack: float(m.snap.balancing_cells),
            }[name]
        if name == "soh":
            return lambda pack: 100.0
        if name in _EXTREMES:
            kind, position = _EXTREMES[name]
            return lambda pack: m.extremes_of[kind][position]
        if name == "bms_state":
            machine, error = self.machine, states.get("error", 0)
            return lambda pack: states.get(machine.state, error)
        if name.startswith("contactor_"):
            contactor = name[len("contactor_"):]
            return lambda pack: float(pack.contactor_closed(contactor))
        if name == "hvil_closed":
            return lambda pack: float(pack.hvil_closed())
        if name == "imd_enabled":
            return lambda pack: float(pack.insulation_monitor_enabled)
        if name == "imd_resistance":
            def imd(pack) -> float:
                reading = pack.imd_reading() if pack.insulation_monitor_enabled else None
                return 0.0 if reading is None else float(reading)
            return imd
        if name == "alive_counter":
            def alive(pack) -> float:
                self._alive = (self._alive + 1) % 16
                return float(self._alive)
            return alive
        error_flags = name == "error_flags"

        def flags(pack) -> float:
            value = self.error_flags | self.machine.error_flags
            if m.sensor_fault:
                value |= ERR_SENSOR
            return float(value) if error_flags else float(bool(value))
        return flags

    def _on_message(self, msg: can.Message) -> None:
        if not self.wiring.lv_power:
            return
        request = self.map.request if self.map.commands.path == "can" else None
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
