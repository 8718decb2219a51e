"""The action registry: names, argument signatures with units, measurements they return.

An action is an async function ``f(ctx, **args) -> dict[str, value]``: it measures, the engine
judges. Arguments arrive evaluated and converted to SI floats (``unit="V"`` → volts).
Signatures let the validator check a plan before any instrument is touched.

Actions come in ``ActionSet``s, each an entry point of group ``eol_station.actions``
(``drivers/plugins.py``): this project's own sets are declared in its ``pyproject.toml``, a
site's in its package's (``acme_torque = "acme_station.torque:ACTIONS"``). Importing a module
registers nothing; ``all_actions()`` reads the entry points once and merges the sets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from drivers import plugins

REQUIRED = object()

# Conditions an action may need, establish or break: the binder checks their order statically
# (an action needing one with no step establishing it before is a plan error) and the action
# checks it at run time, ending ERROR naming the condition, never a product verdict.
# A condition is checked statically only in plans that list an instrument of an action that
# establishes it: a plan without a BMS cannot close the contactors itself (the station may), and
# only the run-time check can tell.
PRECONDITIONS: dict[str, str] = {
    "dc_bus_connected": "the pack's main contactors closed, so the cycler sees the pack's DC bus "
                        "(established by bms.close_contactors or bms.mode normal/charge/discharge; broken by "
                        "bms.open_contactors, bms.mode standby, bms.hvil_check and fixture.lv_power off)",
    "insulation_monitor_disabled": "the pack's own insulation monitor switched off: it connects each HV pole to "
                                   "chassis, so an insulation or withstand test would measure it with the pack "
                                   "(established by bms.insulation_monitor disable, broken by enable)",
}

@dataclass(frozen=True)
class Arg:
    """One action argument. ``kind``: quantity | number | int | bool | str | list | any."""

    kind: str = "quantity"
    unit: str | None = None  # canonical unit for quantities: V, A, s, ohm, Pa, degC, Ah, W, %
    default: Any = REQUIRED
    choices: tuple | None = None
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Effect:
    """What an action does to PRECONDITIONS when one of its arguments has a given value."""

    establishes: tuple[str, ...] = ()
    breaks: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActionSpec:
    name: str
    func: Callable[..., Awaitable[dict[str, Any]]]
    role: str | None  # instrument role the action drives; None for station built-ins
    args: dict[str, Arg] = field(default_factory=dict)
    measures: dict[str, str] = field(default_factory=dict)  # name -> unit | "bool" | "str" | "" ("*" = any name)
    positional: str | None = None  # the argument a shorthand scalar/list value fills
    timeout: float = 600.0  # default step timeout, s
    hv: bool = False  # energises HV: interlocks are checked and watched
    doc: str = ""
    defaults: dict[str, dict] = field(default_factory=dict)  # implicit limits per measurement ("*" = any)
    preconditions: tuple[str, ...] = ()  # PRECONDITIONS this action needs
    establishes: tuple[str, ...] = ()  # PRECONDITIONS true after it succeeds
    breaks: tuple[str, ...] = ()  # PRECONDITIONS false after it runs
    safe_state: str = ""  # what it energises or changes that the safe state undoes
    one_of_args: tuple[tuple[str, ...], ...] = ()  # groups of arguments of which one must be given
    effects: dict[str, dict[Any, Effect]] = field(default_factory=dict)  # argument -> its value -> Effect

    def changes(self) -> list[tuple[str, str, str | None]]:
        """(establishes|breaks, condition, 'when ARG is VALUE' or None) for everything it changes."""
        out: list[tuple[str, str, str | None]] = [("establishes", c, None) for c in self.establishes]
        out += [("breaks", c, None) for c in self.breaks]
        for arg, by_value in self.effects.items():
            for verb in ("establishes", "breaks"):
                for cond in dict.fromkeys(c for e in by_value.values() for c in getattr(e, verb)):
                    values = [_shown(val) for val, e in by_value.items() if cond in getattr(e, verb)]
                    out.append((verb, cond, f"when {arg} is {' or '.join(values)}"))
        return out


def _shown(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


class ActionSet:
    """The actions one module defines: ``ACTIONS = ActionSet()``, then ``@ACTIONS.action(...)``
    on each; the module's entry point names the set (``"pkg.module:ACTIONS"``)."""

    def __init__(self) -> None:
        self.specs: dict[str, ActionSpec] = {}

    def action(
        self,
        name: str,
        *,
        args: dict[str, Arg] | None = None,
        measures: dict[str, str] | None = None,
        positional: str | None = None,
        timeout: float = 600.0,
        hv: bool = False,
        defaults: dict[str, dict] | None = None,
        preconditions: tuple[str, ...] = (),
        establishes: tuple[str, ...] = (),
        breaks: tuple[str, ...] = (),
        safe_state: str = "",
        one_of_args: tuple[tuple[str, ...], ...] = (),
        effects: dict[str, dict[Any, Effect]] | None = None,
    ):
        """Add ``func`` as action ``name`` (``role.verb``; the role is the part before the dot)."""

        def register(func):
            role = name.split(".", 1)[0] if "." in name else None
            if role in ("station", "operator"):
                role = None
            if name in self.specs:
                raise ValueError(f"action {name} is defined twice")
            spec = ActionSpec(
                name, func, role, dict(args or {}), dict(measures or {}), positional, timeout, hv,
                (func.__doc__ or "").strip(), dict(defaults or {}), tuple(preconditions), tuple(establishes),
                tuple(breaks), safe_state, tuple(one_of_args), dict(effects or {}),
            )
            unknown = [c for c in (*preconditions, *(c for _, c, _ in spec.changes())) if c not in PRECONDITIONS]
            if unknown:
                raise ValueError(f"action {name}: unknown precondition {unknown[0]!r}")
            self.specs[name] = spec
            return func

        return register


_TABLE: dict[str, ActionSpec] | None = None


def _load() -> dict[str, ActionSpec]:
    """Every entry point's set, merged; a set that is not one, or an action two sets define, is
    a ``PluginError`` naming the entry points."""
    table: dict[str, ActionSpec] = {}
    origin: dict[str, str] = {}
    for name, plugin in plugins.plugins(plugins.ACTIONS).items():
        found = plugin.load()
        if not isinstance(found, ActionSet):
            raise plugins.PluginError(plugin.where, f"{plugins.ACTIONS} entry point {name} = {plugin.target!r} "
                                                    f"(from {plugin.dist}) is not an ActionSet")
        for action_name, spec in found.specs.items():
            if action_name in table:
                raise plugins.PluginError(plugin.where, f"action {action_name} is defined by entry point {name} "
                                                        f"({plugin.dist}) and by {origin[action_name]}: rename one")
            table[action_name] = spec
            origin[action_name] = f"{name} ({plugin.dist})"
    return table


def all_actions() -> dict[str, ActionSpec]:
    """Every action of every installed set (read once per process)."""
    global _TABLE
    if _TABLE is None:
        _TABLE = _load()
    return _TABLE


def get_action(name: str) -> ActionSpec | None:
    return all_actions().get(name)
