"""pytest plugin (entry point ``pytest11``): plan files are tests.

``pytest test_plans/`` collects each plan file (``*.yaml``/``*.yml`` with a top-level
``schema_version:``; ``kind: library`` files are skipped) as one test per golden run and per
declared catch, per variant — the same cases and judgement as ``station test`` — and runs
each against the in-process simulator on virtual time. Works with pytest-xdist (``-n auto``):
every case is independent. A plan that does not load or bind is one failing test naming
``PATH:LINE:COL``.

Options: ``--plan-station FILE``, ``--plan-variant V`` (repeatable), ``--plan-explore``,
``--plan-db FILE`` (result store, default ``out/station-test.db`` under the rootdir).
Off for a run: ``-p no:eol_station``; for YAML that is not a plan to prove (test data), use
``collect_ignore_glob`` in a conftest.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

_FOUND = pytest.StashKey[set]()  # variants of the plans collected (for --plan-variant)
_CASES = pytest.StashKey[bool]()  # plan cases were collected: their result store is checked


def pytest_addoption(parser) -> None:
    group = parser.getgroup("eol_station", "test plans as tests (station test)")
    group.addoption("--plan-station", metavar="FILE", help="station config for plan files (default: the simulated station)")
    group.addoption("--plan-variant", action="append", metavar="V", help="prove only this variant (repeatable)")
    group.addoption("--plan-explore", action="store_true", help="also inject every undeclared catalogue fault")
    group.addoption("--plan-db", metavar="FILE", help="result store for the runs (default: out/station-test.db)")


def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix in (".yaml", ".yml"):
        from station.plan.discover import is_plan_file

        if is_plan_file(file_path):
            return PlanFile.from_parent(parent, path=file_path)
    return None


def _unknown_variants(config, have: set[str], said: str) -> None:
    """``--plan-variant`` naming a variant no plan collected has (``have``: the variants the plans
    collected have; ``said``: what they are, in words): a usage error, exit 4 — a typo must not
    turn into a green run of nothing."""
    missing = [v for v in config.getoption("plan_variant") or [] if v not in have]
    if missing:
        pytest.exit(f"--plan-variant {', '.join(missing)}: no plan collected has it "
                    f"({said}: {', '.join(sorted(have)) or 'none'})", returncode=pytest.ExitCode.USAGE_ERROR)


def _db(config) -> str:
    """The result store the runs go to: ``--plan-db`` or ``out/station-test.db`` under the rootdir."""
    return config.getoption("plan_db") or str(Path(config.rootpath) / "out" / "station-test.db")


def _check_db(config) -> None:
    """A result store the runs cannot write: a usage error said once (exit 4), not every case failed."""
    from station.proof.outputs import store_problems

    problems = store_problems(_db(config), "--plan-db")
    if problems:
        pytest.exit("; ".join(problems), returncode=pytest.ExitCode.USAGE_ERROR)


def pytest_collection_finish(session) -> None:
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller checks (below)
        return
    found = session.config.stash.get(_FOUND, None)
    if found is not None:  # no plan file collected: nothing to say
        _unknown_variants(session.config, found, "their variants")
    if session.config.stash.get(_CASES, False):
        _check_db(session.config)


# what follows VARIANT- in a plan item's name: golden, explore:..., or FAULT(...) / FAULT@step
_CASE_NAME = re.compile(r"(golden|explore:|[a-z_]+(\(|@))")


def _variant_of(name: str, wanted: list[str]) -> str | None:
    """Which of ``wanted`` a plan item's name (``VARIANT-golden``, ``VARIANT-FAULT...``,
    ``VARIANT-explore:...``) belongs to; fault names are identifiers, so ``car-800-golden`` is
    never variant ``car``."""
    for variant in wanted:
        if name.startswith(f"{variant}-") and _CASE_NAME.match(name, len(variant) + 1):
            return variant
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids) -> None:
    """Under pytest-xdist: the same checks in the controller, from a worker's item ids (left by
    ``-k``/``-m``: a variant all of whose items were deselected is not checked)."""
    names = {i.split("::", 1)[1] for i in ids if "::" in i and i.split("::", 1)[0].endswith((".yaml", ".yml"))}
    if not names:
        return
    if any(n != "plan" for n in names):
        _check_db(node.config)
    wanted = node.config.getoption("plan_variant") or []
    if wanted and not node.config.getoption("keyword") and not node.config.getoption("markexpr"):
        have = {v for n in names if (v := _variant_of(n, wanted))}
        _unknown_variants(node.config, have, "variants asked for that they have")


class PlanFile(pytest.File):
    """A plan file: one item per case of ``station.proof.cases.plan_cases``."""

    def collect(self):
        from drivers.base.diagnostics import InputError
        from station.proof.cases import plan_cases
        from station.proof.command import check_prepared

        opt = self.config.getoption
        wanted = opt("plan_variant")
        try:
            # with --plan-variant: the variants asked for that this plan has (plans differ)
            cases = plan_cases(str(self.path), variants=wanted, explore=opt("plan_explore"),
                               station=opt("plan_station"), partial=bool(wanted))
            check_prepared(cases)  # a station or variant problem: one failing test, not one per case
        except InputError as err:
            yield PlanProblem.from_parent(self, name="plan", problems=[str(p) for p in err.problems])
            return
        if wanted:
            from station.plan.loader import load_plan

            variants = list(load_plan(self.path).plan.variants)
            self.config.stash.setdefault(_FOUND, set()).update(variants)
            if not cases:
                reason = f"none of --plan-variant {', '.join(wanted)} (its variants: {', '.join(variants) or 'none'})"
                yield PlanSkipped.from_parent(self, name="plan", reason=reason)
        if cases:
            self.config.stash[_CASES] = True
        for case in cases:
            yield PlanCase.from_parent(self, name=f"{case.variant_label}-{case.name}", case=case)


class ProofFailed(Exception):
    """A proof that does not hold; carries the result (what happened instead, the record)."""


class PlanCase(pytest.Item):
    def __init__(self, *, case, **kwargs) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.result = None

    def runtest(self) -> None:
        from station.proof.execute import run_case
        from station.proof.report import cell_text, record_line

        self.result = result = run_case(self.case, _db(self.config))
        self.user_properties.append(("verdict", str(result.verdict)))
        self.user_properties.append(("at", str(result.at)))
        self.user_properties.append(("run_id", str(result.run_id)))
        self.add_report_section("call", "proof", f"{cell_text(result)}; {record_line(result)}")
        if not result.ok:
            raise ProofFailed(result)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ProofFailed):
            r = excinfo.value.args[0]
            lines = [f"{r.case.id}: {r.problem}"]
            if r.run_id:
                lines.append(f"record: run {r.run_id} (station results --db {r.db} show {r.run_id})")
            return "\n".join(lines)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, self.case.id


class PlanInvalid(Exception):
    pass


class PlanProblem(pytest.Item):
    """A plan that does not load or bind: proves nothing, fails with every problem."""

    def __init__(self, *, problems: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.problems = problems

    def runtest(self) -> None:
        raise PlanInvalid("\n".join(self.problems))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, PlanInvalid):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}: plan does not load or cannot be prepared"


class PlanSkipped(pytest.Item):
    """A plan with none of the variants asked for (``--plan-variant``): skipped, saying why."""

    def __init__(self, *, reason: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reason = reason

    def runtest(self) -> None:
        pytest.skip(self.reason)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}: {self.reason}"
