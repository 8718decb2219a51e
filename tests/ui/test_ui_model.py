"""The UI's pure parts: release check, serial lookup, run state from events, shift statistics."""

from __future__ import annotations

import datetime as dt

import pytest

from station import events as ev
from station.config import OperatorConfig
from station.plan.loader import load_plan
from station.security.audit import AuditLog
from station.ui.panels import shift_stats
from station.ui.policy import Overrides, Refusal, release_problem, resolve
from station.ui.run_state import RunState, format_live, typical_duration

OP = OperatorConfig(id="op1", role="operator")
ENG = OperatorConfig(id="eng1", role="engineer")


def test_release_hash_matches_the_loader_and_edits_unrelease(station_config, tmp_path):
    plan = tmp_path / "plans" / "smoke.yaml"
    assert release_problem(station_config, plan) is None
    assert station_config.config.released[str(plan)] == load_plan(plan).sha256
    plan.write_text(plan.read_text() + "\n# edited on the line\n")
    assert "differs from its released version" in release_problem(station_config, plan)


def test_resolve_catalogue_roles_and_faults(station_config):
    got = resolve(station_config, serial="CAR9", fixture="F1", operator=OP, sim=True)
    assert (got.prep.bound.plan.id, got.prep.bound.variant, got.req.operator) == ("smoke", "car-400", "op1")
    with pytest.raises(Refusal, match="belongs to no product"):
        resolve(station_config, serial="XYZ1", fixture="F1", operator=OP, sim=True)
    # an operator's overrides are ignored: catalogue plan, no faults
    got = resolve(station_config, serial="CAR9", fixture="F1", operator=OP, sim=True,
                  overrides=Overrides(faults=("isolation_low",)))
    assert got.req.faults == []
    got = resolve(station_config, serial="UNR1", fixture="F1", operator=ENG, sim=True,
                  overrides=Overrides(faults=("bond_high",)))
    assert got.req.faults == ["bond_high"] and got.prep.bound.plan.version == "1.1.0-draft"
    with pytest.raises(Refusal, match=r"unknown fault|no fault|fault"):
        resolve(station_config, serial="CAR9", fixture="F1", operator=ENG, sim=True,
                overrides=Overrides(faults=("no_such_fault",)))
    with pytest.raises(Refusal, match="training mode"):
        resolve(station_config, serial="CAR9", fixture="F1", operator=ENG, sim=False,
                overrides=Overrides(faults=("bond_high",)))


def test_resolve_audits_what_it_refuses(station_config, tmp_path):
    """A refused scan and an operator's unreleased plan leave a refusal on the audit trail, as
    ``station run`` does; an accepted scan leaves nothing."""
    log = AuditLog(tmp_path / "audit.jsonl")
    resolve(station_config, serial="CAR9", fixture="F1", operator=OP, sim=True, audit=log)
    assert log.entries() == []
    with pytest.raises(Refusal):
        resolve(station_config, serial="XYZ1\x1b[2J", fixture="F1", operator=OP, sim=True, audit=log)
    plan = station_config.resolve_path(station_config.config.products[0].plan)
    plan.write_text(plan.read_text() + "\n# edited on the line\n")
    with pytest.raises(Refusal, match="differs from its released version"):
        resolve(station_config, serial="CAR9", fixture="F1", operator=OP, sim=True, audit=log)
    got = [(e["fields"]["what"], e["fields"]["operator"], e["fields"]["where"]) for e in log.entries()]
    assert got == [("serial refused", "op1", "ui"), ("plan not released", "op1", "ui")]
    assert "\x1b" not in log.entries()[0]["fields"]["serial"] and log.verify() == []


def _e(cls, t, **kw):
    return cls(run_id="r1", utc="2026-01-01T00:00:00+00:00", t=t, **kw)


def test_run_state_folds_events():
    s = RunState()
    s.apply(_e(ev.StepStarted, 1.0, path="main/bond", step_id="bond", name="Bond", action="safety.ground_bond", phase="main"))
    assert s.current == "main/bond"
    s.apply(_e(ev.MeasurementTaken, 3.0, path="main/bond", name="resistance", value=0.2, unit="ohm",
               limits={"max": 0.1}, verdict="fail", text="200 mOhm [-inf, 100 mOhm] FAIL"))
    s.apply(_e(ev.StepFinished, 3.0, path="main/bond", step_id="bond", outcome="failed", duration_s=2.0))
    s.apply(_e(ev.SafeStateAction, 3.5, instrument="cycler", action="output off", ok=True))
    s.apply(_e(ev.RunFinished, 4.0, verdict="FAIL", reason="failed at main/bond", duration_s=4.0))
    assert (s.done, s.current, s.verdict) == (1, None, "FAIL")
    assert [m.name for m in s.failed_measurements()] == ["resistance"]
    text = str(s.render_steps())
    assert "✘ bond" in text and "200 mOhm" in text and "cycler: output off" in text
    assert s.time_left(10.0) == 6.0


