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
from station.pack_refs import is_pack_file

if TYPE_CHECKING:
    from sim.pack.catalogue import PackDefinition
    from station.config import LoadedConfig


def pack_files(config: LoadedConfig) -> list[str]:
    """Every pack definition file the station config names (products' ``pack``, fixtures'
    ``sim_preset``), resolved against the config's folder, each once, in config order."""
    names = [p.pack for p in config.config.products if p.pack] + \
            [f.sim_preset for f in config.config.fixtures.values() if f.sim_preset]
    return list(dict.fromkeys(str(config.resolve_path(n)) for n in names if is_pack_file(n)))


def fixture_pack(config: LoadedConfig, fixture: str) -> PackDefinition:
    """The pack a simulated fixture holds between runs: its ``sim_preset`` (default car-400)."""
    from sim.pack.catalogue import find_pack, load_pack

    name = config.config.fixtures[fixture].sim_preset or "car-400"
    if is_pack_file(name):
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
        return load_pack(config.resolve_path(name)) if is_pack_file(name) else packs[name]
    if variant in packs:
        return packs[variant]
    named = sorted({*packs, *(p.variant for p in config.config.products if p.pack and p.variant)})
    message = (f"variant '{variant}' has no simulated pack{did_you_mean(variant, named)}; packs: "
               f"{', '.join(named)}. Add a pack definition file and name it for the variant in the "
               f"product catalogue (products: - {{pattern, plan, variant: {variant}, pack: FILE}})")
    # at the catalogue entry that names the variant without a pack, where there is one
    entry = next((i for i, p in enumerate(config.config.products) if p.variant == variant), None)
    if entry is not None:
        raise config.problem(("products", entry, "variant"), message)
    raise InputError([Problem(str(config.path), 1, 1, message)])


def sim_bench(config: LoadedConfig, presets: dict | None = None):
    """The simulated bench of ``config`` (not started): each fixture holds its ``presets`` pack or
    its ``sim_preset``, the BMS speaks the profile the config's BMS driver reads, and the shared
    safety tester the dialect its driver names."""
    from sim.bench import SimBench
    from station.instruments import sim_bms_profiles

    presets = presets or {}
    packs = {f: presets.get(f) or fixture_pack(config, f) for f in config.fixture_ids()}
    return SimBench(packs, bms=sim_bms_profiles(config), safety=safety_driver(config))


def safety_driver(config: LoadedConfig) -> str:
    """The driver key of the station's safety tester (its ``safety`` role), which selects the
    dialect the simulated bench's shared tester speaks; ``chroma_19032`` when no fixture has one."""
    from sim.dialects import DEFAULT_SAFETY

    for fixture in config.fixture_ids():
        spec = config.instruments_for(fixture).get("safety")
        if spec is not None:
            return spec[1].driver
    return DEFAULT_SAFETY
