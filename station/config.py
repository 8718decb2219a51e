"""The station config (``station.yaml``): instruments, fixtures, products, operators, results.

Validated like plans (frozen models, ``extra="forbid"``, every problem at ``PATH:LINE:COL``).
A resource may hold simulator placeholders such as ``{F1.fixture}``: ``--sim`` fills them with
the endpoints of the in-process simulated bench; on hardware they are an error.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from drivers.clock import MAX_SCALE
from station.diagnostics import InputError, Problem
from station.line.config import LineResultsFields, MesConfig, MqttConfig
from station.plan.loader import validation_problems
from station.plan.yamlsrc import load_file

PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.\-]+)\}")
SIM_CONFIG = Path(__file__).with_name("sim_station.yaml")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstrumentConfig(_Model):
    driver: str = Field(description="Driver key, e.g. itech_it6000 (see `station drivers`)")
    resource: str = Field(description="Transport resource: VISA string, modbus-tcp://, can://, serial URL")
    options: dict[str, Any] = Field(default_factory=dict)
    calibration_due: dt.date | None = None
    timeout: float = Field(2.0, gt=0, le=600, description="Per-operation timeout, s")
    shared: bool = Field(False, description="One instrument used by several fixtures (serialised by the engine)")


class FixtureConfig(_Model):
    instruments: dict[str, InstrumentConfig | str] = Field(
        default_factory=dict, description="role -> instrument config, or the name of a station-level instrument"
    )
    sim_preset: str | None = Field(None, description="Pack preset the simulator uses for this fixture")


class ProductConfig(_Model):
    pattern: str = Field(description="Regular expression the pack serial must fully match")
    plan: str = Field(description="Plan path, relative to this config file")
    variant: str | None = None
    product: str | None = None

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"invalid regular expression: {err}") from None
        return value


class OperatorConfig(_Model):
    id: str
    name: str | None = None
    role: Literal["operator", "engineer", "admin"] = "operator"


class ResultsConfig(LineResultsFields):
    db: str = Field("results/station.db", description="SQLite result store, relative to this file")
    synchronous: Literal["FULL", "NORMAL"] = "FULL"


class StationConfig(_Model):
    schema_version: Literal[1]
    station: dict[str, str] = Field(default_factory=lambda: {"id": "station"})
    mode: Literal["development", "production"] = "development"
    interlock_period: float = Field(0.1, gt=0, le=5, description="Interlock poll period during HV steps, s")
    time_scale: float = Field(1.0, gt=0, le=MAX_SCALE, description=(
        "Station clock speed vs the wall clock (development only): N runs the real-time loop N x, "
        "to match a bench served by `station sim serve --speed N`"))
    instruments: dict[str, InstrumentConfig] = Field(default_factory=dict, description="Station-level (shared) instruments")
    fixtures: dict[str, FixtureConfig]
    products: list[ProductConfig] = Field(default_factory=list)
    operators: list[OperatorConfig] = Field(default_factory=list)
    released: dict[str, str] = Field(default_factory=dict, description="plan path -> sha256 of the released content")
    results: ResultsConfig = Field(default_factory=ResultsConfig)
    mqtt: MqttConfig | None = Field(None, description="Live status to an MQTT broker")
    mes: MesConfig | None = Field(None, description="MES route check before, upload after each run")

    @property
    def station_id(self) -> str:
        return self.station.get("id", "station")


class LoadedConfig:
    def __init__(self, config: StationConfig, path: Path, src=None) -> None:
        self.config = config
        self.path = path
        self.base = path.parent
        self.src = src  # positions, for errors found later (e.g. a resource a driver refuses)

    def problem(self, loc: tuple, message: str) -> InputError:
        if self.src is None:
            return InputError([Problem(str(self.path), 1, 1, message)])
        return InputError([self.src.problem(loc, message)])

    def location_of(self, fixture: str, role: str) -> tuple:
        ref = self.config.fixtures[fixture].instruments[role]
        return ("instruments", ref) if isinstance(ref, str) else ("fixtures", fixture, "instruments", role)

    def fixture_ids(self) -> list[str]:
        return list(self.config.fixtures)

    def instruments_for(self, fixture: str) -> dict[str, tuple[str, InstrumentConfig]]:
        """role -> (instrument key, config) for one fixture; shared ones keep their station key."""
        out = {}
        for role, ref in self.config.fixtures[fixture].instruments.items():
            if isinstance(ref, str):
                out[role] = (ref, self.config.instruments[ref])
            else:
                out[role] = (f"{fixture}.{role}", ref)
        return out

    def roles(self, fixture: str) -> set[str]:
        return set(self.config.fixtures[fixture].instruments)

    def resolve_path(self, text: str) -> Path:
        path = Path(text)
        return path if path.is_absolute() else (self.base / path)

    def product_for(self, serial: str) -> ProductConfig | None:
        for product in self.config.products:
            if re.fullmatch(product.pattern, serial):
                return product
        return None


def fill_resource(resource: str, endpoints: dict[str, str] | None, where: str) -> str:
    """Replace ``{placeholders}`` with simulator endpoints; an unfilled one is a config error."""
    def sub(match: re.Match) -> str:
        key = match.group(1)
        if endpoints is None or key not in endpoints:
            raise InputError([Problem(where, 1, 1, f"resource placeholder '{{{key}}}' needs the simulator (--sim)")])
        return endpoints[key]

    return PLACEHOLDER.sub(sub, resource)


def fill_option(value: Any, endpoints: dict[str, str] | None, where: str) -> Any:
    """Placeholders in option strings too; a value that is exactly one numeric placeholder becomes a number."""
    if not isinstance(value, str) or "{" not in value:
        return value
    text = fill_resource(value, endpoints, where)
    return int(text) if PLACEHOLDER.fullmatch(value) and text.isdigit() else text


def load_config(path: str | Path) -> LoadedConfig:
    """Load and check a station config; raise InputError with every problem found."""
    path = Path(path)
    src = load_file(path)
    if not src.problems and not isinstance(src.data, dict):
        src.problems.append(src.problem((), "a station config must be a mapping"))
    if src.problems:
        raise InputError(src.problems)
    try:
        config = StationConfig.model_validate(src.data)
    except ValidationError as exc:
        raise InputError(validation_problems(exc, src, src.data, StationConfig)) from None
    problems = []
    if config.mode == "production" and config.time_scale != 1.0:
        # a scaled clock shortens every dwell, soak and timeout: only a simulated bench keeps up
        problems.append(src.problem(("time_scale",), f"time_scale {config.time_scale:g} is for development "
                                    "against a simulated bench; production runs on real time (time_scale: 1)"))
    for fid, fixture in config.fixtures.items():
        for role, ref in fixture.instruments.items():
            if isinstance(ref, str) and ref not in config.instruments:
                problems.append(src.problem(("fixtures", fid, "instruments", role),
                                            f"no station-level instrument '{ref}'; defined: {', '.join(config.instruments) or 'none'}"))
    from drivers.registry import available

    keys = available()
    for loc, inst in _all_instruments(config):
        if inst.driver not in keys:
            problems.append(src.problem(loc + ("driver",), f"unknown driver '{inst.driver}'; valid keys: {', '.join(sorted(keys))}"))
    for i, product in enumerate(config.products):
        if not (path.parent / product.plan).is_file():
            problems.append(src.problem(("products", i, "plan"), f"plan file not found: {product.plan}"))
    if problems:
        raise InputError(problems)
    return LoadedConfig(config, path, src)


def _all_instruments(config: StationConfig):
    for key, inst in config.instruments.items():
        yield ("instruments", key), inst
    for fid, fixture in config.fixtures.items():
        for role, ref in fixture.instruments.items():
            if isinstance(ref, InstrumentConfig):
                yield ("fixtures", fid, "instruments", role), ref
