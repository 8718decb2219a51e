"""How the station commands a BMS, as data: the ``commands`` section of a BMS profile (signal map).

Three command paths, one per BMS:

* ``can``: the station's cyclic request message (the map's ``request`` section) — a BMS built
  for a test station or a vehicle master.
* ``uds``: UDS services per command, as production vehicle BMSs are commanded on a line:
  RoutineControl (0x31, ``routine`` — its id, or its name in the profile's ODX — with
  ``control: start|stop|results``),
  InputOutputControlByIdentifier (0x2F, ``io_control`` with ``control: return_control|
  reset_to_default|freeze|short_term_adjustment`` and a ``state``), WriteDataByIdentifier
  (0x2E, ``write_did`` with ``data``). Each step names its diagnostic ``session`` (default
  ``extended``) and security ``level`` (0: none); both may be set once for the whole section.
* ``none``: a read-only BMS. Plans that need a command are refused at validation; its safe
  state is the fixture's (LV off).

Commands: ``mode`` (``standby`` required: the safe state; ``normal``, ``charge``,
``discharge`` as offered), ``balancing`` (``on`` and ``off``), ``insulation_monitor``
(``enabled`` and ``disabled``). A command is one step or a list of steps.

```yaml
commands:
  path: uds
  session: extended
  security: 1
  mode:
    standby: {routine: 0xF00A, control: stop}
    normal: {routine: 0xF00A, data: "01"}
  insulation_monitor:
    disabled: {io_control: 0xFD21, control: short_term_adjustment, state: "00"}
    enabled: {io_control: 0xFD21, control: return_control}
```
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PATHS = ("can", "uds", "none")
COMMANDS = {"mode": ("standby", "normal", "charge", "discharge"), "balancing": ("on", "off"),
            "insulation_monitor": ("enabled", "disabled")}
SESSIONS = ("default", "extended", "programming")
ROUTINE_CONTROL = {"start": 0x01, "stop": 0x02, "results": 0x03}
IO_CONTROL = {"return_control": 0x00, "reset_to_default": 0x01, "freeze": 0x02, "short_term_adjustment": 0x03}
SERVICES = {"routine": 0x31, "io_control": 0x2F, "write_did": 0x2E}
_STEP_KEYS = {"routine", "io_control", "write_did", "control", "data", "state", "session", "security"}


@dataclass(frozen=True)
class UdsStep:
    """One UDS request of a command: ``sid`` with its identifier, control byte and data."""

    service: str  # "routine" | "io_control" | "write_did"
    ident: int  # routine id or DID
    control: int | None  # RoutineControl sub-function or IO control parameter; None for 0x2E
    data: bytes
    session: str = "extended"
    security: int = 0

    @property
    def sid(self) -> int:
        return SERVICES[self.service]

    def payload(self) -> bytes:
        """The request after the SID (what the ECU matches): sub-function, id, control, data."""
        ident = self.ident.to_bytes(2, "big")
        control = b"" if self.control is None else bytes([self.control])  # None only for 0x2E
        if self.service == "routine":
            return control + ident + self.data
        if self.service == "io_control":
            return ident + control + self.data
        return ident + self.data

    def describe(self, service: bool = True) -> str:
        """e.g. ``0x31 RoutineControl stop 0xf00a`` (without the service name: ``stop 0xf00a``)."""
        names = {"routine": ("0x31 RoutineControl", {v: k for k, v in ROUTINE_CONTROL.items()}),
                 "io_control": ("0x2F InputOutputControl", {v: k for k, v in IO_CONTROL.items()}),
                 "write_did": ("0x2E WriteDataByIdentifier", {})}
        name, controls = names[self.service]
        what = f"{controls.get(self.control, self.control)} " if self.control is not None else ""
        data = f" {self.data.hex().upper()}" if self.data else ""
        return f"{name + ' ' if service else ''}{what}{self.ident:#06x}{data}"


@dataclass(frozen=True)
class CommandSet:
    """The command path of one BMS and, for ``uds``, the steps of each (command, value)."""

    path: str
    uds: dict[tuple[str, str], tuple[UdsStep, ...]] = field(default_factory=dict)
    can_values: dict[str, tuple[str, ...]] = field(default_factory=dict)  # path can: offered values

    def offered(self) -> dict[str, tuple[str, ...]]:
        """command -> the values this BMS accepts (a command it lacks is absent)."""
        if self.path == "can":
            return dict(self.can_values)
        out: dict[str, list[str]] = {}
        for kind, value in self.uds:
            out.setdefault(kind, []).append(value)
        return {kind: tuple(values) for kind, values in out.items()}

    def steps(self, kind: str, value: str) -> tuple[UdsStep, ...] | None:
        return self.uds.get((kind, value))


def load_commands(loader: Any, doc: dict[str, Any], request: Any,
                  routine_names: Callable[[], Mapping[str, int]] = dict) -> CommandSet:
    """The ``commands`` section (problems reported through ``loader``, a signals._Loader).
    ``routine_names()``: routine name -> id from the diagnostic description, for steps that name
    their routine (``routine: HvContactorControl``) instead of numbering it."""
    spec = doc.get("commands")
    default = "can" if "request" in doc else "none"
    if spec is None:
        return _can(request) if default == "can" else CommandSet("none")
    if not loader.keys(spec, {"path", "session", "security", *COMMANDS}, "commands"):
        return CommandSet("none")
    path = spec.get("path", default)
    if not isinstance(path, str) or path not in PATHS:
        loader.err(spec, "path", f"commands.path must be one of {', '.join(PATHS)}, got {path!r}", value=True)
        return CommandSet("none")
    if path == "can":
        if request is None:
            loader.err(spec, "path", "commands.path can needs the 'request' message section", value=True)
        extra = [k for k in COMMANDS if k in spec]
        for kind in extra:
            loader.err(spec, kind, f"commands.{kind}: with path can, commands are the request message's values")
        return _can(request)
    if path == "none":
        for kind in (k for k in COMMANDS if k in spec):
            loader.err(spec, kind, f"commands.{kind}: a read-only BMS (path none) takes no commands")
        return CommandSet("none")
    defaults = {"session": spec.get("session", "extended"), "security": spec.get("security", 0)}
    steps: dict[tuple[str, str], tuple[UdsStep, ...]] = {}
    for kind, values in COMMANDS.items():
        table = spec.get(kind)
        if table is None:
            continue
        if not loader.keys(table, set(values), f"commands.{kind}"):
            continue
        if kind != "mode":
            missing = [v for v in values if v not in table]
            if missing:
                loader.err(spec, kind, f"commands.{kind} needs both {' and '.join(values)}; missing {missing}")
        for value, item in table.items():
            items = item if isinstance(item, list) else [item]
            parsed = [step for it in items
                      if (step := _step(loader, table, value, it, defaults, routine_names)) is not None]
            if items and len(parsed) == len(items):
                steps[(kind, str(value))] = tuple(parsed)
    if ("mode", "standby") not in steps and "mode" in spec and isinstance(spec.get("mode"), dict):
        loader.err(spec, "mode", "commands.mode needs 'standby' (the safe state sends it)")
    return CommandSet("uds", steps)


def _can(request: Any) -> CommandSet:
    if request is None:
        return CommandSet("can")
    values = {"mode": tuple(v for v in COMMANDS["mode"] if v in request.values.get("mode", {}))}
    for kind in ("balancing", "insulation_monitor"):
        if kind in request.signals:
            values[kind] = COMMANDS[kind]
    return CommandSet("can", can_values=values)


def _step(loader: Any, parent: Any, key: str, item: Any, defaults: dict[str, Any],
          routine_names: Callable[[], Mapping[str, int]]) -> UdsStep | None:
    where = f"command {key}"
    if not loader.keys(item, _STEP_KEYS, where):
        return None
    services = [s for s in SERVICES if s in item]
    if len(services) != 1:
        loader.err(parent, key, f"{where} needs exactly one of {', '.join(SERVICES)}")
        return None
    service = services[0]
    ident = item[service]
    if service == "routine" and isinstance(ident, str):
        names = routine_names()
        if ident not in names:
            loader.err(item, service, f"routine {ident!r} is not in the diagnostic description; its routines: "
                       f"{', '.join(sorted(names)) or 'none (name routines by id, or give diagnostics: odx)'}", value=True)
            return None
        ident = names[ident]
    if isinstance(ident, bool) or not isinstance(ident, int) or not 0 <= ident <= 0xFFFF:
        loader.err(item, service, f"{service} must be a 16-bit identifier (e.g. 0xF00A), got {ident!r}", value=True)
        return None
    control = None
    if service == "routine":
        text = item.get("control", "start")
        control = ROUTINE_CONTROL.get(text) if isinstance(text, str) else None
        if control is None:
            loader.err(item, "control", f"routine control must be one of {', '.join(ROUTINE_CONTROL)}, got {text!r}",
                       value=True)
            return None
    elif service == "io_control":
        text = item.get("control", "short_term_adjustment")
        control = IO_CONTROL.get(text) if isinstance(text, str) else None
        if control is None:
            loader.err(item, "control", f"io_control control must be one of {', '.join(IO_CONTROL)}, got {text!r}",
                       value=True)
            return None
    elif "control" in item:
        loader.err(item, "control", "write_did takes no control")
    data_key = "state" if "state" in item else "data"
    if "state" in item and "data" in item:
        loader.err(item, "state", "give either 'state' or 'data'")
    raw = item.get(data_key, "")
    try:
        data = bytes.fromhex(str(raw).replace(" ", "")) if raw not in (None, "") else b""
    except ValueError:
        loader.err(item, data_key, f"{data_key} must be hex bytes (e.g. \"01\" or \"00 FF\"), got {raw!r}", value=True)
        return None
    if service == "write_did" and not data:
        loader.err(item, service, "write_did needs 'data'")
    session = item.get("session", defaults["session"])
    if not isinstance(session, str) or session not in SESSIONS:
        loader.err(item if "session" in item else parent, "session" if "session" in item else key,
                   f"session must be one of {', '.join(SESSIONS)}, got {session!r}", value="session" in item)
        return None
    level = item.get("security", defaults["security"])
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 0x3F:
        loader.err(item if "security" in item else parent, "security" if "security" in item else key,
                   f"security must be a level 0..63 (0: none), got {level!r}", value="security" in item)
        return None
    return UdsStep(service, ident, control, data, session, level)
