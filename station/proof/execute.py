"""Run one case against the in-process simulator on virtual time and judge it.

A golden run must end PASS; a declared catch must end with its declared verdict at its declared
step; every run must leave the pack physically safe (``safety``) with the safe state in the
record, unconfirmed safe-state actions only in a run that ended ERROR or ABORTED. An explored
fault has no declared outcome: its result says where it was caught, or that it went through.
Every run is journalled into the result store ``db``, so a failed proof keeps its record.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field

from station.proof.cases import EXPLORE, GOLDEN, Case

BAD_OUTCOMES = ("failed", "error", "aborted")
# why an explored fault is not applicable, as the matrix says it
NA_PACK = "not on this pack"  # a cell, sensor or bonding point the pack does not have
NA_PLAN = "plan does not use it"  # an instrument the plan never uses (the cycler is station equipment)
NA_LATE = "after the run"  # due after the run had ended: it never struck


@dataclass
class CaseResult:
    """How a case ended. ``ok``: the proof holds (for an explored fault: the pack was left safe);
    ``problem`` says what happened instead when it does not."""

    case: Case
    ok: bool
    verdict: str | None = None
    at: str | None = None  # path of the first step that did not pass ("main/isolation/iso_plus/ir")
    safe: bool | None = None
    unsafe: list[str] = field(default_factory=list)
    problem: str = ""
    reason: str = ""  # the record's own reason for its verdict
    run_id: str | None = None
    db: str | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0  # CPU time of this process (all its threads) for the case
    virtual_s: float = 0.0
    physical: dict | None = None
    applicable: bool = True  # False: an explored form this run cannot meet (``na`` says why)
    na: str = ""  # NA_PACK, NA_PLAN or NA_LATE when not applicable

    @property
    def caught(self) -> bool:
        """The fault did not go through: the run did not PASS."""
        return self.verdict not in (None, "PASS")

    @property
    def at_step(self) -> str | None:
        """The catching step as a plan reads it: the path without its section, ``isolation/iso_plus/ir``."""
        if not self.at:
            return None
        section, _, rest = self.at.partition("/")
        return rest or section

    def as_dict(self) -> dict:
        c = self.case
        return {
            "id": c.id, "plan": c.plan, "variant": c.variant, "kind": c.kind, "name": c.name,
            "fault": c.fault_text, "expect": {"verdict": c.expect, "step": c.step} if c.kind != EXPLORE else None,
            "ok": self.ok, "verdict": self.verdict, "at": self.at, "caught": self.caught,
            "safe": self.safe, "unsafe": self.unsafe, "problem": self.problem, "reason": self.reason,
            "run_id": self.run_id, "db": self.db, "wall_s": round(self.wall_s, 3), "cpu_s": round(self.cpu_s, 3),
            "virtual_s": round(self.virtual_s, 3), "physical": self.physical, "applicable": self.applicable,
            "not_applicable": self.na or None,
        }


def _first_bad(record: dict) -> str | None:
    return next((s["path"] for s in record["steps"] if s["outcome"] in BAD_OUTCOMES), None)


def judge(case: Case, verdict: str, at: str | None, unsafe: list[str], record: dict) -> list[str]:
    """What contradicts the case's declared outcome (empty: the proof holds)."""
    problems = []
    if case.kind == GOLDEN:
        if verdict != "PASS":
            problems.append(f"ended {verdict} instead of PASS" + (f", at {at}" if at else "")
                            + (f" ({record.get('reason')})" if record.get("reason") else ""))
    elif case.kind != EXPLORE:
        if verdict != case.expect:
            problems.append(f"ended {verdict} instead of {case.expect}" + (f", at {at}" if at else ""))
        elif at is None:
            problems.append(f"ended {verdict} but no step shows where the fault was caught")
        elif case.step not in at.split("/"):
            problems.append(f"caught at {at} instead of at step '{case.step}'")
    if unsafe:
        problems.append("pack not safe afterwards: " + "; ".join(unsafe))
    if not record.get("safe_state"):
        problems.append("the record shows no safe state")
    unconfirmed = [a["instrument"] for a in record.get("safe_state", []) if not a["ok"]]
    if unconfirmed and verdict not in ("ERROR", "ABORTED"):
        problems.append(f"safe state not confirmed by {', '.join(unconfirmed)} in a run that ended {verdict}")
    return problems


@functools.lru_cache(maxsize=64)  # plans x variants of a plan repository, checked up front then run
def prepared(plan: str, variant: str | None, station: str | None, fixture: str | None):
    """Config and plan checked and bound once per worker (a plan does not change under a proof)."""
    from station.runner import RunRequest, prepare

    return prepare(RunRequest(plan=plan, variant=variant, station=station, fixture=fixture, sim=True,
                              serial="PROOF"))


class NotApplicable(Exception):
    """An explored fault form that cannot affect this variant's pack or plan: nothing to run.
    ``why`` is NA_PACK or NA_PLAN."""

    def __init__(self, why: str, message: str) -> None:
        super().__init__(message)
        self.why = why


