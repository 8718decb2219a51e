"""The packs a station config names, checked when it loads: each fixture's ``sim_preset`` and
each product's ``pack`` is a shipped pack's name or a pack definition file (relative to the
config). Below ``station.config`` (which calls it) and ``station.simpack`` (which picks the pack
of a run): it knows neither.
"""

from __future__ import annotations

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
    from sim.pack.catalogue import did_you_mean, load_pack

    if is_pack_file(name):
        try:
            load_pack(base / name)
        except InputError as err:
            return _from_file(err, src, loc, name)
        return []
    if name not in packs:
        return [src.problem(loc, f"unknown pack '{name}'{did_you_mean(name, packs)}; packs: {', '.join(packs)} "
                                 "(or a pack definition file)")]
    return []


def _from_file(err: InputError, src: Source, loc: tuple, text: str) -> list[Problem]:
    """A pack file's own problems, plus where the config names it (a missing file: only there)."""
    if any(p.message.startswith("cannot read file") for p in err.problems):
        return [src.problem(loc, f"pack file not found: {text}")]
    return [*err.problems, src.problem(loc, f"pack file {text} has problems (listed with its FILE:LINE:COL)")]
