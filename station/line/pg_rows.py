"""Journalled events of one run → the typed rows of the PostgreSQL record tables.

The local journal keeps every event as its raw JSON (``events.data``); the typed rows are
derived from it here the same way station/results/journal.py derives the SQLite ones, so both
stores hold the same record. Every statement is an idempotent upsert keyed by run id + event
sequence (steps by run id + path + attempt), so replaying a run — after a crash between the
PostgreSQL commit and the local "uploaded" mark, or from two forwarders — changes nothing.

Every per-run row carries ``run_started`` (the run's start, the monthly partition key). Every
INSERT names its columns, so a newer, additive schema (extra nullable columns) takes them as
they are. Raw events are kept only for kinds no typed table holds (``TYPED_KINDS`` are not).

Genealogy (``pack_components``): ``bms.identity``'s ``ecu_serial`` is the pack's BMS; a step
whose id is ``bms_serial``, ``module_<position>_serial`` or ``cell_<position>_serial``
(``bms.read_did`` of a component DID, or ``operator.input`` of a scan) names a component;
the MES route check's ``components`` are stored with source ``mes``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

MES_PREFIX = "MES transaction "  # LogMessage carrying the MES transaction id (see mes.py)

# Kinds whose every field is a column of a typed table: not stored twice.
TYPED_KINDS = frozenset({"InstrumentIdentified", "StepStarted", "StepFinished",
                         "MeasurementTaken", "SeriesRecorded", "SafeStateAction", "RunFinished"})
_COMPONENT_STEP = re.compile(r"^(bms|module|cell)(?:_(\w+?))?_serial$")


@dataclass(frozen=True)
class JournalEvent:
    """One row of the local ``events`` table (``data`` is the raw JSON text)."""

    seq: int
    kind: str
    utc: str | None
    t: float | None
    data: str


def _finite(value: Any) -> Any:
    # jsonb has no NaN/Infinity: such numbers are kept as their text.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    return json.dumps(_finite(value), default=str, separators=(",", ":"))


def _jsonb(text: str) -> str:
    try:
        return _dumps(json.loads(text))
    except ValueError:
        return _dumps(text)


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _cols(table: str, cols: str, conflict: str = "DO NOTHING") -> str:
    names = [c.strip() for c in cols.split(",")]
    return (f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})"
            f" ON CONFLICT {conflict}")


_STEP_COLS = "run_id, run_started, path, attempt, seq, step_id, name, action, phase"
SQL = {
    "events": _cols("events", "run_id, run_started, seq, kind, utc, t, data"),
    "instruments": _cols("instruments", "run_id, run_started, seq, role, driver, resource, maker, "
                         "model, serial, firmware, calibration_due, shared, utc"),
    "step_started": _cols("steps", f"{_STEP_COLS}, started_utc, t_start",
                          "(run_id, path, attempt, run_started) DO UPDATE SET seq=excluded.seq, "
                          "step_id=excluded.step_id, name=excluded.name, "
                          "action=excluded.action, phase=excluded.phase, "
                          "started_utc=excluded.started_utc, t_start=excluded.t_start"),
    # A skipped step may finish without having started: the upsert creates its row.
    "step_finished": _cols("steps", f"{_STEP_COLS}, outcome, finished_utc, duration_s, error",
                           "(run_id, path, attempt, run_started) DO UPDATE SET "
                           "outcome=excluded.outcome, finished_utc=excluded.finished_utc, "
                           "duration_s=excluded.duration_s, error=excluded.error"),
    "measurements": _cols("measurements", "run_id, run_started, seq, path, attempt, name, "
                          "value_num, value_json, unit, limits, lsl, usl, verdict, text, utc, t"),
    "series": _cols("series", "run_id, run_started, seq, path, attempt, name, columns, rows, utc"),
    "safe_actions": _cols("safe_actions", "run_id, run_started, seq, instrument, action, ok, "
                          "error, utc, confirmed"),
    "components": _cols("pack_components", "pack_serial, kind, position, component_serial, "
                        "source, run_id, recorded_utc",
                        "(pack_serial, kind, position, source) DO UPDATE SET "
                        "component_serial=excluded.component_serial, run_id=excluded.run_id, "
                        "recorded_utc=excluded.recorded_utc"),
}

RUN_COLUMNS = ("serial", "plan_id", "plan_version", "plan_sha256", "plan_path", "plan_title",
               "variant", "parameters", "station_id", "fixture_id", "operator",
               "software_version", "simulated", "faults", "planned_steps", "started_utc",
               "finished_utc", "last_event_utc", "duration_s", "verdict", "reason", "status",
               "source", "mes_transaction_id", "station_mode", "config_sha256", "release_key",
               "release_signature", "event_count")
_FROM_STARTED = ("serial", "plan_id", "plan_version", "plan_sha256", "plan_path", "plan_title",
                 "variant", "station_id", "fixture_id", "operator", "software_version",
                 "planned_steps")
# Provenance (RunStarted carries it from the station store's schema v3 on; "" = not known).
_PROVENANCE = ("mes_transaction_id", "station_mode", "config_sha256", "release_key",
               "release_signature")
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


def _limit(limits: Any, key: str) -> float | None:
    return _number(limits.get(key)) if isinstance(limits, dict) else None


def build(run_id: str, events: list[JournalEvent], *, status: str, source: str,
          components: Any = ()) -> RunRows:
    """Rows for a run's events (in ``seq`` order). ``status``: finished | interrupted.
    ``components``: (kind, position, serial) the MES named for the pack (source ``mes``)."""
    out = RunRows({"status": status, "source": source, "event_count": len(events)})
    parsed = [(ev, json.loads(ev.data)) for ev in events]
    stamps = [(ev.kind, ev.utc or d.get("utc")) for ev, d in parsed]  # data repeats the utc
    started = next((u for k, u in stamps if k == "RunStarted" and u), None)
    started = started or next((u for _, u in stamps if u), None)
    out.run["started_utc"] = started
    out.run["last_event_utc"] = next((u for _, u in reversed(stamps) if u), None)
    attempts: dict[str, int] = {}
    actions: dict[str, tuple[str, str]] = {}  # path -> (step id, action)
    serial = None
    for (ev, d), (_, utc) in zip(parsed, stamps):
        k, seq = ev.kind, ev.seq
        if k not in TYPED_KINDS:
            out.rows["events"].append((run_id, started, seq, k, utc, ev.t, _jsonb(ev.data)))
        if k == "RunStarted":
            out.run.update({c: d.get(c) for c in _FROM_STARTED if c in d})
            out.run.update({c: d[c] for c in _PROVENANCE if d.get(c)})
            out.run.update(parameters=_dumps(d.get("parameters")), faults=_dumps(d.get("faults")),
                           simulated=bool(d.get("simulated")))
            serial = d.get("serial")
        elif k == "InstrumentIdentified":
            i = d["info"]
            out.rows["instruments"].append(
                (run_id, started, seq, i.get("role"), i.get("driver"), i.get("resource"),
                 i.get("maker"), i.get("model"), i.get("serial"), i.get("firmware"),
                 i.get("calibration_due"), bool(i.get("shared")), utc))
        elif k == "StepStarted":
            attempts[d["path"]] = d.get("attempt", 1)
            actions[d["path"]] = (d["step_id"], d["action"])
            out.rows["step_started"].append(
                (run_id, started, d["path"], d.get("attempt", 1), seq, d["step_id"], d["name"],
                 d["action"], d["phase"], utc, ev.t))
        elif k == "StepFinished":
            out.rows["step_finished"].append(
                (run_id, started, d["path"], d.get("attempt", 1), seq, d["step_id"],
                 d["step_id"], "", d["path"].split("/")[0], d["outcome"], utc, d["duration_s"],
                 d.get("error")))
        elif k == "MeasurementTaken":
            limits = d["limits"]
            out.rows["measurements"].append(
                (run_id, started, seq, d["path"], attempts.get(d["path"], 1), d["name"],
                 _number(d["value"]), _dumps(d["value"]), d["unit"], _dumps(limits),
                 _limit(limits, "min"), _limit(limits, "max"), d["verdict"], d.get("text", ""),
                 utc, ev.t))
            component = _component(actions.get(d["path"]), d)
            if component is not None and serial:
                out.rows["components"].append((serial, *component, run_id, utc))
        elif k == "SeriesRecorded":
            out.rows["series"].append(
                (run_id, started, seq, d["path"], attempts.get(d["path"], 1), d["name"],
                 _dumps(list(d["columns"])), _dumps(d["rows"]), utc))
        elif k == "SafeStateAction":
            out.rows["safe_actions"].append(
                (run_id, started, seq, d["instrument"], d["action"], bool(d["ok"]),
                 d.get("error"), utc, d.get("confirmed", None)))
        elif k == "LogMessage" and str(d.get("message", "")).startswith(MES_PREFIX):
            out.run.setdefault("mes_transaction_id", d["message"][len(MES_PREFIX):].strip())
        elif k == "RunFinished":
            out.run.update(finished_utc=utc, duration_s=d["duration_s"], verdict=d["verdict"],
                           reason=d.get("reason"), status="finished")
    if serial:
        out.rows["components"].extend((serial, kind, position, part, "mes", run_id, started)
                                      for kind, position, part in components)
    return out


def _component(step: tuple[str, str] | None, m: dict[str, Any]) -> tuple | None:
    """(kind, position, component serial, source) a measurement names, or None."""
    if step is None or not isinstance(m["value"], str) or not m["value"].strip():
        return None
    step_id, action = step
    source = "bms_did" if action.startswith("bms.") else \
        "scan" if action.startswith("operator.") else None
    if source is None:
        return None
    if action == "bms.identity":
        return ("bms", "ecu_serial", m["value"].strip(), source) \
            if m["name"] == "ecu_serial" else None
    match = _COMPONENT_STEP.match(step_id)
    if match is None or m["name"] != "value":
        return None
    return (match[1], match[2] or "", m["value"].strip(), source)
