"""A BMS signal map as the driver and the simulated BMS use it: which DBC signal carries each
logical value and how it becomes SI, the per-cell groups, and the station's request message.
Loaded and checked from a map file by ``drivers.bms.signals.load_signal_map``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LOGICAL = frozenset("""
pack_voltage pack_current pack_power bus_voltage soc soh
cell_voltage_min cell_voltage_max cell_voltage_min_index cell_voltage_max_index
cell_temperature_min cell_temperature_max cell_temperature_min_index cell_temperature_max_index
bms_state contactor_main_plus contactor_main_minus contactor_precharge hvil_closed
imd_enabled imd_resistance balancing_active balancing_cells alive_counter
""".split())


class SignalMapError(ValueError):
    """Every problem of a map file, one ``PATH:LINE:COL: message`` per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Mapped:
    """One logical value: where it lives, how to make it SI, and its staleness period (s)."""

    name: str
    message: Any  # cantools Message
    signal: str
    factor: float = 1.0
    invert: bool = False
    period: float = 0.1
    states: dict[str, int] = field(default_factory=dict)
    offset: float = 0.0
    true_when: frozenset[float] | None = None  # physical values that read as 1 (enum -> flag)


@dataclass(frozen=True)
class Request:
    """The station -> BMS request message and its value tables (logical text -> raw)."""

    message: Any
    period: float
    signals: dict[str, str]  # "mode" | "balancing" | "insulation_monitor" -> DBC signal
    values: dict[str, dict[str, int]]
    fixed: dict[str, float]

    def encode(self, mode: str, balancing: bool, imd_enabled: bool) -> bytes:
        """Frame data for a request; raw values from the map's tables (strict DBC ranges)."""
        data: dict[str, float] = {sig.name: 0 for sig in self.message.signals}
        data.update(self.fixed)
        data[self.signals["mode"]] = self.values["mode"][mode]
        if "balancing" in self.signals:
            data[self.signals["balancing"]] = self.values["balancing"]["on" if balancing else "off"]
        if "insulation_monitor" in self.signals:
            data[self.signals["insulation_monitor"]] = (
                self.values["insulation_monitor"]["enabled" if imd_enabled else "disabled"])
        return bytes(self.message.encode(data, scaling=False, strict=True))

    def decode(self, data: bytes) -> tuple[str, bool, bool]:
        """(mode, balancing, imd_enabled) from a request frame (for the simulated BMS)."""
        raw = self.message.decode(data, decode_choices=False, scaling=False)

        def text(kind: str) -> str:
            if kind not in self.signals:
                return ""
            value = raw[self.signals[kind]]
            return next((k for k, v in self.values[kind].items() if v == value), "")

        return text("mode"), text("balancing") == "on", text("insulation_monitor") != "disabled"


@dataclass(frozen=True)
class Group:
    """Per-cell (or per-sensor) values in a multiplexed message: entry i is cell i."""

    message: Any
    mux: str
    names: tuple[str, ...]
    mux_values: tuple[int, ...]  # mux value carrying each entry
    factor: float
    period: float  # staleness period of one entry (a full rotation)
    offset: float = 0.0


@dataclass
class SignalMap:
    db: Any
    signals: dict[str, Mapped]
    cells: Group | None
    temperatures: Group | None
    request: Request | None
    commands: Any = None  # drivers.bms.commands.CommandSet
    diagnostics: dict[str, Any] = field(default_factory=dict)  # {"did_table"|"odx"|"ecu"|"security"}, paths absolute
    path: str = ""

    def offers(self) -> dict[str, Any]:
        """What this BMS offers the station: logical signals, per-cell groups and commands."""
        groups = {name for name, group in (("cell_voltages", self.cells), ("cell_temperatures", self.temperatures))
                  if group is not None}
        commands = self.commands
        return {"signals": frozenset(self.signals), "groups": frozenset(groups),
                "command_path": commands.path if commands else "none",
                "commands": commands.offered() if commands else {}}

    def cyclic_messages(self) -> dict[int, str]:
        """frame id -> message name of every message the driver reads."""
        msgs = {m.message.frame_id: m.message.name for m in self.signals.values()}
        for group in (self.cells, self.temperatures):
            if group is not None and group.names:
                msgs[group.message.frame_id] = group.message.name
        return msgs