def test_typical_duration_and_live_line():
    runs = [{"plan_id": "smoke", "variant": "car-400", "verdict": "PASS", "duration_s": d} for d in (10, 20)]
    runs.append({"plan_id": "smoke", "variant": "car-400", "verdict": "FAIL", "duration_s": 99})
    assert typical_duration(runs, "smoke", "car-400") == 15
    assert typical_duration(runs, "smoke", "bus-700") is None
    line = format_live({"pack_voltage": 357.1, "pack_current": -1.0, "soc": 50.01, "cell_voltage_min": 3.71,
                        "cell_voltage_max": 3.72, "cell_temperature_min": 24.0, "cell_temperature_max": 26.0})
    assert line == "357.1 V -1.0 A SOC 50 % · cell 3.710–3.720 V 24–26 °C"
    # the BMS gives SOC in %: a pack nearly empty reads 0.8 %, not 80 % (nor 100 % at 1.0)
    assert "SOC 0.8 %" in format_live({"soc": 0.8}) and "SOC 1.0 %" in format_live({"soc": 1.0})
    assert "SOC – %" in format_live({})


def test_shift_stats_first_pass_yield_and_cycle_time():
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)

    def run(serial, verdict, hours_ago, duration):
        return {"serial": serial, "verdict": verdict, "duration_s": duration,
                "started_utc": (now - dt.timedelta(hours=hours_ago)).isoformat()}

    runs = [run("A", "PASS", 0.1, 300), run("A", "FAIL", 0.5, 200), run("B", "PASS", 1, 400),
            run("C", "ABORTED", 2, 50), run("D", "PASS", 20, 100)]  # newest first; D is last shift
    shift, fpy, cycle = shift_stats(runs, now)
    assert [r["serial"] for r in shift] == ["A", "A", "B", "C"]
    assert fpy == pytest.approx(1 / 3)  # A failed first, B passed, C aborted
    assert cycle == pytest.approx(300)  # PASS/FAIL runs only


def test_training_and_fault_runs_leave_first_pass_yield_alone():
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    t = (now - dt.timedelta(hours=1)).isoformat()
    runs = [{"serial": "A", "verdict": "FAIL", "duration_s": 9, "started_utc": t, "faults": ["isolation_low"]},
            {"serial": "B", "verdict": "FAIL", "duration_s": 9, "started_utc": t, "simulated": True, "operator": "eng1"},
            {"serial": "C", "verdict": "PASS", "duration_s": 100, "started_utc": t, "simulated": True, "operator": "op1"},
            {"serial": "D", "verdict": "PASS", "duration_s": 100, "started_utc": "not a time"}]
    shift, fpy, cycle = shift_stats(runs, now, roles={"eng1": "engineer", "op1": "operator"})
    assert [r["serial"] for r in shift] == ["A", "B", "C"]  # D's time cannot be read: not in the shift
    assert fpy == 1.0 and cycle == 100  # A (fault) and B (engineer on the simulator) are not counted


def test_verdict_words_glyphs_and_dispositions():
    from station.ui.verdict import disposition, glyph_width, glyphs, plain_words

    for word in ("PASS", "FAIL", "ERROR", "ABORTED"):
        art = glyphs(word)
        assert len(art) == 5 and max(map(len, art)) == glyph_width(word) <= 35
    assert glyphs("pass?") is None
    assert plain_words("bond", "resistance", 0.2, "ohm", {"min": float("-inf"), "max": 0.1}) == \
        "bond resistance was 200 mΩ; it must be at most 100 mΩ"
    assert "between 250 V and 900 V" in plain_words("pack_v", "voltage", 100.0, "V", {"min": 250, "max": 900})
    table = {"isolation": "red bin HV", "main/isolation/iso_minus": "blue bin", "bond": "rework", "default": "red bin"}
    assert disposition(table, ["main/isolation/iso_plus"]) == "red bin HV"  # group prefix
    assert disposition(table, ["main/isolation/iso_minus"]) == "blue bin"  # the longest prefix wins
    assert disposition(table, ["main/safety/bond"]) == "rework"  # step id
    assert disposition(table, ["main/leak/decay"]) == "red bin"
    assert disposition({}, ["x"]).startswith("put the pack in the reject area")


@pytest.fixture
def berlin(monkeypatch):
    """The station's local time zone set to Europe/Berlin for the test (restored after)."""
    import time

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_history_shows_local_time_and_names_the_zone(berlin):
    """Records keep UTC; the operator reads the station's own clock, with the zone named (and
    the summer-time change followed)."""
    from station.ui.panels import HistoryPanel, local_zone

    assert local_zone(dt.datetime(2026, 1, 15, 12, 0, tzinfo=dt.UTC)) == "CET, UTC+01:00"
    assert local_zone(dt.datetime(2026, 7, 15, 12, 0, tzinfo=dt.UTC)) == "CEST, UTC+02:00"
    panel = HistoryPanel()
    winter = panel._row({"started_utc": "2026-01-15T06:30:05.000+00:00", "serial": "CAR1", "verdict": "PASS"})
    summer = panel._row({"started_utc": "2026-07-15T06:30:05.000+00:00", "serial": "CAR2", "verdict": "PASS"})
    assert (winter[0].plain, summer[0].plain) == ("07:30:05", "08:30:05")
