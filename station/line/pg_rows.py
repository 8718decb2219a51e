"""Journalled events of one run → the typed rows of the PostgreSQL record tables.

The local journal keeps every event as its raw JSON (``events.data``); the typed rows are
derived from it here the same way station/results/journal.py derives the SQLite ones, so both
stores hold the same record. Every statement is an idempotent upsert keyed by run id + event
sequence (steps by run id + path + attempt), so replaying a run — after a crash between the
PostgreSQL commit and the local "uploaded" mark, or from two forwarders — changes nothing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

MES_PREFIX = "MES transaction "  # LogMessage carrying the MES transaction id (see mes.py)


@dataclass(frozen=True)
class JournalEvent:
    """One row of the local ``events`` table (``data`` is the raw JSON text)."""

    seq: int
    kind: str
    utc: str | None
    t: float | None
    data: str


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


SQL = {
    "events": "INSERT INTO events (run_id, seq, kind, utc, t, data) VALUES (%s,%s,%s,%s,%s,%s) "
              "ON CONFLICT DO NOTHING",
    "instruments": "INSERT INTO instruments VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                   "ON CONFLICT DO NOTHING",
    "step_started": "INSERT INTO steps (run_id, path, attempt, seq, step_id, name, action, phase, "
                    "started_utc, t_start) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT (run_id, path, attempt) DO UPDATE SET seq=excluded.seq, "
                    "step_id=excluded.step_id, name=excluded.name, action=excluded.action, "
                    "phase=excluded.phase, started_utc=excluded.started_utc, "
                    "t_start=excluded.t_start",
    # A skipped step may finish without having started: the upsert creates its row.
    "step_finished": "INSERT INTO steps (run_id, path, attempt, seq, step_id, name, action, "
                     "phase, outcome, finished_utc, duration_s, error) "
                     "VALUES (%s,%s,%s,%s,%s,%s,'',%s,%s,%s,%s,%s) "
                     "ON CONFLICT (run_id, path, attempt) DO UPDATE SET "
                     "outcome=excluded.outcome, finished_utc=excluded.finished_utc, "
                     "duration_s=excluded.duration_s, error=excluded.error",
    "measurements": "INSERT INTO measurements VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT DO NOTHING",
    "series": "INSERT INTO series VALUES (%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
    "safe_actions": "INSERT INTO safe_actions (run_id, seq, instrument, action, ok, error, utc, confirmed) "
                    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
}

RUN_COLUMNS = ("serial", "plan_id", "plan_version", "plan_sha256", "plan_path", "plan_title",
               "variant", "parameters", "station_id", "fixture_id", "operator",
               "software_version", "simulated", "faults", "planned_steps", "started_utc",
               "finished_utc", "duration_s", "verdict", "reason", "status", "source",
               "mes_transaction_id", "station_mode", "config_sha256", "release_key", "release_signature")
_PROVENANCE = ("station_mode", "config_sha256", "release_key", "release_signature")
RUN_UPSERT = (f"INSERT INTO runs (id, {', '.join(RUN_COLUMNS)}) "
              f"VALUES ({', '.join(['%s'] * (len(RUN_COLUMNS) + 1))}) "
              f"ON CONFLICT (id) DO UPDATE SET "
              + ", ".join(f"{c}=excluded.{c}" for c in RUN_COLUMNS))


@dataclass
class RunRows:
    """Everything to write for one run: the ``runs`` row and per-statement parameter lists."""

    run: dict[str, Any]
    rows: dict[str, list[tuple]] = field(default_factory=lambda: {k: [] for k in SQL})

    def run_params(self, run_id: str) -> tuple:
        return (run_id, *(self.run.get(c) for c in RUN_COLUMNS))


def build(run_id: str, events: list[JournalEvent], *, status: str, source: str) -> RunRows:
    """Rows for a run's events (in ``seq`` order). ``status``: finished | interrupted."""
    out = RunRows({"status": status, "source": source})
    attempts: dict[str, int] = {}
    for ev in events:
        d = json.loads(ev.data)
        out.rows["events"].append((run_id, ev.seq, ev.kind, ev.utc, ev.t, ev.data))
        k, seq, utc = ev.kind, ev.seq, ev.utc
        if k == "RunStarted":
            out.run.update({c: d.get(c) for c in RUN_COLUMNS[:15] if c in d})
            out.run.update(parameters=_dumps(d.get("parameters")), faults=_dumps(d.get("faults")),
                           simulated=bool(d.get("simulated")), started_utc=utc)
            if d.get("mes_transaction_id"):
                out.run["mes_transaction_id"] = d["mes_transaction_id"]
            out.run.update({c: d[c] for c in _PROVENANCE if d.get(c)})
        elif k == "InstrumentIdentified":
            i = d["info"]
            out.rows["instruments"].append(
                (run_id, seq, i.get("role"), i.get("driver"), i.get("resource"), i.get("maker"),
                 i.get("model"), i.get("serial"), i.get("firmware"), i.get("calibration_due"),
                 bool(i.get("shared")), utc))
        elif k == "StepStarted":
            attempts[d["path"]] = d.get("attempt", 1)
            out.rows["step_started"].append(
                (run_id, d["path"], d.get("attempt", 1), seq, d["step_id"], d["name"],
                 d["action"], d["phase"], utc, ev.t))
        elif k == "StepFinished":
            out.rows["step_finished"].append(
                (run_id, d["path"], d.get("attempt", 1), seq, d["step_id"], d["step_id"],
                 d["path"].split("/")[0], d["outcome"], utc, d["duration_s"], d.get("error")))
        elif k == "MeasurementTaken":
            out.rows["measurements"].append(
                (run_id, seq, d["path"], attempts.get(d["path"], 1), d["name"],
                 _number(d["value"]), _dumps(d["value"]), d["unit"], _dumps(d["limits"]),
                 d["verdict"], d.get("text", ""), utc, ev.t))
        elif k == "SeriesRecorded":
            out.rows["series"].append(
                (run_id, seq, d["path"], attempts.get(d["path"], 1), d["name"],
                 _dumps(list(d["columns"])), _dumps(d["rows"]), utc))
        elif k == "SafeStateAction":
            out.rows["safe_actions"].append((run_id, seq, d["instrument"], d["action"],
                                             bool(d["ok"]), d.get("error"), utc, d.get("confirmed")))
        elif k == "LogMessage" and str(d.get("message", "")).startswith(MES_PREFIX):
            out.run.setdefault("mes_transaction_id", d["message"][len(MES_PREFIX):].strip())
        elif k == "RunFinished":
            out.run.update(finished_utc=utc, duration_s=d["duration_s"], verdict=d["verdict"],
                           reason=d.get("reason"), status="finished")
    return out
