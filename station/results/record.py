"""The run record: its shape, its version, and helpers to read and render it.

A record is a plain dict (JSON-able after ``to_jsonable``)::

    record_schema_version, run_id, status (running|finished|interrupted), verdict, reason,
    serial, plan {id, version, title, path, sha256, libraries {file: sha256}, release_sha256},
    variant, parameters, station_id,
    mode (development|production|None: recorded before the store knew), config_sha256,
    release {key, signature} (the trusted key and Ed25519 signature the content ran under; None
    when it ran unsigned), audit_head (the audit log's last hash at run start),
    fixture_id, operator, software_version, simulated, sim_pack {name, sha256} (None: hardware),
    faults, planned_steps,
    started_utc, finished_utc, last_event_utc, duration_s, mes_transaction_id (None: no MES),
    instruments [{role, driver, resource, maker, model, serial, firmware, calibration_due,
                  shared, utc}],
    steps [{path, step_id, name, action, phase, attempt, outcome (None = never finished),
            started_utc, finished_utc, t_start_s, duration_s, error, series [names],
            measurements [{name, value, unit, limits, verdict, text, utc, t_s}]}],
    unassigned_measurements [...], series [{path, attempt, name, columns, rows, utc}],
    safe_state [{instrument, action, ok, error, utc, confirmed (None: recorded before it was
                 known)}], monitor_trips, prompts, log,
    errors [{source, where, message, utc}], summary {steps: {outcome: n},
    measurements: {verdict: n}, safe_state_confirmed (bool; None for records without it),
    safe_state_unconfirmed [instrument names]}

Values and numeric limits are in the unit each measurement names: SI for ohm, V, A, s; Ah for
charge, % for SOC (record schema 2; schema 1 stored SI numbers under those units).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from station.events import SETTLED_BY_BUS, SETTLES

# 2: values and numeric limits in the unit each measurement names (charge in Ah, SOC in %);
# 1 held SI numbers under those units. Stores are migrated (schema.py v4, line 0006).
RECORD_SCHEMA_VERSION = 2
record_schema_version = RECORD_SCHEMA_VERSION


def _loads(text: str | None, default: Any = None) -> Any:
    return default if text is None else json.loads(text)


def _measurement(row: dict[str, Any]) -> dict[str, Any]:
    return {"name": row["name"], "value": _loads(row["value_json"]), "unit": row["unit"],
            "limits": _loads(row["limits"], {}), "verdict": row["verdict"], "text": row["text"],
            "utc": row["utc"], "t_s": row["t"]}


def _step(row: dict[str, Any]) -> dict[str, Any]:
    return {"path": row["path"], "step_id": row["step_id"], "name": row["name"],
            "action": row["action"], "phase": row["phase"], "attempt": row["attempt"],
            "outcome": row["outcome"], "started_utc": row["started_utc"],
            "finished_utc": row["finished_utc"], "t_start_s": row["t_start"],
            "duration_s": row["duration_s"], "error": row["error"], "series": [],
            "measurements": []}


def assemble(run: dict[str, Any], instruments: list[dict], steps: list[dict],
             measurements: list[dict], series: list[dict], safe_actions: list[dict],
             journal: list[dict], last_utc: str | None) -> dict[str, Any]:
    """Build the record dict from the store's rows (each list in journal order)."""
    step_list = [_step(r) for r in steps]
    by_key = {(s["path"], s["attempt"]): s for s in step_list}
    unassigned = []
    for row in measurements:
        step = by_key.get((row["path"], row["attempt"]))
        if step is not None:
            step["measurements"].append(_measurement(row))
        else:
            unassigned.append(_measurement(row) | {"path": row["path"]})
    series_list = [{"path": r["path"], "attempt": r["attempt"], "name": r["name"],
                    "columns": _loads(r["columns"], []), "rows": _loads(r["rows"], []),
                    "utc": r["utc"]} for r in series]
    for s in series_list:
        if (s["path"], s["attempt"]) in by_key:
            by_key[(s["path"], s["attempt"])]["series"].append(s["name"])
    by_kind: dict[str, list[dict]] = {}
    for r in journal:
        data = json.loads(r["data"])
        data.pop("run_id", None)
        data["kind"] = r["kind"]  # the event type, also for prompts that carry their own kind
        by_kind.setdefault(r["kind"], []).append(data)
    started = (by_kind.get("RunStarted") or [{}])[0]
    record = {
        "record_schema_version": RECORD_SCHEMA_VERSION,
        "run_id": run["id"], "status": run["status"], "verdict": run["verdict"],
        "reason": run["reason"], "serial": run["serial"],
        "plan": {"id": run["plan_id"], "version": run["plan_version"], "title": run["plan_title"],
                 "path": run["plan_path"], "sha256": run["plan_sha256"],
                 # from the run's RunStarted event (journals before these fields: the plan alone)
                 "libraries": started.get("plan_libraries", {}),
                 "release_sha256": started.get("plan_release_sha256") or run["plan_sha256"]},
        "variant": run["variant"], "parameters": _loads(run["parameters"], {}),
        "station_id": run["station_id"],
        # provenance (schema v3; None in runs recorded before it)
        "mode": run.get("station_mode"), "config_sha256": run.get("config_sha256"),
        "release": ({"key": run["release_key"], "signature": run.get("release_signature")}
                    if run.get("release_key") else None),
        "audit_head": started.get("audit_head") or None, "fixture_id": run["fixture_id"],
        "operator": run["operator"], "software_version": run["software_version"],
        "simulated": None if run["simulated"] is None else bool(run["simulated"]),
        # the pack model a simulated run ran against (from RunStarted; None: hardware or older journals)
        "sim_pack": ({"name": started["sim_pack"], "sha256": started.get("sim_pack_sha256")}
                     if started.get("sim_pack") else None),
        "faults": _loads(run["faults"], []), "planned_steps": run["planned_steps"],
        "mes_transaction_id": started.get("mes_transaction_id"),  # the MES route check's id
        "started_utc": run["started_utc"], "finished_utc": run["finished_utc"],
        "last_event_utc": last_utc, "duration_s": run["duration_s"],
        "instruments": [{k: (bool(v) if k == "shared" else v) for k, v in r.items()
                         if k not in ("run_id", "seq")} for r in instruments],
        "steps": step_list, "unassigned_measurements": unassigned, "series": series_list,
        "safe_state": [{"instrument": r["instrument"], "action": r["action"], "ok": bool(r["ok"]),
                        "error": r["error"], "utc": r["utc"],
                        "confirmed": None if r.get("confirmed") is None else bool(r["confirmed"])}
                       for r in safe_actions],
        "monitor_trips": by_kind.get("MonitorTripped", []),
        "prompts": by_kind.get("PromptRequested", []) + by_kind.get("PromptAnswered", []),
        "log": by_kind.get("LogMessage", []),
        # the fixture's start-up check before the run (station.startup_check); [] when none ran
        "startup": by_kind.get("StartupChecked", []),
    }
    record["prompts"].sort(key=lambda e: e["t"])
    record["errors"] = _errors(record)
    settled = {(a["instrument"], a["action"].partition(SETTLES)[2]) for a in record["safe_state"]
               if a["action"].startswith(SETTLED_BY_BUS) and a["confirmed"]}
    unconfirmed = sorted({a["instrument"] for a in record["safe_state"]
                          if not a["ok"] or (a["confirmed"] is False and (a["instrument"], a["action"]) not in settled)})
    known = all(a["confirmed"] is not None for a in record["safe_state"])
    record["summary"] = {
        "steps": dict(Counter(s["outcome"] or "unfinished" for s in step_list)),
        "measurements": dict(Counter(m["verdict"] for m in iter_measurements(record))),
        "safe_state_confirmed": (not unconfirmed) if record["safe_state"] and known else (False if unconfirmed else None),
        "safe_state_unconfirmed": unconfirmed,
    }
    return record


