"""Proven coverage: what a ``station test --json`` result shows a plan catches, fault by fault.

Declared coverage (``station coverage PLAN``) is what the plan says; proven coverage is what
the runs showed: a declared catch counts once its proof held; an explored fault counts as
caught where the run did not pass (at the step that stopped it). The share of catalogue faults
caught is per variant: faults with at least one injected form caught, over the catalogue faults
the variant can meet (one whose every form was not applicable counts in neither).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from drivers.base.diagnostics import InputError, Problem


@dataclass
class Cell:
    """One catalogue fault on one variant, as the proof saw it."""

    declared: list[dict] = field(default_factory=list)  # results of declared catches
    explored: list[dict] = field(default_factory=list)  # results of explored forms
    not_applicable: list[dict] = field(default_factory=list)  # forms this pack or plan cannot meet

    def text(self) -> str:
        parts = []
        for r in self.declared:
            mark = "✓" if r["ok"] else "✗"
            parts.append(f"{mark} {r['name'].split('@')[-1]}" + ("" if r["ok"] else " (proof failed)"))
        if self.explored:
            caught = [r for r in self.explored if r["caught"]]
            steps = sorted({_step(r["at"]) for r in caught if r["at"]})
            parts.append(f"{len(caught)}/{len(self.explored)} explored caught" + (f" at {', '.join(steps)}" if steps else ""))
        if not parts and self.not_applicable:  # every form ran into what the pack or plan lacks
            reasons = sorted({r.get("not_applicable") or "not on this pack" for r in self.not_applicable})
            return f"n/a ({', '.join(reasons)})"
        return "; ".join(parts) or "not run"

    def only_not_applicable(self) -> bool:
        """Every form of the fault was one this pack or plan cannot meet (none ran)."""
        return bool(self.not_applicable) and not self.declared and not self.explored

    def caught(self) -> bool:
        return any(r["ok"] for r in self.declared) or any(r["caught"] for r in self.explored)


def _step(path: str) -> str:
    parts = path.split("/")
    return parts[1] if len(parts) > 1 else parts[0]


def load_proof(path: str) -> dict:
    """The JSON written by ``station test --json``; a clear ``InputError`` when it is not one."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise InputError([Problem(path, 1, 1, f"cannot read the proof: {err}")]) from None
    except json.JSONDecodeError as err:
        raise InputError([Problem(path, err.lineno, err.colno, f"not JSON: {err.msg}")]) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise InputError([Problem(path, 1, 1, "not a `station test --json` result (no 'results' list)")])
    return doc


def _resolved(path: str) -> Path:
    """``path`` resolved; as given (made absolute) where it cannot be (a symlink loop)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def plan_matcher(plan_path: str):
    """A test for a proof's result: is it a run of the plan at ``plan_path`` as it is now? By
    the release digest of the run's variant (the plan's and its libraries' sha256) where the
    proof gives it: found from any directory, and never a run of an earlier version of the plan
    or of a library it includes. A proof written before it gave that: by resolved path. Build
    it once per plan: it binds the plan once per variant asked about."""
    from drivers.base.diagnostics import InputError as BindError
    from station.plan.bind import bind_plan
    from station.plan.loader import load_plan

    target = _resolved(plan_path)
    releases: dict = {}

    def release(variant: str | None) -> str | None:
        if variant not in releases:
            try:
                releases[variant] = bind_plan(load_plan(plan_path), variant).release_sha256
            except BindError:
                releases[variant] = None
        return releases[variant]

    def matches(r: dict) -> bool:
        if r.get("plan_release_sha256"):
            return r["plan_release_sha256"] == release(r.get("variant"))
        return _resolved(str(r.get("plan", ""))) == target

    return matches


def check_plan_in_proof(doc: dict, proof_path: str, plan_path: str, matches=None) -> None:
    """``InputError`` when the proof holds no run of ``plan_path`` (``plan_matcher``, or the
    ``matches`` built from it): a matrix of "not run" would say nothing about the plan, and
    another plan's would lie."""
    matches = matches or plan_matcher(plan_path)
    if any(matches(r) for r in doc["results"]):
        return
    target = str(_resolved(plan_path))
    if any(r.get("plan_resolved") == target for r in doc["results"]):
        message = (f"the proof is of another version of {plan_path} (it, or a library it includes, changed "
                   "since `station test` ran): prove it again")
    else:
        held = dict.fromkeys(str(r.get("plan_resolved") or r.get("plan", "")) for r in doc["results"])
        message = (f"the proof holds no run of {plan_path} ({target}); it holds runs of: "
                   f"{', '.join(held) or 'no plan at all'}")
    raise InputError([Problem(proof_path, 1, 1, message)])


def proven_cells(doc: dict, plan_path: str, variants: list[str], matches=None) -> dict[tuple[str, str], Cell]:
    """(fault, variant) -> Cell for the results of ``plan_path`` in the proof ``doc``."""
    from sim.faults import CATALOGUE

    matches = matches or plan_matcher(plan_path)
    cells = {(name, v): Cell() for name in CATALOGUE for v in variants}
    for r in doc["results"]:
        if not r.get("fault") or not matches(r):
            continue
        name = r["fault"].split(":", 1)[0]
        cell = cells.get((name, r.get("variant") or "-"))
        if cell is None:
            continue
        if not r.get("applicable", True):
            cell.not_applicable.append(r)
        else:
            (cell.explored if r["kind"] == "explore" else cell.declared).append(r)
    return cells


def proven_lines(doc: dict, plan_path: str, variants: list[str], matches=None) -> list[str]:
    """The proven matrix and the share of catalogue faults caught, per variant."""
    from sim.faults import CATALOGUE

    matches = matches or plan_matcher(plan_path)
    cells = proven_cells(doc, plan_path, variants, matches)
    golden = [r for r in doc["results"] if r["kind"] == "golden" and matches(r)]
    width = max(len(n) for n in CATALOGUE) + 2
    texts = {k: c.text() for k, c in cells.items()}
    cols = [max([len(v)] + [len(texts[(n, v)]) for n in CATALOGUE]) + 2 for v in variants]
    out = ["proven (from the proof):", f"{'fault':<{width}}" + "".join(f"{v:<{w}}" for v, w in zip(variants, cols))]
    for name in CATALOGUE:
        out.append((f"{name:<{width}}" + "".join(f"{texts[(name, v)]:<{w}}" for v, w in zip(variants, cols))).rstrip())
    out.append("")
    for variant in variants:
        caught = sum(1 for name in CATALOGUE if cells[(name, variant)].caught())
        # a fault whose every form this pack or plan cannot meet is no part of the share
        met = [name for name in CATALOGUE if not cells[(name, variant)].only_not_applicable()]
        runs = [r for name in CATALOGUE for r in cells[(name, variant)].explored + cells[(name, variant)].declared]
        forms = sum(1 for r in runs if r["caught"])
        gold = [r for r in golden if (r.get("variant") or "-") == variant]
        gold_text = ("golden PASS proven" if gold and all(r["ok"] for r in gold)
                     else "golden run FAILED" if gold else "golden run not in the proof")
        na = len(CATALOGUE) - len(met)
        share = f"{100.0 * caught / len(met):.0f} %" if met else "-"
        out.append(f"{variant}: {caught}/{len(met)} catalogue faults caught ({share})"
                   + (f", {na} not applicable" if na else "") + f"; {forms}/{len(runs)} injected forms caught; {gold_text}")
    failed = [r for c in cells.values() for r in c.declared if not r["ok"]]
    for r in failed:
        out.append(f"proof failed: {r['id']}: {r['problem']}")
    return out
