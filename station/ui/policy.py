"""Who may run what: operator log-in, released plans, the serial → plan/variant lookup.

Everything here is checked before any instrument is touched; a refusal is a sentence the
operator can act on (which plan, which fixture, whom to ask).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from drivers.base.diagnostics import InputError
from station.config import LoadedConfig, OperatorConfig, ProductConfig
from station.runner import Prepared, RunRequest, prepare
from station.safetext import printable
from station.security.audit import AuditLog
from station.serials import SerialRefused


class Refusal(Exception):
    """A start the UI must refuse, with the reason shown to the operator."""


@dataclass(frozen=True)
class Overrides:
    """Training-mode choices of an engineer (sim only for faults); empty means the catalogue."""

    plan: str | None = None
    variant: str | None = None
    faults: tuple[str, ...] = ()  # for the one fixture these overrides were asked for


@dataclass
class Resolved:
    req: RunRequest
    prep: Prepared
    summary: str
    notes: list[str] = field(default_factory=list)
    product: ProductConfig | None = None  # the catalogue entry (takt, dispositions), if one


def login(config: LoadedConfig, operator_id: str) -> OperatorConfig:
    """The configured operator with this id; Refusal otherwise."""
    wanted = operator_id.strip()
    for op in config.config.operators:
        if op.id == wanted:
            return op
    if not config.config.operators:
        raise Refusal("no operators are configured in the station config")
    raise Refusal(f"unknown operator id '{wanted}'")


def may_choose_plan(op: OperatorConfig) -> bool:
    return op.role in ("engineer", "admin")


def release_problem(config: LoadedConfig, plan_path: str | Path) -> str | None:
    """Why this plan file may not be run by an operator here (None: released, same content,
    libraries included)."""
    from station.security.release import plan_release_digest
    from station.security.roles import release_problem as problem

    try:
        digest = plan_release_digest(plan_path, config)
    except InputError as err:
        first = err.problems[0] if err.problems else None
        where = f"{Path(first.file).name}:{first.line}: {first.message}" if first else "it does not load"
        return f"plan {Path(plan_path).name} does not load ({where}): ask a test engineer"
    found = problem(config, plan_path, digest)
    return f"{found}: ask a test engineer" if found else None


def plan_files(config: LoadedConfig) -> list[Path]:
    """Plans an engineer may pick: every .yaml in the folders of the catalogue's plans."""
    folders = {config.resolve_path(p.plan).resolve().parent for p in config.config.products}
    folders |= {config.resolve_path(k).resolve().parent for k in config.config.released}
    return sorted({f for d in folders if d.is_dir() for f in d.glob("*.yaml")})


def resolve(config: LoadedConfig, *, serial: str, fixture: str, operator: OperatorConfig, sim: bool,
            overrides: Overrides = Overrides(), auth: object = None, audit: AuditLog | None = None) -> Resolved:
    """Serial → plan + variant for this fixture and operator; Refusal with the reason otherwise.

    A refused serial and an unreleased plan are appended to ``audit`` (``refusal`` entries) as
    ``station run`` does; the checks ``prepare`` makes audit themselves."""
    def refuse(what: str, message: str) -> Refusal:
        if audit is not None:
            audit.append("refusal", what=what, message=message, operator=operator.id, serial=printable(serial)[:80],
                         fixture=fixture, station=config.config.station_id, where="ui")
        return Refusal(message)

    engineer = may_choose_plan(operator)
    plan = overrides.plan if engineer and overrides.plan else None
    try:  # the catalogue's serial rules, before anything else (station.serials)
        serial = config.check_serial(serial, require_product=plan is None).serial
    except SerialRefused as err:
        raise refuse("serial refused", str(err)) from None
    product = config.product_for(serial)
    if plan is None:
        if product is None:
            raise refuse("serial refused", f"serial '{serial}' matches no product in the catalogue")
        plan = str(config.resolve_path(product.plan))
    if not engineer:
        problem = release_problem(config, plan)
        if problem:
            raise refuse("plan not released", problem)
    faults = list(overrides.faults) if engineer else []
    if faults and not sim:
        raise Refusal("faults can only be injected in training mode (--sim)")
    req = RunRequest(plan=plan, serial=serial, variant=(overrides.variant or None) if engineer else None,
                     fixture=fixture, operator=operator.id, sim=sim, station=str(config.path), faults=faults,
                     auth=auth)  # the log-in's token: production's prepare() requires it
    try:
        prep = prepare(req)
    except InputError as err:
        raise Refusal("; ".join(f"{Path(p.file).name}:{p.line}: {p.message}" for p in err.problems)) from None
    if sim:
        _check_preset(config, prep, serial)
    bound = prep.bound
    summary = f"{bound.plan.id} {bound.plan.version} · {bound.variant or 'default'}"
    notes = [f"fault {f}" for f in faults]
    return Resolved(req, prep, summary, notes, product)


def _check_preset(config: LoadedConfig, prep: Prepared, serial: str) -> None:
    from sim.pack.presets import PRESETS

    preset = config.config.fixtures[prep.fixture].sim_preset or "car-400"
    variant = prep.bound.variant
    if variant in PRESETS and variant != preset:
        raise Refusal(f"{serial} is a {variant} pack but fixture {prep.fixture} holds a simulated "
                      f"{preset} pack: use the {variant} fixture")
