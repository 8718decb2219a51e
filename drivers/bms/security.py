"""Seed/key algorithms for UDS SecurityAccess (0x27), pluggable by name.

A key function takes the seed bytes plus the level's ``params`` from the DID table
(drivers/maps/did_table.yaml, ``security:``) as keyword arguments and returns the key bytes.
The simulated ECU and the driver call the same function, so they cannot disagree. A site with
a proprietary algorithm installs it as an entry point, without forking::

    [project.entry-points."eol_station.uds_keys"]
    acme = "acme_station.keys:acme_key"
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

KeyFunction = Callable[..., bytes]
ENTRY_POINT_GROUP = "eol_station.uds_keys"


def xor_key(seed: bytes, constant: int) -> bytes:
    """Key = seed XOR ``constant`` (32-bit, big-endian, repeated over the seed length)."""
    if not isinstance(constant, int) or not 0 <= constant <= 0xFFFFFFFF:
        raise ValueError(f"xor constant must be a 32-bit unsigned integer, got {constant!r}")
    mask = constant.to_bytes(4, "big")
    return bytes(b ^ mask[i % 4] for i, b in enumerate(seed))


def add_rotate_key(seed: bytes, constant: int, rotate: int = 3) -> bytes:
    """Key = rotl32(seed + ``constant``, ``rotate``) on a 4-byte big-endian seed."""
    if len(seed) != 4:
        raise ValueError(f"add_rotate needs a 4-byte seed, got {len(seed)}")
    if not 0 <= constant <= 0xFFFFFFFF or not 0 <= rotate < 32:
        raise ValueError(f"add_rotate needs constant < 2**32 and 0 <= rotate < 32, got {constant}, {rotate}")
    value = (int.from_bytes(seed, "big") + constant) & 0xFFFFFFFF
    value = ((value << rotate) | (value >> (32 - rotate))) & 0xFFFFFFFF
    return value.to_bytes(4, "big")


BUILTIN: dict[str, KeyFunction] = {"xor": xor_key, "add_rotate": add_rotate_key}


def key_function(name: str) -> KeyFunction:
    """Resolve an algorithm name (built-in or entry point); an unknown name lists the valid ones."""
    if name in BUILTIN:
        return BUILTIN[name]
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            found = ep.load()
            if not callable(found):
                raise LookupError(f"seed/key algorithm {name!r}: {ep.value} is not callable")
            key: KeyFunction = found
            return key
    names = sorted({*BUILTIN, *(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))})
    raise LookupError(f"unknown seed/key algorithm {name!r}; valid: {', '.join(names)}")


def compute_key(algorithm: str | KeyFunction, seed: bytes, params: Mapping[str, Any] | None = None) -> bytes:
    """The key for ``seed`` under ``algorithm`` (a name or a key function) with ``params``."""
    func = key_function(algorithm) if isinstance(algorithm, str) else algorithm
    return bytes(func(bytes(seed), **dict(params or {})))
