"""The pack products the simulator knows, by the variant names plans use.

- ``bus-700``: 216s2p LFP, 145 Ah cells -> 290 Ah, 691 V nominal, ~200 kWh, 6 bonding points.
- ``car-400``: 96s3p NMC, 70 Ah cells -> 210 Ah, 355 V nominal, ~75 kWh, 4 bonding points.

Both new and healthy: isolation several hundred Mohm per pole, bonds 10-30 mohm, precharge
tau = R_pre * C_link in the 60-150 ms range, 50 % SOC, 25 degC.
"""

from __future__ import annotations

from sim.pack.spec import PackSpec

BUS_700 = PackSpec(
    name="bus-700",
    chemistry="LFP",
    series=216,
    parallel=2,
    cell_capacity_ah=145.0,
    cell_r0=0.35e-3,
    cell_r1=0.25e-3,
    cell_c1=80_000.0,  # tau1 = 20 s
    cell_heat_capacity=2800.0,  # ~2.8 kg prismatic LFP cell
    cell_heat_transfer=0.5,
    temp_sensors=48,
    isolation_plus=820e6,
    isolation_minus=760e6,
    y_cap_plus=0.47e-6,
    y_cap_minus=0.47e-6,
    bond_points={"BP1": 0.012, "BP2": 0.015, "BP3": 0.018, "BP4": 0.014, "BP5": 0.021, "BP6": 0.017},
    precharge_ohm=50.0,
    link_capacitance=3e-3,  # tau 150 ms
    bleed_ohm=2000.0,  # tau 6 s: 700 V -> 60 V in ~15 s
    part_number="PK-B700-216S2P-A",
    bms_part_number="BMS-B700-0042",
    bms_sw_version="04.12.07",
    bms_hw_version="C2",
)

CAR_400 = PackSpec(
    name="car-400",
    chemistry="NMC",
    series=96,
    parallel=3,
    cell_capacity_ah=70.0,
    cell_r0=1.0e-3,
    cell_r1=0.6e-3,
    cell_c1=25_000.0,  # tau1 = 15 s
    cell_heat_capacity=1000.0,  # ~1 kg pouch/prismatic NMC cell
    cell_heat_transfer=0.25,
    temp_sensors=24,
    isolation_plus=610e6,
    isolation_minus=650e6,
    y_cap_plus=0.22e-6,
    y_cap_minus=0.22e-6,
    bond_points={"BP1": 0.011, "BP2": 0.016, "BP3": 0.013, "BP4": 0.024},
    precharge_ohm=40.0,
    link_capacitance=1.5e-3,  # tau 60 ms
    bleed_ohm=2000.0,  # tau 3 s
    part_number="PK-C400-96S3P-B",
    bms_part_number="BMS-C400-0017",
    bms_sw_version="02.03.15",
    bms_hw_version="B1",
)

PRESETS: dict[str, PackSpec] = {spec.name: spec for spec in (BUS_700, CAR_400)}
