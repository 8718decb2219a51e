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

_PLAN_MARK = re.compile(r"^schema_version\s*:", re.MULTILINE)
_LIBRARY_MARK = re.compile(r"^kind\s*:\s*['\"]?library\b", re.MULTILINE)


def pytest_addoption(parser) -> None:
    group = parser.getgroup("eol_station", "test plans as tests (station test)")
    group.addoption("--plan-station", metavar="FILE", help="station config for plan files (default: the simulated station)")
    group.addoption("--plan-variant", action="append", metavar="V", help="prove only this variant (repeatable)")
    group.addoption("--plan-explore", action="store_true", help="also inject every undeclared catalogue fault")
    group.addoption("--plan-db", metavar="FILE", help="result store for the runs (default: out/station-test.db)")


def _is_plan(path: Path) -> bool:
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:20000]
    except OSError:
        return False
    return bool(_PLAN_MARK.search(head)) and not _LIBRARY_MARK.search(head)


def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix in (".yaml", ".yml") and _is_plan(file_path):
        return PlanFile.from_parent(parent, path=file_path)
    return None


class PlanFile(pytest.File):
    """A plan file: one item per case of ``station.proof.cases.plan_cases``."""

    def collect(self):
        from drivers.base.diagnostics import InputError
        from station.proof.cases import plan_cases
        from station.proof.command import check_prepared

        opt = self.config.getoption
        try:
            cases = plan_cases(str(self.path), variants=opt("plan_variant"), explore=opt("plan_explore"),
                               station=opt("plan_station"))
            check_prepared(cases)  # a station or variant problem: one failing test, not one per case
        except InputError as err:
            yield PlanProblem.from_parent(self, name="plan", problems=[str(p) for p in err.problems])
            return
        for case in cases:
            yield PlanCase.from_parent(self, name=f"{case.variant_label}-{case.name}", case=case)


class ProofFailed(Exception):
    """A proof that does not hold; carries the result (what happened instead, the record)."""


class PlanCase(pytest.Item):
    def __init__(self, *, case, **kwargs) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.result = None

    def _db(self) -> str:
        db = self.config.getoption("plan_db")
        return db or str(Path(self.config.rootpath) / "out" / "station-test.db")

    def runtest(self) -> None:
        from station.proof.execute import run_case
        from station.proof.report import cell_text, record_line

        self.result = result = run_case(self.case, self._db())
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
