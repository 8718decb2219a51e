"""The station panel shows the start-up check (station/startup.py): runs a killed station left
interrupted, each fixture's safe state read from its PLC; a fixture not safe refuses a pack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from station.ui.app import OperatorApp
from tests.ui.helpers import login, panel, scan, shown, store_runs, until

SIZE = (100, 30)
REPO = Path(__file__).resolve().parents[2]


def kill_a_run(db: Path) -> str:
    """SIGKILL one `station run` of the smoke plan writing to ``db`` (the crash-safety lane);
    return the id of the interrupted run."""
    lane = REPO / "tests" / "reliability" / "crash_lane.py"
    subprocess.run([sys.executable, str(lane), str(REPO / "test_plans/smoke.yaml"), str(db), "1", "3",
                    str(db.with_suffix(".lane.json")), "0.2"], cwd=REPO, check=True, timeout=120)
    from station.results.store import ResultStore

    with ResultStore(db, readonly=True) as store:
        return store.runs(limit=1)[0]["id"]


async def test_interrupted_runs_and_an_unsafe_fixture_on_the_station_panel(station_config):
    run_id = kill_a_run(station_config.resolve_path(station_config.config.results.db))
    app = OperatorApp(station_config, sim=True)
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot, "op1")
        report = app.main_screen.query_one("#startup-report")
        await until(pilot, lambda: "fixture F2: safe" in shown(report), what="the start-up report")
        text = shown(report)
        assert f"INTERRUPTED run {run_id} of pack SN3K1" in text and "Retest the pack" in text
        assert "fixture F1: safe (IR relays open, HVIL break off)" in text

        # an IR relay left closed (as after a crash mid insulation test): the pack is refused
        bench = app.backend.session.bench
        app.backend.loop.call_soon_threadsafe(setattr, bench.fixtures["F1"].wiring, "ir_pole", "HV+")
        await scan(pilot, app, "F1", "PRM001")
        await pilot.press("enter")
        f1 = panel(app, "F1")
        await until(pilot, lambda: "cannot start" in shown(f1.query_one(".info")), what="the refusal")
        assert "NOT SAFE fixture F1: IR/hipot relay to HV+ closed" in shown(f1.query_one(".info"))
        assert not f1.running
    assert [r["id"] for r in store_runs(station_config)] == [run_id]  # nothing new was recorded
