"""Modbus register maps as data: one YAML file read by both the driver and the simulator.

A map lists fields (``name``, ``table`` coil|discrete|holding|input, 0-based protocol
``address``, ``type``, ``word_order``, ``scale``, ``unit``, ``access``, ``description``, and
optionally ``min``/``max`` in engineering units and ``bits`` naming the flags of a status
word). Engineering value = raw value x ``scale``. Loading is strict: unknown keys, wrong
types, duplicate names and overlapping addresses are all reported at once as
``PATH:LINE:COL: message`` lines in one ``MapError``. A loaded map is immutable and cached
per file (drivers/maps/mapfile.py).
"""

from __future__ import annotations

import itertools
import re
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from drivers.maps import mapfile

MAPS_DIR = Path(__file__).resolve().parent
TABLES = ("coil", "discrete", "holding", "input")
# type -> (registers occupied, struct code of the big-endian value)
TYPES: dict[str, tuple[int, str]] = {
    "bool": (1, "?"),
    "uint16": (1, "H"),
    "int16": (1, "h"),
    "uint32": (2, "I"),
    "int32": (2, "i"),
    "float32": (2, "f"),
}
_FIELD_KEYS = ("name", "table", "address", "type", "word_order", "scale", "unit", "access",
               "description", "min", "max", "bits")
