"""The unit each logical BMS signal's value is in, as a BMS driver's ``signal()`` returns it.

"bool" for 0/1 flags, "" for counts and codes. SOC and SOH are percent numbers (50.0 = 50 %).
Kept apart from the signal maps so that a plan can be checked without loading cantools; the keys
are the logical names of ``drivers.bms.signal_map.LOGICAL`` (a test holds them equal).
"""

from __future__ import annotations

LOGICAL_UNITS: dict[str, str] = {
    "pack_voltage": "V", "pack_current": "A", "pack_power": "W", "bus_voltage": "V", "soc": "%", "soh": "%",
    "cell_voltage_min": "V", "cell_voltage_max": "V", "cell_voltage_min_index": "", "cell_voltage_max_index": "",
    "cell_temperature_min": "degC", "cell_temperature_max": "degC", "cell_temperature_min_index": "",
    "cell_temperature_max_index": "", "bms_state": "", "contactor_main_plus": "bool", "contactor_main_minus": "bool",
    "contactor_precharge": "bool", "hvil_closed": "bool", "imd_enabled": "bool", "imd_resistance": "ohm",
    "balancing_active": "bool", "balancing_cells": "", "alive_counter": "",
}
