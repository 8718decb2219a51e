"""ResultStore: journal round trip, interrupted runs, errors, concurrency, throughput."""

from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from result_events import (
    CELLS,
    PULSE,
    SERIAL,
    SETTLE,
    SHA,
    Clock,
    full_run,
    run_started,
    step,
)

from station import clock
from station.events import LogMessage, MeasurementTaken, RunFinished
from station.results import RECORD_SCHEMA_VERSION, ResultStore, StoreError, UnknownRunError

RECORD_KEYS = {
    "record_schema_version", "run_id", "status", "verdict", "reason", "serial", "plan",
    "variant", "parameters", "station_id", "fixture_id", "operator", "software_version",
    "simulated", "sim_pack", "faults", "planned_steps", "mes_transaction_id", "started_utc", "finished_utc", "last_event_utc",
    "duration_s", "instruments", "steps", "unassigned_measurements", "series", "safe_state",
    "monitor_trips", "prompts", "log", "startup", "errors", "summary",
    "mode", "config_sha256", "release", "audit_head",  # provenance (schema v3)
}


def journal(path, events, **kw) -> ResultStore:
    store = ResultStore(path, **kw).open()
    for e in events:
        store.handle(e)
    return store


def test_full_record_round_trip(db_path):
    events = full_run()
    with journal(db_path, events) as store:
        rec = store.record("run-full-0001")
    assert set(rec) == RECORD_KEYS
    assert rec["record_schema_version"] == RECORD_SCHEMA_VERSION
    assert (rec["status"], rec["verdict"], rec["reason"]) == (
        "finished", "FAIL", "2 measurements out of limits")
    assert rec["serial"] == SERIAL
    assert rec["plan"] == {"id": "pack-eol", "version": "3.2.0", "title": "Traction pack EOL",
                           "path": "test_plans/pack_eol.yaml", "sha256": SHA,
                           "libraries": {}, "release_sha256": SHA}  # a journal without them: the plan alone
    assert rec["variant"] == "bus-700"
    assert rec["parameters"] == {"v_max": "800 V", "bond_points": ["BP1", "BP2"]}
    assert (rec["station_id"], rec["fixture_id"], rec["operator"]) == ("EOL-1", "F1", "op7")
    assert (rec["software_version"], rec["simulated"], rec["faults"]) == (
        "0.1.0", True, ["iso_low:r=4e7"])
    assert rec["planned_steps"] == 7
    assert rec["started_utc"] == events[0].utc and rec["finished_utc"] == events[-1].utc
    assert rec["duration_s"] == events[-1].duration_s
    assert [i["role"] for i in rec["instruments"]] == ["cycler", "safety_tester", "dmm"]
    tester = rec["instruments"][1]
    assert tester["calibration_due"] == "2026-01-01" and tester["shared"] is True
    assert tester["model"] == "19032" and tester["serial"] == "SN-safety_tester"
    assert tester["firmware"] == "1.2.3" and tester["maker"] == "ACME"
    assert tester["driver"] == "chroma_19032" and "SOCKET" in tester["resource"]

    paths = [(s["path"], s["attempt"], s["outcome"]) for s in rec["steps"]]
    assert paths == [
        ("setup/require", 1, "passed"), ("main/bond[BP1]/bond_res", 1, "passed"),
        ("main/bond[BP2]/bond_res", 1, "failed"), ("main/isolation/iso_plus", 1, "passed"),
        ("main/dcir", 1, "error"), ("main/dcir", 2, "passed"), ("main/cells", 1, "failed"),
        ("main/optional_leak", 1, "skipped"), ("teardown/cycler_off", 1, "passed")]
    dcir1, dcir2 = rec["steps"][4], rec["steps"][5]
    assert dcir1["error"] == "InstrumentTimeout: cycler: no reply" and dcir1["measurements"] == []
    assert dcir2["measurements"][0]["value"] == 0.035
    assert dcir2["series"] == ["dcir_pulse"]
    first = rec["steps"][0]
    assert first["phase"] == "setup" and first["action"] == "do.it" and first["name"] == "require"
    assert first["duration_s"] == 1.0 and first["started_utc"] < first["finished_utc"]
    m = rec["steps"][0]["measurements"][0]
    assert m["value"] is True and m["limits"] == {"equals": True}  # bools stay bools
    cells = rec["steps"][6]["measurements"]
    assert [x["name"] for x in cells] == ["cell_voltage_max", "cell_voltage_min", "bms_sw"]
    assert cells[2]["value"] == "1.2.3" and cells[0]["verdict"] == "fail"
    assert cells[0]["unit"] == "V" and cells[0]["utc"].startswith("2026-11-25T08:00")
    iso = rec["steps"][3]["measurements"][0]
    assert iso["limits"] == {"min": 8e4, "production_min": 5e8} and iso["value"] == 5.23e8

    series = {s["name"]: s for s in rec["series"]}
    assert series["cell_voltages"]["rows"] == CELLS
    assert series["dcir_pulse"]["columns"] == ["t_s", "voltage_V", "current_A"]
    assert series["dcir_pulse"]["rows"] == PULSE and series["ir_settling"]["rows"] == SETTLE
    assert [(a["instrument"], a["ok"]) for a in rec["safe_state"]] == [("cycler", True),
                                                                     ("bms", False)]
    assert [p["kind"] for p in rec["prompts"]] == ["PromptRequested", "PromptAnswered"]
    assert rec["prompts"][1]["answer"] == "yes"
    assert rec["log"][0]["level"] == "warning"
    sources = [(e["source"], e["where"]) for e in rec["errors"]]
    assert sources == [("step", "main/dcir"), ("safe_state", "bms")]
    assert "StaleSignalError" in rec["errors"][1]["message"]
    assert rec["summary"]["steps"] == {"passed": 5, "failed": 2, "error": 1, "skipped": 1}
    assert rec["summary"]["measurements"] == {"pass": 6, "fail": 2}
    assert rec["last_event_utc"] == events[-1].utc


