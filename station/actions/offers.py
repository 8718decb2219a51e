"""What an action needs from its instrument, checked at validation against what it offers.

A driver may describe what it offers (``offers()``; DbcBms: the signals of its profile, its
command path and commands, whether UDS is configured). A plan that needs something the station's
instrument does not offer is refused before anything is opened, at the step that needs it, with
the reason. Drivers that do not describe themselves are taken to offer everything.
"""

from __future__ import annotations

from typing import Any

# action -> (signals it reads, (command, value) it sends, needs UDS)
_MODE = ("mode", None)  # the value is the action's 'mode' argument
NEEDS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str | None], ...], bool]] = {
    "bms.pack": (("pack_voltage", "pack_current"), (), False),
    "bms.mode": (("bms_state",), (_MODE,), False),
    "bms.close_contactors": (("pack_voltage", "bms_state", "contactor_main_plus", "contactor_main_minus",
                              "contactor_precharge"), (("mode", "normal"),), False),
    "bms.open_contactors": (("pack_voltage", "contactor_main_plus", "contactor_main_minus"),
                            (("mode", "standby"),), False),
    "bms.insulation_monitor": (("imd_enabled",), (("insulation_monitor", "enabled"),
                                                  ("insulation_monitor", "disabled")), False),
    "bms.balancing": (("balancing_active",), (("balancing", "on"), ("balancing", "off")), False),
    "bms.hvil_check": (("hvil_closed",), (), False),
    "bms.cells": (("pack_voltage", "cell_voltages", "cell_temperatures"), (), False),
    **{name: ((), (), True) for name in ("bms.identity", "bms.dtcs", "bms.clear_dtcs", "bms.unlock",
                                         "bms.write_did", "bms.read_did", "bms.reset", "bms.session")},
}
# measurements that exist only where the instrument offers the signal behind them
OPTIONAL_MEASURES = {("bms.pack", "soc"): "soc"}


def refusals(offer: dict[str, Any], action: str, args: dict[str, Any], expect: set[str]) -> list[tuple[tuple, str]]:
    """(where in the step, why) for everything ``action`` needs that ``offer`` lacks."""
    out: list[tuple[tuple, str]] = []
    have = set(offer.get("signals", ())) | set(offer.get("groups", ()))
    signals, commands, uds = NEEDS.get(action, ((), (), False))
    if action == "bms.signal" and isinstance(args.get("name"), str) and "${" not in args["name"]:
        signals = (args["name"],)
    missing = [s for s in signals if s not in have]
    if missing:
        where = ("with", "name") if action == "bms.signal" else ("action",)
        out.append((where, f"{action} needs signal{'s' if len(missing) > 1 else ''} {', '.join(missing)}, "
                           f"which this station's BMS profile does not map (it offers: {', '.join(sorted(have))})"))
    path, offered = offer.get("command_path", "can"), offer.get("commands", {})
    for kind, value in commands:
        value = value if value is not None else args.get("mode")
        if not isinstance(value, str) or "${" in value:
            continue
        if value not in offered.get(kind, ()):
            why = ("its BMS is read-only (command path none): the station cannot command it"
                   if path == "none" else f"its BMS profile ({path}) offers {kind}: "
                                          f"{', '.join(offered.get(kind, ())) or 'none'}")
            out.append((("action",), f"{action} needs command {kind} {value}, which this station cannot send: {why}"))
            break
    if uds and not offer.get("uds", True):
        out.append((("action",), f"{action} needs UDS diagnostics, which this station's BMS has no 'uds' option for"))
    for (name, measure), signal in OPTIONAL_MEASURES.items():
        if name == action and measure in expect and signal not in have:
            out.append((("expect", measure), f"{action} measures {measure} only where the BMS offers signal "
                                              f"{signal}; this station's BMS profile does not map it"))
    return out


def monitor_refusal(offer: dict[str, Any], signal: str) -> str | None:
    """Why a monitor on ``signal`` cannot run, or None."""
    if signal in set(offer.get("signals", ())):
        return None
    return f"monitor reads signal '{signal}', which this station's BMS profile does not map"
