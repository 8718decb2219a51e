"""The pack definition file: one product's pack for the simulator, as frozen models.

Units are in the key names (``capacity_ah``, ``r0_ohm``, ``soc_pct``): a pack file is data an
engineer copies from a datasheet or a published parameter set, without a unit parser. Tables
are ``{soc_pct: [...], values: [...]}`` or, by temperature, ``{soc_pct: [...], temp_c: [...],
values: [[...] per temperature]}``. ``pack_schema()`` is the JSON Schema editors use
(sim/packs/schema/pack.schema.json; a test fails when it drifts).
"""

from __future__ import annotations

import itertools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from sim.pack.spec import PackSpec
from sim.pack.table import Param, Table

SCHEMA_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableModel(_Model):
    """A parameter over SOC (%), optionally by temperature (degC): one row of values per temperature."""

    soc_pct: list[float] = Field(min_length=2, description="SOC points, %, strictly increasing within 0..100")
    temp_c: list[float] | None = Field(None, min_length=1, description="temperatures, degC, strictly increasing")
    values: list[float] | list[list[float]] = Field(description="one value per SOC point; by temperature, one row per temperature")

    @field_validator("soc_pct")
    @classmethod
    def _socs(cls, socs: list[float]) -> list[float]:
        if any(not 0.0 <= s <= 100.0 for s in socs):
            raise ValueError(f"SOC points must lie within 0..100 %, got {min(socs):g}..{max(socs):g}")
        if any(b <= a for a, b in itertools.pairwise(socs)):
            raise ValueError("SOC points must be strictly increasing")
        return socs

    @field_validator("temp_c")
    @classmethod
    def _temps(cls, temps: list[float] | None) -> list[float] | None:
        if temps is not None:
            if any(b <= a for a, b in itertools.pairwise(temps)):
                raise ValueError("temperatures must be strictly increasing")
            if any(not -60.0 <= t <= 150.0 for t in temps):
                raise ValueError("temperatures must lie within -60..150 degC")
        return temps

    @model_validator(mode="after")
    def _shape(self) -> TableModel:
        rows = self.rows()
        if self.temp_c is not None:
            if len(rows) != len(self.temp_c) or any(not isinstance(r, list) for r in self.values):
                raise ValueError(f"values by temperature: {len(self.temp_c)} rows (one per temp_c point) expected")
        elif any(isinstance(r, list) for r in self.values):
            raise ValueError("values are rows by temperature: give temp_c")
        for row in rows:
            if len(row) != len(self.soc_pct):
                raise ValueError(f"each row needs {len(self.soc_pct)} values (one per soc_pct point), got {len(row)}")
        return self

    def rows(self) -> list[list[float]]:
        return [list(r) for r in self.values] if self.temp_c is not None else [list(self.values)]  # type: ignore[arg-type]

    def table(self, *, extrapolate: bool = False) -> Table:
        socs = tuple(s / 100.0 for s in self.soc_pct)
        rows = self.rows()
        if self.temp_c is None:
            return Table(socs, tuple(rows[0]), extrapolate=extrapolate)
        return Table(socs, tuple(tuple(r) for r in rows), temps=tuple(self.temp_c), extrapolate=extrapolate)


def _rows(values: list) -> list[list[float]]:
    return [r for r in values] if values and isinstance(values[0], list) else [values]


class ElementError(ValueError):
    """A table value's problem, with the index of the element within ``values`` (a row's
    index first for a table by temperature), so the error is located at that element."""

    def __init__(self, message: str, index: tuple[int, ...]) -> None:
        super().__init__(message)
        self.index = index


def _element(values: list, row: int, col: int) -> tuple[int, ...]:
    """Index of ``values``' element ``col`` of row ``row`` (one row: no row index)."""
    return (row, col) if values and isinstance(values[0], list) else (col,)


class PositiveTable(TableModel):
    """A resistance or capacitance table: every value > 0."""

    @field_validator("values")
    @classmethod
    def _positive(cls, values: list) -> list:
        for r, row in enumerate(_rows(values)):
            bad = next((c for c, v in enumerate(row) if v <= 0.0), None)
            if bad is not None:
                raise ElementError(f"every value must be > 0, got {row[bad]:g}", _element(values, r, bad))
        return values


