"""Diagnostics in the supplier's format: DIDs, routines and DTCs from an ODX/PDX (odxtools) instead
of the YAML DID table. No example PDX ships with odxtools: the test builds one with its classes
and writer (tests/drivers/odx_builder.py), then a vehicle-style BMS is driven from it end to end."""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path

import pytest

pytest.importorskip("odxtools", reason="odxtools is the 'odx' extra (pip install -e '.[odx]')")

from drivers.bms.diagnostics import load_diagnostics
from drivers.bms.did_table import DidTableError
from drivers.bms.odx import load_odx
from drivers.bms.signals import MAPS, SignalMapError, load_signal_map
from drivers.errors import DeviceError
from drivers.registry import driver_class
from sim.bms.can_bms import SimCanBms
from sim.bms.ecu import EcuState
from sim.pack.model import Pack
from sim.pack.presets import PRESETS
from sim.wiring import Wiring
from station.clock import run

sys.path.insert(0, str(Path(__file__).parent))
from odx_builder import DTCS, ECU, build_pdx

VEHICLE = MAPS / "vehicle"
SECURITY = "security: {1: {algorithm: add_rotate, params: {constant: 0x2B7E1516, rotate: 5}}}"
_channels = (f"odx-bms-{i}" for i in itertools.count())


@pytest.fixture(scope="module")
def pdx(tmp_path_factory) -> Path:
    return build_pdx(tmp_path_factory.mktemp("odx") / "vbms.pdx")


def _profile(folder: Path, pdx: Path, *, ecu: str = ECU, routine: str = "HvContactorControl") -> Path:
    text = (VEHICLE / "vehicle_bms.yaml").read_text().replace("dbc: vehicle_bms.dbc", f"dbc: {VEHICLE / 'vehicle_bms.dbc'}")
    text = text.replace("routine: 0xF00A", f"routine: {routine}")
    text = text.replace("  did_table: vehicle_did.yaml\n", f"  odx: {pdx.name}\n  ecu: {ecu}\n  {SECURITY}\n")
    path = folder / "profile.yaml"
    if pdx.parent != folder:
        (folder / pdx.name).write_bytes(pdx.read_bytes())
    path.write_text(text)
    return path


def test_dids_routines_and_dtcs_come_from_the_pdx(pdx):
    table = load_odx(pdx, ecu=ECU)
    serial, flag, checksum = table.resolve("ecu_serial"), table.resolve("eol_flag"), table.resolve(0xF1F0)
    assert (serial.did, serial.length, serial.codec, serial.writable) == (0xF18C, 16, "ascii", False)
    assert (flag.did, flag.length, flag.codec, flag.writable, flag.security) == (0xF1A0, 1, "uint", True, 1)
    assert (checksum.codec, checksum.length) == ("hex", 4)
    assert table.resolve("eol_station").writable and table.resolve("eol_station").security == 0
    assert dict(table.routines) == {0xF00A: "HvContactorControl", 0x0203: "BalancingCheck"}
    assert dict(table.dtcs) == DTCS


def test_a_profile_names_its_routines_from_the_odx(pdx, tmp_path):
    m = load_signal_map(_profile(tmp_path, pdx))
    assert m.commands.steps("mode", "normal")[0].ident == 0xF00A
    assert load_diagnostics(m.diagnostics).security[1].algorithm == "add_rotate"
    with pytest.raises(SignalMapError) as info:
        load_signal_map(_profile(tmp_path, pdx, routine="HvContactorKontrol"))
    assert "routine 'HvContactorKontrol' is not in the diagnostic description; its routines: BalancingCheck, " \
           "HvContactorControl" in str(info.value)


def test_a_wrong_ecu_or_a_broken_file_is_a_located_problem(pdx, tmp_path):
    with pytest.raises(DidTableError, match=r"ECU variant 'BMS9' not in the ODX; variants: VBMS"):
        load_odx(pdx, ecu="BMS9")
    broken = tmp_path / "broken.pdx"
    broken.write_bytes(b"not a zip")
    with pytest.raises(DidTableError, match=rf"{broken}:1:1: cannot read ODX"):
        load_odx(broken)


