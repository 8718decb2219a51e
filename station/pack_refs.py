"""The packs a station config names, checked when it loads: each fixture's ``sim_preset`` and
each product's ``pack`` is a shipped pack's name or a pack definition file (relative to the
config). Below ``station.config`` (which calls it) and ``station.simpack`` (which picks the pack
of a run): it knows neither.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from drivers.base.diagnostics import InputError, Problem

if TYPE_CHECKING:
    from drivers.base.yamlsrc import Source


def is_pack_file(text: str) -> bool:
    """A pack named by its definition file (a path), not by a shipped pack's name."""
    return text.endswith((".yaml", ".yml")) or "/" in text


def pack_problems(presets: Mapping[str, str | None], products: Sequence[tuple[str | None, str | None]],
                  src: Source, base: Path) -> list[Problem]:
    """Every fixture's ``sim_preset`` (``presets``: fixture id -> name) and every product's
    (``pack``, ``variant``), checked at load time; ``base`` is the config's folder."""
    from sim.pack.catalogue import shipped

    problems: list[Problem] = []
    try:
        packs = shipped()
    except InputError as err:
        return list(err.problems)
    for fid, preset in presets.items():
        if preset is not None:
            problems.extend(_check_pack(preset, packs, src, ("fixtures", fid, "sim_preset"), base))
    for i, (pack, variant) in enumerate(products):
        if pack is None:
            continue
        if variant is None:
            problems.append(src.problem(("products", i, "pack"), "'pack' is the simulated pack of a variant: give 'variant' too"))
        problems.extend(_check_pack(pack, packs, src, ("products", i, "pack"), base))
    return problems


def _check_pack(name: str, packs: dict, src: Source, loc: tuple, base: Path) -> list[Problem]:
    from sim.pack.catalogue import load_pack

    if is_pack_file(name):
        try:
            load_pack(base / name)
        except InputError as err:
            return _from_file(err, src, loc, name, base)
        return []
    if name not in packs:
        # also a pack file beside the config named without its path (``lv48`` for packs/lv48.yaml)
        suggest = {**{n: n for n in packs}, **{Path(f).stem: f for f in _yaml_files(base)}}
        close = difflib.get_close_matches(name, list(suggest), n=1, cutoff=0.5)
        hint = f" (did you mean '{suggest[close[0]]}'?)" if close else ""
        return [src.problem(loc, f"unknown pack '{name}'{hint}; packs: {', '.join(packs)} "
                                 "(or a pack definition file)")]
    return []


def _yaml_files(base: Path) -> list[str]:
    """YAML files in the config's folder and its subfolders one level down, relative to it."""
    found: list[str] = []
    for pattern in ("*.yaml", "*.yml", "*/*.yaml", "*/*.yml"):
        found.extend(p.relative_to(base).as_posix() for p in sorted(base.glob(pattern)) if p.is_file())
    return found


def _from_file(err: InputError, src: Source, loc: tuple, text: str, base: Path) -> list[Problem]:
    """A pack file's own problems, plus where the config names it (a missing file: only there)."""
    from sim.pack.catalogue import did_you_mean

    if any(p.message.startswith("cannot read file") for p in err.problems):
        return [src.problem(loc, f"pack file not found: {text}{did_you_mean(text, _yaml_files(base))}")]
    return [*err.problems, src.problem(loc, f"pack file {text} has problems (listed with its FILE:LINE:COL)")]
