"""What a release covers: a manifest of named files with their sha256, and its digest.

The plan and the libraries it includes are in ``BoundPlan.release_sha256`` already. A station
may also depend on *profile files* (a pack or BMS definition, a DBC) named in its instruments'
options or as a fixture's simulator preset: those are added to the manifest, so editing one
un-releases every plan on that station exactly as editing the plan does.

Digest: ``BoundPlan.release_sha256`` when there is nothing else (releases made before profile
files existed stay valid), else the sha256 of::

    eol-release-manifest/2
    release <BoundPlan.release_sha256>
    <sha256>  profile:<path relative to the config>     (one line per file, sorted)

To cover another kind of file, add its option key to ``PROFILE_OPTION_KEYS`` (or its own entry
to ``extra_files``): the manifest and the digest follow.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from drivers.base import safefile
from station.config import LoadedConfig
from station.plan.tree import BoundPlan

# Instrument option keys whose value names a file the pack's behaviour depends on.
PROFILE_OPTION_KEYS = frozenset({"profile", "pack_profile", "bms_profile", "pack_file", "definition", "dbc"})
MANIFEST_HEADER = "eol-release-manifest/2"


PROFILE_MAX_BYTES = 200_000_000  # the largest profile file (a whole-vehicle DBC or ODX) digested


def _sha256(config: LoadedConfig, path: Path, loc: tuple) -> str:
    """sha256 of a profile file; a FIFO, device, directory or oversized file is an ``InputError``
    at the config option that names it (never waited on, never read whole)."""
    try:
        return hashlib.sha256(safefile.read_bytes(path, max_bytes=PROFILE_MAX_BYTES)).hexdigest()
    except safefile.UnsafeFile as err:
        raise config.problem(loc, f"profile file refused for the release manifest: {err.message}") from None


def _name(config: LoadedConfig, path: Path) -> str:
    return Path(os.path.relpath(path.resolve(), config.base.resolve())).as_posix()


def _option_files(value: Any, config: LoadedConfig, loc: tuple, key: str = "",
                  declared: frozenset[str] = frozenset()) -> list[tuple[Path, tuple]]:
    """(path, where in the config) of every existing file an option names; special files and
    directories included, so that digesting them refuses them."""
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in _option_files(v, config, loc + (k,), str(k), declared)]
    named = key in PROFILE_OPTION_KEYS or key in declared or key.endswith("_file")
    if isinstance(value, str) and named and "{" not in value:
        path = config.resolve_path(value)
        return [(path, loc)] if os.path.lexists(path) else []
    return []


def _declared_files(driver: str) -> frozenset[str]:
    """The options a driver declares as files (``PATH_OPTIONS``: a BMS's signal map, its DBC)."""
    from drivers.errors import UnknownDriverError
    from drivers.registry import driver_class

    try:
        return frozenset(getattr(driver_class(driver), "PATH_OPTIONS", ()))
    except (UnknownDriverError, ImportError):
        return frozenset()


def _found(config: LoadedConfig) -> list[tuple[Path, tuple]]:
    found: list[tuple[Path, tuple]] = []
    for fixture_id, fixture in config.config.fixtures.items():
        preset = config.resolve_path(fixture.sim_preset) if fixture.sim_preset else None
        if preset is not None and os.path.lexists(preset) and not preset.is_dir():  # else a shipped pack's name
            found.append((preset, ("fixtures", fixture_id, "sim_preset")))
        for role, (_key, inst) in config.instruments_for(fixture_id).items():
            where = config.location_of(fixture_id, role) + ("options",)
            found += _option_files(inst.options, config, where, declared=_declared_files(inst.driver))
    return found


def extra_files(config: LoadedConfig) -> dict[str, Path]:
    """Profile files this station's fixtures depend on: name (relative to the config) -> path."""
    return {_name(config, p): p for p, _loc in _found(config)}


def manifest(config: LoadedConfig, bound: BoundPlan) -> dict[str, str]:
    """Every file the release covers: ``plan:``/``library:``/``profile:`` name -> sha256."""
    out = {f"plan:{Path(bound.path).name}": bound.sha256}
    out |= {f"library:{name}": digest for name, digest in bound.libraries.items()}
    for path, loc in _found(config):
        digest = _sha256(config, path, loc)  # first: a link loop is refused here, before it is resolved
        out[f"profile:{_name(config, path)}"] = digest
    return out


def release_digest(config: LoadedConfig, bound: BoundPlan) -> str:
    """The digest a release of this plan on this station records and signs (see module doc)."""
    profiles = sorted((digest, name) for name, digest in manifest(config, bound).items() if name.startswith("profile:"))
    if not profiles:
        return bound.release_sha256
    text = f"{MANIFEST_HEADER}\nrelease {bound.release_sha256}\n" + "".join(f"{d}  {n}\n" for d, n in profiles)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
