"""The UDS DID table (drivers/maps/did_table.yaml): what each data identifier holds and how.

One file read by both the driver and the simulated ECU. Every DID has a fixed byte length and a
codec that turns a value (str, int, date) into exactly those bytes and back; encoding refuses
(``DidValueError``) rather than truncating or clipping. Load errors name the spot in the file as
``PATH:LINE:COL: message``. A loaded table is treated as immutable and cached per file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from drivers.maps import mapfile

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "maps" / "did_table.yaml"
CODECS = ("ascii", "uint", "hex", "bcd-date")
_DID_KEYS = {"name", "length", "codec", "writable", "security", "default", "description"}
_LEVEL_KEYS = {"algorithm", "params", "seed_length"}


class DidTableError(ValueError):
    """The table file is invalid; ``problems`` holds one ``PATH:LINE:COL: message`` each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class DidValueError(ValueError):
    """A value that the DID's codec cannot represent in its length (refused, never clipped)."""


@dataclass(frozen=True)
class DidEntry:
    """One data identifier: ``length`` bytes, coded by ``codec``."""

    did: int
    name: str
    length: int
    codec: str
    writable: bool = False
    security: int = 0  # level to unlock before writing; 0 = none
    default: bytes = b""
    description: str = ""

    def encode(self, value: Any) -> bytes:
        """Value in the codec's form (or raw bytes of the right length) -> payload bytes."""
        if isinstance(value, (bytes, bytearray)):
            data = bytes(value)
        else:
            data = _ENCODERS[self.codec](value, self.length)
        if len(data) != self.length:
            raise DidValueError(f"DID {self.did:#06x} ({self.name}) takes {self.length} bytes, got {len(data)}")
        return data

    def decode(self, data: bytes) -> Any:
        """Payload bytes -> value: str (ascii, hex), int (uint), date or None (bcd-date)."""
        if len(data) != self.length:
            raise DidValueError(f"DID {self.did:#06x} ({self.name}) holds {self.length} bytes, got {len(data)}")
        return _DECODERS[self.codec](bytes(data))


@dataclass(frozen=True)
class SecurityLevel:
    """Seed/key configuration of one 0x27 level (requestSeed = 2*level-1, sendKey = 2*level)."""

    level: int
    algorithm: str
    params: Mapping[str, Any] = field(default_factory=dict)
    seed_length: int = 4


@dataclass(frozen=True)
class DidTable:
    path: str
    entries: Mapping[int, DidEntry]
    security: Mapping[int, SecurityLevel]

    def __contains__(self, did: object) -> bool:
        return did in self.entries

    def __getitem__(self, did: int) -> DidEntry:
        return self.entries[did]

    def get(self, did: int) -> DidEntry | None:
        return self.entries.get(did)

    def resolve(self, did_or_name: int | str) -> DidEntry:
        """Entry by number or by name; ``KeyError`` naming the table if unknown."""
        if isinstance(did_or_name, str):
            for entry in self.entries.values():
                if entry.name == did_or_name:
                    return entry
            raise KeyError(f"no DID named {did_or_name!r} in {self.path}")
        try:
            return self.entries[did_or_name]
        except KeyError:
            raise KeyError(f"DID {did_or_name:#06x} not in {self.path}") from None


# --- codecs -------------------------------------------------------------------------------------

def _enc_ascii(value: Any, length: int) -> bytes:
    if not isinstance(value, str):
        raise DidValueError(f"ascii value must be a string, got {value!r}")
    try:
        data = value.encode("ascii")
    except UnicodeEncodeError:
        raise DidValueError(f"{value!r} is not ASCII") from None
    if len(data) > length:
        raise DidValueError(f"{value!r} is {len(data)} characters, longer than {length}")
    return data.ljust(length, b" ")


def _enc_uint(value: Any, length: int) -> bytes:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 256**length:
        raise DidValueError(f"uint value must be an integer in [0, {256**length - 1}], got {value!r}")
    return int(value).to_bytes(length, "big")


def _enc_hex(value: Any, length: int) -> bytes:
    try:
        return bytes.fromhex(str(value))
    except ValueError:
        raise DidValueError(f"hex value must be a hex string, got {value!r}") from None


