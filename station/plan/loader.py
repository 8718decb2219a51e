"""Load a plan file: YAML with positions → desugared data → frozen models, every problem located."""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Discriminator, ValidationError

from drivers.base.diagnostics import InputError, Problem
from drivers.base.yamlsrc import Loc, Source, load_file, load_text
from station.plan import model as m

MAX_PROBLEMS = 200
STEP_LISTS = {"setup", "main", "teardown", "steps", "finally"}
STEP_TAGS = {"action", "group", "include"}


@dataclass(frozen=True)
class LoadedPlan:
    plan: m.Plan
    source: Source
    path: Path
    sha256: str


def desugar_steps(data: Any, src: Source, loc: Loc = ()) -> None:
    """Rewrite ``- dmm.voltage: {range: 1000 V}`` into ``{action: dmm.voltage, with: {...}}``, in place."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key in STEP_LISTS and isinstance(value, list):
                for index, step in enumerate(value):
                    _desugar_one(step, src, loc + (key, index))
            desugar_steps(value, src, loc + (key,))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            desugar_steps(item, src, loc + (index,))


def _desugar_one(step: Any, src: Source, loc: Loc) -> None:
    if not isinstance(step, dict) or "action" in step or "include" in step or "steps" in step:
        return
    dotted = [k for k in step if "." in k]
    if len(dotted) != 1:
        return
    key = dotted[0]
    value = step.pop(key)
    step["action"] = key
    src.key_pos[loc + ("action",)] = src.key_pos.get(loc + (key,), src.pos(loc))
    src.value_pos[loc + ("action",)] = src.key_pos[loc + ("action",)]
    if isinstance(value, dict):
        step["with"] = value
        src.alias[loc + ("with",)] = loc + (key,)
    elif value is not None:
        step["with"] = {"_": value}
        src.alias[loc + ("with",)] = loc + (key,)
        src.alias[loc + ("with", "_")] = loc + (key,)


def _strip_tags(loc: tuple) -> tuple:
    out: list[Any] = []
    for i, part in enumerate(loc):
        if part in STEP_TAGS and i >= 2 and isinstance(loc[i - 1], int) and loc[i - 2] in STEP_LISTS:
            continue
        out.append(part)
    return tuple(out)


def _has(node: Any, part: Any) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(part, int) and 0 <= part < len(node)


def _unwrap(annotation: Any, node: Any) -> type[BaseModel] | None:
    """The model an annotation describes for this data node (through Optional, unions, Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        args = typing.get_args(annotation)
        if any(isinstance(a, Discriminator) for a in args[1:]):  # the step union
            return {"action": m.ActionStep, "group": m.GroupStep, "include": m.IncludeStep}[m._step_kind(node)]
        return _unwrap(args[0], node)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _unwrap(arg, node)
            if found is not None:
                return found
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _container_item(annotation: Any) -> Any:
    """The item annotation of list[X] / dict[str, X] (through Optional/Annotated), else None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _container_item(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            item = _container_item(arg)
            if item is not None:
                return item
        return None
    if origin in (list, dict):
        return typing.get_args(annotation)[-1]
    return None


def _model_at(root: type[BaseModel], data: Any, loc: tuple) -> type[BaseModel] | None:
    """Which model describes the mapping at ``loc`` (for did-you-mean on unknown keys)."""
    model: type[BaseModel] | None = root
    annotation: Any = None
    node = data
    for part in loc:
        node = node[part] if isinstance(node, (dict, list)) and _has(node, part) else None
        if model is not None:
            fields = {(f.alias or name): f for name, f in model.model_fields.items()}
            if part not in fields:
                return None
            annotation = fields[part].annotation
            model = None
        else:
            annotation = _container_item(annotation)
            if annotation is None:
                return None
        inner = _unwrap(annotation, node)
        if inner is not None and _container_item(annotation) is None:
            model = inner
    return model


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _describe(err: dict, data: Any, root: type[BaseModel]) -> str:
    kind, msg, loc = err["type"], err["msg"], err["loc"]  # loc already without union tags
    name = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        model = _model_at(root, data, loc[:-1])
        hint = ""
        if model is not None:
            close = difflib.get_close_matches(str(name), _field_names(model), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; allowed: {', '.join(_field_names(model))}"
        return f"unknown key '{name}'{hint}"
    if kind == "missing":
        return f"missing required key '{name}'"
    if kind == "literal_error" and name == "schema_version":
        return f"schema_version must be {m.SCHEMA_VERSION}"
    if kind == "string_pattern_mismatch":
        return f"'{name}': {err.get('input')!r} does not match {err['ctx']['pattern']}"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    where = f"'{name}': " if isinstance(name, str) and name else ""
    return f"{where}{msg[0].lower() + msg[1:] if msg else msg}"


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "date", "none"}


def _union_member(part: Any) -> bool:
    """Pydantic names the union member it tried in ``loc`` (``InstrumentConfig``, ``str``)."""
    return isinstance(part, str) and (part in _TYPE_TAGS or (part[:1].isupper() and part.endswith("Config")))


def validation_problems(exc: ValidationError, src: Source, data: Any, root: type[BaseModel] = m.Plan) -> list[Problem]:
    problems = []
    seen = set()
    errors = exc.errors(include_url=False)
    if len(errors) > MAX_PROBLEMS:  # a file that is not a plan at all: say so in bounded time
        extra = len(errors) - MAX_PROBLEMS
        errors = errors[:MAX_PROBLEMS]
        problems.append(src.problem((), f"{extra} more problems not shown (first {MAX_PROBLEMS} listed)"))
    for err in errors:
        raw = _strip_tags(err["loc"])
        if raw and raw[-1] in _TYPE_TAGS and len(errors) > 1:
            continue  # "or it could have been a plain string": noise next to the real error
        loc = tuple(p for p in raw if not _union_member(p))
        err = {**err, "loc": loc}
        # A union member mismatch repeats for each member: keep one message per location.
        if loc in seen and err["type"] not in ("extra_forbidden", "missing"):
            continue
        seen.add(loc)
        at_key = err["type"] == "extra_forbidden"
        target = loc if at_key or err["type"] != "missing" else loc[:-1]
        problems.append(src.problem(target, _describe(err, data, root), key=at_key))
    return problems


def parse_plan(src: Source) -> m.Plan | None:
    """Validate a loaded YAML source into a ``Plan``; problems are appended to ``src``."""
    if src.problems or src.data is None:
        return None
    if not isinstance(src.data, dict):
        src.problems.append(src.problem((), "a plan must be a mapping (schema_version, id, title, ...)"))
        return None
    desugar_steps(src.data, src)
    try:
        return m.Plan.model_validate(src.data)
    except ValidationError as exc:
        src.problems.extend(validation_problems(exc, src, src.data))
        return None


def load_plan(path: str | Path) -> LoadedPlan:
    """Load and validate the structure of one plan file; raise ``InputError`` with every problem."""
    path = Path(path)
    src = load_file(path)
    plan = parse_plan(src)
    if plan is None:
        raise InputError(src.problems or [Problem(str(path), 1, 1, "invalid plan")])
    return LoadedPlan(plan, src, path, src.sha256)


def load_plan_text(text: str, name: str = "<plan>") -> LoadedPlan:
    src = load_text(text, name)
    plan = parse_plan(src)
    if plan is None:
        raise InputError(src.problems or [Problem(name, 1, 1, "invalid plan")])
    return LoadedPlan(plan, src, Path(name), src.sha256)
