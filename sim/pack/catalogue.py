"""Pack definition files: load and check one (every problem at ``FILE:LINE:COL``), the packs the
project ships (sim/packs/*.yaml), and finding a pack by name with a did-you-mean.

A ``PackDefinition`` is what a simulated run records: the pack's name, the file it came from
and the sha256 of that file's bytes, so a result is traceable to the model that produced it.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from drivers.base import safefile
from drivers.base.diagnostics import InputError, Problem
from drivers.base.yamlsrc import MAX_BYTES, Source, load_file
from drivers.maps.regmap import MAPS_DIR  # where a bare BMS map name is found
from sim.pack.packfile import Bms, ElementError, PackFile, to_spec
from sim.pack.spec import PackSpec

#: the pack families the project ships
PACKS_DIR = Path(__file__).resolve().parents[1] / "packs"
MAX_PROBLEMS = 100


@dataclass(frozen=True)
class PackDefinition:
    """A checked pack file: its name, path, sha256 of its bytes and the physics it defines."""

    name: str
    path: Path
    sha256: str
    spec: PackSpec
    description: str = ""

    def __str__(self) -> str:
        return self.name

    def summary(self) -> str:
        """One line: name, topology, chemistry, nominal voltage and energy."""
        s = self.spec
        return (f"{self.name}: {s.series}s{s.parallel}p {s.chemistry}, {s.capacity_ah:g} Ah, "
                f"{s.nominal_voltage:.0f} V nominal, {s.energy_kwh:.1f} kWh")


def _model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model whose mapping sits at ``loc`` (for the allowed keys of a did-you-mean)."""
    model: Any = root
    for part in loc:
        if isinstance(part, int) or not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = field.annotation
        for arg in (typing.get_args(model) if typing.get_origin(model) in (typing.Union, types.UnionType) else (model,)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                model = arg
                break
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _member(part: Any) -> bool:
    """Pydantic names the union member it tried (``float``, ``function-after[..., PositiveTable]``)."""
    return isinstance(part, str) and (part[:1].isupper() or "[" in part or part in ("float", "int", "str"))


def _clean(loc: tuple) -> tuple:
    return tuple(p for p in loc if not _member(p))


def _indexed(index: tuple[int, ...]) -> str:
    return "".join(f"[{i}]" for i in index)


def _problems(exc: ValidationError, src: Source) -> list[Problem]:
    out: list[Problem] = []
    seen: set[tuple] = set()
    errors = exc.errors(include_url=False)
    tables = {_clean(e["loc"][:i]) for e in errors for i, p in enumerate(e["loc"]) if _member(p) and "Table" in p}
    for err in errors[:MAX_PROBLEMS]:
        loc = _clean(err["loc"])
        kind, name = err["type"], (loc[-1] if loc else "")
        if kind.startswith("float") and loc in tables:  # number or table: the table error says it all
            continue
        if (loc, kind) in seen:
            continue
        seen.add((loc, kind))
        if kind == "extra_forbidden":
            model = _model_at(PackFile, loc[:-1])
            allowed = list(model.model_fields) if model else []
            close = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else (f"; allowed: {', '.join(allowed)}" if allowed else "")
            out.append(src.problem(loc, f"unknown key '{name}'{hint}", key=True))
            continue
        if kind == "missing":
            out.append(src.problem(loc[:-1], f"missing required key '{name}'"))
            continue
        msg = err["msg"].removeprefix("Value error, ")
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, ElementError):  # located at the table element, not its `values` key
            out.append(src.problem((*loc, *cause.index), f"'{name}{_indexed(cause.index)}': {cause}"))
            continue
        if kind in ("model_type", "dict_type") and loc in tables:
            msg = "must be a number or a table {soc_pct: [...], values: [...]}"
        where = f"'{name}': " if isinstance(name, str) and name else ""
        if kind == "literal_error" and name == "schema_version":
            msg = "must be 1"
        out.append(src.problem(loc, f"{where}{msg}"))
    return out


def _map_path(value: str | None, base: Path) -> Path | None:
    if value is None:
        return None
    return MAPS_DIR / value if "/" not in value and "\\" not in value else (base / value)


def parse_pack(src: Source, path: Path) -> PackDefinition:
    """Check a loaded pack file; raise ``InputError`` with every problem found."""
    if not src.problems and not isinstance(src.data, dict):
        src.problems.append(src.problem((), "a pack definition must be a mapping (schema_version, name, topology, cell, ...)"))
    if src.problems:
        raise InputError(src.problems)
    try:
        pack = PackFile.model_validate(src.data)
    except ValidationError as exc:
        raise InputError(_problems(exc, src)) from None
    maps: dict[str, str | None] = {}
    problems = []
    for key in ("dbc", "signals", "modbus_map", "did_table"):
        target = _map_path(getattr(pack.bms, key), path.parent)
        if target is not None and not target.is_file():
            problems.append(src.problem(("bms", key), f"'{key}': file not found: {getattr(pack.bms, key)}"
                                        + ("" if "/" in getattr(pack.bms, key) else f" (shipped maps are in {MAPS_DIR})")))
        maps[key] = str(target) if target is not None else None
    if problems:
        raise InputError(problems)
    return PackDefinition(pack.name, path, src.sha256, to_spec(pack, maps), pack.description)


def load_pack(path: str | Path) -> PackDefinition:
    """Read and check one pack definition file. Raises ``InputError`` (``FILE:LINE:COL`` each)."""
    path = Path(path)
    try:  # the same bounded read as every user-named file: no FIFO, device or giant file
        digest = hashlib.sha256(safefile.read_bytes(path, max_bytes=MAX_BYTES)).hexdigest()
    except OSError:
        return parse_pack(load_file(path), path)  # the loader words the problem
    return _load_cached(str(path), digest)


@functools.lru_cache(maxsize=64)
def _load_cached(path: str, _sha256: str) -> PackDefinition:
    # every run of a session and every fixture reads the same few files: parse each content once
    return parse_pack(load_file(path), Path(path))


def shipped() -> dict[str, PackDefinition]:
    """The packs the project ships, by name (sim/packs/*.yaml)."""
    out: dict[str, PackDefinition] = {}
    for path in sorted(PACKS_DIR.glob("*.yaml")):
        definition = load_pack(path)
        if definition.name in out:
            raise InputError([Problem(str(path), 1, 1, f"pack name '{definition.name}' also defined in {out[definition.name].path}")])
        out[definition.name] = definition
    return out


def did_you_mean(name: str, names: typing.Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``names``, or ''."""
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def find_pack(name: str, where: str = "pack") -> PackDefinition:
    """A shipped pack by name, or a pack file by path; unknown: ``InputError`` with a did-you-mean."""
    packs = shipped()
    if name in packs:
        return packs[name]
    if name.endswith((".yaml", ".yml")) or "/" in name:
        return load_pack(name)
    raise InputError([Problem(where, 1, 1, f"unknown pack '{name}'{did_you_mean(name, packs)}; "
                                           f"packs: {', '.join(packs)} (or a pack file path)")])


__all__ = ["Bms", "PackDefinition", "find_pack", "load_pack", "parse_pack", "shipped", "did_you_mean"]
