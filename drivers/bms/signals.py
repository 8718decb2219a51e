"""Loading a BMS signal map file: logical name -> DBC signal, checked against its DBC
(the map itself is ``drivers.bms.signal_map``; its values are stored by ``drivers.bms.live_values``).

A map file (``drivers/maps/*_signals.yaml``) names, for one DBC:

* ``signals``: logical name -> ``Message.Signal`` or ``{signal, factor, offset, unit, invert,
  cycle_ms, states, true_when}``. SI value = DBC physical value x ``factor`` + ``offset``;
  ``unit`` names the unit the DBC's value is in (overriding the DBC's own) and gives ``factor``
  when it is not written (mV -> 0.001, kOhm -> 1000, ...); ``invert`` flips a 0/1 flag;
  ``states`` gives the text of enumerated values (``bms_state``: text -> raw value or the name of
  a value in the DBC's value table); ``true_when`` makes a 0/1 flag of an enum signal: 1 when the
  raw value is one of the listed values or value-table names (contactor state CLOSED, ...).
  Several logical signals may read one DBC signal (three contactors from one state enum).
* ``cells`` / ``temperatures``: per-cell values, ``signals`` either a pattern
  ``"Message.Pattern_{index:03d}"`` (any ``str.format`` spec; ``start`` is the index of the first
  cell, 0 by default, 1 for packs that number their cells from 1) or an explicit list of
  ``Message.Signal`` in cell order; plus ``factor``, ``offset``, ``unit``, ``cycle``, ``cycle_ms``.
  The signals may be spread across the pages (mux values) of one multiplexed message;
  ``cycle: frame`` means the cycle time is per mux frame, ``rotation`` per full pass.
* ``messages``: ``{Message: {cycle_ms: N}}`` for DBCs that carry no cycle times.
* ``request``: the station's request message (command path ``can``) and the value tables of
  ``mode`` (``standby`` required), ``balancing`` and ``insulation_monitor`` (each optional);
  ``fixed`` sets its other signals.
* ``commands``: how the station commands this BMS (drivers/bms/commands.py): ``path: can`` (the
  request message; the default when ``request`` is given), ``uds`` (UDS services per command) or
  ``none`` (a read-only BMS; the default without ``request``).
* ``diagnostics``: ``{did_table: FILE}`` or ``{odx: FILE.pdx, ecu: NAME, security: {LEVEL:
  {algorithm, params, seed_length}}}``: where DIDs, routines and DTCs are described
  (drivers/bms/diagnostics.py); ODX routine names may then name a UDS command's routine.

Signals not in the map are simply not offered (``SignalMap.offers``): a plan expecting one is
refused at validation. Relative file names resolve from the map file's folder.
Cycle times come from the DBC (``GenMsgCycleTime``) unless ``cycle_ms`` overrides them. Problems
are reported all at once as ``PATH:LINE:COL: message`` in a ``SignalMapError``. A DBC file is
parsed once per content (drivers/maps/mapfile.py): the database is shared, never modified.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cantools

from drivers.base import safefile
from drivers.bms.signal_map import LOGICAL, Group, Mapped, Request, SignalMap, SignalMapError
from drivers.maps import mapfile

MAPS = Path(__file__).resolve().parent.parent / "maps"
DEFAULT_MAP = MAPS / "eol_bms_signals.yaml"

_ERROR_NAME = re.compile(r"error_\w+$")
_TOP_KEYS = {"dbc", "signals", "cells", "temperatures", "request", "messages", "commands", "diagnostics"}
_SIGNAL_KEYS = {"signal", "factor", "offset", "unit", "invert", "cycle_ms", "states", "true_when"}
_GROUP_KEYS = {"signals", "start", "factor", "offset", "unit", "cycle", "cycle_ms"}
# unit the DBC value is in -> factor to the SI unit the station uses (V, A, W, ohm, degC, s, %)
UNIT_FACTORS = {"V": 1.0, "mV": 1e-3, "kV": 1e3, "A": 1.0, "mA": 1e-3, "kA": 1e3, "W": 1.0, "kW": 1e3,
                "ohm": 1.0, "Ohm": 1.0, "kOhm": 1e3, "kohm": 1e3, "MOhm": 1e6, "Mohm": 1e6, "degC": 1.0,
                "s": 1.0, "ms": 1e-3, "%": 1.0, "": 1.0}
_REQUEST_KEYS = {"message", "cycle_ms", "mode", "balancing", "insulation_monitor", "fixed"}
_REQUEST_VALUES = {"mode": ("standby", "normal", "charge", "discharge"),
                   "balancing": ("off", "on"), "insulation_monitor": ("enabled", "disabled")}


def load_signal_map(path: str | Path = DEFAULT_MAP, *, dbc: str | Path | None = None,
                    cells: int = 0, temperature_sensors: int = 0) -> SignalMap:
    """Load and validate a map file against its DBC (``dbc`` overrides the file's own)."""
    return _Loader(Path(path), dbc, cells, temperature_sensors).load()


# What cantools' own load_file picks by extension (format, text encoding); read here instead, so a
# FIFO, device, directory or giant file named as the DBC is refused before anything is read.
_DBC_FORMATS = {".dbc": ("dbc", "cp1252"), ".sym": ("sym", "cp1252"), ".kcd": ("kcd", "utf-8"),
                ".arxml": ("arxml", "utf-8")}
DBC_MAX_BYTES = 50_000_000  # a whole-vehicle DBC is a few MB


def _parse_dbc(path: str) -> Any:
    fmt, encoding = _DBC_FORMATS.get(Path(path).suffix.lower(), (None, "utf-8"))
    text = safefile.read_bytes(path, max_bytes=DBC_MAX_BYTES).decode(encoding, errors="replace")
    return cantools.database.load_string(text, database_format=fmt, strict=False)


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
        except safefile.UnsafeFile as exc:  # its message names the file and why, never its content
            self.err(doc, "dbc", f"cannot load DBC: {exc.message}", value="dbc" in doc)
            raise SignalMapError(self.problems) from None
        except Exception as exc:
            self.err(doc, "dbc", f"cannot load DBC {dbc}: {exc}", value="dbc" in doc)
            raise SignalMapError(self.problems) from exc
        self.cycles = self.message_cycles(doc)
        signals = {}
        spec_of = doc.get("signals") or {}
        if not isinstance(spec_of, dict):
            self.err(doc, "signals", "signals must map logical signal names to {signal, ...}", value=True)
            spec_of = {}
        for name, spec in spec_of.items():
            if name not in LOGICAL and not _ERROR_NAME.match(str(name)):
                self.err(doc["signals"], name, f"unknown logical signal {name!r}; known: "
                         f"{', '.join(sorted(LOGICAL))}, error_*")
                continue
            mapped = self.signal(doc["signals"], name, spec)
            if mapped:
                signals[name] = mapped
        groups = {kind: self.group(doc, kind) if kind in doc else None for kind in ("cells", "temperatures")}
        request = self.request(doc["request"]) if "request" in doc else None
        from drivers.bms.commands import load_commands  # the command paths live in their own module

        diagnostics = self.diagnostics(doc)
        commands = load_commands(self, doc, request, lambda: self.routine_names(doc, diagnostics))
        if self.problems:
            raise SignalMapError(sorted(self.problems, key=_position))
        return SignalMap(self.db, signals, groups["cells"], groups["temperatures"], request, commands,
                         diagnostics, str(self.path))

    def message_cycles(self, doc: Any) -> dict[str, float]:
        """``messages: {Name: {cycle_ms: N}}``: cycle times a DBC does not carry."""
        spec = doc.get("messages") or {}
        if not isinstance(spec, dict):
            self.err(doc, "messages", "messages must map message names to {cycle_ms: N}", value=True)
            return {}
        cycles = {}
        for name, item in spec.items():
            try:
                self.db.get_message_by_name(str(name))
            except KeyError:
                self.err(spec, name, f"message {name!r} not in the DBC")
                continue
            if not self.keys(item, {"cycle_ms"}, f"messages.{name}"):
                continue
            ms = self.number(item, "cycle_ms", None)
            if ms is None or ms <= 0:
                self.err(spec, name, f"messages.{name} needs 'cycle_ms' > 0")
                continue
            cycles[str(name)] = ms
        return cycles

    def diagnostics(self, doc: Any) -> dict[str, Any]:
        """``diagnostics: {did_table: FILE}`` or ``{odx: FILE, ecu: NAME}``; paths from the map's folder."""
        spec = doc.get("diagnostics")
        if spec is None:
            return {}
        if not self.keys(spec, {"did_table", "odx", "ecu", "security"}, "diagnostics"):
            return {}
        if ("did_table" in spec) == ("odx" in spec):
            self.err(doc, "diagnostics", "diagnostics needs exactly one of 'did_table' or 'odx'")
            return {}
        out: dict[str, Any] = {}
        for key in ("did_table", "odx"):
            if key in spec:
                path = self.path.parent / str(spec[key])
                if not path.is_file():
                    self.err(spec, key, f"{key} file {path} not found (relative to the map file)", value=True)
                out[key] = str(path)
        if "ecu" in spec:
            out["ecu"] = str(spec["ecu"])
        if "security" in spec:
            out["security"] = self.security(spec)
        return out

    def routine_names(self, doc: Any, diagnostics: dict[str, Any]) -> dict[str, int]:
        """Routine name -> id from the profile's diagnostic description (ODX names its routines)."""
        from drivers.bms.diagnostics import load_diagnostics
        from drivers.bms.did_table import DidTableError

        if not diagnostics or self.problems:
            return {}
        try:
            table = load_diagnostics(diagnostics)
        except DidTableError as exc:
            self.problems.extend(exc.problems)
            return {}
        return {name: rid for rid, name in getattr(table, "routines", {}).items()}

    def security(self, spec: Any) -> dict[int, tuple[str, dict[str, Any], int]]:
        """``security: {LEVEL: {algorithm, params, seed_length}}`` beside an ODX (which cannot
        carry seed/key algorithms): level -> (algorithm, params, seed_length)."""
        from drivers.bms.security import key_function

        table = spec["security"]
        if "odx" not in spec:
            self.err(spec, "security", "diagnostics.security goes with odx (a DID table has its own)")
        if not isinstance(table, dict):
            self.err(spec, "security", "security must map levels to {algorithm, params, seed_length}", value=True)
            return {}
        out: dict[int, tuple[str, dict[str, Any], int]] = {}
        for level, item in table.items():
            if isinstance(level, bool) or not isinstance(level, int) or not self.keys(
                    item, {"algorithm", "params", "seed_length"}, f"security level {level}"):
                self.err(table, level, f"security level {level!r}: an integer level with {{algorithm, params, seed_length}}")
                continue
            try:
                key_function(str(item.get("algorithm")))
            except (KeyError, ValueError, LookupError) as exc:
                self.err(item, "algorithm", str(exc), value=True)
                continue
            params, seed_length = item.get("params") or {}, item.get("seed_length", 4)
            if not isinstance(params, dict) or isinstance(seed_length, bool) or not isinstance(seed_length, int):
                self.err(table, level, f"security level {level}: params must be a mapping, seed_length an integer")
                continue
            out[level] = (str(item["algorithm"]), dict(params), seed_length)
        return out

    def resolve_value(self, node: Any, key: Any, message: Any, sig_name: str, value: Any) -> int | None:
        """A raw value written as a number or as a name of the DBC signal's value table."""
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        choices = message.get_signal_by_name(sig_name).choices or {}
        for raw, text in choices.items():
            if str(text) == str(value):
                return int(raw)
        known = ", ".join(f"{k} {v}" for k, v in choices.items()) or "none (the DBC has no value table for it)"
        self.err(node, key, f"{value!r} is not a value of {message.name}.{sig_name}; its values: {known}", value=True)
        return None

    def unit_factor(self, spec: Any, default: float) -> float:
        """``factor`` if written, else the factor of ``unit`` to SI, else ``default``."""
        if isinstance(spec, dict) and "unit" in spec and "factor" not in spec:
            unit = str(spec["unit"])
            if unit not in UNIT_FACTORS:
                self.err(spec, "unit", f"unknown unit {unit!r}; known: {', '.join(u for u in UNIT_FACTORS if u)}",
                         value=True)
                return default
            return UNIT_FACTORS[unit]
        factor: float = self.number(spec, "factor", default)
        return factor

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
        ms = override if override is not None else (getattr(self, "cycles", {}).get(message.name)
                                                    or message.cycle_time)
        if not ms:
            self.err(node, key, f"message {message.name} has no GenMsgCycleTime; give cycle_ms here "
                                f"or under messages: {{{message.name}: {{cycle_ms: N}}}}")
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
        states = {}
        table = spec.get("states") or {}
        if not isinstance(table, dict):
            self.err(spec, "states", f"states must map names to raw values or value-table names, got {table!r}",
                     value=True)
            table = {}
        for text, value in table.items():
            raw = self.resolve_value(table, text, message, sig, value)
            if raw is not None:
                states[str(text)] = raw
        true_when = None
        if "true_when" in spec:
            items = spec["true_when"]
            raws = ([self.resolve_value(items, i, message, sig, item) for i, item in enumerate(items)]
                    if isinstance(items, list) else [self.resolve_value(spec, "true_when", message, sig, items)])
            dbc_sig = message.get_signal_by_name(sig)
            true_when = frozenset(float(r * dbc_sig.scale + dbc_sig.offset) for r in raws if r is not None)
        return Mapped(name, message, sig, self.unit_factor(spec, 1.0), invert is True,
                      self.period(node, key, message, self.number(spec, "cycle_ms", None)),
                      states, self.number(spec, "offset", 0.0), true_when)

    def group(self, doc: Any, kind: str) -> Group | None:
        spec = doc[kind]
        if not self.keys(spec, _GROUP_KEYS, kind) or "signals" not in spec:
            self.err(doc, kind, f"{kind} needs 'signals: Message.Pattern_{{index:03d}}' or a list of Message.Signal")
            return None
        count = self.counts[kind]
        refs = spec["signals"]
        if isinstance(refs, list):
            refs = [str(r) for r in refs]
            if count and len(refs) < count:
                self.err(spec, "signals", f"{kind}: {count} configured but the list names {len(refs)}", value=True)
                return None
            refs = refs[:count] if count else refs
        else:
            start = spec.get("start", 0)
            if isinstance(start, bool) or not isinstance(start, int):
                self.err(spec, "start", f"start must be an integer (the index of the first cell), got {start!r}",
                         value=True)
                return None
            msg_name, _, pattern = str(refs).partition(".")
            try:
                pattern.format(index=start)
                ok = "{index" in pattern
            except (ValueError, KeyError, IndexError):
                ok = False
            if not ok:
                self.err(spec, "signals", "the pattern must contain {index} (e.g. Cell_{index:03d}) and nothing else "
                         "in braces", value=True)
                return None
            refs = [f"{msg_name}.{pattern.format(index=start + i)}" for i in range(max(count, 1))]
        msg_name = refs[0].partition(".")[0] if refs else ""
        found = self.message_signal(spec, "signals", refs[0]) if refs else None
        if not found:
            return None
        message = found[0]
        mux = next((s.name for s in message.signals if s.is_multiplexer), None)
        by_name = {s.name: s for s in message.signals}
        names, mux_values = [], []
        for ref in refs[:count]:
            ref_msg, _, sig_name = ref.partition(".")
            sig = by_name.get(sig_name) if ref_msg == msg_name else None
            if sig is None:
                self.err(spec, "signals", f"{kind}: {count} configured but {sig_name!r} is not in {message.name} "
                         f"(all of a group's signals are in one message)", value=True)
                return None
            names.append(sig.name)
            mux_values.append(sig.multiplexer_ids[0] if sig.multiplexer_ids else 0)
        cycle = spec.get("cycle", "frame")
        if cycle not in ("frame", "rotation"):
            self.err(spec, "cycle", "cycle must be 'frame' or 'rotation'", value=True)
        period = self.period(spec, "signals", message, self.number(spec, "cycle_ms", None))
        if cycle == "frame":
            period *= max(1, len(set(mux_values)))
        return Group(message, mux or "", tuple(names), tuple(mux_values), self.unit_factor(spec, 1.0), period,
                     self.number(spec, "offset", 0.0))

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
            if item is None and kind != "mode":
                continue  # not commanded through this message: refused at validation
            if kind == "mode":
                texts = ("standby",)  # the safe state's; the others are offered when present
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


__all__ = ["DBC_MAX_BYTES", "DEFAULT_MAP", "LOGICAL", "MAPS", "Group", "Mapped", "Request", "SignalMap",
           "SignalMapError", "load_signal_map"]
