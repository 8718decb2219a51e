"""BMS signal maps (logical name -> DBC signal) and the live-value store fed by CAN frames.

A map file (``drivers/maps/*_signals.yaml``) names, for one DBC:

* ``signals``: logical name -> ``Message.Signal`` or ``{signal, factor, invert, cycle_ms, states}``;
  ``factor`` converts the DBC's physical unit to SI (mV -> V: 0.001), ``invert`` flips a 0/1 flag,
  ``states`` gives the text of enumerated values (``bms_state``).
* ``cells`` / ``temperatures``: ``{signals: "Message.Pattern_{index:03d}", factor, cycle}`` for
  multiplexed per-cell values; ``cycle: frame`` means the DBC cycle time is per mux frame,
  ``rotation`` means per full pass over all mux values.
* ``request``: the station's request message and the value tables of ``mode``, ``balancing``
  and ``insulation_monitor``; ``fixed`` sets its other signals.

Cycle times come from the DBC (``GenMsgCycleTime``) unless ``cycle_ms`` overrides them. Problems
are reported all at once as ``PATH:LINE:COL: message`` in a ``SignalMapError``. A DBC file is
parsed once per content (drivers/maps/mapfile.py): the database is shared, never modified.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cantools

from drivers.errors import StaleSignalError
from drivers.maps import mapfile

MAPS = Path(__file__).resolve().parent.parent / "maps"
DEFAULT_MAP = MAPS / "eol_bms_signals.yaml"

LOGICAL = frozenset("""
pack_voltage pack_current pack_power bus_voltage soc soh
cell_voltage_min cell_voltage_max cell_voltage_min_index cell_voltage_max_index
cell_temperature_min cell_temperature_max cell_temperature_min_index cell_temperature_max_index
bms_state contactor_main_plus contactor_main_minus contactor_precharge hvil_closed
imd_enabled imd_resistance balancing_active balancing_cells alive_counter
""".split())
_ERROR_NAME = re.compile(r"error_\w+$")
_TOP_KEYS = {"dbc", "signals", "cells", "temperatures", "request"}
_SIGNAL_KEYS = {"signal", "factor", "invert", "cycle_ms", "states"}
_GROUP_KEYS = {"signals", "factor", "cycle", "cycle_ms"}
_REQUEST_KEYS = {"message", "cycle_ms", "mode", "balancing", "insulation_monitor", "fixed"}
_REQUEST_VALUES = {"mode": ("standby", "normal", "charge", "discharge"),
                   "balancing": ("off", "on"), "insulation_monitor": ("enabled", "disabled")}


class SignalMapError(ValueError):
    """Every problem of a map file, one ``PATH:LINE:COL: message`` per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Mapped:
    """One logical value: where it lives, how to make it SI, and its staleness period (s)."""

    name: str
    message: Any  # cantools Message
    signal: str
    factor: float = 1.0
    invert: bool = False
    period: float = 0.1
    states: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """The station -> BMS request message and its value tables (logical text -> raw)."""

    message: Any
    period: float
    signals: dict[str, str]  # "mode" | "balancing" | "insulation_monitor" -> DBC signal
    values: dict[str, dict[str, int]]
    fixed: dict[str, float]

    def encode(self, mode: str, balancing: bool, imd_enabled: bool) -> bytes:
        """Frame data for a request; raw values from the map's tables (strict DBC ranges)."""
        data = {sig.name: 0 for sig in self.message.signals}
        data.update(self.fixed)
        data[self.signals["mode"]] = self.values["mode"][mode]
        data[self.signals["balancing"]] = self.values["balancing"]["on" if balancing else "off"]
        data[self.signals["insulation_monitor"]] = (
            self.values["insulation_monitor"]["enabled" if imd_enabled else "disabled"])
        return bytes(self.message.encode(data, scaling=False, strict=True))

    def decode(self, data: bytes) -> tuple[str, bool, bool]:
        """(mode, balancing, imd_enabled) from a request frame (for the simulated BMS)."""
        raw = self.message.decode(data, decode_choices=False, scaling=False)

        def text(kind: str) -> str:
            value = raw[self.signals[kind]]
            return next((k for k, v in self.values[kind].items() if v == value), "")

        return text("mode"), text("balancing") == "on", text("insulation_monitor") != "disabled"


@dataclass(frozen=True)
class Group:
    """Per-cell (or per-sensor) values in a multiplexed message: entry i is cell i."""

    message: Any
    mux: str
    names: tuple[str, ...]
    mux_values: tuple[int, ...]  # mux value carrying each entry
    factor: float
    period: float  # staleness period of one entry (a full rotation)


