"""The import-cycle check of `make lint` (.ci/import_cycles.py): what it calls a cycle."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "import_cycles.py"


def _module():
    spec = importlib.util.spec_from_file_location("import_cycles", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_strongly_connected_modules_are_one_cycle_and_a_chain_is_none():
    cycles = _module().cycles
    graph = {
        "a": {"b"}, "b": {"c"}, "c": {"a", "d"},  # a -> b -> c -> a, and on to d
        "d": {"e"}, "e": set(),  # a chain below the cycle
        "x": {"y"}, "y": {"x"},  # a second, separate cycle
        "s": {"s"},  # a module importing itself is no cycle between modules
    }
    assert cycles(graph) == [["a", "b", "c"], ["x", "y"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_a_long_chain_does_not_exhaust_the_stack():
    n = 5000
    graph = {f"m{i}": {f"m{i + 1}"} for i in range(n)} | {f"m{n}": {"m0"}}
    assert len(cycles := _module().cycles(graph)) == 1 and len(cycles[0]) == n + 1
