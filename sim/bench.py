"""The whole simulated bench: per fixture a pack and its instruments, plus shared ones.

``SimBench(fixtures={"F1": "car-400"})`` builds everything without I/O (a fixture's pack is a
shipped pack's name, a pack file's path, a loaded ``PackDefinition`` or a ``PackSpec``); ``await start()``
serves every peer on loopback (port 0) in the running loop and returns the endpoints that
fill the ``{placeholders}`` of the sim station config (``F1.cycler.port``, ``F1.fixture``,
``F1.can``, ``safety.port``, ...). The shared safety tester reaches whichever fixture's relay
matrix currently connects it, as a real HV relay matrix does.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from typing import Any

from sim.bms.can_bms import SimCanBms
from sim.bms.modbus_bms import SimModbusBms
from sim.dialects import DEFAULT_SAFETY, safety_peer
from sim.instruments.ateq_leak import SimAteqLeak
from sim.instruments.fixture_plc import SimFixturePlc
from sim.instruments.itech_it6000 import SimItechCycler
from sim.instruments.keysight_34465a import SimKeysightDmm
from sim.instruments.modbus_cycler import SimModbusCycler
from sim.pack.catalogue import PackDefinition, find_pack
from sim.pack.model import Pack
from sim.pack.spec import PackSpec
from sim.wiring import Wiring

_bench_ids = itertools.count(1)


@dataclass
class SimFixture:
    """One fixture position: its pack, wiring and the peers that belong to it."""

    name: str
    preset: str  # the pack's name
    pack: Pack
    wiring: Wiring
    cycler: SimItechCycler
    cycler_modbus: SimModbusCycler
    dmm: SimKeysightDmm
    plc: SimFixturePlc
    leak: SimAteqLeak
    bms: SimCanBms
    bms_modbus: SimModbusBms  # the same BMS (one ECU) as a Modbus server: TCP and RTU over a serial link
    peers: dict[str, Any] = field(default_factory=dict)
    definition: PackDefinition | None = None  # the pack file (None: a PackSpec given in code)
    did_table: Any = None  # the BMS profile's DID table (None: the shipped one)


class _Matrix:
    """What the shared tester's leads reach: the fixture whose relay or probe is closed."""

    def __init__(self, fixtures: list[SimFixture]) -> None:
        self._fixtures = fixtures

    def active(self) -> SimFixture:
        for fx in self._fixtures:
            if fx.wiring.ir_pole is not None or fx.wiring.bond_point is not None:
                return fx
        return self._fixtures[0]


class _ActiveWiring:
    def __init__(self, matrix: _Matrix) -> None:
        object.__setattr__(self, "_matrix", matrix)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._matrix.active().wiring, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._matrix.active().wiring, name, value)


class _ActivePack:
    def __init__(self, matrix: _Matrix) -> None:
        self._matrix = matrix

    def __getattr__(self, name: str) -> Any:
        return getattr(self._matrix.active().pack, name)


def _factory_ecu(spec, seed: int, table=None):
    """The ECU state of a new pack's BMS, identity from the product spec (as SimCanBms builds it);
    ``table``: the BMS profile's DID table (default: the shipped one)."""
    from sim.bms.ecu import EcuState

    identity = {"part_number": spec.bms_part_number, "sw_version": spec.bms_sw_version,
                "hw_version": spec.bms_hw_version}
    table = table or _did_table(getattr(spec, "bms_did_table", None))
    return EcuState.from_table(table, values={k: v for k, v in identity.items() if v and k in
                                              {e.name for e in table.entries.values()}}, seed=seed)


def _profile_did_table(profile: dict):
    """The DID table a BMS profile's ``diagnostics`` names, or None (the pack's or shipped table)."""
    if not profile.get("signals"):
        return None
    from drivers.bms.diagnostics import load_diagnostics
    from drivers.bms.signals import load_signal_map

    diagnostics = load_signal_map(profile["signals"], dbc=profile.get("dbc")).diagnostics
    return load_diagnostics(diagnostics) if diagnostics else None


@functools.lru_cache(maxsize=8)
def _did_table(path: str | None = None):
    """The pack's DID table (default: the shipped one), parsed once (0.1 s a parse; every run
    rolls in a new pack)."""
    from drivers.bms.did_table import load_did_table

    return load_did_table(path)


def _resolve(pack: str | PackDefinition | PackSpec) -> tuple[PackSpec, PackDefinition | None]:
    if isinstance(pack, PackSpec):
        return pack, None
    definition = pack if isinstance(pack, PackDefinition) else find_pack(pack)
    return definition.spec, definition


class PackSlot:
    """The pack on a fixture, as its peers see it: a new pack can roll in between runs."""

    def __init__(self, pack: Pack) -> None:
        object.__setattr__(self, "current", pack)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.current, name, value)

    def swap(self, pack: Pack) -> None:
        """Roll in another pack (attribute writes otherwise go to the current pack)."""
        object.__setattr__(self, "current", pack)