def test_the_vehicle_bms_is_driven_from_its_pdx(pdx, tmp_path):
    profile = _profile(tmp_path, pdx)

    async def main():
        pack = Pack(PRESETS["car-400"])
        ecu = EcuState.from_table(load_diagnostics(load_signal_map(profile).diagnostics),
                                  values={"ecu_serial": "VBMS-ODX-000123", "sw_version": "07.01.00"})
        sim = SimCanBms(pack, Wiring(lv_power=True), channel=next(_channels), signals=profile, ecu=ecu)
        resource = await sim.start()
        bms = driver_class("dbc_bms")("bms", resource, options={
            "signals": str(profile), "cells": pack.spec.series, "temperature_sensors": pack.spec.temp_sensors,
            "uds": {"tx_id": 0x7E4, "rx_id": 0x7EC}})
        bms.check()
        await bms.open()
        try:
            await bms.wake(5.0)
            table = bms.did_table()
            serial = table.resolve("ecu_serial").decode(await bms.uds_read(table.resolve("ecu_serial").did))
            await bms.uds_session("extended")
            entry = table.resolve("pack_serial")
            try:
                await bms.uds_write(entry.did, entry.encode("CAR-ODX-1"))
                refused = None
            except DeviceError as err:
                refused = err.code
            await bms.uds_unlock(1)  # the profile's add_rotate key for the PDX's level 1
            await bms.uds_write(entry.did, entry.encode("CAR-ODX-1"))
            written = entry.decode(await bms.uds_read(entry.did))
            await bms.request_mode("normal")  # routine HvContactorControl, by its ODX name
            loop = asyncio.get_running_loop()
            start = loop.time()
            while bms.state() != "normal" and loop.time() - start < 3.0:
                await asyncio.sleep(0.01)
            state = bms.state()
            await bms.safe_state()
            return serial, refused, written, state, sim.state
        finally:
            await bms.close()
            await sim.stop()

    serial, refused, written, state, after = run(main(), virtual=True)
    assert serial == "VBMS-ODX-000123"
    assert refused == 0x33  # securityAccessDenied: the PDX says level 1
    assert written == "CAR-ODX-1" and state == "normal" and after == "standby"


DTC_PLAN = """\
schema_version: 1
id: odx-dtcs
version: 1.0.0
title: Identity and DTCs from a PDX-described BMS
instruments: [fixture, bms, dmm]
setup:
  - fixture.require: [estop_released, guard_closed, pack_present]
  - fixture.lv_power: true
  - bms.wake: {within: 5 s}
main:
  - id: identity
    bms.identity: {dids: [ecu_serial, calibration_checksum]}
  - id: dtcs
    bms.dtcs: {}
    expect: {count: {max: 0}}
teardown:
  - bms.mode: standby
  - fixture.lv_power: false
"""


def test_a_station_run_reads_its_bms_through_the_pdx(pdx, tmp_path):
    import json
    import subprocess

    root = Path(__file__).resolve().parents[2]
    folder = tmp_path / "site"
    folder.mkdir()
    profile = _profile(folder, pdx)
    config = (root / "station" / "sim_station_vehicle.yaml").read_text()
    (folder / "station.yaml").write_text(config.replace("../drivers/maps/vehicle/vehicle_bms.yaml", profile.name)
                                         .replace("plan: ../test_plans/", f"plan: {root}/test_plans/"))
    (folder / "plan.yaml").write_text(DTC_PLAN)
    code = next(iter(DTCS))
    proc = subprocess.run(
        [sys.executable, "-m", "station.cli", "run", str(folder / "plan.yaml"), "--sim", "--station",
         str(folder / "station.yaml"), "--serial", "CARODX1", "--fault", f"dtc_present:code={code}",
         "--json", str(tmp_path / "r.json"), "--db", str(tmp_path / "r.db")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]  # FAIL: the DTC is there
    record = json.loads((tmp_path / "r.json").read_text())
    identity = {m["name"]: m["value"] for s in record["steps"] if s["path"] == "main/identity" for m in s["measurements"]}
    assert set(identity) == {"ecu_serial", "calibration_checksum"}  # names from the PDX's value parameters
    assert any(f"DTC {code:06X} (status 09): {DTCS[code]}" in str(line) for line in record["log"])
