"""The role table: per kind of instrument a fixture holds, what the station expects of it.

A station config binds a driver to each role of a fixture (``cycler: {driver: itech_it6000}``);
plans name roles (``cycler.dcir``). This table is the one place that says, per role: the
capability its driver must implement (checked when the config is bound, before anything is
opened), where it comes in the safe state, whether it can hold voltage on the HV bus, what the
engine asks of it by role (the bus reading that confirms the safe state, the interlock inputs),
the entry point registering its built-in actions and its simulated peer. The engine, the start-up
check and the binder read it; none of them names a role.

A role a site adds without a row here (a torque tool, a scope) is bound to any ``Instrument``
and runs its safe state after every role of the table, in the order the config lists it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from drivers import capabilities as cap

BUS_VOLTMETER = "bus_voltmeter"  # reads the HV bus independently: confirms the safe state (< 60 V)
INTERLOCKS = "interlocks"  # reports the fixture's inputs a step's ``requires:`` names


@dataclass(frozen=True)
class Role:
    """One row of the table."""

    name: str
    capability: type  # the Protocol of drivers.capabilities its driver implements
    what: str  # a few words for docs and messages
    safe_rank: int  # the safe state runs roles by rank, lowest first: HV sources before relays
    energy: bool = False  # can put or keep voltage on the HV bus (a source, the contactors)
    duty: str | None = None  # BUS_VOLTMETER | INTERLOCKS: what the engine asks of it by role
    actions: str = ""  # the entry point in group eol_station.actions with its built-in actions
    sim_peer: str = ""  # "module:Class" of its simulated peer (other dialects: sim/dialects.py)


# In safe-state order: HV sources first (hipot, cycler), then the pack (contactors open, IMD back
# on), the leak tester, the fixture's relays, and the DMM that then confirms the bus.
ROLES: tuple[Role, ...] = (
    Role("safety", cap.InsulationTester, "insulation / withstand / ground-bond tester", 10, energy=True,
         actions="safety", sim_peer="sim.instruments.chroma_19032:SimChroma19032"),
    Role("cycler", cap.Cycler, "DC source / load (charge, discharge, DCIR)", 20, energy=True,
         actions="cycler", sim_peer="sim.instruments.itech_it6000:SimItechCycler"),
    Role("bms", cap.Bms, "the pack's BMS (signals, contactors, UDS)", 30, energy=True,
         actions="bms", sim_peer="sim.bms.can_bms:SimCanBms"),
    Role("leak", cap.LeakTester, "coolant circuit leak tester", 40,
         actions="leak", sim_peer="sim.instruments.ateq_leak:SimAteqLeak"),
    Role("fixture", cap.Fixture, "fixture PLC (clamp, guard, HV relays, interlock inputs)", 50, duty=INTERLOCKS,
         actions="fixture", sim_peer="sim.instruments.fixture_plc:SimFixturePlc"),
    Role("dmm", cap.Dmm, "DMM on the HV connector", 60, duty=BUS_VOLTMETER,
         actions="dmm", sim_peer="sim.instruments.keysight_34465a:SimKeysightDmm"),
)
BY_NAME: dict[str, Role] = {r.name: r for r in ROLES}
_UNRANKED = max(r.safe_rank for r in ROLES) + 1


def role(name: str) -> Role | None:
    """The table's row for ``name``; None for a role the table does not know."""
    return BY_NAME.get(name)


def safe_rank(name: str) -> int:
    """Where role ``name`` comes in the safe state (lower first); after every row for others."""
    row = BY_NAME.get(name)
    return row.safe_rank if row is not None else _UNRANKED


def safe_order(names: Iterable[str]) -> list[str]:
    """``names`` in safe-state order; roles outside the table last, in the order given."""
    return sorted(names, key=safe_rank)


def energy_roles() -> tuple[str, ...]:
    """The roles that can put or keep voltage on the HV bus, in safe-state order."""
    return tuple(r.name for r in ROLES if r.energy)


def on_duty(duty: str) -> str:
    """The role the engine asks for ``duty`` (``BUS_VOLTMETER``, ``INTERLOCKS``)."""
    for row in ROLES:
        if row.duty == duty:
            return row.name
    raise LookupError(f"no role has duty {duty!r}")


def protocol_methods(protocol: type) -> list[str]:
    """The public methods ``protocol`` declares, its base protocols' included (its data members,
    such as ``name``, are set by a driver's constructor and are not looked for on the class)."""
    names: dict[str, None] = {}
    for klass in reversed(protocol.__mro__):
        if not getattr(klass, "_is_protocol", False) or klass.__module__ == "typing":
            continue
        for name, value in vars(klass).items():
            if not name.startswith("_") and callable(value):
                names[name] = None
    return list(names)


def missing_capability(name: str, driver_class: type) -> str | None:
    """Why ``driver_class`` cannot serve role ``name``: the capability it lacks and its missing
    methods; None when it can. A role outside the table needs an ``Instrument``."""
    row = BY_NAME.get(name)
    protocol = row.capability if row is not None else cap.Instrument
    missing = [m for m in protocol_methods(protocol) if not callable(getattr(driver_class, m, None))]
    if not missing:
        return None
    needs = f"the {name} role needs a {protocol.__name__}" if row else f"a role needs an {protocol.__name__}"
    return f"{needs}; {driver_class.__name__} lacks {', '.join(missing)}"
