"""A library bound on its own (`station run`, `station coverage` given a library) says that it is
one, and nothing else: its parameters are its includer's, so every other "unknown name" it would
list is noise (a user trial saw four of them after the one line that mattered)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.base.diagnostics import InputError
from station.plan.bind import bind_plan
from station.plan.loader import load_plan

LIBRARY = Path(__file__).resolve().parents[2] / "test_plans" / "lib" / "bond.yaml"


def test_a_library_bound_alone_is_one_problem_at_its_kind():
    with pytest.raises(InputError) as err:
        bind_plan(load_plan(LIBRARY), None)
    (problem,) = err.value.problems
    assert (problem.line, problem.col) == (4, 7)
    assert problem.message == "this file is a library: include it from a plan, or run a plan"
