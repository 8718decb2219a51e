"""The operator UI's line badges (no Textual here): result delivery and reference drift.

**Delivery**: the session's line services know, per target (line database, MES, MQTT broker),
what waits and which error since when (``LineServices.delivery_state``, kept by the queues'
own threads). ``delivery_badge`` turns that into one row under the station header — nothing when
every target is delivered, else e.g. ``DB backlog 12 · MES: upload: HTTP 503 since 14:02`` — and
the full text for its tooltip.

**Reference drift**: the station's own result store holds every run of its reference (golden)
packs, so ``read_drift`` reads the verdict there with the same control charts and Western
Electric rules as ``station stats --reference``. Nothing outside the station must be up or
scheduled for the badge to be right, and it clears by itself when the newest reference runs are
back in control. Runs counted: this station's, of the configured reference serials, in the
station's mode (development runs on a development station), simulated ones only under
``--sim``, never fault-injected or interrupted ones.

Every string here comes from outside (error messages, measurement names): the badges are Rich
``Text`` built through ``station.ui.safe_text``, never markup.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rich.text import Text

from station.ui.safe_text import data, shown

BRIEF_CHARS = 32  # an error's length in the badge (80 columns); the tooltip has all of it
_ORDER = {"DB": 0, "MES": 1, "MQTT": 2}
DELIVERY_STYLE = "bold black on yellow"
DRIFT_STYLE = "bold white on dark_orange3"


def _local_time(utc: str | None) -> str:
    """``2026-12-07T13:02:11+00:00`` → ``14:02`` in the station's local time ('' if unreadable)."""
    try:
        t = dt.datetime.fromisoformat(str(utc))
    except ValueError:
        return ""
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone().strftime("%H:%M")


def _one_line(text: Any) -> str:
    return " ".join(shown(text).split())


def _brief(error: str, name: str) -> str:
    """The error without the target's name ("result store postgresql://…: cannot connect"):
    the badge names the kind, the tooltip the target; shortened."""
    text = _one_line(error)
    head, found, tail = text.partition(f"{_one_line(name)}: ") if name else ("", "", "")
    if found and len(head) <= 20:
        text = tail
    return text if len(text) <= BRIEF_CHARS else text[:BRIEF_CHARS - 1] + "…"


def delivery_lines(targets: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(badge part, full sentence) per target not delivered, database first; [] when all are."""
    out = []
    for target, s in sorted(targets.items(),
                            key=lambda ts: (_ORDER.get(str(ts[1].get("kind")), 9), ts[0])):
        kind = str(s.get("kind") or target.split(":", 1)[0].upper())
        name = str(s.get("name") or target)
        raw = s.get("backlog")
        backlog = raw if isinstance(raw, int) else 0  # -1: not counted yet
        waiting = f"{backlog} waiting" if backlog > 0 else ""
        if s.get("error"):
            since = _local_time(s.get("since_utc"))
            part = f"{kind}: {_brief(s['error'], name)}" + (f" since {since}" if since else "")
            full = f"{kind} {_one_line(name)}: {_one_line(s['error'])}" + (
                f" (since {since})" if since else "")
            out.append((part + (f" · {waiting}" if waiting else ""),
                        full + (f"; {waiting}" if waiting else "")))
        elif backlog > 0:
            out.append((f"{kind} backlog {backlog}", f"{kind} {_one_line(name)}: {waiting}"))
    return out


def delivery_badge(targets: Mapping[str, Mapping[str, Any]]) -> tuple[Text, Text] | None:
    """(badge, tooltip) for the station header, or None when every target is delivered."""
    lines = delivery_lines(targets)
    if not lines:
        return None
    badge = data(" " + " · ".join(part for part, _ in lines) + " ", DELIVERY_STYLE)
    tip = data("\n".join(full for _, full in lines)
               + "\nqueued in the station's journal and retried; `station line status` shows them")
    return badge, tip


def drift_badge(measurements: Iterable[str]) -> Text | None:
    """``REFERENCE DRIFT: <measurement>, …`` for a fixture, or None when nothing drifts."""
    found = list(measurements)
    return data(f" REFERENCE DRIFT: {', '.join(found)} ", DRIFT_STYLE) if found else None


def read_drift(db: Path, station: str, serials: Iterable[str], *, development: bool,
               simulated: bool) -> dict[str, list[str]]:
    """Fixture → its drifting reference measurements (``step measurement``), read from the
    station's result store ``db`` (read-only; blocking: call it from a worker thread).

    Raises ``StoreError`` when the store cannot be read. {} without reference serials.
    """
    from station.line.drift import charts, drifting_measurements
    from station.line.population import Population, open_source

    serials = tuple(serials)
    if not serials or not db.is_file():
        return {}
    pop = Population(station=station, serials=serials, development=development,
                     simulated=simulated)
    with open_source(str(db)) as src:
        result = charts(src, pop)
    return {fixture: [f"{path.rsplit('/', 1)[-1]} {name}" for path, name in found]
            for (_station, fixture), found in drifting_measurements(result).items()}
