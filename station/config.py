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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drivers.base.diagnostics import InputError, Problem
from drivers.base.yamlsrc import load_file
from drivers.clock import MAX_SCALE
from station.line.config import LineResultsFields, MesConfig, MqttConfig, OpcUaConfig
from station.pack_refs import pack_problems
from station.plan.loader import validation_problems

PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.\-]+)\}")
SIM_CONFIG = Path(__file__).with_name("sim_station.yaml")
# The built-in simulated station's product catalogue and release list name this source
# checkout's reference plans, and its results go beside the checkout. Installed from a wheel
# there is no checkout: see ``_installed_sim``.
CHECKOUT_PLANS = SIM_CONFIG.parent.parent / "test_plans"


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
    sim_preset: str | None = Field(None, description="Pack the simulator puts on this fixture: a shipped pack's name "
                                   "(`station sim packs`) or a pack definition file, relative to this config")


class ProductConfig(_Model):
    pattern: str = Field(description="Regular expression the pack serial must fully match")
    plan: str = Field(description="Plan path, relative to this config file")
    variant: str | None = None
    product: str | None = None
    pack: str | None = Field(None, description="Pack the simulator uses for this variant: a pack definition file "
                             "(relative to this config) or a shipped pack's name")
    # how a scan of this product's serial is checked (station.serials)
    min_length: int | None = Field(None, ge=1, le=200, description="Fewest characters of a serial")
    max_length: int | None = Field(None, ge=1, le=200, description="Most characters of a serial (default 64)")
    allowed_chars: str | None = Field(None, description="Characters a serial may hold, as in a regex class: A-Z0-9")
    scanner_prefix: str | None = Field(None, description="Text the scanner puts before each scan, stripped")
    scanner_suffix: str | None = Field(None, description="Text the scanner puts after each scan, stripped")
    gs1: bool = Field(False, description="Labels are GS1 element strings: the serial is AI (21)")
    gtin: str | None = Field(None, pattern=r"^[0-9]{14}$", description="With gs1: the GTIN (01) the label must hold")
    takt_s: float | None = Field(None, gt=0, description="Takt target of the line for this product, s")
    dispositions: dict[str, str] = Field(
        default_factory=dict,
        description="Where a FAIL pack goes: step id or path prefix -> words for the operator; key 'default' for the rest")

    @field_validator("allowed_chars")
    @classmethod
    def _char_class(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(f"[{value}]")
            except re.error as err:
                raise ValueError(f"not a character set such as A-Z0-9: {err}") from None
        return value

    @model_validator(mode="after")
    def _lengths(self) -> ProductConfig:
        if self.min_length and self.max_length and self.min_length > self.max_length:
            raise ValueError(f"min_length {self.min_length} is more than max_length {self.max_length}")
        return self

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


class SignedRelease(_Model):
    """A release: the plan's release digest, signed by a trusted key (station.security.signing)."""

    sha256: str = Field(description="Release digest: plan, included libraries, profile files")
    key: str = Field(description="Id of the trusted key that signed it (trusted_keys)")
    signature: str = Field(description="Ed25519 signature, base64, over the canonical release statement")
    by: str | None = Field(None, description="Who released it (operator id)")
    files: dict[str, str] = Field(default_factory=dict, description="name -> sha256 of every file the digest covers")


class TrustedKey(_Model):
    """A public key whose signatures release plans on this station."""

    id: str = Field(description="Key id that releases name")
    owner: str = Field(description="Operator id of the engineer/admin holding the private key")
    public_key: str = Field(description="ed25519:<base64 of the 32-byte raw public key>")


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
    released: dict[str, str | SignedRelease] = Field(
        default_factory=dict, description="plan path -> release digest (unsigned: development only) or signed release")
    trusted_keys: list[TrustedKey] = Field(default_factory=list, description="Public keys that sign releases")
    trusted_keys_file: str | None = Field(None, description="File of more trusted keys (same shape), relative to this file")
    users_file: str | None = Field(None, description="Station user file (hashed PINs/badges), relative to this file")
    results: ResultsConfig = Field(default_factory=ResultsConfig)
    mqtt: MqttConfig | None = Field(None, description="Live status to an MQTT broker")
    mes: MesConfig | None = Field(None, description="MES route check before, upload after each run")
    opcua: OpcUaConfig | None = Field(None, description="Station state as an OPC UA server (line SCADA)")
    reference_serials: list[str] = Field(
        default_factory=list, description="Serials of the golden (reference) packs: their runs are tracked on "
        "control charts per station and fixture (`station stats --reference`)")

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

    def check_serial(self, scan: str, *, require_product: bool = True):
        """``station.serials.check_scan`` against this catalogue (a ``Scan``; ``SerialRefused``)."""
        from station.serials import check_scan

        return check_scan(scan, self.config.products, require_product=require_product)

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
    _installed_sim(path, src)
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
    problems.extend(pack_problems({fid: f.sim_preset for fid, f in config.fixtures.items()},
                                  [(p.pack, p.variant) for p in config.products], src, path.parent))
    if problems:
        # build() refuses a role bound to a driver of another kind; say so now too, so that one
        # validate lists every problem instead of revealing this one only after the rest are fixed
        raise InputError(problems + _role_problems(config, src, keys))
    return LoadedConfig(config, path, src)


def _role_problems(config: StationConfig, src: Any, keys: dict[str, str]) -> list:
    """Every role bound to a known driver that lacks the role's capability, once per place (the
    wording and location of ``Instruments.build``)."""
    from drivers import roles
    from drivers.errors import InstrumentError
    from drivers.registry import driver_class

    out: dict[tuple, Any] = {}
    for fid, fixture in config.fixtures.items():
        for role, ref in fixture.instruments.items():
            inst = config.instruments.get(ref) if isinstance(ref, str) else ref
            if inst is None or inst.driver not in keys:
                continue  # reported above
            try:
                lacks = roles.missing_capability(role, driver_class(inst.driver))
            except InputError as err:  # a site driver that does not load: its entry point's problem
                for problem in err.problems:
                    out.setdefault((inst.driver, str(problem)), problem)
                continue
            except (InstrumentError, ValueError):
                continue  # build() reports it at its place
            if lacks:
                loc = (("instruments", ref) if isinstance(ref, str) else ("fixtures", fid, "instruments", role)) + ("driver",)
                out.setdefault((loc, role), src.problem(loc, f"{role} ({inst.driver}): {lacks}"))
    return list(out.values())


def _installed_sim(path: Path, src: Any) -> None:
    """The built-in simulated station outside a source checkout (installed from a wheel, no
    ``test_plans/`` beside the package): the bare simulated bench, without the checkout's
    product catalogue and release list, writing its results under the working directory
    (``results/station.db``), never into the installed package. Other configs are left alone."""
    if CHECKOUT_PLANS.is_dir() or path.resolve() != SIM_CONFIG.resolve():
        return
    data = src.data
    data.pop("products", None)
    data.pop("released", None)
    results = data.get("results")
    data["results"] = {**(results if isinstance(results, dict) else {}),
                       "db": str(Path.cwd() / "results" / "station.db")}


def _all_instruments(config: StationConfig):
    for key, inst in config.instruments.items():
        yield ("instruments", key), inst
    for fid, fixture in config.fixtures.items():
        for role, ref in fixture.instruments.items():
            if isinstance(ref, InstrumentConfig):
                yield ("fixtures", fid, "instruments", role), ref
