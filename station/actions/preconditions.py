"""Run-time checks of the preconditions actions declare (``PRECONDITIONS`` in registry.py).

A broken precondition is a plan or station problem, not the product's: the step ends ERROR
with ``PreconditionError`` naming the condition, and nothing is judged (a DC internal resistance
measured with the contactors open is not a pack resistance, it is a wrong plan).
"""

from __future__ import annotations

from drivers.errors import StaleSignalError
from station.engine.errors import StepError

BUS_PRESENT_V = 5.0  # V at the cycler's terminals that only a connected pack can explain


class PreconditionError(StepError):
    """An action's declared precondition does not hold when it starts (or proves false)."""

    def __init__(self, condition: str, action: str, why: str) -> None:
        super().__init__(f"precondition {condition} not met for {action}: {why}")
        self.condition = condition


def _reported(bms, signal: str, condition: str, action: str) -> float:
    """``bms.signal(signal)``; a BMS gone silent leaves ``condition`` unconfirmed: an ERROR naming it
    before anything is energised, not an instrument error further on."""
    try:
        return bms.signal(signal)
    except StaleSignalError as err:
        raise PreconditionError(condition, action, f"it cannot be confirmed: {err}") from None


async def require_dc_bus(ctx, action: str) -> None:
    """``dc_bus_connected``: the BMS reports both main contactors closed; without a BMS, the
    cycler must read a pack's voltage at its terminals."""
    if ctx.has_instrument("bms"):
        bms = ctx.instrument("bms")
        open_ = [name for name in ("contactor_main_plus", "contactor_main_minus")
                 if _reported(bms, name, "dc_bus_connected", action) < 1]
        if open_:
            raise PreconditionError("dc_bus_connected", action,
                                    f"the BMS reports {', '.join(open_)} open (run bms.close_contactors first)")
        return
    reading = await ctx.instrument("cycler").measure()
    if reading.voltage < BUS_PRESENT_V:
        raise PreconditionError("dc_bus_connected", action,
                                f"the cycler reads {reading.voltage:.3g} V at its terminals: no pack on the bus")


def require_imd_disabled(ctx, action: str) -> None:
    """``insulation_monitor_disabled``: the BMS reports its insulation monitor off. Without a BMS
    (or one that does not report the monitor) the station cannot see it: not checked here."""
    if not ctx.has_instrument("bms"):
        return
    bms = ctx.instrument("bms")
    offers = getattr(bms, "offers", None)
    if offers is not None and "imd_enabled" not in offers()["signals"]:
        return
    if _reported(bms, "imd_enabled", "insulation_monitor_disabled", action) >= 1:
        raise PreconditionError("insulation_monitor_disabled", action,
                                "the BMS reports its insulation monitor enabled; its path to chassis would be "
                                "measured with the pack's (run bms.insulation_monitor: disable first)")


def require_physical(condition: str, action: str, name: str, value: float, unit: str) -> None:
    """A result no connected pack can give (a negative resistance) proves ``condition`` false."""
    if value < 0:
        raise PreconditionError(condition, action, f"{name} came out {value:.4g} {unit}, which no pack can give: "
                                                   "the pack is not on the DC bus")
