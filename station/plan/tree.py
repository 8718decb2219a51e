"""The bound plan: an executable tree of nodes, built and checked before anything is touched."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from drivers.base.yamlsrc import Loc, Source
from station.actions.registry import ActionSpec
from station.plan import model as m, values as v


@dataclass
class ActionNode:
    spec: ActionSpec
    step: m.ActionStep
    label: str  # path segment: the step id, or action@index
    args: dict[str, Any]  # raw argument values (literals, quantity strings, ${...})
    expect: dict[str, m.Limit]  # after variant overrides
    src: Source
    loc: Loc

    @property
    def id(self) -> str | None:
        return self.step.id


@dataclass
class GroupNode:
    step: m.GroupStep | m.IncludeStep
    label: str
    children: list[Node]
    finally_: list[Node] = field(default_factory=list)
    parallel: bool = False
    monitors: list[m.Monitor] = field(default_factory=list)
    for_each: tuple[str, Any] | None = None  # (variable, raw list or ${expr})
    include_args: dict[str, Any] | None = None  # for includes: raw args, evaluated in the caller's names
    include_defaults: dict[str, Any] | None = None  # the library's own parameter defaults
    src: Source | None = None
    loc: Loc = ()

    @property
    def id(self) -> str | None:
        return self.step.id


Node = ActionNode | GroupNode


@dataclass
class BoundPlan:
    """A plan bound to a variant and a station: what the sequencer runs."""

    plan: m.Plan
    path: str
    sha256: str
    variant: str | None
    parameters: dict[str, Any]  # evaluated values (quantities, strings, lists)
    setup: list[Node]
    main: list[Node]
    teardown: list[Node]
    roles: list[str]
    libraries: dict[str, str] = field(default_factory=dict)  # included file (relative to the plan) -> sha256
    deferred: list = field(default_factory=list)  # Problems: checks only the run can make (validate says so)

    @cached_property  # read by the release check, the role check and the RunStarted event
    def release_sha256(self) -> str:
        """What a release records and production mode checks: the plan file's sha256 when it
        includes nothing, else the sha256 of a manifest of the plan's and every included
        library's sha256 (an edited library changes it as an edited plan does)."""
        if not self.libraries:
            return self.sha256
        manifest = f"eol-plan-release 1\n{self.sha256}  .\n" + "".join(
            f"{digest}  {name}\n" for name, digest in sorted(self.libraries.items()))
        return hashlib.sha256(manifest.encode("utf-8")).hexdigest()

    def leaf_count(self) -> int:
        """Action steps known before the run (loops counted once per literal item)."""

        def count(nodes: list[Node]) -> int:
            total = 0
            for node in nodes:
                if isinstance(node, ActionNode):
                    total += 1
                else:
                    inner = count(node.children) + count(node.finally_)
                    reps = 1
                    if node.for_each and isinstance(node.for_each[1], list):
                        reps = len(node.for_each[1])
                    elif node.for_each:
                        value = node.for_each[1]
                        if isinstance(value, str) and value.startswith("${") and value[2:-1].strip() in self.parameters:
                            items = self.parameters[value[2:-1].strip()]
                            reps = len(items) if isinstance(items, list) else 1
                    total += inner * reps
            return total

        return count(self.setup) + count(self.main) + count(self.teardown)


def title(node: Node, names: Mapping[str, Any] | None) -> str:
    """The step's name with its ``${...}`` filled ("Insulation HV+ to chassis"), else its label.

    The binder checked the template; one that cannot be filled yet (a result not measured when
    the step starts) is shown as written rather than failing the step over a title.
    """
    name = node.step.name or node.label
    if names is None or "${" not in name:
        return name
    try:
        value = v.evaluate(name, names)
    except v.ValueProblem:
        return name
    return value if isinstance(value, str) else v.render(value)
