"""The station's instruments: built from config (no I/O), opened, identified, closed.

Shared instruments (one IR tester behind a relay matrix) are built once and handed to every
fixture with one lock, so the engine — not plan authors — serialises their use.

A driver whose last run lost it (an error with ``connection_lost``: ``ConnectError``,
``InstrumentTimeout``; a safe state that timed out; or a transport that reports itself ``lost``) is re-opened — closed, opened and
identified again — at the start of the next run, so an instrument that was power-cycled or
re-plugged works again without restarting the station.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers import roles
from drivers.base.diagnostics import InputError, Problem
from drivers.errors import InstrumentError, UnknownDriverError
from drivers.registry import driver_class
from drivers.transports.resources import check_resource
from station.config import PLACEHOLDER, LoadedConfig, fill_option, fill_resource
from station.events import InstrumentInfo


class _OptionError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


def _check_options(cls: type, options: dict[str, Any]) -> None:
    """Refuse option keys the driver does not read (a misspelt option is never ignored)."""
    known = getattr(cls, "OPTIONS", None)
    if known is None:  # a site driver that declares nothing: its own constructor decides
        return
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise _OptionError(key, f"unknown option '{key}'{hint} (options: {', '.join(sorted(known)) or 'none'})")


def check_fixture(loaded: LoadedConfig, fixture: str, endpoints: dict[str, str] | None = None, *,
                  sim: bool = False) -> dict[str, dict]:
    """Everything about one fixture's instruments that can be refused without opening one:
    driver keys, resources (schemes, hosts, ports), options, map files. Raises InputError.

    ``sim`` without ``endpoints``: a simulator config, whose resources and some options are
    placeholders the simulator fills later; the files the drivers name (maps, profiles) are
    checked all the same. Returns what each instrument offers (role -> ``driver.offers()``,
    for drivers that describe themselves), for binding plans (station/actions/offers.py)."""
    instruments = StationInstruments(loaded, endpoints, files_only=sim and endpoints is None)
    fx = instruments.build(fixture)
    offers, problems = {}, []
    for role, driver in fx.drivers.items():
        describe = getattr(driver, "offers", None)
        if describe is None:
            continue
        try:
            offers[role] = describe()
        except (InstrumentError, ValueError, OSError) as err:
            where = loaded.location_of(fixture, role)
            problems.extend(loaded.problem(where + ("resource",), f"{role}: {err}").problems)
    if problems:
        raise InputError(problems)
    return offers


def sim_bms_profiles(loaded: LoadedConfig) -> dict[str, dict]:
    """Per fixture, the BMS profile its simulated BMS must speak: the same files the station's
    BMS driver reads (``signals``, ``dbc``, resolved as the driver gets them) and its UDS ids."""
    out = {}
    for fixture in loaded.fixture_ids():
        for role, (_key, cfg) in loaded.instruments_for(fixture).items():
            if role != "bms" or not getattr(_driver_class_or_none(cfg.driver), "PATH_OPTIONS", ()):
                continue
            options = _resolve_paths(driver_class(cfg.driver), cfg.options, loaded.base)
            profile = {}
            for key in ("signals", "dbc"):
                value = options.get(key)
                if isinstance(value, str) and value:
                    path = Path(value)
                    profile[key] = str(path if path.is_absolute() else _shipped_map(path))
            uds = options.get("uds")
            if isinstance(uds, dict) and "tx_id" in uds and "rx_id" in uds:
                profile["uds"] = {"rx_id": int(uds["tx_id"]), "tx_id": int(uds["rx_id"])}  # the ECU's view
            out[fixture] = profile
    return out


def _shipped_map(name: Path) -> Path:
    from drivers.bms.signals import MAPS

    return MAPS / name


def _driver_class_or_none(driver: str):
    try:
        return driver_class(driver)
    except (InstrumentError, ValueError):
        return None


def _names_files(driver: str) -> bool:
    """Whether the driver reads files named in its config (``PATH_OPTIONS``: maps, profiles)."""
    try:
        return bool(getattr(driver_class(driver), "PATH_OPTIONS", ()))
    except (InstrumentError, ValueError):
        return True  # an unknown driver key: build() reports it


_LOCATED = re.compile(r"^(.+):(\d+):(\d+): (.*)$", re.S)


def _located(lines) -> list[Problem]:
    """``PATH:LINE:COL: message`` strings (a map file's problems) as Problems; [] unless all are."""
    found = [_LOCATED.match(line) for line in lines or () if isinstance(line, str)]
    if not found or not all(found) or not all(Path(m.group(1)).is_file() for m in found):
        return []  # a file that is not there: the config line naming it is the place
    return [Problem(m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)) for m in found]


