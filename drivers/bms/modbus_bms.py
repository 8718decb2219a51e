"""A pack BMS over Modbus RTU or TCP, laid out by a register map (drivers/maps/modbus_bms.yaml).

Config (station.yaml)::

    bms:
      driver: modbus_bms
      resource: modbus-rtu:///dev/ttyUSB1?baud=115200&unit=1      # or modbus-tcp://HOST:502?unit=1
      options: {map: modbus_bms.yaml, cells: 96, temperature_sensors: 24,
                poll_period: 0.1, cell_poll_period: 0.5, maker: Acme, model: PackBMS}

Live values are polled: every ``poll_period`` s (default 0.1) the mapped signals (input
registers named like drivers/bms/signal_map.py's logical signals, and the named bits of status
words), every ``cell_poll_period`` s (default 0.5) the per-cell voltages and temperatures, in
as few contiguous requests as the map allows (``autopoll: false``: only when ``poll()`` is
awaited, for exact-exchange tests and bench debugging). A value older than 3 poll periods is stale
(``StaleSignalError``, naming the last failed poll). ``cells``/``temperature_sensors`` default
to the BMS's own ``cell_count``/``temperature_sensor_count`` registers.

Commands are register/coil writes (``mode_request``, ``balancing_request``, ``imd_disable``).
``safe_state()`` confirms its standby request by reading the contactor feedback back (option
``confirm_within``, s, default 1); ``energy_state()`` reads contactors and state once.
Any master request keeps the BMS's 1 s watchdog fed, so a closed mode is held by the polling
itself, as the cyclic request frame holds it on CAN. The UDS methods work where the map has a
register equivalent: DIDs named in drivers/maps/did_table.yaml, DTCs (``dtc_count``/``dtcs``,
``dtc_clear``), seed/key unlock (``security_level``/``security_seed``/``security_key``) and
reset (``ecu_reset``); the rest raise ``InstrumentError`` "not available over Modbus".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drivers.base import IDENTITY_OPTIONS, Driver
from drivers.bms.modbus_map import _COUNTS, REQUIRED, BmsField, is_signal, load_bms_map  # re-exported
from drivers.capabilities import Dtc, Identity, SafeAction, StateFinding
from drivers.clock import stream_limit
from drivers.errors import DeviceError, InstrumentError, InstrumentTimeout, RangeError, StaleSignalError
from drivers.fixture.modbus_fixture import SafeStep, run_all
from drivers.maps.regmap import MapError
from drivers.transports.modbus import ModbusTransport, parse_resource
from drivers.validators import OneOf, Range

if TYPE_CHECKING:
    from drivers.bms.did_table import DidEntry

MODES = OneOf(("standby", "normal", "charge", "discharge"))
SESSIONS = OneOf(("default", "extended", "programming"))
PERIOD = Range(0.01, 60.0, "s")
STALE_CYCLES = 3.0
WAKE_POLL_S = 0.01
MAP_ERRORS = (1, 2, 3)  # exception codes that mean "the map does not fit this BMS": no retry helps
_LIMIT = {"coil": 2000, "discrete": 2000, "holding": 125, "input": 125}
CONTACTORS = ("contactor_main_plus", "contactor_main_minus", "contactor_precharge")
CONFIRM_WITHIN = Range(0.05, 4.0, "s")  # under the engine's 5 s per instrument


@dataclass
class _Group:
    """Fields polled together at one period; ``values`` by name, stamped at the last good poll."""

    name: str
    period: float
    fields: list[tuple[BmsField, int]]  # (field, elements to read: 1 for a scalar)
    values: dict[str, Any] = field(default_factory=dict)
    stamp: float | None = None
    error: InstrumentError | None = None
    due: float = 0.0


class ModbusBms(Driver):
    """``drivers.capabilities.Bms`` over a Modbus register map (polling, writes, UDS equivalents)."""

    TRANSPORT = "modbus"
    OPTIONS = IDENTITY_OPTIONS | {"map", "poll_period", "cell_poll_period", "cells", "temperature_sensors",
                                  "autopoll", "did_table"}

    def __init__(self, name: str, resource: str, **kw: Any) -> None:
        super().__init__(name, resource, **kw)
        parse_resource(resource, name)  # a malformed resource fails at config load
        opts = self.options
        self.map = load_bms_map(opts.get("map", "modbus_bms.yaml"))
        missing = [f"{n} ({'/'.join(t)})" for n, t in REQUIRED.items()
                   if n not in self.map or self.map[n].table not in t]
        if missing:
            raise MapError([f"{self.map.path}: a BMS map needs {', '.join(missing)}"])
        self.poll_period = PERIOD.check(float(opts.get("poll_period", 0.1)), what="poll_period", instrument=name)
        self.cell_poll_period = PERIOD.check(float(opts.get("cell_poll_period", 0.5)),
                                             what="cell_poll_period", instrument=name)
        self.counts = {k: (int(opts[o]) if o in opts else None)
                       for k, o in (("cell_voltages", "cells"), ("cell_temperatures", "temperature_sensors"))}
        signals = [(f, 1) for f in self.map.fields if is_signal(f) or f.name in _COUNTS]
        self.groups = [_Group("signals", self.poll_period, signals)]
        self.groups += [_Group(n, self.cell_poll_period, []) for n in self.counts if n in self.map]
        self.autopoll = bool(opts.get("autopoll", True))
        self.confirm_within = CONFIRM_WITHIN.check(float(opts.get("confirm_within", 1.0)),
                                                   what="option confirm_within", instrument=name)
        self._listeners: list[Callable[[str, float], None]] = []
        self._poller: asyncio.Task[None] | None = None
        self._open = False

    # --- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and start polling (the first poll runs at once)."""
        if self.transport is None:
            self.transport = ModbusTransport(self.resource, timeout=self.timeout, instrument=self.name)
        await self.transport.open()
        self._open = True
        if self.autopoll and self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll_forever())

    async def close(self) -> None:
        self._open = False
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        if self.transport is not None:
            await self.transport.close()

    async def identify(self) -> Identity:
        """Identity from options (``maker``, ``model``, ``serial``, ``firmware``), without bus I/O.

        As for DbcBms: the BMS belongs to the pack under test and may be unpowered when the
        station opens its instruments; its serial and versions are measurements of the pack,
        read by ``bms.identity`` through ``uds_read`` (the identity registers).
        """
        opts = self.options
        return Identity(str(opts.get("maker", "unknown")), str(opts.get("model", "Modbus BMS")),
                        str(opts.get("serial", "")), str(opts.get("firmware", "")), self.calibration_due)

    async def safe_state(self) -> list[SafeAction]:
        """Request standby (contactors open), monitor enabled, balancing off; every one tried.

        Each write is acknowledged by the BMS's Modbus reply; the standby is confirmed only when
        the contactor feedback, read back, shows all open (polled up to ``confirm_within`` s). A
        BMS that does not answer at all (no reply, or a gateway's exception 10/11) gets nothing
        more (it would time out the same way): the request is recorded unconfirmed, with the
        last good reading of the contactors if it showed them open; within one timeout. A BMS
        that answers with a refusal gets the standby request once more with the rest, and the
        error names them all.
        """
        if not self._open:
            return [SafeAction("not open, no request sent", False)]
        m = self.map
        standby: SafeStep = ("requested standby (contactors open)", self._write, m["mode_request"],
                              m["mode_request"].state("standby"))
        rest: list[SafeStep] = [("insulation monitor enabled", self._write, m["imd_disable"], False),
                ("balancing off", self._write, m["balancing_request"], False)]
        try:
            await standby[1](*standby[2:])
        except InstrumentError as exc:
            if not _silent(exc):
                # it answered but refused: try once more along with the rest, report all of it
                return [SafeAction(f"{label} (acknowledged)", True) for label in await run_all(self.name, [standby] + rest)]
            return self._silent_judged(exc)
        acknowledged = [SafeAction(f"{label} (acknowledged)", True) for label in await run_all(self.name, rest)]
        return [await self._contactors_read_back()] + acknowledged

    async def _contactors_read_back(self) -> SafeAction:
        """Read the contactor feedback until all are open or ``confirm_within`` s have passed."""
        f = self._contactor_field()
        if f is None:
            return SafeAction("requested standby (acknowledged); the map has no contactor feedback", False,
                              bus_settles=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.confirm_within
        while True:
            try:
                got = await self._read([(f, 1)])
            except InstrumentError as exc:
                return SafeAction(f"requested standby (acknowledged); contactors not read back ({_bare(exc)})", False,
                                  bus_settles=True)
            closed = [n.removeprefix("contactor_") for n in CONTACTORS if got.get(n)]
            if not closed:
                return SafeAction("requested standby: contactors open (read back)", True)
            if loop.time() >= deadline:
                return SafeAction(f"requested standby (acknowledged): contactors STILL CLOSED ({', '.join(closed)})", False,
                                  bus_settles=True)
            await asyncio.sleep(self.poll_period)

    def _contactor_field(self) -> BmsField | None:
        return next((f for f in self.map.fields
                     if f.name == CONTACTORS[0] or any(b == CONTACTORS[0] for _, b in f.bits)), None)

    async def energy_state(self) -> list[StateFinding]:
        """Contactors and BMS state, read now (one request, bounded by the timeout). A BMS that
        does not answer is reported silent: unpowered it cannot hold a contactor closed, and the
        DMM's bus reading is the independent check."""
        f = self._contactor_field()
        if f is None:
            return [StateFinding("contactors", False, "the register map has no contactor feedback")]
        plan = [(f, 1)] + ([(self.map["bms_state"], 1)] if "bms_state" in self.map and f.name != "bms_state" else [])
        try:
            got = await self._read(plan)
        except InstrumentError as exc:
            if not _silent(exc):
                raise
            return [StateFinding("contactors", True, f"BMS silent ({_bare(exc)}; asleep or unpowered: it cannot "
                                 "hold a contactor closed; the bus voltage is checked too)")]
        closed = [n.removeprefix("contactor_") for n in CONTACTORS if got.get(n)]
        mode = self.map["bms_state"].text_of(int(got["bms_state"])) if "bms_state" in got else "unknown"
        detail = (f"contactors CLOSED: {', '.join(closed)}" if closed else "contactors open") + f" (BMS state {mode})"
        return [StateFinding("contactors", not closed, detail)]

    def _silent_judged(self, exc: InstrumentError) -> list[SafeAction]:
        """A BMS that does not answer, judged by its last good poll: contactors it last reported
        open are confirmed (unpowered or mute, a BMS cannot close them; the DMM checks the bus
        independently), as are the monitor and balancing as last reported; anything else is not."""
        group = self.groups[0]
        why = f"BMS not answering ({_bare(exc)})"
        last = group.values
        if group.stamp is None or any(n not in last for n in CONTACTORS):
            return [SafeAction(f"requested standby (contactors open): {why}, never read its contactors, "
                               "not confirmed", False, bus_settles=True)]
        age = asyncio.get_running_loop().time() - group.stamp
        source = f"{why}; its last reading, {age:.1f} s ago"
        closed = [n.removeprefix("contactor_") for n in CONTACTORS if last.get(n)]
        imd, balancing = last.get("imd_enabled"), last.get("balancing_active")
        return [
            SafeAction(f"requested standby: contactors STILL CLOSED ({', '.join(closed)}; {source})" if closed
                       else f"requested standby: contactors open ({source})", not closed, bus_settles=bool(closed)),
            SafeAction(f"insulation monitor enabled ({source})" if imd
                       else f"insulation monitor enabled: not reported on ({source})", bool(imd), bus_settles=not imd),
            SafeAction(f"balancing off ({source})" if balancing == 0
                       else f"balancing off: not reported off ({source})", balancing == 0, bus_settles=balancing != 0),
        ]

    # --- polling --------------------------------------------------------------------------------

    async def poll(self) -> None:
        """Poll every group once now (with ``autopoll: false`` this is the only polling)."""
        for group in self.groups:
            await self._poll(group)

    async def _poll_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            for group in self.groups:
                if loop.time() >= group.due:
                    group.due = loop.time() + group.period
                    await self._poll(group)
            await asyncio.sleep(max(0.0, min(g.due for g in self.groups) - loop.time()))

    def _plan(self, group: _Group) -> list[tuple[BmsField, int]]:
        if group.name == "signals":
            return group.fields
        n = self.counts[group.name]
        if n is None:  # not configured: the BMS's own count, once a signal poll brought it
            counter = _COUNTS[0] if group.name == "cell_voltages" else _COUNTS[1]
            n = self.groups[0].values.get(counter)
        f = self.map[group.name]
        if n is not None and not 0 <= n <= f.length:
            raise RangeError(f"{group.name}: {n} configured but the map holds {f.length}", instrument=self.name)
        return [(f, int(n))] if n else []

    async def _poll(self, group: _Group) -> None:
        try:
            plan = self._plan(group)
            if not plan:
                return
            values = await self._read(plan)
        except InstrumentError as exc:  # kept for signal()/wake(); the next poll retries
            group.error = exc
            return
        group.values, group.stamp, group.error = values, asyncio.get_running_loop().time(), None
        for name, value in values.items():
            for callback in self._listeners:
                if isinstance(value, list):
                    for i, v in enumerate(value):  # as DbcBms: cell_voltage_<i>, cell_temperature_<i>
                        callback(f"{name.removesuffix('s')}_{i}", v)
                else:
                    callback(name, value)

    async def _read(self, plan: list[tuple[BmsField, int]]) -> dict[str, Any]:
        """Read ``plan`` in contiguous requests; values by name (status bits as their own names)."""
        words: dict[tuple[str, int], Any] = {}
        by_table: dict[str, list[tuple[int, int, BmsField]]] = {}
        for f, n in plan:
            by_table.setdefault(f.table, []).append((f.address, f.registers(n), f))
        for table, spans in by_table.items():
            for start, count, fields in _requests(spans, _LIMIT[table]):
                try:
                    raw = await getattr(self.transport, _READS[table])(start, count)
                except InstrumentError as exc:
                    raise self._named(exc, fields, f"{table} {start}..{start + count - 1}") from exc
                words.update(((table, start + i), w) for i, w in enumerate(raw))
        out: dict[str, Any] = {}
        for f, n in plan:
            values = f.decode_all([words[(f.table, f.address + i)] for i in range(f.registers(n))], n)
            out[f.name] = values if f.length > 1 and not f.text else values[0]
            for bit, flag in f.bits:
                if is_signal(flag):
                    out[flag] = float(int(values[0]) >> bit & 1)
        return out

    def _named(self, exc: InstrumentError, fields: list[BmsField], where: str) -> InstrumentError:
        """The same error type, naming the registers and the signals they carry."""
        message = f"{', '.join(f.name for f in fields)} ({where}): {_bare(exc)}"
        kw = {"code": exc.code} if isinstance(exc, DeviceError) else {}
        return type(exc)(message, instrument=self.name, command=exc.command, **kw)

    def _fresh(self, group: _Group, what: str) -> _Group:
        if not self._open:
            raise InstrumentError("BMS is not open", instrument=self.name, command=what)
        poller = self._poller
        if poller is not None and poller.done() and not poller.cancelled():
            error = poller.exception()
            if error is not None:
                raise error  # a polling bug must not pass for stale data
        now = asyncio.get_running_loop().time()
        why = f"; last poll failed: {_bare(group.error)}" if group.error else ""
        if group.stamp is None:
            raise StaleSignalError(f"{what} never read{why}", instrument=self.name,
                                   command=what) from group.error
        age, limit = now - group.stamp, stream_limit(STALE_CYCLES * group.period)
        if age > limit:
            raise StaleSignalError(f"{what} is stale: last read {age:.3f} s ago (limit {limit:.3f} s){why}",
                                   instrument=self.name, command=what) from group.error
        return group

    # --- live values ----------------------------------------------------------------------------

    async def wake(self, timeout: float) -> float:
        """Wait until every poll group has been read within 3 periods; return the seconds it took.

        A Modbus exception 1/2/3 (the map does not fit this BMS) is raised at once; otherwise
        ``InstrumentTimeout`` after ``timeout`` s names what is missing and the last error.
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            missing = []
            for g in self.groups:
                try:
                    self._fresh(g, g.name)
                except StaleSignalError:
                    missing.append(g)
            if not missing:
                return loop.time() - start
            for g in missing:
                if isinstance(g.error, DeviceError) and g.error.code in MAP_ERRORS:
                    raise g.error
            if loop.time() - start >= timeout:
                last = "; ".join(_bare(g.error) for g in missing if g.error) or "no poll completed"
                raise InstrumentTimeout(f"BMS not awake after {timeout:g} s: no {', '.join(g.name for g in missing)}"
                                        f" ({last})", instrument=self.name, command="wake")
            await asyncio.sleep(WAKE_POLL_S)

    def signal(self, name: str) -> float:
        """Latest polled value of a logical signal (SI units; soc in %)."""
        group = next((g for g in self.groups[:1] if name in g.values or _mapped(g, name)), None)
        if group is None:
            names = sorted({f.name for f, _ in self.groups[0].fields} | {b for f, _ in self.groups[0].fields
                                                                          for _, b in f.bits if is_signal(b)})
            raise InstrumentError(f"signal {name!r} is not in the register map (mapped: {', '.join(names)})",
                                  instrument=self.name, command=name)
        return float(self._fresh(group, f"signal {name}").values[name])  # bits: 0.0 / 1.0

    def state(self) -> str:
        """The BMS state as text from the map's ``states`` (``standby``, ``precharge``, ``normal``, ...)."""
        return self.map["bms_state"].text_of(int(self.signal("bms_state")))

    def cell_voltages(self) -> list[float]:
        return self._cells("cell_voltages")

    def cell_temperatures(self) -> list[float]:
        return self._cells("cell_temperatures")

    def _cells(self, name: str) -> list[float]:
        group = next((g for g in self.groups if g.name == name), None)
        if group is None:
            return []
        return [float(v) for v in self._fresh(group, name).values.get(name, [])]

    def add_listener(self, callback: Callable[[str, float], None]) -> None:
        """Called in the loop with (name, value) for every polled value (cells as ``cell_voltage_<i>``)."""
        self._listeners.append(callback)

    async def read_signal(self, name: str) -> float:
        """Read one signal now (not from the poll cache); errors name the register and signal."""
        for f in self.map.fields:
            if f.name == name or any(b == name for _, b in f.bits):
                return float((await self._read([(f, 1)]))[name])
        raise InstrumentError(f"signal {name!r} is not in the register map", instrument=self.name, command=name)

    # --- commands -------------------------------------------------------------------------------

    async def request_mode(self, mode: str) -> None:
        MODES.check(mode, what="BMS mode", instrument=self.name)
        f = self.map["mode_request"]
        await self._write(f, f.state(mode))

    async def set_balancing(self, on: bool) -> None:
        await self._write(self.map["balancing_request"], bool(on))

    async def set_insulation_monitor(self, enabled: bool) -> None:
        await self._write(self.map["imd_disable"], not enabled)

    async def _write(self, f: BmsField, value: Any) -> None:
        """Write one field (coil or registers); errors name the register and field."""
        if not self._open:
            raise InstrumentError("BMS is not open", instrument=self.name, command=f"write {f.name}")
        call: Callable[[int, Any], Awaitable[None]]
        arg: bool | int | list[int] | list[bool]
        if f.table == "coil":
            call, arg = self.transport.write_coil, bool(value)
        else:
            try:
                words = f.encode(value)
            except ValueError as exc:
                raise RangeError(f"{f.name}: {exc}", instrument=self.name, command=f"write {f.name}") from None
            call, arg = ((self.transport.write_register, words[0]) if len(words) == 1
                         else (self.transport.write_registers, words))
        try:
            await call(f.address, arg)
        except InstrumentError as exc:
            raise self._named(exc, [f], f"{f.table} {f.address}") from exc

    async def _read_field(self, f: BmsField) -> list[Any]:
        """All elements of ``f`` (text as one string)."""
        got = (await self._read([(f, 1 if f.text else f.length)]))[f.name]
        return got if isinstance(got, list) else [got]

    # --- UDS equivalents over registers ---------------------------------------------------------

    def _field(self, name: str, command: str) -> BmsField:
        if name not in self.map:
            raise InstrumentError(f"{command} is not available over Modbus: the register map "
                                  f"{self.map.path} has no field {name!r}", instrument=self.name, command=command)
        return self.map[name]

    def _did(self, did: int, command: str) -> tuple[DidEntry, BmsField]:
        from drivers.bms.did_table import load_did_table  # only stations that use DIDs read it

        entry = load_did_table(self.options.get("did_table")).get(did)
        if entry is None:
            raise InstrumentError(f"DID {did:#06x} is not in the DID table", instrument=self.name, command=command)
        return entry, self._field(entry.name, command)

    async def uds_read(self, did: int) -> bytes:
        """The DID's bytes, from the register field of the same name."""
        command = f"read DID {did:#06x}"
        entry, f = self._did(did, command)
        return f.to_bytes(await self._read_field(f), entry.length)

    async def uds_write(self, did: int, data: bytes) -> None:
        """Write a DID's bytes into the register field of the same name (unlock first if gated)."""
        command = f"write DID {did:#06x}"
        entry, f = self._did(did, command)
        if len(data) != entry.length or not f.writable:
            why = "is read-only" if not f.writable else f"takes {entry.length} bytes, got {len(data)}"
            raise RangeError(f"DID {did:#06x} ({entry.name}) {why}", instrument=self.name, command=command)
        await self._write(f, f.from_bytes(bytes(data)))

    async def uds_session(self, kind: str) -> None:
        """Modbus has no diagnostic sessions: accepted and checked, nothing is sent."""
        SESSIONS.check(kind, what="session", instrument=self.name)

    async def uds_unlock(self, level: int = 1) -> None:
        """Seed/key over registers: write ``security_level``, read ``security_seed``, write ``security_key``."""
        from drivers.bms.did_table import load_did_table
        from drivers.bms.security import compute_key

        command = f"unlock level {level}"
        lvl, seed_f, key_f = (self._field(n, command) for n in ("security_level", "security_seed", "security_key"))
        config = load_did_table(self.options.get("did_table")).security.get(level)
        if config is None:
            raise RangeError(f"no security level {level} in the DID table", instrument=self.name, command=command)
        await self._write(lvl, level)
        seed = seed_f.to_bytes(await self._read_field(seed_f), config.seed_length)
        if any(seed):  # all zeros: already unlocked
            await self._write(key_f, key_f.from_bytes(compute_key(config.algorithm, seed, config.params)))

    async def read_dtcs(self, status_mask: int = 0xFF) -> list[Dtc]:
        """Stored DTCs (``dtcs``: code << 8 | status) whose status matches ``status_mask``."""
        count_f, list_f = self._field("dtc_count", "read DTCs"), self._field("dtcs", "read DTCs")
        n = min(int((await self._read([(count_f, 1)]))["dtc_count"]), list_f.length)
        words = (await self._read([(list_f, n)]))["dtcs"] if n else []
        words = words if isinstance(words, list) else [words]
        return [Dtc(int(w) >> 8, int(w) & 0xFF) for w in words if int(w) & 0xFF & status_mask]

    async def clear_dtcs(self) -> None:
        await self._write(self._field("dtc_clear", "clear DTCs"), True)

    async def ecu_reset(self) -> None:
        await self._write(self._field("ecu_reset", "ECU reset"), True)

    async def routine(self, routine_id: int, data: bytes = b"") -> bytes:
        raise InstrumentError(f"routine {routine_id:#06x} is not available over Modbus",
                              instrument=self.name, command=f"routine {routine_id:#06x}")


_READS = {"coil": "read_coils", "discrete": "read_discrete_inputs", "holding": "read_holding", "input": "read_input"}


def _silent(exc: InstrumentError) -> bool:
    """No answer at all: no reply, or a gateway's exception 10/11 (the BMS behind it is silent)."""
    return isinstance(exc, InstrumentTimeout) or (isinstance(exc, DeviceError) and exc.code in (10, 11))


def _bare(exc: InstrumentError) -> str:
    """An error's message without its instrument prefix and command suffix (to embed it)."""
    return str(exc).removeprefix(f"{exc.instrument}: ").removesuffix(f" (command {exc.command!r})")


def _mapped(group: _Group, name: str) -> bool:
    return any(f.name == name or any(b == name for _, b in f.bits) for f, _ in group.fields)


def _requests(spans: list[tuple[int, int, BmsField]], limit: int) -> list[tuple[int, int, list[BmsField]]]:
    """Merge (address, count, field) spans of one table into contiguous requests of <= ``limit``."""
    out: list[tuple[int, int, list[BmsField]]] = []
    for address, count, f in sorted(spans, key=lambda s: s[0]):
        while count > 0:
            if out and out[-1][0] + out[-1][1] == address and out[-1][1] < limit:
                start, n, fields = out[-1]
                take = min(count, limit - n)
                out[-1] = (start, n + take, fields if fields[-1] is f else fields + [f])
            else:
                take = min(count, limit)
                out.append((address, take, [f]))
            address, count = address + take, count - take
    return out
