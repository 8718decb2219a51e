"""`station coverage PLAN`: which catalogue faults the plan declares it catches, at which step.

The matrix is faults (rows) x variants (columns): the step that catches the fault and how the
run ends (FAIL / ABORTED / ERROR), or why it is not caught. ``station test`` proves every
declared catch by injecting the fault into the simulator; given its JSON (``--proof``), this
command also shows the proven coverage. A declared catch whose fault cannot affect the variant's
simulated pack (a cell, sensor or bonding point it does not have, an instrument the plan does not
use) is shown as such and not counted: ``station test`` would refuse to run it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from drivers.base.diagnostics import InputError
from sim.faults import CATALOGUE, fault_reach
from station.plan.bind import bind_plan
from station.plan.loader import load_plan


@dataclass(frozen=True)
class Cell:
    fault: str
    variant: str
    step: str | None  # catching step id, None if not caught
    expect: str = ""
    params: dict | None = None
    reason: str = ""
    unreachable: str = ""  # why the declared fault cannot affect this variant's pack, if it cannot


def _packs(variants: list[str], station: str | None) -> dict[str, object]:
    """variant -> the simulated pack ``station test`` would run it on (absent where none is known)."""
    from station.config import SIM_CONFIG, load_config
    from station.simpack import run_pack

    config = load_config(station or SIM_CONFIG)
    fixture = config.fixture_ids()[0]
    packs: dict[str, object] = {}
    for variant in variants:
        try:
            packs[variant] = run_pack(config, fixture, None if variant == "-" else variant)
        except InputError:
            continue  # no simulated pack for it: ``station test`` says so when asked to run it
    return packs


def matrix(plan_path: str, station: str | None = None) -> tuple[list[str], list[Cell]]:
    loaded = load_plan(plan_path)
    plan = loaded.plan
    variants = list(plan.variants) or ["-"]
    for variant in variants:
        bind_plan(loaded, None if variant == "-" else variant)  # the plan must be valid to count
    packs = _packs(variants, station)
    cells = []
    for name in CATALOGUE:
        for variant in variants:
            found = [c for c in plan.catches if c.fault == name and (not c.variants or variant in c.variants)]
            if found:
                for catch in found:
                    cells.append(Cell(name, variant, catch.step, catch.expect, dict(catch.params),
                                      unreachable=_reach(catch, packs.get(variant), plan.instruments)))
                continue
            why = [u.reason for u in plan.uncaught if u.fault == name and (not u.variants or variant in u.variants)]
            cells.append(Cell(name, variant, None, reason=why[0] if why else "not declared in catches"))
    return variants, cells


def _reach(catch, pack, roles) -> str:
    if pack is None:
        return ""
    why = fault_reach(catch.fault, {k: str(v) for k, v in catch.params.items()}, pack.spec, set(roles))
    return f"{why} (pack {pack.name})" if why else ""


def coverage_command(plan_path: str, out=None, proof: str | None = None, station: str | None = None) -> int:
    """Print the declared matrix; with ``proof`` (``station test --json`` output), then the
    proven one and the share of catalogue faults caught (``station.proof.proven``)."""
    out = out or sys.stdout
    doc = None
    if proof:
        from station.proof.proven import load_proof

        doc = load_proof(proof)  # a bad proof file is a usage error before anything is printed
    variants, cells = matrix(plan_path, station)  # the plan itself first: its own problems come first
    matches = None
    if doc is not None and proof:
        from station.proof.proven import check_plan_in_proof, plan_matcher

        matches = plan_matcher(plan_path)  # binds the plan per variant: once for the check and the lines
        check_plan_in_proof(doc, proof, plan_path, matches)
    width = max(len(n) for n in CATALOGUE) + 2
    print(f"{'fault':<{width}}" + "".join(f"{v:<34}" for v in variants), file=out)
    reasons = []
    for name in CATALOGUE:
        row = f"{name:<{width}}"
        for variant in variants:
            here = [c for c in cells if c.fault == name and c.variant == variant]
            caught = [c for c in here if c.step and not c.unreachable]
            for c in here:
                if c.unreachable:
                    reasons.append(f"  {name} [{variant}]: declared at step '{c.step}', but {c.unreachable}")
            if caught:
                text = ", ".join(f"{c.step} ({c.expect})" for c in caught)
            elif any(c.unreachable for c in here):
                text = "NO EFFECT ON THIS PACK"
            else:
                text = "NOT CAUGHT"
                reasons.append(f"  {name} [{variant}]: {here[0].reason}")
            row += f"{text:<34}"
        print(row.rstrip(), file=out)
    pairs = {(c.fault, c.variant) for c in cells}
    covered = {(c.fault, c.variant) for c in cells if c.step and not c.unreachable}
    share = 100.0 * len(covered) / len(pairs)
    print(f"\ncovered: {len(covered)}/{len(pairs)} fault x variant pairs ({share:.0f} %)", file=out)
    if reasons:
        print("not caught:", file=out)
        print("\n".join(reasons), file=out)
    if doc is not None:
        from station.proof.proven import proven_lines

        print("", file=out)
        print("\n".join(proven_lines(doc, plan_path, variants, matches)), file=out)
    return 0