def _at_catch(case: Case, message: str, param: str | None):
    """A problem of a declared catch where the plan file declares it: at the parameter that
    causes it when the catch writes one, else at the fault's name (as ``station validate``)."""
    from drivers.base.diagnostics import Problem
    from station.plan.loader import load_plan

    if case.catch is None:  # a case made by hand, not from a plan's catches:
        return Problem(case.plan, 1, 1, message)
    written = param is not None and param in dict(case.params)
    loc = ("catches", case.catch, "params", param) if written else ("catches", case.catch, "fault")
    return load_plan(case.plan).source.problem(loc, message)


def _request(case: Case, db: str):
    from drivers.base.diagnostics import InputError, Problem
    from station.runner import RunRequest, parse_fault

    req = RunRequest(plan=case.plan, variant=case.variant, station=case.station, fixture=case.fixture, sim=True,
                     serial="PROOF", faults=[case.fault_text] if case.fault else [], db=db,
                     stop_on_failure=case.kind != GOLDEN)
    prep = prepared(case.plan, case.variant, case.station, case.fixture)
    if case.fault:
        from sim.faults import PACK, check_fault, unreachable

        fault = parse_fault(case.fault_text)
        message = check_fault(*fault)
        if message:  # the plan's binding checked its catches: only a case made by hand gets here
            raise InputError([Problem(case.plan, 1, 1, message)])
        why = prep.pack and unreachable(*fault, prep.pack.spec, prep.bound.roles)
        if why and case.kind == EXPLORE:  # an explored form this pack or plan lacks
            raise NotApplicable(NA_PACK if why.what == PACK else NA_PLAN, why.message)
        if why:  # declared for this variant, it must reach its pack and plan
            message = f"{why.message} (variant {case.variant or '-'}, pack {prep.pack.name})"
            raise InputError([_at_catch(case, message, why.param)])
        prep = dataclasses.replace(prep, faults=[fault])
    return req, prep


def _never_struck(case: Case, run_s: float) -> str | None:
    if case.fault is None:
        return None
    from sim.faults import never_struck

    return never_struck(case.fault, dict(case.params), run_s)


def run_case(case: Case, db: str) -> CaseResult:
    """Run ``case`` on a fresh simulated bench (its own event loop, virtual time) and judge it.
    Never raises for a run that went wrong: the result names what happened."""
    import asyncio

    from drivers.base.diagnostics import InputError
    from station import clock
    from station.proof.safety import physical_state
    from station.runner import Session, sim_preset

    start, cpu = time.perf_counter(), time.process_time()
    result = CaseResult(case, ok=False, db=db)
    try:
        req, prep = _request(case, db)

        async def go():
            async with Session(prep.config, sim=True, presets={prep.fixture: sim_preset(prep)}, db=db) as session:
                begun = asyncio.get_running_loop().time()  # the faults are armed after this
                verdict, run_id, record = await session.run(req, prep, signals=False)
                ended = asyncio.get_running_loop().time()
                state = await physical_state(session.bench, prep.fixture)
                return verdict, run_id, record, ended, ended - begun, state

        verdict, run_id, record, ended, run_s, state = clock.run(go(), virtual=True, in_process=True)
    except InputError as err:
        result.problem = "; ".join(str(p) for p in err.problems)
    except NotApplicable as err:
        result.applicable, result.ok, result.problem = False, True, f"not applicable: {err}"
        result.na = err.why
    except (IndexError, KeyError, ValueError) as err:
        # arming refused the fault before any step ran; an explored form may simply not exist
        # on this pack (sensor 23 of a 16-sensor pack): not applicable, not a finding
        result.problem = f"the run raised {type(err).__name__}: {err}"
        if case.kind == EXPLORE:
            result.applicable, result.ok, result.na = False, True, NA_PACK
            result.problem = f"not applicable to this pack: {type(err).__name__}: {err}"
    except Exception as err:  # a crash of the run itself is a finding, reported with its type
        result.problem = f"the run raised {type(err).__name__}: {err}"
    else:
        result.verdict, result.run_id, result.virtual_s = verdict, run_id, ended
        result.at = _first_bad(record)
        result.reason = record.get("reason") or ""
        result.unsafe = state.problems()
        result.safe = not result.unsafe
        result.physical = state.as_dict()
        problems = judge(case, verdict, result.at, result.unsafe, record)
        result.ok = not problems
        late = _never_struck(case, run_s)
        if late and case.kind == EXPLORE:  # it never happened: nothing was let through
            result.applicable, result.na = False, NA_LATE
            problems = [f"not applicable: {late}", *problems]
        elif late and problems:  # a declared catch due after the run ended: say why it was not caught
            problems.append(f"the fault never struck: {late}")
        result.problem = "; ".join(problems)
    result.wall_s, result.cpu_s = time.perf_counter() - start, time.process_time() - cpu
    return result
