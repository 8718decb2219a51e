"""What a pack type is: the frozen parameters the physics model is built from.

Units are SI throughout: V, A, s, ohm, F, degC, J/K, W/K, Pa/min, Ah. Electrical figures are
per *cell*; the model lumps ``parallel`` cells into one series element (capacity and C1 times
M, resistances divided by M). Spread sigmas are relative (capacity, R0) or absolute (SOC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Mapping

Chemistry = Literal["LFP", "NMC"]

#: Nominal cell voltage by chemistry (V), used only for the nameplate figures.
NOMINAL_CELL_V = {"LFP": 3.2, "NMC": 3.7}


@dataclass(frozen=True)
class PackSpec:
    """One product's pack: topology, cell equivalent circuit, thermal, HV safety, identity."""

    name: str
    chemistry: Chemistry
    series: int  # N series elements
    parallel: int  # M cells per element
    cell_capacity_ah: float  # Ah per cell
    cell_r0: float  # ohm per cell at 25 degC
    cell_r1: float  # ohm per cell, RC pair resistance
    cell_c1: float  # F per cell, RC pair capacitance (tau = R1*C1)
    r0_temp_coeff: float = 0.03  # 1/K: R0(T) = R0_25 * exp(k * (25 - T))
    cell_heat_capacity: float = 2800.0  # J/K per cell
    cell_heat_transfer: float = 0.5  # W/K per cell to coolant/ambient
    ambient_c: float = 25.0  # degC
    temp_sensors: int = 24  # NTCs, each covering a contiguous group of elements
    isolation_plus: float = 800e6  # ohm HV+ to chassis
    isolation_minus: float = 750e6  # ohm HV- to chassis
    y_cap_plus: float = 0.47e-6  # F HV+ to chassis
    y_cap_minus: float = 0.47e-6  # F HV- to chassis
    imd_parallel_ohm: float = 1.2e6  # ohm the enabled insulation monitor adds per pole
    bond_points: Mapping[str, float] = field(default_factory=dict)  # name -> ohm
    precharge_ohm: float = 50.0  # ohm
    link_capacitance: float = 3e-3  # F DC link at the connector
    bleed_ohm: float = 2000.0  # ohm active discharge, switched in while disconnected
    breakdown_volts: float = float("inf")  # V; above it a withstand test arcs
    initial_soc: float = 0.5  # 0..1
    coolant_leak_rate: float = 4.0  # Pa/min pressure decay of a tight circuit
    balance_current: float = 0.1  # A bled from a balancing element
    # BMS measurement noise (1 sigma), applied by the BMS simulator via Pack.rng
    noise_cell_v: float = 0.0008  # V
    noise_temp: float = 0.1  # degC
    noise_current: float = 0.05  # A
    noise_pack_v: float = 0.05  # V
    # cell-to-cell spread (1 sigma)
    spread_capacity: float = 0.002  # relative
    spread_r0: float = 0.02  # relative
    spread_soc: float = 0.003  # absolute SOC
    # identity the BMS simulator reports and plans check against
    part_number: str = ""
    bms_part_number: str = ""
    bms_sw_version: str = ""
    bms_hw_version: str = ""

    def __post_init__(self) -> None:
        if self.chemistry not in NOMINAL_CELL_V:
            raise ValueError(f"chemistry {self.chemistry!r} not one of {list(NOMINAL_CELL_V)}")
        if self.series < 1 or self.parallel < 1 or not 1 <= self.temp_sensors:
            raise ValueError("series, parallel and temp_sensors must be >= 1")
        # a frozen spec must not share a mutable dict with its caller
        object.__setattr__(self, "bond_points", MappingProxyType(dict(self.bond_points)))

    @property
    def nominal_voltage(self) -> float:
        """Nameplate pack voltage (V)."""
        return self.series * NOMINAL_CELL_V[self.chemistry]

    @property
    def capacity_ah(self) -> float:
        """Nameplate pack capacity (Ah)."""
        return self.parallel * self.cell_capacity_ah

    @property
    def energy_kwh(self) -> float:
        """Nameplate energy (kWh)."""
        return self.nominal_voltage * self.capacity_ah / 1000.0
