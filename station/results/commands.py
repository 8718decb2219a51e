"""``station results list|show|export``: the CLI's view of the result store.

Each function returns the exit code: 0 done, 2 with a one-line message on ``err`` (no
traceback) for a missing store, an unknown run id or an unwritable output. Output uses
``rich`` only when ``out`` is a terminal; pipes and files get plain text.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from station.safetext import printable

from .export_json import write_json
from .html_report import write_html
from .junit import write_junit
from .record import SHOWN_DIGITS, display_verdict, format_limits, format_quantity, iter_measurements
from .steps_text import HEAD, NOWRAP, plain_lines, step_rows
from .store import ResultStore, StoreError

EXPORTERS: dict[str, Callable[[dict[str, Any], Path], Path]] = {
    "json": write_json, "junit": write_junit, "html": write_html,
}


def _fail(err: TextIO | None, message: str) -> int:
    print(f"error: {message}", file=err or sys.stderr)
    return 2


def _tty(out: TextIO) -> bool:
    return bool(getattr(out, "isatty", lambda: False)())


def _open(db_path: str | Path) -> ResultStore:
    return ResultStore(db_path, readonly=True).open()


def results_list(db_path: str | Path, *, limit: int = 50, serial: str | None = None,
                 mode: str | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Print the newest runs, one per line: id, verdict/status, serial, plan, station, mode,
    start. ``mode``: ``production`` / ``development`` only those runs; ``all`` every run; None
    the store's own mode (plus runs recorded before stores knew their mode): never mixed
    unless asked."""
    out = out or sys.stdout
    try:
        with _open(db_path) as store:
            if mode in ("production", "development"):
                runs = store.runs(limit=limit, serial=serial, mode=mode)
            else:
                own = None if mode == "all" else store.store_mode()
                runs = [r for r in store.runs(limit=limit, serial=serial)
                        if own is None or r["station_mode"] in (own, None)]
    except StoreError as exc:
        return _fail(err, str(exc))
    head = ("run", "verdict", "serial", "plan", "station", "mode", "started (UTC)")
    # every cell may come from outside (a scanned serial, a plan id): shown inert
    rows = [tuple(printable(c) for c in (
        r["id"], r["verdict"] or r["status"].upper(), r["serial"] or "",
        f"{r['plan_id'] or ''} {r['plan_version'] or ''}".strip(), r["station_id"] or "",
        r["station_mode"] or "-", r["started_utc"] or "")) for r in runs]
    if _tty(out):
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
        table = Table()
        for h in head:
            table.add_column(h, no_wrap=h in ("run", "verdict"))  # ids must stay copyable
        for row in rows:
            table.add_row(*(Text(c) for c in row))  # Text: never read as console markup
        Console(file=out).print(table)
    else:
        for row in rows:
            print("\t".join(row), file=out)
    if not rows:
        print("no runs" + (f" for serial {serial}" if serial else ""), file=out)
    return 0


def _summary_lines(record: dict[str, Any]) -> list[str]:
    plan = record["plan"]
    lines = [
        f"verdict:  {display_verdict(record)}" + (f" ({record['reason']})" if record["reason"]
                                                  else ""),
        f"serial:   {record['serial']}",
        f"plan:     {plan['id']} {plan['version']} sha256 {plan['sha256']}",
        f"variant:  {record['variant'] or '-'}   station: {record['station_id']}   "
        f"operator: {record['operator']}",
        f"mode:     {record.get('mode') or '-'}   config sha256: {record.get('config_sha256') or '-'}   "
        f"release: {(record.get('release') or {}).get('key') or 'unsigned'}",
        f"started:  {record['started_utc']}   finished: {record['finished_utc'] or '-'}",
        f"status:   {record['status']}   run: {record['run_id']}",
        "steps:    " + ", ".join(f"{n} {k}" for k, n in record["summary"]["steps"].items()),
    ]
    bad = [s for s in record["steps"] if s["outcome"] not in ("passed", "skipped")]
    for s in bad:
        lines.append(f"  {s['outcome'] or 'unfinished':<10} {s['path']}"
                     + (f": {s['error']}" if s["error"] else ""))
    failed = [m for m in iter_measurements(record) if m["verdict"] != "pass"]
    if failed:
        lines.append("measurements not passed:")
        lines += [f"  {m['verdict']:<10} {m['path']} {m['name']} = "
                  f"{format_quantity(m['value'], m['unit'], SHOWN_DIGITS)}, limits "
                  f"{format_limits(m['limits'], m['unit'])}" for m in failed]
    if record["errors"]:
        lines.append("errors:")
        lines += [f"  [{e['source']}] {e['where']}: {e['message']}" for e in record["errors"]]
    return lines


def results_show(db_path: str | Path, run_id: str, out: TextIO | None = None,
                 err: TextIO | None = None) -> int:
    """Print a human summary of one run (id or unique id prefix)."""
    out = out or sys.stdout
    try:
        with _open(db_path) as store:
            record = store.record(store.find_run(run_id))
    except StoreError as exc:
        return _fail(err, str(exc))
    lines = [printable(line) for line in _summary_lines(record)]  # serials, errors: from outside
    rows = [tuple(printable(cell) for cell in row) for row in step_rows(record)]
    if _tty(out):
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
        colour = {"PASS": "bold white on green", "FAIL": "bold white on red"}.get(
            display_verdict(record), "bold white on dark_orange")
        console = Console(file=out)
        console.print(Text(f"  {display_verdict(record)}  ", style=colour))
        for line in lines[1:]:
            console.print(Text(line))
        table = Table()
        for h in HEAD:
            table.add_column(h, no_wrap=h in NOWRAP)  # a limit or a value is never split across lines
        for row in rows:
            table.add_row(*(Text(c) for c in row))  # Text: never read as console markup
        console.print(table)
    else:
        print("\n".join([*lines, "", *plain_lines(rows)]), file=out)
    return 0


def results_export(db_path: str | Path, run_id: str, *, fmt: str, path: str | Path,
                   out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Write one run as ``json``, ``junit`` or ``html`` to ``path``."""
    if fmt not in EXPORTERS:
        return _fail(err, f"unknown format {fmt!r}; choose one of {', '.join(EXPORTERS)}")
    try:
        with _open(db_path) as store:
            record = store.record(store.find_run(run_id))
    except StoreError as exc:
        return _fail(err, str(exc))
    try:
        written = EXPORTERS[fmt](record, Path(path))
    except OSError as exc:
        return _fail(err, f"cannot write {path}: {exc}")
    print(f"wrote {written}", file=out or sys.stdout)
    return 0
