"""The fixture's start-up check: every instrument reads back its own state, anything energised
is brought to the safe state and confirmed, latched protections are cleared only after that.

``await check_fixture(fixture, drivers, act=True)`` works on drivers that are already open
(the CLI's session, the UI's session, ``station fixture``) and never raises for instrument
trouble: an instrument that cannot be read is a finding that blocks.

1. Read: each instrument's ``energy_state()`` (HV sources first), each bounded by
   ``READ_TIMEOUT`` s.
2. With ``act``, if anything is energised or unreadable: every instrument's ``safe_state()``, in
   the engine's order (the role table's: hipot, cycler, BMS, leak, fixture relays, DMM), then everything is read
   again until nothing is energised or ``CONFIRM_WITHIN`` s have passed (the HV bus takes a
   moment to discharge through its bleeder).
3. With ``act`` and the fixture confirmed safe: each fixture output the safe state leaves on
   on purpose (``left_on``: the LV power that keeps the BMS awake to open its contactors) is
   switched off and read back, as a plan's safe release leaves it; then each latched protection
   is cleared (``clear_protection()``) and read back. Never before: the BMS needs LV power until
   its contactors read open, and a latch may be what keeps a source off.
4. What is still energised, unreadable, latched or left on blocks a run, naming the instrument.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from drivers import roles
from drivers.capabilities import SafeAction

READ_TIMEOUT = 5.0  # s per instrument's energy_state()
SAFE_TIMEOUT = 5.0  # s per instrument's safe_state(), as the engine gives it
CONFIRM_WITHIN = 30.0  # s to see everything read back safe after the safe state
REREAD_PERIOD = 0.5  # s between read-backs while waiting for that


@dataclass(frozen=True)
class Finding:
    """One item an instrument reported (``drivers.capabilities.StateFinding``) with its role."""

    instrument: str
    what: str
    safe: bool
    detail: str
    latched: tuple[str, ...] = ()
    left_on: tuple[str, ...] = ()

    def line(self) -> str:
        return f"{self.instrument}: {self.detail}"


@dataclass
class FixtureCheck:
    """What the start-up check found on one fixture and what it did (data for the record)."""

    fixture: str
    found: list[Finding] = field(default_factory=list)  # the first read-back
    done: list[str] = field(default_factory=list)  # what was switched or cleared, one line each
    after: list[Finding] = field(default_factory=list)  # the last read-back (= found if nothing done)

    @property
    def problems(self) -> list[Finding]:
        """What still blocks a run: energised, unreadable, latched or left on."""
        return [f for f in self.after if not f.safe]

    @property
    def safe(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """Screen lines: what was found, what was done, then the verdict (``NOT SAFE ...`` per
        problem, so ``station.startup.blocking`` sees them)."""
        fx = self.fixture
        out = [f"fixture {fx}: found {f.line()}" for f in self.found if not f.safe] if self.done else []
        out += [f"fixture {fx}: done {line}" for line in self.done]
        out += [f"NOT SAFE fixture {fx}: {f.line()}" for f in self.problems]
        if self.safe:
            roles = list(dict.fromkeys(f.instrument for f in self.after))
            bus = next((f.detail for f in self.after if f.what == "bus voltage"), None)
            out.append(f"fixture {fx}: safe (read back: {', '.join(roles) or 'no instruments'}"
                       + (f"; {bus}" if bus else "") + ")")
        out += [f"fixture {fx}: {f.detail}" for f in self.after if f.what == "estop" and "pressed" in f.detail]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"fixture": self.fixture, "safe": self.safe, "found": [asdict(f) for f in self.found],
                "done": list(self.done), "after": [asdict(f) for f in self.after]}


def _ordered(names) -> list[str]:
    return roles.safe_order(names)  # the engine's order (drivers/roles.py): HV sources first


def _rank(f: Finding) -> int:
    return roles.safe_rank(f.instrument)


async def read_all(drivers: dict[str, Any]) -> list[Finding]:
    """Every instrument's ``energy_state()``; one that cannot be read is a finding, not safe."""
    found: list[Finding] = []
    for role in _ordered(drivers):
        found.extend(await read_one(role, drivers[role]))
    return found


async def read_one(role: str, driver: Any) -> list[Finding]:
    read = getattr(driver, "energy_state", None)
    if read is None:
        return [Finding(role, "read", False, f"driver {type(driver).__name__} reports no energy_state(): state unknown")]
    try:
        items = await asyncio.wait_for(read(), READ_TIMEOUT)
    except asyncio.CancelledError:
        raise
    except TimeoutError:
        return [Finding(role, "read", False, f"could not be read: no answer within {READ_TIMEOUT:g} s")]
    except Exception as err:  # instrument trouble is a finding; the check must not crash on it
        return [Finding(role, "read", False, f"could not be read ({type(err).__name__}: {_bare(role, err)})")]
    return [Finding(role, i.what, i.safe, i.detail, tuple(i.latched), tuple(getattr(i, "left_on", ())))
            for i in items]


