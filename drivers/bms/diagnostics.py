"""A BMS's diagnostic description, from whichever file its profile names.

``diagnostics: {did_table: FILE}`` in a BMS profile: the project's YAML DID table
(drivers/bms/did_table.py). ``diagnostics: {odx: FILE.pdx|FILE.odx-d, ecu: NAME, security: {LEVEL: {algorithm, params}}}``: the
supplier's ODX (drivers/bms/odx.py, odxtools), turned into the same ``DidTable`` so the UDS
client, the actions and the simulated ECU need nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers.bms.did_table import DidTable, SecurityLevel, load_did_table


def load_diagnostics(spec: Mapping[str, Any]) -> DidTable:
    """The DID table a profile's ``diagnostics`` section describes (paths already absolute)."""
    if "odx" in spec:
        from drivers.bms.odx import load_odx  # lazy: odxtools only for profiles that name ODX

        security = {level: SecurityLevel(level, algorithm, params, seed_length)
                    for level, (algorithm, params, seed_length) in (spec.get("security") or {}).items()}
        return load_odx(spec["odx"], ecu=spec.get("ecu"), security=security)
    return load_did_table(spec["did_table"])
