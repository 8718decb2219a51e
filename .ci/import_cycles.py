"""Fail on import cycles between the project's modules (run by `make lint`).

A cycle is a strongly connected component of the module import graph (grimp, as import-linter
builds it): every import counts, including those inside functions and under TYPE_CHECKING,
because a module that needs its importer's types is still on the wrong side of the dependency.
Exit 0 when every cycle is one of ALLOWED below, 1 otherwise; each offending cycle is printed with
the imports that close it.
"""

from __future__ import annotations

import sys

import grimp

PACKAGES = ("station", "drivers", "sim")

# Each entry: the modules a cycle may span, and why. A cycle passes when all its modules are in one
# entry; an entry no cycle uses any more is reported so that it can be deleted.
ALLOWED: tuple[tuple[frozenset[str], str], ...] = (
    (
        frozenset({"station.ui.app", "station.ui.fixture_panel", "station.ui.screens"}),
        "Textual's widget <-> app pattern: the app composes its screens and panels, and they name"
        " the app's type (under TYPE_CHECKING) to reach its services",
    ),
)


def import_graph() -> dict[str, set[str]]:
    """Module name -> the project modules it imports directly."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def main() -> int:
    edges = import_graph()
    found = cycles(edges)
    used: set[int] = set()
    bad = []
    for component in found:
        allowing = [i for i, (modules, _) in enumerate(ALLOWED) if modules >= set(component)]
        used.update(allowing)
        if not allowing:
            bad.append(component)
    for component in bad:
        members = set(component)
        print(f"import cycle across {len(component)} modules:")
        for module in component:
            print(f"  {module} -> {', '.join(sorted(edges[module] & members))}")
    for i, (modules, why) in enumerate(ALLOWED):
        if i not in used:
            print(f"note: allowed cycle no longer present, delete its entry: {sorted(modules)} ({why})")
    print(f"{len(found)} import cycle(s), {len(found) - len(bad)} allowed, {len(bad)} not allowed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
