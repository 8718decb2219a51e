"""The live-value store: CAN frames in, latest SI values with their arrival time out.

Built for ingestion speed: every frame id gets a precompiled handler (its cantools message and
the flat list of (DBC signal, slot, factor, invert) it feeds, per mux value for multiplexed
messages); values and stamps live in two flat lists indexed by slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeAlias

import can
import cantools
from cantools.database.can import Message

from drivers.bms.fastcodec import Field, Layout
from drivers.bms.signal_map import SignalMap
from drivers.errors import InstrumentError, StaleSignalError

STALE_CYCLES = 3.0  # a value older than this many cycle times is stale


# (DBC signal, slot, factor, invert, offset, true_when) per mapped entry of a message
_Entry: TypeAlias = tuple[str, int, float, bool, float, frozenset[float] | None]


class _Handler:
    __slots__ = ("message", "mux", "plain", "by_mux", "layout", "length", "mux_field", "fast_plain",
                 "fast_by_mux")

    def __init__(self, message: Message) -> None:
        self.message = message
        self.mux: str | None = None
        self.plain: list[_Entry] = []
        self.by_mux: dict[float, list[_Entry]] = {}  # by multiplexer value (an int; cantools may say 1.0)
        self.layout: Layout | None = None
        # set by compile() together with layout (read only once layout is set)
        self.length = 0
        self.mux_field: tuple[int, int, int] | None = None  # (shift, mask, sign) of the multiplexer
        self.fast_plain: _Entries | None = None
        self.fast_by_mux: dict[float, _Entries] = {}

    def compile(self) -> None:
        """Use integer unpacking (drivers.bms.fastcodec) where the message allows it.

        Every frame then maps to one ``_Entries`` (the plain entries, plus those of its mux
        value). A plain entry that is itself multiplexed keeps the cantools path (it is present
        in some frames only).
        """
        layout = Layout.compile(self.message)
        if layout is None:
            return
        mux = layout.mux
        mux_field = None
        if self.mux is not None:
            if mux is None or mux.scale != 1 or mux.offset != 0:
                return
            mux_field = (mux.shift, mux.mask, mux.sign)
        if any(self.message.get_signal_by_name(sig).multiplexer_ids for sig, *_ in self.plain):
            return
        fields = layout.fields
        self.length = layout.length
        self.mux_field = mux_field
        self.fast_plain = _Entries(fields, self.plain)
        self.fast_by_mux = {value: _Entries(fields, self.plain + items)
                            for value, items in self.by_mux.items()}
        self.layout = layout


class _Entries:
    """The slots one frame fills, precompiled for ``LiveValues.update``.

    ``simple``: (shift, mask, sign, scale, slot) for the usual signal (positive scale, no offset,
    factor 1, not inverted), whose value is ``raw * scale``, the same float as the general
    ``(raw * scale + offset) * factor`` (scale is made a float: an int scale would give an int).
    ``general``: (shift, mask, sign, scale, offset, slot, factor, invert, add) with
    ``add`` the map's offset. ``enums``: (shift, mask, sign, scale, offset, slot, true_when): 1.0
    when the physical value is one of ``true_when``, else 0.0. Raw values are sign-extended as
    ``(raw ^ sign) - sign`` (sign: the sign bit's value, 0 if unsigned).
    ``slots``: every slot in map order, for the listeners.
    """

    __slots__ = ("simple", "general", "enums", "slots")

    def __init__(self, fields: dict[str, Field], items: list[_Entry]) -> None:
        simple: list[tuple[int, int, int, float, int]] = []
        general: list[tuple[int, int, int, float, float, int, float, bool, float]] = []
        enums: list[tuple[int, int, int, float, float, int, frozenset[float]]] = []
        slots: list[int] = []
        for sig, slot, factor, invert, add, true_when in items:
            f = fields[sig]
            if true_when is not None:
                enums.append((f.shift, f.mask, f.sign, f.scale, f.offset, slot, true_when))
            elif f.scale > 0 and f.offset == 0 and factor == 1 and not invert and add == 0:
                simple.append((f.shift, f.mask, f.sign, float(f.scale), slot))
            else:
                general.append((f.shift, f.mask, f.sign, f.scale, f.offset, slot, factor, invert, add))
            slots.append(slot)
        self.simple, self.general, self.enums, self.slots = tuple(simple), tuple(general), tuple(enums), tuple(slots)


class LiveValues:
    """Latest value of every mapped signal and per-cell entry, stamped with ``clock()`` (s).

    ``clock`` defaults to the running loop's time (virtual or real). ``instrument`` names the
    BMS in StaleSignalError messages. ``allowance`` (s of ``clock``) is added to every staleness
    limit: the wall-time latency a scaled clock must allow (``drivers.clock.wall_allowance``).
    """

    def __init__(self, signal_map: SignalMap, *, clock: Callable[[], float] | None = None,
                 instrument: str = "", allowance: float = 0.0) -> None:
        self.map = signal_map
        self.instrument = instrument
        self.allowance = allowance
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._names: list[str] = []
        self._periods: list[float] = []
        self._index: dict[str, int] = {}
        self._handlers: dict[int, _Handler] = {}
        self._seen: dict[int, float] = {}
        self.bad_frames = 0  # frames that did not decode (short, unknown mux value)
        self.listeners: list[Callable[[str, float], None]] = []
        for mapped in signal_map.signals.values():
            slot = self._slot(mapped.name, mapped.period)
            self._handler(mapped.message).plain.append((mapped.signal, slot, mapped.factor, mapped.invert,
                                                        mapped.offset, mapped.true_when))
        self._groups: dict[str, list[int]] = {}
        for kind, group in (("cell_voltage", signal_map.cells), ("cell_temperature", signal_map.temperatures)):
            if group is None:
                continue
            handler = self._handler(group.message)
            handler.mux = group.mux or None
            slots = []
            for i, (sig, mux_value) in enumerate(zip(group.names, group.mux_values)):
                slot = self._slot(f"{kind}_{i}", group.period)
                handler.by_mux.setdefault(mux_value, []).append((sig, slot, group.factor, False, group.offset, None))
                slots.append(slot)
            self._groups[kind] = slots
        for handler in self._handlers.values():
            handler.compile()
        self._values: list[float] = [0.0] * len(self._names)
        self._stamps: list[float | None] = [None] * len(self._names)

    def _slot(self, name: str, period: float) -> int:
        self._index[name] = len(self._names)
        self._names.append(name)
        self._periods.append(period)
        return self._index[name]

    def _handler(self, message: Message) -> _Handler:
        return self._handlers.setdefault(message.frame_id, _Handler(message))

    def update(self, msg: can.Message) -> None:
        """Decode one frame (any object with ``arbitration_id`` and ``data``) and store its values."""
        # One call per frame, unpacking inline, the usual signal as one expression: 112k frames
        # on the reference run; 12.7k -> 10.1k instructions a frame (callgrind, the bench mix).
        handler = self._handlers.get(msg.arbitration_id)
        if handler is None:
            return
        if handler.layout is None:
            self._update_cantools(handler, msg)
            return
        data = msg.data
        length = handler.length
        if len(data) < length:
            self.bad_frames += 1  # short frame, as with cantools
            return
        payload = int.from_bytes(data if len(data) == length else data[:length], "little")
        entries: _Entries | None
        if handler.mux_field is None:
            entries = handler.fast_plain
        else:
            shift, mask, sign = handler.mux_field
            entries = handler.fast_by_mux.get((((payload >> shift) & mask) ^ sign) - sign)
        if entries is None:
            self.bad_frames += 1  # unknown multiplexer value, as with cantools
            return
        now = self._clock()
        self._seen[msg.arbitration_id] = now
        values, stamps = self._values, self._stamps
        for shift, mask, sign, scale, slot in entries.simple:
            values[slot] = ((((payload >> shift) & mask) ^ sign) - sign) * scale
            stamps[slot] = now
        for shift, mask, sign, scale, offset, slot, factor, invert, add in entries.general:
            value = (((((payload >> shift) & mask) ^ sign) - sign) * scale + offset) * factor
            values[slot] = (1.0 - value if invert else value) + add
            stamps[slot] = now
        for shift, mask, sign, scale, offset, slot, true_when in entries.enums:
            physical = ((((payload >> shift) & mask) ^ sign) - sign) * scale + offset
            values[slot] = 1.0 if physical in true_when else 0.0
            stamps[slot] = now
        if self.listeners:
            names = self._names
            for slot in entries.slots:
                name, value = names[slot], values[slot]
                for callback in self.listeners:
                    callback(name, value)

    def _update_cantools(self, handler: _Handler, msg: can.Message) -> None:
        try:
            decoded = handler.message.decode(bytes(msg.data), decode_choices=False, scaling=True)
        except (cantools.database.errors.DecodeError, ValueError, KeyError, IndexError):
            # A short frame or an unknown multiplexer value: a bus problem, not ours to crash
            # on (it would stop the Notifier's other listeners). Count it; the signal goes stale.
            self.bad_frames += 1
            return
        if not isinstance(decoded, dict):  # a container message: never in a signal map
            self.bad_frames += 1
            return
        now = self._clock()
        self._seen[msg.arbitration_id] = now
        values, stamps, listeners = self._values, self._stamps, self.listeners
        entries = handler.plain
        if handler.mux is not None:
            mux_value = decoded[handler.mux]
            muxed = handler.by_mux.get(mux_value, []) if isinstance(mux_value, (int, float)) else []
            entries = entries + muxed if entries else muxed
        for sig, slot, factor, invert, add, true_when in entries:
            physical = decoded.get(sig)
            if not isinstance(physical, (int, float)):  # absent (another mux value), or not a number
                continue
            if true_when is not None:
                value = 1.0 if physical in true_when else 0.0
            else:
                value = physical * factor
                if invert:
                    value = 1.0 - value
                value += add
            values[slot] = value
            stamps[slot] = now
            if listeners:
                name = self._names[slot]
                for callback in listeners:
                    callback(name, value)

    __call__ = update  # a LiveValues is itself a python-can listener

    def _check(self, slot: int, now: float) -> float:
        stamp = self._stamps[slot]
        limit = STALE_CYCLES * self._periods[slot] + self.allowance
        if stamp is None:
            raise StaleSignalError(f"signal {self._names[slot]} never received", instrument=self.instrument)
        age = now - stamp
        if age > limit:
            raise StaleSignalError(f"signal {self._names[slot]} is stale: last received {age:.3f} s ago "
                                   f"(limit {limit:.3f} s)", instrument=self.instrument)
        return self._values[slot]

    def get(self, name: str) -> float:
        """Latest SI value of ``name``; StaleSignalError if older than 3 cycle times or never seen."""
        slot = self._index.get(name)
        if slot is None:
            raise InstrumentError(f"signal {name!r} is not in the signal map "
                                  f"(mapped: {', '.join(sorted(self.map.signals))})", instrument=self.instrument)
        return self._check(slot, self._clock())

    def latest(self, name: str) -> float | None:
        """The last value received for ``name``, however old (None: never, or not in the map);
        ``get`` is the fresh one."""
        slot = self._index.get(name)
        return None if slot is None or self._stamps[slot] is None else self._values[slot]

    def stamp(self, name: str) -> float | None:
        """``clock()`` time ``name`` was last received (None: never, or not in the map)."""
        slot = self._index.get(name)
        return None if slot is None else self._stamps[slot]

    def last(self, name: str) -> tuple[float, float] | None:
        """(value, loop time received) of ``name`` however old, or None if never received or
        not mapped: what a BMS last said, for judging it once it has fallen silent."""
        slot = self._index.get(name)
        stamp = None if slot is None else self._stamps[slot]
        if slot is None or stamp is None:
            return None
        return self._values[slot], stamp

    def group(self, kind: str) -> list[float]:
        """All entries of ``cell_voltage`` / ``cell_temperature`` by index; stale -> StaleSignalError."""
        now = self._clock()
        return [self._check(slot, now) for slot in self._groups.get(kind, [])]

    def state(self, name: str = "bms_state") -> str:
        """Text of an enumerated signal from the map's ``states`` table (e.g. "normal")."""
        raw = int(self.get(name))
        states = self.map.signals[name].states
        return next((text for text, value in states.items() if value == raw), str(raw))

    def missing_messages(self, since: float | None = None) -> list[str]:
        """Mapped cyclic messages not received within 3 cycle times (or never, or not since
        ``since``); a multiplexed message counts as missing until every configured entry has
        arrived once."""
        now = self._clock()
        missing = []
        for frame_id, name in self.map.cyclic_messages().items():
            seen = self._seen.get(frame_id)
            handler = self._handlers[frame_id]
            slots = [e[1] for e in handler.plain] + [e[1] for es in handler.by_mux.values() for e in es]
            if seen is None or (since is not None and seen < since) or \
                    now - seen > STALE_CYCLES * min(self._periods[s] for s in slots) + self.allowance:
                missing.append(name)
                continue
            never = sum(1 for s in slots if self._stamps[s] is None)
            if never:
                missing.append(f"{name} ({never} of {len(slots)} entries not yet received)")
        return missing
