"""What to prove for a plan: per variant, a golden run and one run per declared catch; with
``explore``, also every catalogue fault (and spread of its parameters) the plan does not declare.

A ``Case`` is plain data (it crosses into worker processes). Its ``name`` is the same in the
matrix, JUnit, JSON and pytest: ``golden``, ``isolation_low(pole=HV-,ohm=2000000)@iso_minus``
for a catch, ``explore:bond_high(ohm=0.05)`` for an explored fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drivers.base.diagnostics import InputError
from station.proof.explore import fmt_value, undeclared

GOLDEN, CATCH, EXPLORE = "golden", "catch", "explore"


@dataclass(frozen=True)
class Case:
    """One run to prove. ``params`` is ``((key, text), ...)`` as the plan or the explorer wrote it;
    ``expect``/``step`` are the declared outcome (``PASS`` and None for a golden run, None for an
    explored fault); ``cost`` orders the work, longest first (0..1: how far into the plan)."""

    plan: str
    variant: str | None
    kind: str
    fault: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    expect: str | None = "PASS"
    step: str | None = None
    station: str | None = None
    fixture: str | None = None
    cost: float = 1.0
    catch: int | None = None  # index under the plan's ``catches:`` (a problem of the catch is located there)

    @property
    def fault_text(self) -> str | None:
        """``NAME[:k=v,...]`` as ``station run --fault`` takes it."""
        if self.fault is None:
            return None
        args = ",".join(f"{k}={v}" for k, v in self.params)
        return self.fault + (f":{args}" if args else "")

    @property
    def name(self) -> str:
        if self.kind == GOLDEN:
            return "golden"
        args = ",".join(f"{k}={v}" for k, v in self.params)
        text = f"{self.fault}({args})" if args else str(self.fault)
        return f"{text}@{self.step}" if self.kind == CATCH else f"explore:{text}"

    @property
    def variant_label(self) -> str:
        return self.variant or "-"

    @property
    def id(self) -> str:
        """Unique within a proof: plan file stem, variant, name."""
        return f"{Path(self.plan).stem}[{self.variant_label}] {self.name}"


def _step_order(plan) -> list[str]:
    """Step ids in the order the plan runs them (setup, main, teardown; groups depth first)."""
    out: list[str] = []

    def walk(steps) -> None:
        for step in steps or []:
            if getattr(step, "id", None):
                out.append(step.id)
            walk(getattr(step, "steps", None))
            walk(getattr(step, "finally_", None))

    for section in (plan.setup, plan.main, plan.teardown):
        walk(section)
    return out


def plan_variants(loaded, wanted: list[str] | None, *, partial: bool = False) -> list[str | None]:
    """The plan's variants to prove (all by default); an unknown one is an ``InputError`` located
    and worded as binding the plan to it says it (``station validate --variant``). ``partial``:
    of ``wanted``, those the plan has (possibly none) — several plans, each with its own
    variants, proven for the ones asked for."""
    from station.plan.bind import unknown_variant

    names = list(loaded.plan.variants)
    if not wanted:
        return names or [None]
    if partial:
        return [v for v in wanted if v in names]
    unknown = [unknown_variant(loaded, v) for v in wanted if v not in names]
    if unknown:
        raise InputError(unknown)
    return list(wanted)


def plan_cases(path: str | Path, *, variants: list[str] | None = None, explore: bool = False,
               station: str | None = None, fixture: str | None = None, partial: bool = False) -> list[Case]:
    """Every case to prove for the plan at ``path``. Raises ``InputError`` (with ``PATH:LINE:COL``)
    when the plan does not load or bind, or ``variants`` names one the plan lacks (``partial``:
    only those of ``variants`` it has, no cases when none); a ``kind: library`` file has no cases."""
    from station.plan.bind import bind_plan
    from station.plan.loader import load_plan

    loaded = load_plan(path)
    plan = loaded.plan
    if plan.kind == "library":
        return []
    chosen = plan_variants(loaded, variants, partial=partial)
    for variant in chosen:
        bind_plan(loaded, variant)  # a plan that does not bind proves nothing
    order = _step_order(plan)

    def cost(step: str | None) -> float:
        return (order.index(step) + 1) / len(order) if step in order else 1.0

    common = {"plan": str(path), "station": station, "fixture": fixture}
    cases: list[Case] = []
    for variant in chosen:
        cases.append(Case(variant=variant, kind=GOLDEN, cost=1.0, **common))
        for index, catch in enumerate(plan.catches):
            if catch.variants and variant not in catch.variants:
                continue
            params = tuple((k, fmt_value(v)) for k, v in catch.params.items())
            cases.append(Case(variant=variant, kind=CATCH, fault=catch.fault, params=params, expect=catch.expect,
                              step=catch.step, cost=cost(catch.step), catch=index, **common))
        if explore:
            for fault, params in undeclared(plan, variant):
                cases.append(Case(variant=variant, kind=EXPLORE, fault=fault, params=params, expect=None,
                                  cost=0.5, **common))
    return cases
