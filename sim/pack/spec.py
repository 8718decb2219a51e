"""What a pack type is: the frozen parameters the physics model is built from.

Units are SI throughout: V, A, s, ohm, F, degC, J/K, W/K, Pa/min, Ah. Electrical figures are
per *cell*; the model lumps ``parallel`` cells into one series element (capacity and C1 times
M, resistances divided by M). Spread sigmas are relative (capacity, R0) or absolute (SOC).
R0, R1 and C1 are constants or ``Table``s over SOC and temperature; the OCV is the chemistry's
built-in table (LFP, NMC) unless ``ocv`` gives the cell's own. Pack definition files
(``sim.pack.packfile``) are the usual way to make one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sim.pack.table import Param, Table

Chemistry = str  # a label; LFP and NMC have built-in OCV tables (sim.pack.ocv)

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
    cell_r0: Param  # ohm per cell (constant: at 25 degC, see r0_temp_coeff)
    cell_r1: Param  # ohm per cell, RC pair resistance
    cell_c1: Param  # F per cell, RC pair capacitance (tau = R1*C1)
    r0_temp_coeff: float = 0.03  # 1/K: a constant R0(T) = R0_25 * exp(k * (25 - T)); tables carry T themselves
    ocv: Table | None = None  # V over SOC (and degC); None: the chemistry's built-in table
    cell_nominal_v: float | None = None  # V; None: the chemistry's nominal
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
    # the BMS profile the simulated BMS speaks (None: the project's shipped maps)
    bms_dbc: str | None = None  # DBC file
    bms_signals: str | None = None  # signal map (drivers/maps/eol_bms_signals.yaml shape)
    bms_modbus_map: str | None = None  # Modbus register map
    bms_did_table: str | None = None  # UDS diagnostic description (DID table)
    precharge_timeout: float | None = None  # s the BMS waits for 95 % bus voltage; None: 6 tau, >= 0.5 s
    contactor_close_s: float = 0.0  # s from the BMS's close command to contacts closed (operate time)
    contactor_open_s: float = 0.0  # s from the BMS's open command to contacts open (release time)

    def __post_init__(self) -> None:
        if self.ocv is None and self.chemistry not in NOMINAL_CELL_V:
            raise ValueError(f"chemistry {self.chemistry!r} has no built-in OCV table ({', '.join(NOMINAL_CELL_V)}): give ocv")
        if self.cell_nominal_v is None and self.chemistry not in NOMINAL_CELL_V:
            raise ValueError(f"chemistry {self.chemistry!r} has no built-in nominal voltage: give cell_nominal_v")
        if self.series < 1 or self.parallel < 1 or self.temp_sensors < 1:
            raise ValueError("series, parallel and temp_sensors must be >= 1")
        # a frozen spec must not share a mutable dict with its caller
        object.__setattr__(self, "bond_points", MappingProxyType(dict(self.bond_points)))

    @property
    def nominal_voltage(self) -> float:
        """Nameplate pack voltage (V)."""
        return self.series * (self.cell_nominal_v or NOMINAL_CELL_V[self.chemistry])

    @property
    def capacity_ah(self) -> float:
        """Nameplate pack capacity (Ah)."""
        return self.parallel * self.cell_capacity_ah

    @property
    def energy_kwh(self) -> float:
        """Nameplate energy (kWh)."""
        return self.nominal_voltage * self.capacity_ah / 1000.0