@dataclass
class SignalMap:
    db: Any
    signals: dict[str, Mapped]
    cells: Group | None
    temperatures: Group | None
    request: Request | None

    def cyclic_messages(self) -> dict[int, str]:
        """frame id -> message name of every message the driver reads."""
        msgs = {m.message.frame_id: m.message.name for m in self.signals.values()}
        for group in (self.cells, self.temperatures):
            if group is not None and group.names:
                msgs[group.message.frame_id] = group.message.name
        return msgs


def load_signal_map(path: str | Path = DEFAULT_MAP, *, dbc: str | Path | None = None,
                    cells: int = 0, temperature_sensors: int = 0) -> SignalMap:
    """Load and validate a map file against its DBC (``dbc`` overrides the file's own)."""
    return _Loader(Path(path), dbc, cells, temperature_sensors).load()


def _parse_dbc(path: str) -> Any:
    return cantools.database.load_file(path, strict=False)


_load_dbc = mapfile.cached_per_file(_parse_dbc, maxsize=8)


def _position(problem: str) -> tuple[int, int]:
    found = re.search(r":(\d+):(\d+): ", problem)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


class _Loader:
    def __init__(self, path: Path, dbc: str | Path | None, cells: int, temps: int) -> None:
        self.path, self.dbc_path, self.counts = path, dbc, {"cells": cells, "temperatures": temps}
        self.problems: list[str] = []
        self.src = mapfile.MapDoc(str(path))  # the parsed file, with positions (load() reads it)

    def err(self, node: Any, key: Any, message: str, *, value: bool = False) -> None:
        line, col = self.src.pos(node, key, value=value)
        self.problems.append(f"{self.path}:{line}:{col}: {message}")

    def keys(self, node: Any, allowed: set[str], where: str) -> bool:
        if not isinstance(node, dict):
            self.problems.append(f"{self.path}:1:1: {where} must be a mapping")
            return False
        for key in node:
            if key not in allowed:
                self.err(node, key, f"unknown key {key!r} in {where}; allowed: {', '.join(sorted(allowed))}")
        return True

    def load(self) -> SignalMap:
        try:
            self.src = mapfile.read(self.path)
        except OSError as exc:
            raise SignalMapError([f"{self.path}:1:1: cannot read: {exc}"]) from exc
        if self.src.problems:
            raise SignalMapError(self.src.problems)
        doc = self.src.data
        if not self.keys(doc, _TOP_KEYS, "the map"):
            raise SignalMapError(self.problems)
        dbc = Path(self.dbc_path) if self.dbc_path else self.path.parent / str(doc.get("dbc", ""))
        try:
            self.db = _load_dbc(str(dbc))
        except Exception as exc:
            self.err(doc, "dbc", f"cannot load DBC {dbc}: {exc}", value="dbc" in doc)
            raise SignalMapError(self.problems) from exc
        signals = {}
        for name, spec in (doc.get("signals") or {}).items():
            if name not in LOGICAL and not _ERROR_NAME.match(str(name)):
                self.err(doc["signals"], name, f"unknown logical signal {name!r}; known: "
                         f"{', '.join(sorted(LOGICAL))}, error_*")
                continue
            mapped = self.signal(doc["signals"], name, spec)
            if mapped:
                signals[name] = mapped
        groups = {kind: self.group(doc, kind) if kind in doc else None for kind in ("cells", "temperatures")}
        request = self.request(doc["request"]) if "request" in doc else None
        if self.problems:
            raise SignalMapError(sorted(self.problems, key=_position))
        return SignalMap(self.db, signals, groups["cells"], groups["temperatures"], request)

    def message_signal(self, node: Any, key: Any, ref: Any) -> tuple[Any, str] | None:
        msg_name, _, sig_name = str(ref).partition(".")
        try:
            message = self.db.get_message_by_name(msg_name)
        except KeyError:
            self.err(node, key, f"message {msg_name!r} not in the DBC", value=True)
            return None
        if sig_name not in {s.name for s in message.signals}:
            self.err(node, key, f"signal {sig_name!r} not in message {msg_name}", value=True)
            return None
        return message, sig_name

    def number(self, node: Any, key: str, default: Any) -> Any:
        """``node[key]`` as a float (``default`` if absent); anything but a number is a problem."""
        if not isinstance(node, dict) or key not in node:
            return default
        value = node[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.err(node, key, f"{key} must be a number, got {value!r}", value=True)
            return default
        return float(value)

    def table(self, node: Any, key: str) -> dict[str, int] | None:
        """``node[key]``: names -> integer raw values (empty if absent); None (a problem) if not."""
        table = node.get(key) or {}
        if not isinstance(table, dict) or any(isinstance(v, bool) or not isinstance(v, int) for v in table.values()):
            self.err(node, key, f"{key} must map names to integers, got {table!r}", value=True)
            return None
        return {str(k): v for k, v in table.items()}

    def period(self, node: Any, key: Any, message: Any, override: Any) -> float:
        ms = override if override is not None else message.cycle_time
        if not ms:
            self.err(node, key, f"message {message.name} has no GenMsgCycleTime; give cycle_ms")
            return 0.1
        return float(ms) / 1000.0

    def signal(self, parent: Any, name: str, spec: Any) -> Mapped | None:
        node, key = parent, name
        if isinstance(spec, dict):
            if not self.keys(spec, _SIGNAL_KEYS, f"signal {name}"):
                return None
            if "signal" not in spec:
                self.err(parent, name, f"signal {name} needs 'signal: Message.Signal'")
                return None
            node, key, ref = spec, "signal", spec["signal"]
        else:
            spec, ref = {}, spec
        found = self.message_signal(node, key, ref)
        if not found:
            return None
        message, sig = found
        invert = spec.get("invert", False)
        if not isinstance(invert, bool):
            self.err(spec, "invert", f"invert must be true or false, got {invert!r}", value=True)
        return Mapped(name, message, sig, self.number(spec, "factor", 1.0), invert is True,
                      self.period(node, key, message, self.number(spec, "cycle_ms", None)),
                      self.table(spec, "states") or {})

    def group(self, doc: Any, kind: str) -> Group | None:
        spec = doc[kind]
        if not self.keys(spec, _GROUP_KEYS, kind) or "signals" not in spec:
            self.err(doc, kind, f"{kind} needs 'signals: Message.Pattern_{{index:03d}}'")
            return None
        msg_name, _, pattern = str(spec["signals"]).partition(".")
        try:
            first = pattern.format(index=0) if "{index" in pattern else None
        except (ValueError, KeyError, IndexError):
            first = None
        if first is None:
            self.err(spec, "signals", "the pattern must contain {index} (e.g. Cell_{index:03d})", value=True)
            return None
        found = self.message_signal(spec, "signals", f"{msg_name}.{first}")
        if not found:
            return None
        message = found[0]
        mux = next((s.name for s in message.signals if s.is_multiplexer), None)
        by_name = {s.name: s for s in message.signals}
        names, mux_values = [], []
        for index in range(self.counts[kind]):
            sig = by_name.get(pattern.format(index=index))
            if sig is None:
                self.err(spec, "signals", f"{kind}: {self.counts[kind]} configured but "
                         f"{pattern.format(index=index)!r} is not in {message.name}", value=True)
                return None
            names.append(sig.name)
            mux_values.append(sig.multiplexer_ids[0] if sig.multiplexer_ids else 0)
        cycle = spec.get("cycle", "frame")
        if cycle not in ("frame", "rotation"):
            self.err(spec, "cycle", "cycle must be 'frame' or 'rotation'", value=True)
        period = self.period(spec, "signals", message, self.number(spec, "cycle_ms", None))
        if cycle == "frame":
            period *= max(1, len(set(mux_values)))
        return Group(message, mux or "", tuple(names), tuple(mux_values), self.number(spec, "factor", 1.0), period)

    def request(self, spec: Any) -> Request | None:
        if not self.keys(spec, _REQUEST_KEYS, "request") or "message" not in spec:
            return None
        try:
            message = self.db.get_message_by_name(str(spec["message"]))
        except KeyError:
            self.err(spec, "message", f"message {spec['message']!r} not in the DBC", value=True)
            return None
        sig_names = {s.name for s in message.signals}
        signals, values = {}, {}
        for kind, texts in _REQUEST_VALUES.items():
            item = spec.get(kind)
            if not isinstance(item, dict) or "signal" not in item or "values" not in item:
                self.err(spec, kind if kind in spec else "message", f"request.{kind} needs 'signal' and 'values'")
                continue
            self.keys(item, {"signal", "values"}, f"request.{kind}")
            if str(item["signal"]) not in sig_names:
                self.err(item, "signal", f"signal {item['signal']!r} not in message {message.name}", value=True)
            signals[kind] = str(item["signal"])
            table = self.table(item, "values")
            missing = [t for t in texts if t not in (table or {})]
            if table is not None and missing:
                self.err(item, "values", f"request.{kind} values lack {missing}")
            values[kind] = table or {}
        fixed = spec.get("fixed") or {}
        if not isinstance(fixed, dict):
            self.err(spec, "fixed", "fixed must map signal names to numbers", value=True)
            fixed = {}
        for key, value in fixed.items():
            if key not in sig_names:
                self.err(fixed, key, f"signal {key!r} not in message {message.name}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                self.err(fixed, key, f"fixed {key} must be a number, got {value!r}", value=True)
        fixed = {str(k): v for k, v in fixed.items()}
        period = (self.number(spec, "cycle_ms", None) or message.cycle_time or 100) / 1000.0
        return Request(message, period, signals, values, fixed)
