"""The binder's static check of action preconditions, in run order (mixed into ``Binder``).

Steps are bound in the order they run (setup, main, teardown; a group's body, then its
``finally``), so a condition can be followed like a flag: an action establishing it sets it, one
breaking it clears it. The check only refuses what is certain: a step that may not run (a
``when:``, a loop over nothing) is assumed to run when it establishes and not to when it breaks,
so a plan is never refused for an order that could be right. What remains is checked at run time
by the action itself (ERROR naming the condition).
"""

from __future__ import annotations

from drivers.base.yamlsrc import Loc, Source
from station.actions.registry import PRECONDITIONS, ActionSpec
from station.plan import model as m


class OrderChecks:
    """State and check; the host class provides ``add``."""

    def _conditions(self) -> dict[str, str | None]:
        if not hasattr(self, "_state"):
            self._state: dict[str, str | None] = {}  # condition -> None (holds) or what broke it
        return self._state

    def check_preconditions(self, spec: ActionSpec, step: m.ActionStep, src: Source, loc: Loc) -> None:
        state = self._conditions()
        for cond in spec.preconditions:
            if cond not in state:
                self.add(src, loc + ("action",),
                         f"action '{spec.name}' needs {cond} ({PRECONDITIONS[cond]}); no earlier step establishes it")
            elif state[cond] is not None:
                self.add(src, loc + ("action",),
                         f"action '{spec.name}' needs {cond} ({PRECONDITIONS[cond]}); {state[cond]} broke it before")
        certain = step.when is None
        for cond in spec.establishes:
            state[cond] = None
        for cond in spec.breaks:
            if certain and cond in state:
                state[cond] = f"{spec.name} at {src.file}:{src.pos(loc)[0]}"