_TOP_KEYS = ("name", "description", "registers")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class MapError(ValueError):
    """A register map that does not load; ``problems`` holds one ``PATH:LINE:COL: msg`` each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Field:
    """One named value in a Modbus table. ``min``/``max`` are engineering units (``unit``)."""

    name: str
    table: str
    address: int
    type: str
    word_order: str = "big"
    scale: float = 1.0
    unit: str = ""
    access: str = "r"
    description: str = ""
    min: float | None = None
    max: float | None = None
    bits: tuple[tuple[int, str], ...] = ()

    @property
    def count(self) -> int:
        """Coils/registers this field occupies."""
        return TYPES[self.type][0]

    @property
    def writable(self) -> bool:
        return self.access == "rw"

    def encode(self, value: float | bool) -> list[int] | list[bool]:
        """Engineering value -> raw coil/registers; ``ValueError`` if it does not fit the type."""
        if self.type == "bool":
            return [bool(value)]
        raw: float | int = value / self.scale
        code = TYPES[self.type][1]
        if code != "f":
            raw = round(raw)
        try:
            data = struct.pack(">" + code, raw)
        except struct.error as exc:
            raise ValueError(f"{self.name}: {value!r} does not fit {self.type}") from exc
        words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
        return words[::-1] if self.word_order == "little" else words

    def decode(self, raw: list[int] | list[bool]) -> float | int | bool:
        """Raw coil/registers (exactly ``count`` of them) -> engineering value."""
        if self.type == "bool":
            return bool(raw[0])
        words = list(raw[: self.count])
        if self.word_order == "little":
            words.reverse()
        value: float | int = struct.unpack(">" + TYPES[self.type][1], b"".join(w.to_bytes(2, "big") for w in words))[0]
        return value if self.scale == 1 and self.type != "float32" else value * self.scale

    def flags(self, word: int) -> frozenset[str]:
        """Names of the ``bits`` set in a status word."""
        return frozenset(name for bit, name in self.bits if int(word) >> bit & 1)

    def word(self, flags: set[str] | frozenset[str]) -> int:
        """Status word with the named ``bits`` set (the inverse of ``flags``)."""
        return sum(1 << bit for bit, name in self.bits if name in flags)


F = TypeVar("F", bound=Field, covariant=True)


def _address(f: Field) -> int:
    return f.address  # the map's field class (a BMS map has BmsField)


@dataclass(frozen=True)
class RegisterMap(Generic[F]):
    """A loaded map: fields by name and by table."""

    name: str
    description: str
    fields: tuple[F, ...]
    path: str = "<string>"
    # table -> its fields by address, and its ReadPlan: computed once, the map never changes
    _tables: dict[str, tuple[F, ...]] = dataclass_field(default_factory=dict, init=False, repr=False,
                                                            compare=False)
    _plans: dict[str, ReadPlan] = dataclass_field(default_factory=dict, init=False, repr=False, compare=False)

    def __getitem__(self, name: str) -> F:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(f.name == name for f in self.fields)

    def table(self, table: str) -> tuple[F, ...]:
        """Fields of one table, by address."""
        fields = self._tables.get(table)
        if fields is None:
            fields = self._tables[table] = tuple(sorted((f for f in self.fields if f.table == table),
                                                        key=_address))
        return fields

    def plan(self, table: str) -> ReadPlan:
        """How to read all of ``table`` (computed once)."""
        plan = self._plans.get(table)
        if plan is None:
            plan = self._plans[table] = ReadPlan(self, self.table(table))
        return plan

    def names(self, table: str) -> list[str]:
        return [f.name for f in self.table(table)]

    def at(self, table: str, address: int) -> F | None:
        """The field occupying ``address`` in ``table`` (any of its registers), or None."""
        for f in self.fields:
            if f.table == table and f.address <= address < f.address + f.count:
                return f
        return None

    def blocks(self, fields: list[Field] | tuple[Field, ...], limit: int = 125) -> list[tuple[int, int, list[Field]]]:
        """Group fields of one table into contiguous (start, count, fields) requests of <= ``limit``."""
        runs: list[tuple[int, int, list[Field]]] = []
        for f in sorted(fields, key=lambda f: f.address):
            if runs:
                start, count, group = runs[-1]
                if f.address == start + count and count + f.count <= limit:
                    runs[-1] = (start, count + f.count, group + [f])
                    continue
            runs.append((f.address, f.count, [f]))
        return runs


class ReadPlan:
    """Reading a fixed set of fields of one table: ``blocks`` are the contiguous ``(start, count)``
    requests (at most 2000 bits or 125 registers each) and ``decode`` puts a block's values in a
    dict by name. Built once per table (``RegisterMap.plan``): grouping fields into blocks on
    every read was a quarter of the driver's CPU in a 50 ms fixture poll."""

    __slots__ = ("table", "blocks", "_slots")

    def __init__(self, regmap: RegisterMap[Field], fields: list[Field] | tuple[Field, ...]) -> None:
        self.table = fields[0].table if fields else ""
        runs = regmap.blocks(fields, limit=2000 if self.table in ("coil", "discrete") else 125)
        self.blocks: tuple[tuple[int, int], ...] = tuple((start, count) for start, count, _ in runs)
        # per block: (name, first, end, field to decode; None for a bit, taken as it is)
        self._slots = tuple(tuple((f.name, f.address - start, f.address - start + f.count,
                                   None if f.type == "bool" else f) for f in group)
                            for start, _, group in runs)

    def decode(self, index: int, raw: list[int] | list[bool], out: dict[str, Any]) -> dict[str, Any]:
        """Put the values of block ``index`` (``raw``: its bits or registers) in ``out``; return it."""
        for name, first, end, f in self._slots[index]:
            out[name] = bool(raw[first]) if f is None else f.decode(raw[first:end])
        return out


_READERS = {"coil": "read_coils", "discrete": "read_discrete_inputs", "holding": "read_holding",
            "input": "read_input"}


class RegisterClient(Protocol):
    """What reads and writes registers: ``drivers.transports.modbus.ModbusTransport`` and the
    exact-exchange fake ``drivers.testing.modbus.ExpectedRegisters``."""

    async def read_coils(self, address: int, count: int) -> list[bool]: ...
    async def read_discrete_inputs(self, address: int, count: int) -> list[bool]: ...
    async def read_holding(self, address: int, count: int) -> list[int]: ...
    async def read_input(self, address: int, count: int) -> list[int]: ...
    async def write_coil(self, address: int, value: bool) -> None: ...
    async def write_coils(self, address: int, values: Sequence[bool]) -> None: ...
    async def write_register(self, address: int, value: int) -> None: ...
    async def write_registers(self, address: int, values: Sequence[int]) -> None: ...


