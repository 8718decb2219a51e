"""The binder's static check of action preconditions, in run order (mixed into ``Binder``).

Steps are bound in the order they run (setup, main, teardown; a group's body, then its
``finally``), so a condition can be followed like a flag: an action establishing it sets it, one
breaking it clears it; some do either according to an argument (``bms.mode: standby`` breaks
``dc_bus_connected``, ``bms.mode: normal`` establishes it). The check only refuses what is
certain: a step that may not run (a ``when:``, a loop over nothing) or whose argument is an
expression is assumed to run when it establishes and not to when it breaks, so a plan is never
refused for an order that could be right. A condition only the station's side can establish (no
instrument the plan lists has an action establishing it) is not checked here. What remains is
checked at run time by the action itself (ERROR naming the condition).
"""

from __future__ import annotations

from typing import Any

from drivers.base.yamlsrc import Loc, Source
from station.actions.registry import PRECONDITIONS, ActionSpec, Effect
from station.plan import model as m, values as v

_TRUE = ("on", "enable", "enabled", "true", "yes")
_FALSE = ("off", "disable", "disabled", "false", "no")


class OrderChecks:
    """State and check; the host class provides ``add``, ``actions`` and ``plan``."""

    actions: dict[str, ActionSpec]
    plan: m.Plan

    def _conditions(self) -> dict[str, str | None]:
        if not hasattr(self, "_state"):
            self._state: dict[str, str | None] = {}  # condition -> None (holds) or what broke it
        return self._state

    def _checkable(self, cond: str) -> bool:
        """Whether the plan could establish ``cond`` itself (it lists an establishing action's instrument)."""
        if not hasattr(self, "_establishers"):
            self._establishers: dict[str, set[str | None]] = {}
            for spec in self.actions.values():
                for verb, c, _ in spec.changes():
                    if verb == "establishes":
                        self._establishers.setdefault(c, set()).add(spec.role)
        roles = self._establishers.get(cond, set())
        return None in roles or any(role in self.plan.instruments for role in roles)

    def check_preconditions(self, spec: ActionSpec, step: m.ActionStep, args: dict[str, Any],
                            src: Source, loc: Loc) -> None:
        state = self._conditions()
        for cond in spec.preconditions:
            if cond not in state and self._checkable(cond):
                self.add(src, loc + ("action",),
                         f"action '{spec.name}' needs {cond} ({PRECONDITIONS[cond]}); no earlier step establishes it")
            elif state.get(cond) is not None:
                self.add(src, loc + ("action",),
                         f"action '{spec.name}' needs {cond} ({PRECONDITIONS[cond]}); {state[cond]} broke it before")
        certain = step.when is None
        establishes, breaks = list(spec.establishes), list(spec.breaks)
        what = spec.name
        for name, by_value in spec.effects.items():
            known, effect = _effect(spec, name, args, by_value)
            if not known:  # an expression: it may establish, it may not break
                establishes += [c for e in by_value.values() for c in e.establishes]
                continue
            establishes += effect.establishes
            breaks += effect.breaks
            what = f"{spec.name} {name}={args.get(name)}" if effect.breaks else what
        for cond in establishes:
            state[cond] = None
        for cond in breaks:
            if certain and cond in state:
                state[cond] = f"{what} at {src.file}:{src.pos(loc)[0]}"


def _effect(spec: ActionSpec, name: str, args: dict[str, Any], by_value: dict[Any, Effect]) -> tuple[bool, Effect]:
    """(whether the argument's value is known at bind, the effect of that value)."""
    raw = args.get(name, spec.args[name].default if name in spec.args else None)
    if v.is_template(raw) or not isinstance(raw, (str, bool, int, float)):
        return False, Effect()  # an expression, or a wrong value the argument check reports
    if spec.args.get(name) is not None and spec.args[name].kind == "bool" and isinstance(raw, str):
        raw = True if raw.lower() in _TRUE else False if raw.lower() in _FALSE else raw
    return True, by_value.get(raw, Effect())