class OcvTable(TableModel):
    """Open-circuit voltage (V) over SOC: strictly increasing with SOC in every row."""

    @field_validator("values")
    @classmethod
    def _monotonic(cls, values: list, info: ValidationInfo) -> list:
        socs = info.data.get("soc_pct")
        for r, row in enumerate(_rows(values)):
            low = next((c for c, v in enumerate(row) if v <= 0.0), None)
            if low is not None:
                raise ElementError(f"OCV values must be > 0 V, got {row[low]:g}", _element(values, r, low))
            bad = next((i for i, (a, b) in enumerate(itertools.pairwise(row)) if b <= a), None)
            if bad is not None:
                at = f" at {socs[bad + 1]:g} %" if socs and len(socs) == len(row) else ""
                was = f" at {socs[bad]:g} %" if socs and len(socs) == len(row) else ""
                raise ElementError(f"OCV must increase with SOC: {row[bad + 1]:g} V{at} is not above {row[bad]:g} V{was}",
                                   _element(values, r, bad + 1))
        return values


class Topology(_Model):
    series: int = Field(ge=1, le=1000, description="series elements (the BMS's cell count)")
    parallel: int = Field(ge=1, le=100, description="cells in parallel in each element")


class Cell(_Model):
    chemistry: str = Field(min_length=1, description="label (NMC, LFP, ...); the OCV table is the physics")
    nominal_v: float = Field(gt=0, le=10, description="nameplate cell voltage, V")
    capacity_ah: float = Field(gt=0, le=2000, description="cell capacity, Ah")
    ocv_v: OcvTable = Field(description="open-circuit voltage, V, over SOC (optionally by temperature)")
    r0_ohm: float | PositiveTable = Field(description="series resistance, ohm: constant (at 25 degC) or table")
    r0_temp_coeff_per_k: float = Field(0.0, ge=0, le=0.2, description="constant R0 only: R0(T) = R0 * exp(k * (25 - T))")
    r1_ohm: float | PositiveTable = Field(description="RC pair resistance, ohm: constant or table")
    c1_f: float | PositiveTable = Field(description="RC pair capacitance, F: constant or table")
    heat_capacity_j_per_k: float = Field(gt=0, description="thermal mass of one cell, J/K")
    heat_transfer_w_per_k: float = Field(gt=0, description="heat transfer of one cell to coolant/ambient, W/K")

    @model_validator(mode="after")
    def _constants(self) -> Cell:
        for name in ("r0_ohm", "c1_f"):
            value = getattr(self, name)
            if isinstance(value, float) and value <= 0:
                raise ValueError(f"{name} must be > 0")
        if isinstance(self.r1_ohm, float) and self.r1_ohm < 0:
            raise ValueError("r1_ohm must be >= 0 (0: no RC pair)")
        if isinstance(self.r0_ohm, PositiveTable) and self.r0_temp_coeff_per_k:
            raise ValueError("r0_temp_coeff_per_k applies to a constant r0_ohm; a table gives R0 by temp_c itself")
        return self


class Spreads(_Model):
    """Cell-to-cell manufacturing spread, 1 sigma; zero for an ideal pack (or one cell)."""

    capacity_rel: float = Field(0.0, ge=0, le=0.2, description="relative capacity spread")
    r0_rel: float = Field(0.0, ge=0, le=0.5, description="relative R0 spread")
    soc_pct: float = Field(0.0, ge=0, le=10, description="absolute SOC spread, %")


class Initial(_Model):
    soc_pct: float = Field(50.0, ge=0, le=100, description="state of charge as delivered to the station, %")


class Thermal(_Model):
    ambient_c: float = Field(25.0, ge=-40, le=80, description="ambient and coolant temperature, degC")
    sensors: int = Field(ge=1, le=1000, description="temperature sensors, each covering a contiguous group of elements")