async def read_fields(transport: RegisterClient, fields: list[Field] | tuple[Field, ...],
                      regmap: RegisterMap[Field]) -> dict[str, Any]:
    """Read ``fields`` of one table in as few contiguous requests as the map allows."""
    if not fields:
        return {}
    return await read_planned(transport, ReadPlan(regmap, fields))


async def read_planned(transport: RegisterClient, plan: ReadPlan) -> dict[str, Any]:
    """Read what ``plan`` covers (e.g. ``regmap.plan("discrete")``): values by field name."""
    out: dict[str, Any] = {}
    if plan.blocks:
        function: Callable[[int, int], Awaitable[list[int] | list[bool]]] = getattr(transport, _READERS[plan.table])
        for index, (start, count) in enumerate(plan.blocks):
            plan.decode(index, await function(start, count), out)
    return out


def load_map(path: str | Path) -> RegisterMap[Field]:
    """Load and validate a map file (a bare name is looked up in drivers/maps; cached per file)."""
    p = Path(path)
    if not p.is_absolute() and not p.exists() and (MAPS_DIR / p).exists():
        p = MAPS_DIR / p
    try:
        return _load_file(str(p))
    except OSError as exc:
        raise MapError([f"{path}: cannot read map: {exc.strerror}"]) from None


def _read_map(path: str) -> RegisterMap[Field]:
    doc = mapfile.read(path)
    if doc.problems:
        raise MapError(doc.problems)
    return _Checker(doc).check(doc.data)


_load_file = mapfile.cached_per_file(_read_map)


def parse_map(text: str, path: str = "<string>") -> RegisterMap[Field]:
    """Validate YAML ``text`` into a ``RegisterMap``; ``MapError`` lists every problem."""
    doc = mapfile.parse(text, path)
    if doc.problems:
        raise MapError(doc.problems)
    return _Checker(doc).check(doc.data)


