"""The Modbus BMS register map: drivers/maps/regmap.py plus arrays, ASCII strings and
enumerated states, loaded with PATH:LINE:COL errors (``load_bms_map``, cached per file)."""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.bms.signal_map import LOGICAL
from drivers.errors import RangeError
from drivers.maps import mapfile, regmap
from drivers.maps.regmap import Field, MapError, RegisterMap

REQUIRED = {"mode_request": ("holding",), "bms_state": ("input", "holding"),
            "balancing_request": ("coil", "holding"), "imd_disable": ("coil", "holding")}
_COUNTS = ("cell_count", "temperature_sensor_count")


# --- the map: drivers/maps/regmap.py plus arrays, ASCII strings and enumerated states -----------
# (Candidate for regmap itself: a `length` key and a `string` type; see the module docstring.)


@dataclass(frozen=True)
class BmsField(Field):
    """A regmap field that may be an array (``length`` elements), ASCII text (``text``: ``length``
    registers, 2 characters each, high byte first, space padded) or enumerated (``states``)."""

    length: int = 1
    text: bool = False
    states: tuple[tuple[str, int], ...] = ()

    def registers(self, n: int) -> int:
        """Registers (or bits) that ``n`` elements occupy; text always occupies all of them."""
        return self.length if self.text else regmap.TYPES[self.type][0] * n

    @property
    def count(self) -> int:
        return self.registers(self.length)

    def encode(self, value: Any) -> list[int] | list[bool]:
        """Engineering value (a list for an array, str for text) -> raw words/bits."""
        if self.text:
            data = (value if isinstance(value, str) else "").encode("ascii", "strict")
            if len(data) > 2 * self.length:
                raise ValueError(f"{self.name}: {value!r} is longer than {2 * self.length} characters")
            data = data.ljust(2 * self.length, b" ")
            return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
        if self.length == 1:
            return super().encode(value)
        items = list(value) if isinstance(value, (list, tuple)) else [value] * self.length
        words: list[Any] = [w for item in items for w in Field.encode(self, item)]
        return words

    def decode(self, raw: list[int] | list[bool]) -> Any:
        values = self.decode_all(list(raw), self.length)
        return values[0] if self.text or self.length == 1 else values

    def decode_all(self, raw: list[int] | list[bool], n: int) -> list[Any]:
        """The first ``n`` elements from their raw words (text: one string)."""
        if self.text:
            data = b"".join(int(w).to_bytes(2, "big") for w in raw[:self.length])
            return [data.decode("ascii", "replace").rstrip(" \x00")]
        size = regmap.TYPES[self.type][0]
        return [Field.decode(self, raw[i * size:(i + 1) * size]) for i in range(n)]

    def to_bytes(self, values: list[Any], length: int) -> bytes:
        """A DID's ``length`` bytes from the decoded value (text space padded, numbers big-endian)."""
        if self.text:
            return str(values[0]).encode("ascii", "replace").ljust(length, b" ")[:length]
        raw: int = round(values[0] / self.scale)
        return (raw & ((1 << 8 * length) - 1)).to_bytes(length, "big")

    def from_bytes(self, data: bytes) -> Any:
        """The value to ``encode`` for a DID's bytes."""
        return data.decode("ascii") if self.text else int.from_bytes(data, "big") * self.scale

    def state(self, text: str) -> int:
        """Raw value of a state name; ``RangeError`` if the map has none."""
        for name, raw in self.states:
            if name == text:
                return raw
        raise RangeError(f"{self.name} has no state {text!r} (states: {', '.join(n for n, _ in self.states)})")

    def text_of(self, raw: int) -> str:
        return next((name for name, value in self.states if value == raw), str(raw))


_ERROR = re.compile(r"^error_\w+$")


def is_signal(item: BmsField | str) -> bool:
    """A logical BMS signal (drivers/bms/signal_map.py), or a scalar field carrying one or its bits."""
    if isinstance(item, str):
        return item in LOGICAL or bool(_ERROR.match(item))
    return (not item.text and item.length == 1 and item.table in ("input", "discrete")
            and (is_signal(item.name) or any(is_signal(b) for _, b in item.bits)))


def load_bms_map(path: str | Path) -> RegisterMap[BmsField]:
    """Load a BMS map: regmap's checks plus ``length``, ``type: string`` and ``states``;
    every problem as ``PATH:LINE:COL: message`` in one ``MapError``. The map is immutable and
    cached per file (a bare name is looked up in drivers/maps)."""
    p = Path(path)
    if not p.is_absolute() and not p.exists() and (regmap.MAPS_DIR / p).exists():
        p = regmap.MAPS_DIR / p
    try:
        return _load_file(p)
    except OSError as exc:
        raise MapError([f"{path}: cannot read map: {exc.strerror}"]) from None


def _read_bms_map(p: Path) -> RegisterMap[BmsField]:
    src = mapfile.read(p)
    if src.problems:
        raise MapError(src.problems)
    doc = src.data
    problems: list[str] = []
    extras: dict[str, dict[str, Any]] = {}

    def err(pos: tuple[int, int] | None, msg: str) -> None:
        line, col = pos or (1, 1)
        problems.append(f"{p}:{line}:{col}: {msg}")

    regs = doc.get("registers") if isinstance(doc, dict) else None
    for e in regs if isinstance(regs, list) else []:
        if not isinstance(e, dict):
            continue
        extra: dict[str, Any] = {}
        if "length" in e:
            n = e["length"]
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 2000:
                err(src.value(e, "length"), f"'length' must be an integer 1..2000, got {n!r}")
            else:
                extra["length"] = n
            del e["length"]
        if "states" in e:
            s = e["states"]
            if not isinstance(s, dict) or not all(isinstance(k, str) and isinstance(v, int)
                                                  and not isinstance(v, bool) for k, v in s.items()):
                err(src.value(e, "states"), "'states' must map names to integers")
            else:
                extra["states"] = tuple((str(k), int(v)) for k, v in s.items())
            del e["states"]
        if e.get("type") == "string":
            extra["text"] = True
            e["type"] = "uint16"  # regmap checks the rest as for one register
            if "length" not in extra:
                err(src.value(e, "type"), "a string needs 'length' (registers, 2 characters each)")
        if extra:
            extras[str(e.get("name"))] = extra
    try:
        base = regmap._Checker(src).check(doc)
    except MapError as exc:
        raise MapError(exc.problems + problems) from None
    fields = [BmsField(**{k.name: getattr(f, k.name) for k in dataclasses.fields(Field)}, **extras.get(f.name, {}))
              for f in base.fields]
    for table in regmap.TABLES:
        used = sorted((f for f in fields if f.table == table), key=lambda f: f.address)
        for a, b in itertools.pairwise(used):
            if b.address < a.address + a.count:
                problems.append(f"{p}: {b.name!r} at {table} {b.address} overlaps {a.name!r} "
                                f"({table} {a.address}..{a.address + a.count - 1})")
    if problems:
        raise MapError(problems)
    return RegisterMap(base.name, base.description, tuple(fields), base.path)


_load_file = mapfile.cached_per_file(_read_bms_map)