def _enc_bcd_date(value: Any, length: int) -> bytes:
    if value is None:
        return bytes(length)
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            raise DidValueError(f"date must be YYYY-MM-DD, got {value!r}") from None
    if not isinstance(value, dt.date):
        raise DidValueError(f"bcd-date value must be a date or YYYY-MM-DD, got {value!r}")
    digits = f"{value.year:04d}{value.month:02d}{value.day:02d}"[8 - 2 * length :]
    if length == 3 and not 2000 <= value.year <= 2099:
        raise DidValueError(f"a 3-byte BCD date holds years 2000-2099, got {value.year}")
    return bytes.fromhex(digits)


def _dec_ascii(data: bytes) -> str:
    try:
        return data.decode("ascii").rstrip(" \x00")
    except UnicodeDecodeError:
        raise DidValueError(f"not ASCII: {data.hex(' ')}") from None


def _dec_bcd_date(data: bytes) -> dt.date | None:
    if not any(data):
        return None
    digits = data.hex()
    if not digits.isdigit():
        raise DidValueError(f"not BCD: {data.hex(' ')}")
    if len(data) == 3:
        digits = "20" + digits
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError as exc:
        raise DidValueError(f"BCD date {data.hex(' ')}: {exc}") from None


_ENCODERS = {"ascii": _enc_ascii, "uint": _enc_uint, "hex": _enc_hex, "bcd-date": _enc_bcd_date}
_DECODERS = {
    "ascii": _dec_ascii,
    "uint": lambda data: int.from_bytes(data, "big"),
    "hex": lambda data: data.hex().upper(),
    "bcd-date": _dec_bcd_date,
}


# --- loading ------------------------------------------------------------------------------------

def load_did_table(path: str | Path | None = None) -> DidTable:
    """Read and check a DID table file (default: the shipped drivers/maps/did_table.yaml);
    cached per file, so callers share one table and must not modify it."""
    return _load_file(Path(path) if path is not None else DEFAULT_PATH)


def _read_did_table(path: Path) -> DidTable:
    return _check(mapfile.read(path))


_load_file = mapfile.cached_per_file(_read_did_table)


def parse_did_table(text: str, path: str = "<string>") -> DidTable:
    """Check the YAML text of a DID table; raise ``DidTableError`` listing every problem."""
    return _check(mapfile.parse(text, path))


def _check(doc: mapfile.MapDoc) -> DidTable:
    if doc.problems:
        raise DidTableError(doc.problems)
    checker = _Checker(doc)
    entries, security = checker.document(doc.data)
    if checker.problems:
        raise DidTableError(checker.problems)
    return DidTable(doc.path, MappingProxyType(entries), MappingProxyType(security))  # shared: read-only


