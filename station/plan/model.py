"""The plan language as frozen pydantic models (``extra="forbid"``); the JSON Schema comes from here.

Values that carry units are written as strings (``"800 V"``, ``"${iso_floor * v_max}"``) and
are checked by the validator (station/plan/checks.py), which knows units and expressions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

SCHEMA_VERSION = 1
ID_PATTERN = r"^[a-z][a-z0-9_]*$"

Value = str | int | float | bool | None | list[Any]
"""A literal, a quantity string ("3.65 V") or an expression string ("${v_max * 0.75}")."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Limit(_Model):
    """Limits on one measurement. Numbers carry units; all given bounds must hold."""

    min: Value = Field(None, description="Lowest passing value, e.g. '3.0 V' or '${floor * v_max}'")
    max: Value = Field(None, description="Highest passing value")
    nominal: Value = Field(None, description="Nominal value; with 'tolerance' gives min/max")
    tolerance: Value = Field(None, description="Absolute ('1 V') or relative ('0.5 %') tolerance around 'nominal'")
    equals: Value = Field(None, description="Exact expected value (string, bool or number)")
    one_of: list[Any] | None = Field(None, description="Allowed values")
    regex: str | None = Field(None, description="Regular expression a string value must fully match")
    marginal: Value = Field(
        None, description="Band inside the limits flagged 'marginal' (still passing), e.g. '5 %' of the span"
    )
    unit: str | None = Field(None, description="Display unit for the value, e.g. 'mOhm'")
    description: str | None = None


class Retry(_Model):
    count: int = Field(1, ge=1, le=10, description="Extra attempts after the first")
    on: list[Literal["failed", "error"]] = Field(["error"], description="Outcomes that trigger a retry")
    delay: Value = Field(None, description="Wait before each retry, e.g. '2 s'")


class Monitor(_Model):
    """A live limit on a signal, checked continuously while the group runs; a trip aborts."""

    signal: str = Field(description="Instrument signal, e.g. 'bms.cell_voltage_max'")
    min: Value = None
    max: Value = None
    period: Value = Field(None, description="Check period, default '100 ms'")
    description: str | None = None


class _StepBase(_Model):
    id: str | None = Field(None, pattern=ID_PATTERN, description="Identifier: results are named by it")
    name: str | None = Field(None, description="Human title")
    when: str | None = Field(None, description="Expression; the step is skipped when false")
    timeout: Value = Field(None, description="Maximum duration, e.g. '30 s'")
    retry: Retry | None = None
    requires: list[Literal["fixture_closed", "guard_closed", "estop_released", "hvil_closed", "pack_present", "hv_interlock"]] = Field(
        default_factory=list, description="Interlocks checked before and watched during the step"
    )


class ActionStep(_StepBase):
    """One action on an instrument, e.g. ``dmm.voltage``; measurements judged against ``expect``."""

    action: str = Field(description="instrument.action, e.g. 'dmm.voltage'", pattern=r"^[a-z_]+(\.[a-z_]+)?$")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="Arguments of the action")
    expect: dict[str, Limit] = Field(default_factory=dict, description="Limits per measurement name")


class GroupStep(_StepBase):
    """Steps run in order (or all at once when ``parallel``), with ``finally`` steps that always run."""

    steps: list[Step]
    finally_: list[Step] = Field(default_factory=list, alias="finally")
    parallel: bool = False
    monitors: list[Monitor] = Field(default_factory=list)
    for_each: dict[str, Value] | None = Field(
        None, description="Repeat the group for each item: {var: list or '${expr}'}"
    )

    @field_validator("for_each")
    @classmethod
    def _one_loop_variable(cls, value):
        if value is not None and len(value) != 1:
            raise ValueError("for_each takes exactly one variable, e.g. {point: '${bond_points}'}")
        return value


class IncludeStep(_StepBase):
    """Steps from another plan file (a library), with arguments for its parameters."""

    include: str = Field(description="Path relative to this file, e.g. 'lib/insulation.yaml'")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


def _step_kind(value: Any) -> str:
    if isinstance(value, dict):
        if "include" in value:
            return "include"
        if "steps" in value or "for_each" in value or "parallel" in value:
            return "group"
        return "action"
    return "action"


Step = Annotated[
    Annotated[ActionStep, Tag("action")] | Annotated[GroupStep, Tag("group")] | Annotated[IncludeStep, Tag("include")],
    Discriminator(_step_kind),
]


class Parameter(_Model):
    value: Value = Field(description="Default value, with its unit: '800 V', [BP1, BP2], 'LFP'")
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data):
        return data if isinstance(data, dict) else {"value": data}


class Variant(_Model):
    description: str | None = None
    parameters: dict[str, Value] = Field(default_factory=dict, description="Parameter overrides")
    limits: dict[str, Limit] = Field(
        default_factory=dict, description="Limit overrides by 'step_id.measurement'"
    )


class Catch(_Model):
    """A fault this plan must catch: injected in CI, the run must end as ``expect`` at ``step``."""

    fault: str
    step: str = Field(description="Id of the step expected to fail (or the monitored group)")
    params: dict[str, Any] = Field(default_factory=dict)
    expect: Literal["FAIL", "ABORTED", "ERROR"] = "FAIL"
    variants: list[str] | None = Field(None, description="Only for these variants (default: all)")


class Uncaught(_Model):
    """A catalogue fault this plan knowingly does not catch, and why (shown by `station coverage`)."""

    fault: str
    reason: str
    variants: list[str] | None = Field(None, description="Only for these variants (default: all)")


class Plan(_Model):
    """A test plan (``kind: plan``) or a library of steps to include (``kind: library``)."""

    schema_version: Literal[1]
    kind: Literal["plan", "library"] = "plan"
    id: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    version: str = Field(pattern=r"^\d+(\.\d+){0,2}([-+][0-9A-Za-z.]+)?$")
    title: str
    product: str | None = None
    description: str | None = None
    instruments: list[str] = Field(default_factory=list, description="Station roles the plan needs")
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    variants: dict[str, Variant] = Field(default_factory=dict)
    catches: list[Catch] = Field(default_factory=list)
    uncaught: list[Uncaught] = Field(default_factory=list)
    on_failure: Literal["continue", "stop"] = Field(
        "continue", description="After a failed step: keep measuring (default) or go to teardown"
    )
    setup: list[Step] = Field(default_factory=list)
    main: list[Step] = Field(default_factory=list)
    teardown: list[Step] = Field(default_factory=list)

    @field_validator("parameters", "variants")
    @classmethod
    def _identifier_keys(cls, value):
        import re

        for key in value:
            if not re.match(r"^[A-Za-z][A-Za-z0-9_-]*$", key):
                raise ValueError(f"name {key!r} must start with a letter (letters, digits, _ and -)")
        return value


GroupStep.model_rebuild()