class SimBench:
    """``bms``: per fixture, the BMS profile its simulated BMS speaks (``{"signals": map file,
    "dbc": file, "uds": {"rx_id", "tx_id"}}``, the same files the station's driver reads); it
    wins over what the pack file names; default the project's own."""

    def __init__(self, fixtures: dict[str, str | PackDefinition | PackSpec] | None = None, *, seed: int = 0,
                 bms: dict[str, dict] | None = None, safety: str = DEFAULT_SAFETY) -> None:
        """``fixtures``: fixture -> its pack; ``safety``: the driver key of the shared safety
        tester, whose dialect the simulated peer speaks (``sim.dialects``). An unknown pack name
        or a bad pack file raises ``InputError`` (with a did-you-mean / ``FILE:LINE:COL``), a
        driver without a simulated peer ``NoSimulatedPeer``, before anything is built."""
        fixtures = fixtures or {"F1": "car-400"}
        self._bms_profiles = bms or {}
        resolved = {name: _resolve(pack) for name, pack in fixtures.items()}
        self.id = next(_bench_ids)
        self.fixtures: dict[str, SimFixture] = {}
        for i, (name, (spec, definition)) in enumerate(resolved.items()):
            self.fixtures[name] = self._fixture(name, spec, definition, seed + 101 * i)
        self.matrix = _Matrix(list(self.fixtures.values()))
        self.safety = safety_peer(safety, _ActivePack(self.matrix), _ActiveWiring(self.matrix))
        self.endpoints: dict[str, str] = {}
        self._started: list[Any] = []

    def _fixture(self, name: str, spec: PackSpec, definition: PackDefinition | None, seed: int) -> SimFixture:
        pack = PackSlot(Pack(spec, seed=seed))
        wiring = Wiring()
        channel = f"sim{self.id}-{name}"
        profile = self._bms_profiles.get(name, {})
        table = _profile_did_table(profile)
        ecu = _factory_ecu(spec, seed, table)
        can_profile = {k: v for k, v in (("dbc", spec.bms_dbc), ("signals", spec.bms_signals)) if v}
        if profile.get("signals"):  # the station config's BMS profile wins over the pack file's
            can_profile = {k: profile[k] for k in ("signals", "dbc") if profile.get(k)}
        modbus_profile = {"map_path": spec.bms_modbus_map} if spec.bms_modbus_map else {}
        fx = SimFixture(
            name, spec.name, pack, wiring,
            cycler=SimItechCycler(pack),
            cycler_modbus=SimModbusCycler(pack),
            dmm=SimKeysightDmm(pack, seed=seed),
            plc=SimFixturePlc(pack, wiring),
            leak=SimAteqLeak(pack),
            bms=SimCanBms(pack, wiring, channel=channel, seed=seed, ecu=ecu, uds=profile.get("uds"),
                          precharge_timeout=spec.precharge_timeout, **can_profile),
            bms_modbus=SimModbusBms(pack, wiring, seed=seed, ecu=ecu, precharge_timeout=spec.precharge_timeout,
                                    **modbus_profile),
            definition=definition,
        )
        fx.did_table = table
        return fx

    def renew(self, fixture: str, *, seed: int | None = None) -> None:
        """A fresh golden pack of the same product rolls in: faults and peer fault modes cleared."""
        fx = self.fixtures[fixture]
        self._runs = getattr(self, "_runs", 0) + 1
        fx.pack.swap(Pack(fx.pack.spec, seed=seed if seed is not None else self._runs * 7919))
        fresh = Wiring()
        for name in fresh.__dataclass_fields__:
            setattr(fx.wiring, name, getattr(fresh, name))
        for peer in (fx.cycler, fx.dmm, fx.leak, fx.plc, self.safety):
            if hasattr(peer, "behaviour"):
                peer.behaviour = "normal"
        fx.cycler.trips.clear()
        fx.bms.silent_after(float("inf"))
        fx.bms_modbus.silent_after(float("inf"))
        if fx.bms.ecu is not None:  # the new pack's BMS: factory DIDs, no DTCs, default session
            fresh_ecu = _factory_ecu(fx.pack.spec, self._runs, fx.did_table)
            fx.bms.ecu.__dict__.update(fresh_ecu.__dict__)

    async def start(self) -> dict[str, str]:
        """Serve every peer on loopback; return placeholder -> endpoint."""
        ep = self.endpoints
        try:
            for name, fx in self.fixtures.items():
                for key, peer in (("cycler", fx.cycler), ("cycler_modbus", fx.cycler_modbus), ("dmm", fx.dmm),
                                  ("fixture", fx.plc), ("leak", fx.leak)):
                    address = await peer.start()
                    self._started.append(peer)
                    ep[f"{name}.{key}"] = address
                    ep[f"{name}.{key}.port"] = address.rsplit(":", 1)[1]
                await fx.bms.start()
                self._started.append(fx.bms)
                ep[f"{name}.can"] = fx.bms.channel
                ep[f"{name}.bms_tcp"] = await fx.bms_modbus.start()
                self._started.append(fx.bms_modbus)
                ep[f"{name}.bms_rtu"] = await fx.bms_modbus.start_rtu("socket")
                ep[f"{name}.cells"] = str(fx.pack.spec.series)
                ep[f"{name}.temps"] = str(fx.pack.spec.temp_sensors)
            address = await self.safety.start()
            self._started.append(self.safety)
            ep["safety"] = address
            ep["safety.port"] = address.rsplit(":", 1)[1]
        except BaseException:
            await self.stop()
            raise
        return dict(ep)

    async def stop(self) -> None:
        """Stop every started peer (each even if another fails)."""
        errors = []
        while self._started:
            peer = self._started.pop()
            try:
                await peer.stop()
            except Exception as err:  # report after stopping the rest
                errors.append(f"{type(peer).__name__}: {err}")
        if errors:
            raise RuntimeError("simulator peers failed to stop: " + "; ".join(errors))
