"""What the operator sees is in the units the record claims (charge in Ah, SOC in %): the record
screen reads a run back from a real result store, the verdict words and the live line use the
values as the sequencer and the BMS give them; and the line badges' texts."""

from __future__ import annotations

from station import events as ev
from station.results import ResultStore
from station.ui.line_badges import delivery_badge, delivery_lines, drift_badge
from station.ui.record_screen import render_record
from station.ui.run_state import format_live
from station.ui.verdict import plain_words

UTC = "2026-12-01T08:00:00.000+00:00"


def _soc_run(store: ResultStore, run_id: str) -> None:
    """A charge_to_soc step as the sequencer records it (schema 2: Ah and %, limits alike)."""
    emit = store.handle
    emit(ev.RunStarted(run_id, UTC, 0.0, "CAR7", "pack-eol", "1.0.0", "t", "p.yaml", "ab" * 32,
                       "car-400", {}, "EOL-U", "F1", "op1", "0.1", True, []))
    emit(ev.StepStarted(run_id, UTC, 0.1, "main/soc/soc_adjust", "soc_adjust", "soc_adjust",
                        "cycler.charge_to_soc", "main"))
    emit(ev.MeasurementTaken(run_id, UTC, 9.0, "main/soc/soc_adjust", "soc", 31.5, "%",
                             {"unit": "%", "min": 25.0, "max": 30.0}, "fail"))
    emit(ev.MeasurementTaken(run_id, UTC, 9.0, "main/soc/soc_adjust", "charge", -41.94585, "Ah",
                             {}, "pass"))
    emit(ev.StepFinished(run_id, UTC, 9.1, "main/soc/soc_adjust", "soc_adjust", "failed", 9.0))
    emit(ev.RunFinished(run_id, UTC, 9.2, "FAIL", "failed at main/soc/soc_adjust", 9.2))


def test_record_screen_shows_charge_in_ah_and_soc_in_percent(tmp_path):
    db = tmp_path / "results.db"
    with ResultStore(db) as store:
        _soc_run(store, "run-units-1")
    with ResultStore(db, readonly=True) as store:
        text = render_record(store.record("run-units-1")).plain
    assert "charge: -41.9459 Ah" in text  # not coulombs (-151006), not scaled again
    assert "soc: 31.5 % (must be between 25 % and 30 %) fail" in text  # not 0.315 %, not 3150 %


def test_verdict_words_and_live_line_keep_the_units():
    assert plain_words("soc_adjust", "soc", 31.5, "%", {"min": 25.0, "max": 30.0}) == \
        "soc_adjust soc was 31.5 %; it must be between 25 % and 30 %"
    assert plain_words("soc_adjust", "charge", -0.5, "Ah", {"min": 0.0}) == \
        "soc_adjust charge was -500 mAh; it must be at least 0 Ah"
    assert "SOC 31 %" in format_live({"soc": 31.4})  # the BMS signal is in % already


def test_badge_texts():
    assert delivery_badge({}) is None and drift_badge([]) is None
    delivered = {"pg:abc": {"kind": "DB", "name": "postgresql://eol@db:5432/eol", "backlog": 0,
                            "error": None},
                 "mqtt:x": {"kind": "MQTT", "name": "mqtt://b:1883", "backlog": 0, "error": None}}
    assert delivery_badge(delivered) is None
    waiting = {**delivered,
               "mes:HTTP MES http://m/eol": {"kind": "MES", "name": "HTTP MES http://m/eol",
                                             "backlog": 3, "since_utc": "2026-12-01T13:02:00+00:00",
                                             "error": "HTTP MES http://m/eol: upload: HTTP 503 "
                                                      "Service Unavailable while the line is down"},
               "pg:abc": {**delivered["pg:abc"], "backlog": 12}}
    lines = delivery_lines(waiting)
    assert [part.split(" ")[0].rstrip(":") for part, _ in lines] == ["DB", "MES"]  # DB first
    assert lines[0][0] == "DB backlog 12"
    part, full = lines[1]
    assert part.startswith("MES: upload: HTTP 503 Service Unavai… since ")  # 80 columns
    assert part.endswith("· 3 waiting") and "while the line is down" in full
    badge, tip = delivery_badge(waiting)
    assert badge.plain.startswith(" DB backlog 12 · MES: upload") and "station line status" in tip.plain
    assert drift_badge(["cells r_bond", "[b]x\x1b"]).plain == " REFERENCE DRIFT: cells r_bond, [b]x␛ "
