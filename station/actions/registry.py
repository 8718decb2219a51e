"""The action registry: names, argument signatures with units, measurements they return.

An action is an async function ``f(ctx, **args) -> dict[str, value]``: it measures, the engine
judges. Arguments arrive evaluated and converted to SI floats (``unit="V"`` → volts).
Signatures let the validator check a plan before any instrument is touched.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

REQUIRED = object()

_MODULES = (
    "station.actions.builtin",
    "station.actions.fixture",
    "station.actions.bms",
    "station.actions.safety",
    "station.actions.dmm",
    "station.actions.cycler",
    "station.actions.leak",
)


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


ACTIONS: dict[str, ActionSpec] = {}


def action(
    name: str,
    *,
    args: dict[str, Arg] | None = None,
    measures: dict[str, str] | None = None,
    positional: str | None = None,
    timeout: float = 600.0,
    hv: bool = False,
    defaults: dict[str, dict] | None = None,
):
    """Register ``func`` as action ``name`` (``role.verb``; the role is the part before the dot)."""

    def register(func):
        role = name.split(".", 1)[0] if "." in name else None
        if role in ("station", "operator"):
            role = None
        ACTIONS[name] = ActionSpec(
            name, func, role, dict(args or {}), dict(measures or {}), positional, timeout, hv,
            (func.__doc__ or "").strip(), dict(defaults or {}),
        )
        return func

    return register


def _load() -> None:
    for module in _MODULES:
        importlib.import_module(module)


def all_actions() -> dict[str, ActionSpec]:
    if not ACTIONS:
        _load()
    return ACTIONS


def get_action(name: str) -> ActionSpec | None:
    return all_actions().get(name)