class Isolation(_Model):
    plus_ohm: float = Field(gt=0, description="HV+ to chassis, ohm")
    minus_ohm: float = Field(gt=0, description="HV- to chassis, ohm")
    y_cap_plus_f: float = Field(ge=0, description="Y-capacitance HV+ to chassis, F")
    y_cap_minus_f: float = Field(ge=0, description="Y-capacitance HV- to chassis, F")
    imd_parallel_ohm: float = Field(1.2e6, gt=0, description="what the enabled insulation monitor adds per pole, ohm")
    breakdown_v: float | None = Field(None, gt=0, description="withstand arcs above this, V (none: never)")


class HvCircuit(_Model):
    precharge_ohm: float = Field(gt=0, description="precharge resistor, ohm")
    link_capacitance_f: float = Field(gt=0, description="DC-link capacitance at the connector, F")
    bleed_ohm: float = Field(gt=0, description="active discharge while disconnected, ohm")


class Contactors(_Model):
    precharge_timeout_s: float | None = Field(None, gt=0, le=60, description="the BMS gives up precharge after this, s (none: 6 tau, at least 0.5 s)")
    close_ms: float = Field(0.0, ge=0, le=500, description="operate time: the BMS's close command to contacts closed, ms")
    open_ms: float = Field(0.0, ge=0, le=500, description="release time: the BMS's open command to contacts open, ms")


P_STANDARD = 101325.0  # Pa: the reference pressure of a standard cm3 (sccm)


class Coolant(_Model):
    """The coolant circuit as the leak tester sees it: its pressure decay given directly, or
    from a leak flow (sccm, as leak specifications are written) into the circuit's volume."""

    leak_rate_pa_per_min: float | None = Field(None, ge=0, description="pressure decay of the tight circuit, Pa/min")
    volume_l: float | None = Field(None, gt=0, le=1000, description="internal volume of the circuit, L")
    leak_sccm: float | None = Field(None, ge=0, le=10000, description="leak flow of the tight circuit, standard cm3/min (needs volume_l)")

    @model_validator(mode="after")
    def _one_rate(self) -> Coolant:
        if (self.leak_rate_pa_per_min is None) == (self.leak_sccm is None):
            raise ValueError("give the leak as leak_rate_pa_per_min or as leak_sccm with volume_l (one of them)")
        if self.leak_sccm is not None and self.volume_l is None:
            raise ValueError("leak_sccm needs volume_l: the decay is the flow over the circuit's volume")
        return self

    def decay_pa_per_min(self) -> float:
        """Pa/min: given, or a standard flow Q into volume V: dP/dt = Q * p_std / V."""
        if self.leak_rate_pa_per_min is not None:
            return self.leak_rate_pa_per_min
        assert self.leak_sccm is not None and self.volume_l is not None  # _one_rate
        return self.leak_sccm * P_STANDARD / (self.volume_l * 1000.0)


class Noise(_Model):
    """BMS measurement noise, 1 sigma."""

    cell_v: float = Field(0.0008, ge=0, description="V")
    temp_c: float = Field(0.1, ge=0, description="degC")
    current_a: float = Field(0.05, ge=0, description="A")
    pack_v: float = Field(0.05, ge=0, description="V")


class Bms(_Model):
    """The BMS the pack carries: its identity and the profile it speaks. Map files: a bare name
    is one of the project's shipped maps (drivers/maps/), a path is relative to the pack file."""

    protocol: Literal["can", "modbus"] = Field("can", description="the bus the BMS speaks (the station config picks the driver)")
    dbc: str | None = Field(None, description="DBC file (CAN)")
    signals: str | None = Field(None, description="signal map (CAN)")
    modbus_map: str | None = Field(None, description="register map (Modbus)")
    did_table: str | None = Field(None, description="UDS diagnostic description (DID table)")
    part_number: str = Field(description="BMS part number (UDS/Modbus identity)")
    sw_version: str = Field(description="BMS software version")
    hw_version: str = Field(description="BMS hardware version")


