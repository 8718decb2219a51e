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
PRECONDITIONS: dict[str, str] = {
    "dc_bus_connected": "the pack's main contactors closed, so the cycler sees the pack's DC bus "
                        "(established by bms.close_contactors, broken by bms.open_contactors)",
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
    ):
        """Add ``func`` as action ``name`` (``role.verb``; the role is the part before the dot)."""

        def register(func):
            role = name.split(".", 1)[0] if "." in name else None
            if role in ("station", "operator"):
                role = None
            unknown = [c for c in (*preconditions, *establishes, *breaks) if c not in PRECONDITIONS]
            if unknown:
                raise ValueError(f"action {name}: unknown precondition {unknown[0]!r}")
            if name in self.specs:
                raise ValueError(f"action {name} is defined twice")
            self.specs[name] = ActionSpec(
                name, func, role, dict(args or {}), dict(measures or {}), positional, timeout, hv,
                (func.__doc__ or "").strip(), dict(defaults or {}), tuple(preconditions), tuple(establishes),
                tuple(breaks), safe_state, tuple(one_of_args),
            )
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
