"""Driver registry: short keys from station config to classes, extensible by entry points.

A site driver installs as its own package and declares, in its pyproject::

    [project.entry-points."eol_station.drivers"]
    acme_cycler = "acme_station.cycler:AcmeCycler"
"""

from __future__ import annotations

import importlib
from importlib import metadata

from drivers.errors import UnknownDriverError

ENTRY_POINT_GROUP = "eol_station.drivers"

# key -> "module:Class"; imported lazily so `station --help` stays fast.
BUILTIN: dict[str, str] = {
    "itech_it6000": "drivers.cycler.itech_it6000:ItechIT6000",
    "modbus_cycler": "drivers.cycler.modbus_cycler:ModbusCycler",
    "chroma_19032": "drivers.safety.chroma_19032:Chroma19032",
    "kikusui_tos9300": "drivers.safety.kikusui_tos9300:KikusuiTos9300",
    "keysight_34465a": "drivers.dmm.keysight_34465a:Keysight34465A",
    "modbus_fixture": "drivers.fixture.modbus_fixture:ModbusFixture",
    "ateq_leak": "drivers.leak.ateq:AteqLeakTester",
    "dbc_bms": "drivers.bms.dbc_bms:DbcBms",
    "modbus_bms": "drivers.bms.modbus_bms:ModbusBms",
}


def available() -> dict[str, str]:
    """All known keys (built-in plus entry points) -> "module:Class"."""
    keys = dict(BUILTIN)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        keys.setdefault(ep.name, ep.value)
    return keys


def driver_class(key: str) -> type:
    """Resolve a driver key to its class; an unknown key lists the valid ones."""
    # A built-in key wins over an entry point of the same name (``available``), so resolving one
    # needs no scan of every installed distribution's metadata (~730 files in the dev venv; a
    # simulated run resolves ~10 drivers).
    target = BUILTIN.get(key)
    if target is None:
        keys = available()
        target = keys.get(key)
        if target is None:
            raise UnknownDriverError(f"unknown driver {key!r}; valid keys: {', '.join(sorted(keys))}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)
