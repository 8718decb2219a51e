"""Which simulated pack a run gets, from the station config's product catalogue.

A product entry may name the pack of its variant (``products: - {pattern, plan, variant: lv48,
pack: packs/lv48.yaml}``); ``pack`` and a fixture's ``sim_preset`` are each a pack definition
file (a path, relative to the config) or a shipped pack's name. For a run on the simulator:

1. a product entry with a ``pack`` for the run's variant (the one the serial matched first);
2. else the shipped pack named like the variant (``car-400``, ``bus-700``, ``car-800``);
3. a plan without variants: the fixture's ``sim_preset``.

A variant that names no pack, an unknown ``sim_preset`` and a bad pack file are errors (exit 2,
with a did-you-mean or the pack file's ``FILE:LINE:COL``): the simulator never stands in a
different pack for the one the plan judges.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from drivers.base.diagnostics import InputError, Problem

if TYPE_CHECKING:
    from drivers.base.yamlsrc import Source
    from sim.pack.catalogue import PackDefinition
    from station.config import LoadedConfig, StationConfig


def _is_path(text: str) -> bool:
    return text.endswith((".yaml", ".yml")) or "/" in text


def config_problems(config: StationConfig, src: Source, base) -> list[Problem]:
    """Every ``sim_preset`` and product ``pack`` of a station config, checked (load time)."""
    from sim.pack.catalogue import shipped

    problems: list[Problem] = []
    try:
        packs = shipped()
    except InputError as err:
        return list(err.problems)
    for fid, fixture in config.fixtures.items():
        if fixture.sim_preset is not None:
            problems.extend(_check_pack(fixture.sim_preset, packs, src, ("fixtures", fid, "sim_preset"), base))
    for i, product in enumerate(config.products):
        if product.pack is None:
            continue
        if product.variant is None:
            problems.append(src.problem(("products", i, "pack"), "'pack' is the simulated pack of a variant: give 'variant' too"))
        problems.extend(_check_pack(product.pack, packs, src, ("products", i, "pack"), base))
    return problems


def _check_pack(name: str, packs: dict, src: Source, loc: tuple, base) -> list[Problem]:
    from sim.pack.catalogue import did_you_mean, load_pack

    if _is_path(name):
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


def fixture_pack(config: LoadedConfig, fixture: str) -> PackDefinition:
    """The pack a simulated fixture holds between runs: its ``sim_preset`` (default car-400)."""
    from sim.pack.catalogue import find_pack, load_pack

    name = config.config.fixtures[fixture].sim_preset or "car-400"
    if _is_path(name):
        return load_pack(config.resolve_path(name))
    return find_pack(name, where=str(config.path))


def run_pack(config: LoadedConfig, fixture: str, variant: str | None, serial: str | None = None) -> PackDefinition:
    """The pack a simulated run of ``variant`` on ``fixture`` gets (rules in the module doc)."""
    from sim.pack.catalogue import did_you_mean, load_pack, shipped

    if variant is None:
        return fixture_pack(config, fixture)
    products = [p for p in config.config.products if p.pack and p.variant == variant]
    if serial is not None:  # the product the serial names comes first
        products.sort(key=lambda p: not re.fullmatch(p.pattern, serial))
    packs = shipped()
    if products:
        name = products[0].pack
        return load_pack(config.resolve_path(name)) if _is_path(name) else packs[name]
    if variant in packs:
        return packs[variant]
    named = sorted({*packs, *(p.variant for p in config.config.products if p.pack and p.variant)})
    raise InputError([Problem(str(config.path), 1, 1,
                              f"variant '{variant}' has no simulated pack{did_you_mean(variant, named)}; packs: "
                              f"{', '.join(named)}. Add a pack definition file and name it for the variant in the "
                              f"product catalogue (products: - {{pattern, plan, variant: {variant}, pack: FILE}})")])


def safety_driver(config: LoadedConfig) -> str:
    """The driver key of the station's safety tester (its ``safety`` role), which selects the
    dialect the simulated bench's shared tester speaks; ``chroma_19032`` when no fixture has one."""
    from sim.dialects import DEFAULT_SAFETY

    for fixture in config.fixture_ids():
        spec = config.instruments_for(fixture).get("safety")
        if spec is not None:
            return spec[1].driver
    return DEFAULT_SAFETY