def _errors(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every error with its context, in the order the sources are listed."""
    errors = []
    for s in record["steps"]:
        if s["outcome"] in ("error", "aborted") or (s["outcome"] is None and
                                                    record["status"] != "running"):
            message = s["error"] or ("step never finished" if s["outcome"] is None
                                     else f"step {s['outcome']}")
            errors.append({"source": "step", "where": s["path"], "message": message,
                           "utc": s["finished_utc"] or s["started_utc"]})
    for m in record["monitor_trips"]:
        errors.append({"source": "monitor", "where": m["path"], "utc": m["utc"],
                       "message": f"{m['signal']} = {m['value']} beyond {m['limit']}"})
    for a in record["safe_state"]:
        if not a["ok"]:
            errors.append({"source": "safe_state", "where": a["instrument"], "utc": a["utc"],
                           "message": f"{a['action']} failed: {a['error'] or 'no detail'}"})
    for entry in record["log"]:
        if str(entry.get("level", "")).lower() in ("error", "critical"):
            errors.append({"source": "log", "where": "", "utc": entry["utc"],
                           "message": entry["message"]})
    if record["status"] == "interrupted":
        errors.append({"source": "run", "where": "", "utc": record["last_event_utc"],
                       "message": "run interrupted: no RunFinished was journalled"})
    return errors


def iter_measurements(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every measurement, each with the ``path`` and ``attempt`` of its step."""
    for s in record["steps"]:
        for m in s["measurements"]:
            yield m | {"path": s["path"], "attempt": s["attempt"]}
    for m in record["unassigned_measurements"]:
        yield m | {"attempt": None}


def final_steps(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The last attempt of each step path, in first-seen order (what a retry decided)."""
    last: dict[str, dict[str, Any]] = {}
    for s in record["steps"]:
        if s["path"] not in last or s["attempt"] >= last[s["path"]]["attempt"]:
            last[s["path"]] = s
    return list(last.values())


def display_verdict(record: dict[str, Any]) -> str:
    """PASS/FAIL/ERROR/ABORTED, or INTERRUPTED / RUNNING for a run without a verdict."""
    if record["verdict"]:
        return str(record["verdict"])
    return "INTERRUPTED" if record["status"] == "interrupted" else "RUNNING"


# -- rendering values --------------------------------------------------------------------------
PREFIXED_UNITS = {"V", "A", "ohm", "s", "W", "Wh", "Ah", "F", "Hz", "J", "Pa"}
SI_PREFIXES = {-12: "p", -9: "n", -6: "µ", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T"}
_UNIT_SYMBOLS = {"ohm": "Ω", "degC": "°C", "ohm/V": "Ω/V", "pct": "%", "bool": "", "str": ""}


def unit_symbol(unit: str | None) -> str:
    """How a unit is written for people (``ohm`` → ``Ω``; ``bool``/``str`` → nothing)."""
    return _UNIT_SYMBOLS.get(unit or "", unit or "")


def si_exponent(magnitude: float, unit: str | None) -> int:
    """Power of 1000 that puts ``magnitude`` in 1..999 for prefixable units, else 0."""
    if unit not in PREFIXED_UNITS or not magnitude or not math.isfinite(magnitude):
        return 0
    exp = max(-12, min(12, int(math.floor(math.log10(abs(magnitude)) / 3) * 3)))
    return min(exp, 0) if unit == "s" else exp  # "1.2 ks" reads worse than "1200 s"


def format_quantity(value: Any, unit: str | None = "", digits: int = 6) -> str:
    """A value for humans: ``0.142, "ohm"`` → ``142 mΩ``, ``30, "%"`` → ``30 %``; non-numbers
    as they are."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        return f"{text} {unit_symbol(unit)}".rstrip()
    if not math.isfinite(value):
        return f"{value} {unit_symbol(unit)}".rstrip()
    exp = si_exponent(value, unit)
    mantissa = value / 10**exp
    return f"{mantissa:.{digits}g} {SI_PREFIXES[exp]}{unit_symbol(unit)}".rstrip()


def format_duration(seconds: float | None) -> str:
    """A step duration at the resolution people read: ``0.0421`` → ``42 ms``, ``12.345`` →
    ``12.3 s``, ``754.2`` → ``12 min 34 s``."""
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return ""
    if seconds < 1.0:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60.0:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def margin(value: Any, limits: dict[str, Any] | None) -> tuple[float, str, float | None] | None:
    """Distance from ``value`` to its nearest numeric limit: (distance, which limit, fraction of
    the min..max span or None). Negative when outside; None without a numeric limit."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    lo, hi = (limits or {}).get("min"), (limits or {}).get("max")
    lo = lo if isinstance(lo, (int, float)) and not isinstance(lo, bool) else None
    hi = hi if isinstance(hi, (int, float)) and not isinstance(hi, bool) else None
    options = [(value - lo, "min")] if lo is not None else []
    options += [(hi - value, "max")] if hi is not None else []
    if not options:
        return None
    distance, which = min(options)
    span = (hi - lo) if lo is not None and hi is not None and hi > lo else None
    return distance, which, (distance / span if span else None)


SHOWN_DIGITS = 4  # significant digits of values shown to people; records and tooltips keep all
NBSP = "\u00a0"  # joins a limit's sign, number and unit so no viewer breaks a line inside it


def format_margin(value: Any, limits: dict[str, Any] | None, unit: str | None = "") -> str:
    """``margin`` for people: ``57.9 mΩ to max (58 %)`` inside the limits (the share of the
    min..max span when both exist), ``42.1 mΩ beyond max`` outside; "" without a numeric limit."""
    found = margin(value, limits)
    if found is None:
        return ""
    distance, which, share = found
    if distance < 0:
        return f"{format_quantity(-distance, unit, 3)} beyond {which}"
    return f"{format_quantity(distance, unit, 3)} to {which}" + (f" ({share * 100:.0f} %)" if share is not None else "")


_LIMIT_SIGNS = {"min": "≥", "max": "≤", "equals": "=", "not": "≠"}


def format_limits(limits: dict[str, Any] | None, unit: str | None = "", *, nowrap: bool = False) -> str:
    """``{"min": 8e4}, "ohm"`` → ``≥ 80 kΩ``; unknown keys keep their name; ``unit`` (how the
    plan wrote the limit) is not a limit and is left out. ``nowrap``: each limit's words joined by
    no-break spaces, for text a viewer wraps (CI pages); a line may still break between limits."""
    parts = []
    for key, value in (limits or {}).items():
        if key == "unit":
            continue
        sign = _LIMIT_SIGNS.get(key)
        if sign is None and key.endswith("_min"):
            sign = f"{key[:-4]} ≥"
        elif sign is None and key.endswith("_max"):
            sign = f"{key[:-4]} ≤"
        shown = format_quantity(value, unit) if isinstance(value, (int, float, str)) else (
            json.dumps(value, default=str))
        part = f"{sign or key} {shown}"
        parts.append(part.replace(" ", NBSP) if nowrap else part)
    return ", ".join(parts) or "—"


# -- JSON and files ----------------------------------------------------------------------------
def to_jsonable(value: Any) -> Any:
    """A deep copy that strict JSON accepts: non-finite floats become "nan"/"inf"/"-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write a file so readers never see half of it (temp file + rename); creates the dir."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
