"""Role checks for a run, made before any instrument is touched (the UI asks the same questions).

Roles come from the station config's ``operators:`` list:

- ``operator`` runs released plans only (the plan file's sha256 equals the ``released:`` entry
  for that file) and never injects faults;
- ``engineer`` runs any plan that validates, and injects faults only into the simulator;
- ``admin`` may do what an engineer may, and may release plans (``release.py``).

In ``development`` mode a run without an operator id is allowed (bench work, CI); in
``production`` mode every run needs a configured operator.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drivers.base.diagnostics import InputError, Problem
from station.config import LoadedConfig, OperatorConfig

ROLES = ("operator", "engineer", "admin")
MAY_CHOOSE_PLAN = ("engineer", "admin")
MAY_RELEASE = ("admin",)


def _refuse(where: str | Path, message: str) -> InputError:
    return InputError([Problem(str(where), 1, 1, message)])


def find_operator(config: LoadedConfig, operator_id: str) -> OperatorConfig:
    """The configured operator with this id; ``InputError`` naming the known ids otherwise."""
    wanted = operator_id.strip()
    for op in config.config.operators:
        if op.id == wanted:
            return op
    known = ", ".join(op.id for op in config.config.operators) or "none configured"
    raise _refuse(config.path, f"unknown operator '{wanted}' (operators: {known})")


def released_entry(config: LoadedConfig, plan_path: str | Path) -> tuple[str, Any] | None:
    """(``released:`` key, entry) for this plan file (keys are paths relative to the config):
    the entry is a bare digest (unsigned) or a ``SignedRelease``; None when not released."""
    target = Path(plan_path).resolve()
    for key, entry in config.config.released.items():
        if config.resolve_path(key).resolve() == target:
            return key, entry
    return None


def released_digest(config: LoadedConfig, plan_path: str | Path) -> str | None:
    """The digest released for this plan file, or None."""
    found = released_entry(config, plan_path)
    if found is None:
        return None
    entry = found[1]
    return entry if isinstance(entry, str) else entry.sha256


def release_problem(config: LoadedConfig, plan_path: str | Path, plan_sha256: str) -> str | None:
    """Why this content may not run as a released plan here (None: released, same content)."""
    name = Path(plan_path).name
    digest = released_digest(config, plan_path)
    if digest is None:
        return f"plan {name} is not released for station {config.config.station_id}"
    if digest.lower() != plan_sha256.lower():
        return (f"plan {name} differs from its released version "
                f"(sha256 {plan_sha256[:12]}… ≠ released {digest[:12]}…)")
    return None


def authorize(config: LoadedConfig, operator_id: str, *, plan_path: str | Path, plan_sha256: str,
              variant: str | None, faults: Sequence[object], sim: bool) -> None:
    """Raise ``InputError`` if ``operator_id`` may not run this plan/variant with these faults.

    ``plan_sha256`` is the plan's release digest as bound (``BoundPlan.release_sha256``: the
    file's sha256, or with its included libraries' when it has any);
    ``faults`` is any sequence (only its emptiness matters); ``sim`` is True for a run against
    the simulator.
    """
    production = config.config.mode == "production"
    what = f"plan {Path(plan_path).name}" + (f" variant {variant}" if variant else "")
    if not operator_id.strip():
        if production:
            raise _refuse(config.path, f"production mode: give the operator id (--operator) to run {what}")
        _check_faults(config, "engineer", faults, sim)  # anonymous bench runs: engineer rules
        return
    op = find_operator(config, operator_id)
    if op.role not in MAY_CHOOSE_PLAN:
        problem = release_problem(config, plan_path, plan_sha256)
        if problem:
            raise _refuse(plan_path, f"operator '{op.id}' runs released plans only: {problem}; ask a test engineer")
    _check_faults(config, op.role, faults, sim, op.id)


def _check_faults(config: LoadedConfig, role: str, faults: Sequence[object], sim: bool, who: str = "") -> None:
    if not faults:
        return
    if role not in MAY_CHOOSE_PLAN:
        raise _refuse("--fault", f"operator '{who}' may not inject faults (engineers and admins may, with --sim)")
    if not sim:
        raise _refuse("--fault", "faults can only be injected into the simulator (--sim)")


def may_release(config: LoadedConfig, operator_id: str) -> OperatorConfig:
    """The operator, if an admin; ``InputError`` otherwise."""
    op = find_operator(config, operator_id)
    if op.role not in MAY_RELEASE:
        raise _refuse(config.path, f"'{op.id}' is a{'n' if op.role[0] in 'aeiou' else ''} {op.role}: only admins may release plans")
    return op