class PackFile(_Model):
    """A pack definition file (``schema_version: 1``)."""

    schema_version: Literal[1]
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", description="pack family name, as plans name the variant")
    description: str = ""
    part_number: str = Field(description="pack part number")
    topology: Topology
    cell: Cell
    spreads: Spreads = Field(default_factory=Spreads)
    initial: Initial = Field(default_factory=Initial)
    thermal: Thermal
    isolation: Isolation
    hv: HvCircuit
    contactors: Contactors = Field(default_factory=Contactors)
    coolant: Coolant
    bond_points: dict[str, float] = Field(default_factory=dict, description="bonding point -> resistance to chassis, ohm")
    balance_current_a: float = Field(0.1, ge=0, le=10, description="bleed current of a balancing element, A")
    noise: Noise = Field(default_factory=Noise)
    bms: Bms

    @model_validator(mode="after")
    def _checks(self) -> PackFile:
        if self.thermal.sensors > self.topology.series:
            raise ValueError(f"thermal.sensors ({self.thermal.sensors}) cannot exceed topology.series ({self.topology.series})")
        bad = [k for k, v in self.bond_points.items() if v <= 0]
        if bad:
            raise ValueError(f"bond point resistance must be > 0 ohm: {', '.join(bad)}")
        return self


def _param(value: float | TableModel) -> Param:
    return value.table() if isinstance(value, TableModel) else float(value)


def to_spec(pack: PackFile, maps: dict[str, str | None] | None = None) -> PackSpec:
    """The physics parameters of ``pack``; ``maps`` are the BMS profile's resolved file paths."""
    cell, maps = pack.cell, maps or {}
    return PackSpec(
        name=pack.name, chemistry=cell.chemistry, cell_nominal_v=cell.nominal_v,
        series=pack.topology.series, parallel=pack.topology.parallel,
        cell_capacity_ah=cell.capacity_ah, ocv=cell.ocv_v.table(extrapolate=True),
        cell_r0=_param(cell.r0_ohm), cell_r1=_param(cell.r1_ohm), cell_c1=_param(cell.c1_f),
        r0_temp_coeff=cell.r0_temp_coeff_per_k,
        cell_heat_capacity=cell.heat_capacity_j_per_k, cell_heat_transfer=cell.heat_transfer_w_per_k,
        ambient_c=pack.thermal.ambient_c, temp_sensors=pack.thermal.sensors,
        isolation_plus=pack.isolation.plus_ohm, isolation_minus=pack.isolation.minus_ohm,
        y_cap_plus=pack.isolation.y_cap_plus_f, y_cap_minus=pack.isolation.y_cap_minus_f,
        imd_parallel_ohm=pack.isolation.imd_parallel_ohm,
        breakdown_volts=pack.isolation.breakdown_v if pack.isolation.breakdown_v is not None else float("inf"),
        bond_points=dict(pack.bond_points),
        precharge_ohm=pack.hv.precharge_ohm, link_capacitance=pack.hv.link_capacitance_f, bleed_ohm=pack.hv.bleed_ohm,
        precharge_timeout=pack.contactors.precharge_timeout_s,
        contactor_close_s=pack.contactors.close_ms / 1000.0, contactor_open_s=pack.contactors.open_ms / 1000.0,
        initial_soc=pack.initial.soc_pct / 100.0,
        coolant_leak_rate=pack.coolant.decay_pa_per_min(), balance_current=pack.balance_current_a,
        noise_cell_v=pack.noise.cell_v, noise_temp=pack.noise.temp_c, noise_current=pack.noise.current_a,
        noise_pack_v=pack.noise.pack_v,
        spread_capacity=pack.spreads.capacity_rel, spread_r0=pack.spreads.r0_rel, spread_soc=pack.spreads.soc_pct / 100.0,
        part_number=pack.part_number, bms_part_number=pack.bms.part_number,
        bms_sw_version=pack.bms.sw_version, bms_hw_version=pack.bms.hw_version,
        bms_dbc=maps.get("dbc"), bms_signals=maps.get("signals"), bms_modbus_map=maps.get("modbus_map"),
        bms_did_table=maps.get("did_table"),
    )


def pack_schema() -> dict:
    """JSON Schema of the pack definition file."""
    schema = PackFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "EOL station simulated pack definition"
    return schema