def _bare(role: str, err: BaseException) -> str:
    return str(err).removeprefix(f"{role}: ")


def _energised(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if not f.safe and not f.latched and not f.left_on]


async def make_safe(drivers: dict[str, Any], busy: frozenset[str] = frozenset()) -> list[str]:
    """Every instrument's ``safe_state()`` in order, each even if another failed; one line per
    action, saying whether the instrument confirmed it. ``busy`` roles (a shared instrument
    running another fixture's test) are left alone, as the engine does."""
    lines: list[str] = []
    for role in _ordered(drivers):
        if role in busy:
            lines.append(f"{role}: shared, in use by another fixture: left running")
            continue
        try:
            done = await asyncio.wait_for(drivers[role].safe_state(), SAFE_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # one failing safe state never stops the others
            lines.append(f"{role}: safe_state() FAILED ({type(err).__name__}: {_bare(role, err)})")
            continue
        for item in done or ():
            if isinstance(item, SafeAction):
                lines.append(f"{role}: {item.action}" + ("" if item.confirmed else " [NOT confirmed]"))
            else:
                lines.append(f"{role}: {item} [NOT confirmed]")
    return lines


async def check_fixture(fixture: str, drivers: dict[str, Any], *, act: bool, force: bool = False,
                        unreachable: dict[str, str] | None = None, busy: frozenset[str] = frozenset(),
                        on_clear: Callable[[str, tuple[str, ...]], None] | None = None) -> FixtureCheck:
    """Read back ``drivers`` (open, by role); with ``act`` make them safe and clear latches
    (with ``force`` too, the safe state runs even when nothing reads energised).

    ``unreachable`` maps roles that could not even be opened to why (they block). ``on_clear``
    is called with (role, protections) after each latch was cleared (the audit line).
    """
    lost = [Finding(role, "open", False, f"not reachable at {why}") for role, why in (unreachable or {}).items()]
    # A shared instrument busy with another fixture's test is neither read nor stopped: its HV
    # reaches this fixture only through this fixture's own IR relays, which the PLC reports.
    lost += [Finding(role, "shared", True, "shared, in use by another fixture: left alone (this fixture's "
                     "IR relays are read at its PLC)") for role in _ordered(busy & set(drivers))]
    drivers = {role: d for role, d in drivers.items() if role not in busy}
    check = FixtureCheck(fixture)
    check.found = lost + await read_all(drivers)
    check.after = check.found
    if not act:
        return check
    if force or _energised(check.found):
        check.done += await make_safe(drivers, busy)
        check.after = lost + await _settle(drivers)
    if _energised(check.after):
        return check  # neither LV power off nor a latch cleared on a fixture not confirmed safe
    await _switch_off_left_on(check, drivers)
    for role in _ordered({f.instrument for f in check.after if f.latched}):
        latched = tuple(sorted({name for f in check.after if f.instrument == role for name in f.latched}))
        try:
            await asyncio.wait_for(drivers[role].clear_protection(), SAFE_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            check.done.append(f"{role}: clearing latched protection {'/'.join(latched)} FAILED "
                              f"({type(err).__name__}: {_bare(role, err)})")
            continue
        check.done.append(f"{role}: cleared latched protection {'/'.join(latched)} (fixture confirmed safe first)")
        if on_clear is not None:
            on_clear(role, latched)
        fresh = await read_one(role, drivers[role])
        check.after = sorted([f for f in check.after if f.instrument != role] + fresh, key=_rank)
    return check


async def _switch_off_left_on(check: FixtureCheck, drivers: dict[str, Any]) -> None:
    """Switch off (``set_output(name, False)``) what the findings name ``left_on``, then read that
    instrument back into ``check.after``; each switching is a ``done`` line."""
    for role in _ordered({f.instrument for f in check.after if f.left_on}):
        names = sorted({name for f in check.after if f.instrument == role for name in f.left_on})
        for name in names:
            try:
                await asyncio.wait_for(drivers[role].set_output(name, False), SAFE_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the read-back below keeps it blocking, with this line saying why
                check.done.append(f"{role}: switching {name} off FAILED ({type(err).__name__}: {_bare(role, err)})")
                continue
            check.done.append(f"{role}: {name} off (left on by the last session; switched off once the "
                              "fixture read safe)")
        fresh = await read_one(role, drivers[role])
        check.after = sorted([f for f in check.after if f.instrument != role] + fresh, key=_rank)


async def _settle(drivers: dict[str, Any]) -> list[Finding]:
    """Read everything again until nothing is energised or ``CONFIRM_WITHIN`` s have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONFIRM_WITHIN
    while True:
        found = await read_all(drivers)
        if not _energised(found) or loop.time() >= deadline:
            return found
        await asyncio.sleep(REREAD_PERIOD)
