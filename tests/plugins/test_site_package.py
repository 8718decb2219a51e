"""A site package adds a driver and actions through entry points, without an edit here (issue 15).

The package is built in tmp_path as an installed distribution would leave it (a ``.dist-info``
with ``entry_points.txt`` beside the module) and reaches the station only through the
``PYTHONPATH`` of a subprocess: nothing is installed, nothing of this process changes. The same
entry points carry the built-ins (this project's pyproject.toml), so the site's driver and action
are found exactly like ours.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

DRIVER = '''\
"""A DMM that needs no wire: it reads a fixed bus voltage (for the test only)."""

from drivers.base import Driver
from drivers.capabilities import Identity, SafeAction, StateFinding


class AcmeDmm(Driver):
    OPTIONS = frozenset({"volts"})

    async def open(self):
        pass

    async def close(self):
        pass

    async def identify(self):
        return Identity("ACME", "DMM-1", "A-1", "1.0")

    async def safe_state(self):
        return [SafeAction("nothing to switch", True)]

    async def energy_state(self):
        return [StateFinding("bus voltage", True, "bus 0.0 V")]

    async def measure_dc_voltage(self, range_v=None, nplc=10.0):
        return float(self.options.get("volts", 0.0))
'''

ACTIONS = '''\
"""A site action on the DMM role."""

from station.actions.registry import ActionSet, Arg

ACTIONS = ActionSet()


@ACTIONS.action("dmm.acme_ripple", args={"samples": Arg(kind="int", default=3)}, measures={"ripple": "V"}, timeout=10)
async def ripple(ctx, samples: int) -> dict:
    """Peak-to-peak of a few bus readings."""
    dmm = ctx.instrument("dmm")
    values = [await dmm.measure_dc_voltage(1000.0, 1.0) for _ in range(samples)]
    return {"ripple": max(values) - min(values)}
'''

PLAN = """\
schema_version: 1
id: acme-ripple
version: 1.0.0
title: site action through an entry point
instruments: [dmm]
main:
  - id: ripple
    dmm.acme_ripple: {samples: 4}
    expect: {ripple: {max: 1 V}}
"""


def _site(tmp_path: Path, entry_points: str, files: dict[str, str]) -> Path:
    """A distribution ``acme-site`` as pip would install it, under ``tmp_path/site``."""
    site = tmp_path / "site"
    info = site / "acme_site-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-site\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    (info / "RECORD").write_text("acme_site-1.0.dist-info/METADATA,,\nacme_site-1.0.dist-info/entry_points.txt,,\n")
    package = site / "acme_site"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, text in files.items():
        (package / name).write_text(text)
    return site


def _station(tmp_path: Path, role: str = "dmm", driver: str = "acme_dmm") -> Path:
    path = tmp_path / "station.yaml"
    path.write_text(textwrap.dedent(f"""\
        schema_version: 1
        station: {{id: ACME-1}}
        fixtures:
          F1:
            instruments:
              {role}: {{driver: {driver}, resource: "TCPIP::127.0.0.1::5025::SOCKET", options: {{volts: 12.5}}}}
        """))
    return path


def _station_cli(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "station.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)


GOOD = """\
    [eol_station.drivers]
    acme_dmm = acme_site.dmm:AcmeDmm

    [eol_station.actions]
    acme = acme_site.actions:ACTIONS
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return _site(tmp_path, GOOD, {"dmm.py": DRIVER, "actions.py": ACTIONS})


def test_the_site_action_is_listed_beside_the_built_ins(site):
    proc = _station_cli(site, "actions", "dmm.acme_ripple", "dmm.voltage")
    assert proc.returncode == 0, proc.stderr
    assert "dmm.acme_ripple  (instrument: dmm)" in proc.stdout and "Peak-to-peak of a few bus readings" in proc.stdout
    assert "dmm.voltage  (instrument: dmm)" in proc.stdout  # the built-ins come through the same group
    # without the site on the path the action does not exist
    plain = _station_cli(site.parent / "nowhere", "actions", "dmm.acme_ripple")
    assert plain.returncode == 2 and "unknown action 'dmm.acme_ripple'" in plain.stderr


def test_a_plan_using_the_site_action_validates_and_runs_on_the_site_driver(site, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    station = _station(tmp_path)
    check = _station_cli(site, "validate", str(plan), "--station", str(station))
    assert check.returncode == 0, check.stderr
    assert "OK (acme-ripple 1.0.0" in check.stdout

    out = tmp_path / "run.json"
    run = _station_cli(site, "run", str(plan), "--station", str(station), "--serial", "SN1",
                       "--db", str(tmp_path / "r.db"), "--json", str(out), "--plain")
    assert run.returncode == 0, run.stdout + run.stderr
    import json

    record = json.loads(out.read_text())
    assert record["verdict"] == "PASS"
    (measured,) = [m for s in record["steps"] for m in s.get("measurements", ())]
    assert measured["name"] == "ripple" and measured["value"] == 0.0
    # the safe state confirmed the bus with the site's DMM, the role table's bus voltmeter
    assert any("bus 12.5 V < 60 V confirmed" in a["action"] for a in record["safe_state"])


def test_the_site_driver_bound_to_a_role_it_cannot_serve_is_refused_before_anything_opens(site, tmp_path):
    station = _station(tmp_path, role="cycler")
    proc = _station_cli(site, "validate", "test_plans/smoke.yaml", "--station", str(station))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{station}:6:24: cycler (acme_dmm): " in proc.stderr and "the cycler role needs a Cycler; AcmeDmm lacks set_output" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_action_the_site_redefines_is_refused_naming_both(tmp_path):
    clash = ACTIONS.replace('"dmm.acme_ripple"', '"dmm.voltage"')
    site = _site(tmp_path, GOOD, {"dmm.py": DRIVER, "actions.py": clash})
    proc = _station_cli(site, "actions")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "action dmm.voltage is defined by entry point" in proc.stderr
    assert "acme-site" in proc.stderr and "eol-station" in proc.stderr and "Traceback" not in proc.stderr


def test_a_site_entry_point_that_cannot_be_imported_is_named(tmp_path):
    site = _site(tmp_path, GOOD.replace("acme_site.dmm:AcmeDmm", "acme_site.missing:AcmeDmm"),
                 {"actions.py": ACTIONS})
    proc = _station_cli(site, "validate", "test_plans/smoke.yaml", "--station", str(_station(tmp_path)))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "entry_points.txt:2:1:" in proc.stderr  # the line declaring it
    assert "acme_dmm = 'acme_site.missing:AcmeDmm' (from acme-site)" in proc.stderr
    assert "ModuleNotFoundError" in proc.stderr and "Traceback" not in proc.stderr