def _resolve_paths(cls: type, options: dict[str, Any], base) -> dict[str, Any]:
    """The driver's file options (``PATH_OPTIONS``) relative to the config file's folder: a
    relative path found there becomes absolute; anything else is left for the driver (a bare
    name of a shipped map), never looked up from the working directory."""
    out = dict(options)
    for key in getattr(cls, "PATH_OPTIONS", ()):
        value = out.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute() and (base / value).exists():
            out[key] = str((base / value).resolve())
    return out


class InstrumentSetupError(Exception):
    """An instrument could not be opened or identified; names the role and cause."""


def open_failure(role: str, err: BaseException) -> str:
    """What failed, said once: a driver error's own message (and its command, unless it was the
    open itself), else the exception's type and text."""
    if isinstance(err, InstrumentError):
        return err.message + (f" (command {err.command!r})" if err.command and err.command != "open" else "")
    return f"{type(err).__name__}: {str(err).removeprefix(f'{role}: ')}"

REOPEN_SAFE_TIMEOUT = 5.0  # s for a re-opened instrument's safe state (as in engine/safe.py)

@dataclass
class FixtureInstruments:
    fixture: str
    drivers: dict[str, Any]
    keys: dict[str, str]
    infos: list[InstrumentInfo] = field(default_factory=list)