def test_store_creates_schema_wal_and_raw_journal(db_path):
    events = full_run()
    journal(db_path, events).close()
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,), (2,), (3,), (4,)]
    rows = conn.execute("SELECT seq, kind FROM events WHERE run_id = ? ORDER BY seq",
                        ("run-full-0001",)).fetchall()
    assert rows == [(i + 1, type(e).__name__) for i, e in enumerate(events)]
    conn.close()


def test_runs_list_newest_first_and_by_serial(db_path):
    c2 = Clock("run-b")
    other = [run_started(c2, serial="PK-9"), RunFinished(*c2(), verdict="PASS", reason=None,
                                                         duration_s=1.0)]
    with journal(db_path, full_run() + other) as store:
        assert [r["id"] for r in store.runs()] == ["run-b", "run-full-0001"]
        only = store.runs(serial="PK-9")
        assert len(only) == 1 and only[0]["verdict"] == "PASS" and only[0]["status"] == "finished"
        assert store.runs(limit=1)[0]["id"] == "run-b"
        assert store.find_run("run-f") == "run-full-0001"
        with pytest.raises(UnknownRunError, match="more than one"):
            store.find_run("run-")
        with pytest.raises(UnknownRunError, match="no run"):
            store.record("nope")


_CRASHER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {tests!r})
    from result_events import full_run
    from station.results import ResultStore
    store = ResultStore({db!r}).open()
    events = full_run()
    for e in events[:{n}]:
        store.handle(e)
    os._exit(1)  # a crash: no close, no RunFinished
