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

from station.config import LoadedConfig
from station.plan.tree import BoundPlan

# Instrument option keys whose value names a file the pack's behaviour depends on.
PROFILE_OPTION_KEYS = frozenset({"profile", "pack_profile", "bms_profile", "pack_file", "definition", "dbc"})
MANIFEST_HEADER = "eol-release-manifest/2"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _name(config: LoadedConfig, path: Path) -> str:
    return Path(os.path.relpath(path.resolve(), config.base.resolve())).as_posix()


def _option_files(value: Any, config: LoadedConfig, key: str = "", declared: frozenset[str] = frozenset()) -> list[Path]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _option_files(v, config, str(k), declared)]
    named = key in PROFILE_OPTION_KEYS or key in declared or key.endswith("_file")
    if isinstance(value, str) and named and "{" not in value:
        path = config.resolve_path(value)
        return [path] if path.is_file() else []
    return []


def _declared_files(driver: str) -> frozenset[str]:
    """The options a driver declares as files (``PATH_OPTIONS``: a BMS's signal map, its DBC)."""
    from drivers.errors import UnknownDriverError
    from drivers.registry import driver_class

    try:
        return frozenset(getattr(driver_class(driver), "PATH_OPTIONS", ()))
    except (UnknownDriverError, ImportError):
        return frozenset()


def extra_files(config: LoadedConfig) -> dict[str, Path]:
    """Profile files this station's fixtures depend on: name (relative to the config) -> path."""
    found: list[Path] = []
    for fixture_id, fixture in config.config.fixtures.items():
        if fixture.sim_preset and config.resolve_path(fixture.sim_preset).is_file():
            found.append(config.resolve_path(fixture.sim_preset))
        for _key, inst in config.instruments_for(fixture_id).values():
            found += _option_files(inst.options, config, declared=_declared_files(inst.driver))
    return {_name(config, p): p for p in found}


def manifest(config: LoadedConfig, bound: BoundPlan) -> dict[str, str]:
    """Every file the release covers: ``plan:``/``library:``/``profile:`` name -> sha256."""
    out = {f"plan:{Path(bound.path).name}": bound.sha256}
    out |= {f"library:{name}": digest for name, digest in bound.libraries.items()}
    out |= {f"profile:{name}": _sha256(path) for name, path in extra_files(config).items()}
    return out


def release_digest(config: LoadedConfig, bound: BoundPlan) -> str:
    """The digest a release of this plan on this station records and signs (see module doc)."""
    profiles = sorted((digest, name) for name, digest in manifest(config, bound).items() if name.startswith("profile:"))
    if not profiles:
        return bound.release_sha256
    text = f"{MANIFEST_HEADER}\nrelease {bound.release_sha256}\n" + "".join(f"{d}  {n}\n" for d, n in profiles)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