class StationInstruments:
    """Owns every driver of a station; opens each once even when shared by fixtures."""

    def __init__(self, loaded: LoadedConfig, endpoints: dict[str, str] | None = None, *,
                 files_only: bool = False) -> None:
        self.loaded = loaded
        self.endpoints = endpoints
        self.files_only = files_only  # check what drivers read from files; placeholders unfilled
        self._drivers: dict[str, Any] = {}
        self._configs: dict[str, Any] = {}
        self._opened: dict[str, InstrumentInfo] = {}
        self._suspect: set[str] = set()  # keys to re-open before their next run
        self._open_lock = asyncio.Lock()
        self.locks: dict[str, asyncio.Lock] = {}

    def _driver(self, key: str, role: str, cfg) -> Any:
        if key not in self._drivers:
            cls = driver_class(cfg.driver)
            where = str(self.loaded.path)
            _check_options(cls, cfg.options)
            if self.files_only:  # a simulator config: resources and placeholder options come later
                resource = cfg.resource
                options = {k: v for k, v in cfg.options.items() if not (isinstance(v, str) and PLACEHOLDER.search(v))}
            else:
                resource = fill_resource(cfg.resource, self.endpoints, where)
                if getattr(cls, "TRANSPORT", None) is not None:
                    check_resource(resource, cls.TRANSPORT)
                options = {k: fill_option(v, self.endpoints, where) for k, v in cfg.options.items()}
            options = _resolve_paths(cls, options, self.loaded.base)
            driver = cls(role, resource, options=options, calibration_due=cfg.calibration_due, timeout=cfg.timeout)
            check = getattr(driver, "check", None)
            if check is not None:
                check()
            self._drivers[key] = driver
            self._configs[key] = cfg
            if cfg.shared:
                self.locks[key] = asyncio.Lock()
        return self._drivers[key]

    def build(self, fixture: str) -> FixtureInstruments:
        """Driver objects for one fixture (constructors only store config; a driver key, resource,
        option or map file a driver refuses is a config error at its location, before anything is
        touched)."""
        drivers, keys, problems = {}, {}, []
        for role, (key, cfg) in self.loaded.instruments_for(fixture).items():
            where = self.loaded.location_of(fixture, role)
            cls = _driver_class_or_none(cfg.driver)  # an unknown key: reported by _driver below
            lacks = roles.missing_capability(role, cls) if cls is not None else None
            if lacks:  # bound to a driver of another kind: refused before anything is built or opened
                problems.extend(self.loaded.problem(where + ("driver",), f"{role} ({cfg.driver}): {lacks}").problems)
                continue
            if self.files_only and not _names_files(cfg.driver):
                continue  # nothing to check before the simulator fills its resource
            # what the user wrote at that place: a station-level instrument by its own key (the
            # fixture's role for it is only an alias), a fixture's own by its role
            label = f"instrument '{key}' ({cfg.driver})" if where[0] == "instruments" else f"{role} ({cfg.driver})"
            try:
                drivers[role] = self._driver(key, role, cfg)
            except _OptionError as err:
                problems.extend(self.loaded.problem(where + ("options", err.key), f"{label}: {err}").problems)
            except (InstrumentError, ValueError, OSError) as err:
                located = _located(getattr(err, "problems", None))
                if located:  # a map or profile file's own problems: at their place in that file
                    problems.extend(located)
                    continue
                field = "driver" if isinstance(err, UnknownDriverError) else "resource"
                text = str(err).removeprefix(f"{role}: ")
                problems.extend(self.loaded.problem(where + (field,), f"{label}: {text}").problems)
            keys[role] = key
        if problems:
            raise InputError(problems)
        return FixtureInstruments(fixture, drivers, keys)

    def locks_for(self, fx: FixtureInstruments) -> dict[str, asyncio.Lock]:
        return {role: self.locks[key] for role, key in fx.keys.items() if key in self.locks}

    def note_lost(self, fx: FixtureInstruments, lost: Iterable[str]) -> None:
        """Mark the fixture's instruments a finished run lost (``Sequencer.lost``: roles whose
        connection failed) to be re-opened before their next run."""
        for role in lost:
            if role in fx.keys:
                self._suspect.add(fx.keys[role])

    def _needs_reopen(self, key: str, driver: Any) -> bool:
        return key in self._suspect or bool(getattr(getattr(driver, "transport", None), "lost", False))

    async def _close_for_reopen(self, key: str, driver: Any) -> None:
        # a shared instrument may be mid-step for another fixture: wait until it is free
        lock = self.locks.get(key)
        if lock is not None:
            async with lock:
                await self._close_quietly(driver)
        else:
            await self._close_quietly(driver)
        self._opened.pop(key, None)
        self._suspect.discard(key)

    @staticmethod
    async def _close_quietly(driver: Any) -> None:
        try:
            await driver.close()
        except Exception:  # a dead connection may fail to close; it is reopened next
            pass

    async def open(self, fx: FixtureInstruments) -> None:
        """Open and identify each instrument of the fixture (shared ones only once); re-open
        the ones the last run lost (see ``note_lost``)."""
        for role, driver in fx.drivers.items():
            key = fx.keys[role]
            async with self._open_lock:
                reopen = key in self._opened and self._needs_reopen(key, driver)
                if reopen:
                    await self._close_for_reopen(key, driver)
                if key not in self._opened:
                    cfg = self._configs[key]
                    try:
                        await driver.open()
                        ident = await driver.identify()
                        if reopen:
                            # the run that lost it could not make it safe (e.g. a leak cycle
                            # still running): do it now, before anything else is asked of it
                            await asyncio.wait_for(driver.safe_state(), REOPEN_SAFE_TIMEOUT)
                    except (TimeoutError, InstrumentError, OSError) as err:
                        await self._close_quietly(driver)  # the next attempt starts from scratch
                        name = role if key == f"{fx.fixture}.{role}" else f"instrument '{key}'"
                        raise InstrumentSetupError(f"{name} ({cfg.driver} at {driver.resource}): "
                                                   f"{open_failure(role, err)}") from err
                    due = ident.calibration_due or cfg.calibration_due
                    self._opened[key] = InstrumentInfo(
                        role=role, driver=cfg.driver, resource=driver.resource, maker=ident.maker,
                        model=ident.model, serial=ident.serial, firmware=ident.firmware,
                        calibration_due=due.isoformat() if isinstance(due, dt.date) else None,
                        shared=cfg.shared,
                    )
            info = self._opened[key]
            fx.infos.append(InstrumentInfo(**{**info.__dict__, "role": role}))

    def opened(self, fx: FixtureInstruments) -> dict[str, Any]:
        """The fixture's instruments that did open (the safe state only talks to those)."""
        return {role: d for role, d in fx.drivers.items() if fx.keys[role] in self._opened}

    def calibration_problems(self, fx: FixtureInstruments, today: dt.date | None = None) -> list[str]:
        """Instruments past their calibration due date (a production run refuses to start)."""
        today = today or dt.date.today()
        return [f"{i.role} ({i.model} {i.serial}) calibration was due {i.calibration_due}"
                for i in fx.infos if i.calibration_due and dt.date.fromisoformat(i.calibration_due) < today]

    async def close(self) -> list[str]:
        """Close every driver (each even if another fails); return what failed, one line each."""
        failed = []
        for key, driver in list(self._drivers.items()):
            try:
                await driver.close()
            except Exception as err:  # the safe state already ran; report, then close the rest
                failed.append(f"{key}: close failed: {type(err).__name__}: {err}")
        self._opened.clear()
        self._suspect.clear()
        return failed