""")


def _events_until_dcir_attempt2_started() -> int:
    events = full_run()
    return next(i for i, e in enumerate(events)
                if getattr(e, "path", "") == "main/dcir" and getattr(e, "attempt", 1) == 2) + 1


def test_crashed_writer_leaves_an_interrupted_run(db_path):
    n = _events_until_dcir_attempt2_started()
    code = _CRASHER.format(tests=str(Path(__file__).parent), db=str(db_path), n=n)
    proc = subprocess.run([sys.executable, "-c", code], env=os.environ.copy(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    with ResultStore(db_path, readonly=True).open() as reader:  # status is derived, not written
        assert reader.runs()[0]["status"] == "interrupted"
    store = ResultStore(db_path).open()
    try:
        assert store.recovered == ["run-full-0001"]
        rec = store.record("run-full-0001")
        assert rec["status"] == "interrupted" and rec["verdict"] is None
        # the step in flight at the crash (attempt 2 of dcir) is lost, the completed ones are not
        assert [s["outcome"] for s in rec["steps"]] == [
            "passed", "passed", "failed", "passed", "error"]
        assert rec["steps"][2]["measurements"][0]["value"] == 0.142  # completed work survives
        assert rec["series"][0]["name"] == "ir_settling"
        assert rec["errors"][-1]["source"] == "run"
        assert ("step", "main/dcir") in [(e["source"], e["where"]) for e in rec["errors"]]
        assert store.mark_interrupted() == []  # already marked
    finally:
        store.close()


def test_live_writer_is_running_not_interrupted(db_path):
    c = Clock("live")
    writer = journal(db_path, [run_started(c)] + step(c, "main/a", "passed"))
    try:
        other = ResultStore(db_path).open()
        assert other.recovered == []
        assert other.record("live")["status"] == "running"
        other.close()
    finally:
        writer.close()  # closed without RunFinished: the station stopped mid-run
    with ResultStore(db_path).open() as again:
        assert again.recovered == ["live"]
        assert again.runs()[0]["status"] == "interrupted"


def test_typed_errors_name_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=str(blocker)):
        ResultStore(blocker / "results.db").open()
    with pytest.raises(StoreError, match="cannot open"):
        ResultStore(tmp_path / "missing.db", readonly=True).open()
    with pytest.raises(StoreError, match="synchronous"):
        ResultStore(tmp_path / "x.db", synchronous="OFF")
    store = ResultStore(tmp_path / "x.db")
    with pytest.raises(StoreError, match="not open"):
        store.handle(run_started(Clock("r")))
    store.open().close()
    conn = sqlite3.connect(tmp_path / "x.db")
    conn.execute("INSERT INTO schema_version VALUES (99)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        ResultStore(tmp_path / "x.db").open()


def test_readonly_store_refuses_writes(db_path):
    journal(db_path, full_run()).close()
    with ResultStore(db_path, readonly=True).open() as ro:
        with pytest.raises(StoreError, match="read-only"):
            ro.handle(run_started(Clock("x")))
        assert ro.record("run-full-0001")["verdict"] == "FAIL"


def test_odd_values_round_trip(db_path):
    c = Clock("odd")
    events = [run_started(c)] + step(
        c, "main/x", "error", ("nan", math.nan, "V", {"max": 1.0}, "fail"),
        ("count", 3, "", {"equals": 3}, "pass"), ("list", [1, 2], "", {}, "pass"))
    events.append(MeasurementTaken(*c(), path="main/ghost", name="late", value=1.0, unit="V",
                                   limits={}, verdict="pass"))
    events.append(LogMessage(*c(), level="error", message="boom"))
    with journal(db_path, events, synchronous="NORMAL") as store:
        rec = store.record("odd")
    values = [m["value"] for m in rec["steps"][0]["measurements"]]
    assert math.isnan(values[0]) and values[1:] == [3, [1, 2]]
    assert rec["unassigned_measurements"][0]["path"] == "main/ghost"
    assert rec["status"] == "running"  # this process's writer was live when it was read
    assert ("log", "boom") in [(e["source"], e["message"]) for e in rec["errors"]]


def test_memory_store_and_virtual_time():
    async def main():
        import asyncio
        store = ResultStore(":memory:").open()
        c = Clock("mem")
        store.handle(run_started(c))
        assert store.record("mem")["status"] == "running"
        await asyncio.sleep(600)  # a ten-minute charge in virtual time
        store.handle(RunFinished(*c(600), verdict="PASS", reason=None, duration_s=600.0))
        rec = store.record("mem")
        store.close()
        return rec

    rec = clock.run(main(), virtual=True)
    assert rec["status"] == "finished" and rec["duration_s"] == 600.0


def _write_runs(path, prefix: str, runs: int, steps: int, errors: list) -> None:
    try:
        store = ResultStore(path).open()
        for r in range(runs):
            c = Clock(f"{prefix}-{r}")
            store.handle(run_started(c))
            for i in range(steps):
                for e in step(c, f"main/s{i}", "passed", ("v", float(i), "V", {"max": 1e3},
                                                          "pass")):
                    store.handle(e)
            store.handle(RunFinished(*c(), verdict="PASS", reason=None, duration_s=c.t))
        store.close()
    except Exception as exc:  # pragma: no cover - reported by the assertion below
        errors.append(exc)


def test_two_stores_two_threads_lose_nothing(db_path):
    errors: list = []
    threads = [threading.Thread(target=_write_runs, args=(db_path, p, 3, 20, errors))
               for p in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with ResultStore(db_path, readonly=True).open() as store:
        runs = store.runs(limit=100)
        assert len(runs) == 6 and {r["status"] for r in runs} == {"finished"}
        for r in runs:
            rec = store.record(r["id"])
            assert len(rec["steps"]) == 20
            assert [s["measurements"][0]["value"] for s in rec["steps"]] == [
                float(i) for i in range(20)]
    conn = sqlite3.connect(db_path)
    counts = conn.execute(
        "SELECT run_id, COUNT(*), MAX(seq) FROM events GROUP BY run_id").fetchall()
    conn.close()
    assert all(n == 62 and top == 62 for _, n, top in counts) and len(counts) == 6


@pytest.mark.parametrize("sync", ["FULL", "NORMAL"])
def test_throughput_is_reported(tmp_path, sync, capsys):
    c = Clock("speed")
    events = [run_started(c)]
    for i in range(100):
        events += step(c, f"main/s{i}", "passed", ("v", 1.0, "V", {"max": 2.0}, "pass"))
    with ResultStore(tmp_path / "speed.db", synchronous=sync).open() as store:
        start = time.perf_counter()
        for e in events:
            store.handle(e)
        elapsed = time.perf_counter() - start
        assert len(store.record("speed")["steps"]) == 100
        t0 = time.perf_counter()
        store.record("speed")
        read = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\n[result store] synchronous={sync}: {len(events) / elapsed:,.0f} events/s "
              f"({elapsed / len(events) * 1e6:.0f} µs/event); record() of 100 steps "
              f"{read * 1e3:.1f} ms")


def test_a_v1_store_migrates_and_old_safe_actions_read_confirmed_unknown(db_path):
    from station.results.schema import _DDL_V1, SCHEMA_VERSION

    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    conn.executescript(_DDL_V1 + "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                       "INSERT INTO schema_version VALUES (1);"
                       "INSERT INTO runs (id, serial, status) VALUES ('old', 'SN1', 'finished');"
                       "INSERT INTO safe_actions VALUES ('old', 1, 'cycler', 'output off', 1, NULL, 'x');")
    conn.close()
    store = ResultStore(db_path).open()
    try:
        rec = store.record("old")
    finally:
        store.close()
    assert rec["safe_state"][0]["confirmed"] is None
    assert (rec["mode"], rec["config_sha256"], rec["release"]) == (None, None, None)  # v3: not known
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()


def _open_close(path: str) -> str:
    try:
        ResultStore(path).open().close()
    except StoreError as exc:
        return str(exc)
    return "ok"


def test_writers_creating_one_new_store_together_all_open(tmp_path):
    """Found by the parallel plan proof: SQLite answers "database is locked" at once, without
    its busy timeout, when processes switch one new file to WAL together. 20 fresh stores, four
    processes each, every open succeeds (before the set-up lock ~1 in 40 failed)."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    with context.Pool(4) as pool:
        for i in range(20):
            path = str(tmp_path / f"s{i}.db")
            assert pool.map(_open_close, [path] * 4) == ["ok"] * 4