class _Checker:
    """Walks the parsed document, collecting ``PATH:LINE:COL: message`` problems."""

    def __init__(self, doc: mapfile.MapDoc) -> None:
        self.doc = doc
        self.path = doc.path
        self.problems: list[str] = []

    def fail(self, node: Any, key: Any, message: str, value: bool = False) -> None:
        """Record ``message`` at ``node``'s key (or its value), or at the node itself."""
        line, col = self.doc.pos(node, key, value=value)
        self.problems.append(f"{self.path}:{line}:{col}: {message}")

    def known_keys(self, node: Mapping[Any, Any], allowed: set[str] | tuple[str, ...]) -> None:
        for key in node:
            if key not in allowed:
                self.fail(node, key, f"unknown key {key!r} (expected {', '.join(sorted(allowed))})")

    def document(self, doc: Any) -> tuple[dict[int, DidEntry], dict[int, SecurityLevel]]:
        if not isinstance(doc, Mapping):
            self.fail(doc, None, "a DID table is a mapping with 'schema_version', 'security' and 'dids'")
            return {}, {}
        self.known_keys(doc, ("schema_version", "security", "dids"))
        if doc.get("schema_version") != 1:
            self.fail(doc, "schema_version" if "schema_version" in doc else None, "schema_version must be 1")
        security = self.security(doc.get("security") or {})
        dids = doc.get("dids")
        if not isinstance(dids, Mapping) or not dids:
            self.fail(doc, "dids" if "dids" in doc else None, "'dids' must be a non-empty mapping")
            return {}, security
        entries: dict[int, DidEntry] = {}
        names: set[str] = set()
        for did, spec in dids.items():
            entry = self.entry(dids, did, spec, security)
            if entry is None:
                continue
            if entry.name in names:
                self.fail(spec, "name", f"duplicate DID name {entry.name!r}", value=True)
            names.add(entry.name)
            entries[entry.did] = entry
        return entries, security

    def security(self, node: Any) -> dict[int, SecurityLevel]:
        levels: dict[int, SecurityLevel] = {}
        if not isinstance(node, Mapping):
            self.fail(node, None, "'security' must map level -> {algorithm, params, seed_length}")
            return levels
        for level, spec in node.items():
            if not isinstance(level, int) or not 1 <= level <= 0x3F:
                self.fail(node, level, f"security level must be an integer 1..63, got {level!r}")
                continue
            if not isinstance(spec, Mapping) or not isinstance(spec.get("algorithm"), str):
                self.fail(node, level, f"security level {level} needs an 'algorithm' name")
                continue
            self.known_keys(spec, _LEVEL_KEYS)
            params, seed_length = spec.get("params") or {}, spec.get("seed_length", 4)
            if not isinstance(params, Mapping):
                self.fail(spec, "params", "'params' must be a mapping", value=True)
                continue
            if not isinstance(seed_length, int) or not 1 <= seed_length <= 64:
                self.fail(spec, "seed_length", "seed_length must be an integer 1..64", value=True)
                continue
            levels[int(level)] = SecurityLevel(
                int(level), spec["algorithm"], MappingProxyType({str(k): _plain(v) for k, v in params.items()}),
                seed_length
            )
        return levels

    def entry(self, dids: Any, did: Any, spec: Any, security: Mapping[int, SecurityLevel]) -> DidEntry | None:
        if not isinstance(did, int) or isinstance(did, bool) or not 0 <= did <= 0xFFFF:
            self.fail(dids, did, f"DID must be an integer 0x0000..0xFFFF, got {did!r}")
            return None
        if not isinstance(spec, Mapping):
            self.fail(dids, did, f"DID {did:#06x} must map to {{name, length, codec, ...}}")
            return None
        before = len(self.problems)
        self.known_keys(spec, _DID_KEYS)
        for key in ("name", "length", "codec"):
            if key not in spec:
                self.fail(dids, did, f"DID {did:#06x} is missing {key!r}")
        name, length, codec = spec.get("name"), spec.get("length"), spec.get("codec")
        writable, level = spec.get("writable", False), spec.get("security", 0)
        if "name" in spec and not (isinstance(name, str) and name.isidentifier()):
            self.fail(spec, "name", f"name must be an identifier, got {name!r}", value=True)
        if "length" in spec and (not isinstance(length, int) or isinstance(length, bool) or not 1 <= length <= 4000):
            self.fail(spec, "length", f"length must be an integer 1..4000 bytes, got {length!r}", value=True)
        if "codec" in spec and codec not in CODECS:
            self.fail(spec, "codec", f"codec {codec!r} not one of {', '.join(CODECS)}", value=True)
        elif codec == "bcd-date" and length not in (3, 4):
            self.fail(spec, "length", "a bcd-date is 3 (YYMMDD) or 4 (YYYYMMDD) bytes", value=True)
        if not isinstance(writable, bool):
            self.fail(spec, "writable", "writable must be true or false", value=True)
        if not isinstance(level, int) or isinstance(level, bool) or (level and level not in security):
            self.fail(spec, "security", f"security level {level!r} is not defined under 'security'", value=True)
        if len(self.problems) > before or not (isinstance(name, str) and isinstance(length, int)
                                               and isinstance(codec, str)):  # each checked above
            return None
        entry = DidEntry(int(did), name, length, codec, writable, int(level), bytes(length), str(spec.get("description", "")))
        if "default" in spec:
            try:
                entry = replace(entry, default=entry.encode(_plain(spec["default"])))
            except DidValueError as exc:
                self.fail(spec, "default", f"default: {exc}", value=True)
                return None
        return entry


def _plain(value: Any) -> Any:
    """A scalar as it is (YAML 1.2: a date is the string ``YYYY-MM-DD``); a list or mapping as text."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)