class _Checker:
    """Collects every problem with its position (1-based line, col) before giving up."""

    def __init__(self, doc: mapfile.MapDoc) -> None:
        self.doc = doc
        self.path = doc.path
        self.problems: list[str] = []

    def err(self, pos: tuple[int, int] | None, msg: str) -> None:
        line, col = pos or (1, 1)
        self.problems.append(f"{self.path}:{line}:{col}: {msg}")

    def check(self, doc: Any) -> RegisterMap[Field]:
        if not isinstance(doc, dict):
            self.err(None, "a register map is a mapping with 'name' and 'registers'")
            raise MapError(self.problems)
        for key in doc:
            if key not in _TOP_KEYS:
                self.err(self.doc.key(doc, key), f"unknown key {key!r} (valid: {', '.join(_TOP_KEYS)})")
        name = doc.get("name")
        if not isinstance(name, str):
            self.err(self.doc.value(doc, "name") if "name" in doc else None, "'name' must be a string")
        regs = doc.get("registers")
        fields: list[tuple[Field, tuple[int, int]]] = []
        if not isinstance(regs, list):
            pos = self.doc.value(doc, "registers") if "registers" in doc else None
            self.err(pos, "'registers' must be a list of fields")
        else:
            for i, entry in enumerate(regs):
                f = self.field(entry, self.doc.value(regs, i) or (1, 1))
                if f is not None:
                    fields.append(f)
        self.cross_check(fields)
        if self.problems:
            raise MapError(self.problems)
        return RegisterMap(str(name), str(doc.get("description", "")), tuple(f for f, _ in fields), self.path)

    def field(self, e: Any, pos: tuple[int, int]) -> tuple[Field, tuple[int, int]] | None:
        if not isinstance(e, dict):
            self.err(pos, "a field is a mapping (name, table, address, type, ...)")
            return None
        before = len(self.problems)
        for key in e:
            if key not in _FIELD_KEYS:
                self.err(self.doc.key(e, key), f"unknown key {key!r} (valid: {', '.join(_FIELD_KEYS)})")
        for key in ("name", "table", "address"):
            if key not in e:
                self.err(pos, f"missing key {key!r}")

        def value(key: str, kind: type | tuple[type, ...], what: str, default: Any = None) -> Any:
            if key not in e:
                return default
            v = e[key]
            if isinstance(v, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
                v = None
            if not isinstance(v, kind):
                self.err(self.doc.value(e, key), f"{key!r} must be {what}, got {e[key]!r}")
                return default
            return v

        def choice(key: str, options: tuple[str, ...], default: Any) -> Any:
            v = value(key, str, "one of " + "|".join(options), default)
            if v not in options:
                self.err(self.doc.value(e, key), f"{key!r} must be one of {'|'.join(options)}, got {v!r}")
                return default
            return str(v)

        name = value("name", str, "a string", "")
        if name and not _NAME.match(name):
            self.err(self.doc.value(e, "name"), f"name {name!r} must be lower_snake_case")
        table = choice("table", TABLES, "holding") if "table" in e else "holding"
        bit_table = table in ("coil", "discrete")
        ftype = choice("type", tuple(TYPES), "bool" if bit_table else "uint16")
        if bit_table != (ftype == "bool"):
            self.err(self.doc.value(e, "type") if "type" in e else pos,
                     f"type {ftype!r} does not fit table {table!r} (coil/discrete are bool, registers are not)")
        address = value("address", int, "an integer 0..65535", 0)
        if not 0 <= address <= 65536 - TYPES[ftype][0]:
            self.err(self.doc.value(e, "address"),
                     f"address {address} outside 0..{65536 - TYPES[ftype][0]} for {ftype}")
        access = choice("access", ("r", "rw"), "rw" if table in ("coil", "holding") else "r")
        if access == "rw" and table in ("discrete", "input"):
            self.err(self.doc.value(e, "access"), f"table {table!r} is read-only: access must be r")
        scale = value("scale", (int, float), "a number", 1.0)
        if scale == 0:
            self.err(self.doc.value(e, "scale"), "'scale' must not be 0")
        low, high = value("min", (int, float), "a number"), value("max", (int, float), "a number")
        if low is not None and high is not None and low > high:
            self.err(self.doc.value(e, "min"), f"min {low} > max {high}")
        bits = self.bits(e, ftype)
        if len(self.problems) != before:
            return None
        f = Field(str(name), table, int(address), ftype, choice("word_order", ("big", "little"), "big"),
                  float(scale), str(value("unit", str, "a string", "")), access,
                  str(value("description", str, "a string", "")),
                  None if low is None else float(low), None if high is None else float(high), bits)
        return f, self.doc.value(e, "name") or pos

    def bits(self, e: Any, ftype: str) -> tuple[tuple[int, str], ...]:
        if "bits" not in e:
            return ()
        b = e["bits"]
        width = 16 * TYPES[ftype][0]
        if not isinstance(b, dict) or ftype not in ("uint16", "uint32"):
            self.err(self.doc.value(e, "bits"), "'bits' must map bit numbers to names, on a uint16/uint32")
            return ()
        out = []
        for bit, flag in b.items():
            if isinstance(bit, bool) or not isinstance(bit, int) or not 0 <= bit < width or not isinstance(flag, str):
                self.err(self.doc.key(b, bit), f"bit {bit!r}: {flag!r} must be 0..{width - 1}: NAME")
            else:
                out.append((int(bit), str(flag)))
        return tuple(sorted(out))

    def cross_check(self, fields: list[tuple[Field, tuple[int, int]]]) -> None:
        seen: dict[str, tuple[int, int]] = {}
        for f, pos in fields:
            if f.name in seen:
                self.err(pos, f"duplicate name {f.name!r} (first at line {seen[f.name][0]})")
            else:
                seen[f.name] = pos
        for table in TABLES:
            used = sorted((p for p in fields if p[0].table == table), key=lambda p: p[0].address)
            for (a, _), (b, pos) in itertools.pairwise(used):
                if b.address < a.address + a.count:
                    self.err(pos, f"{b.name!r} at {table} {b.address} overlaps {a.name!r} "
                                  f"({table} {a.address}..{a.address + a.count - 1})")
