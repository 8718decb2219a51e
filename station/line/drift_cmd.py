"""``station stats --reference``: the drift charts of the reference packs (drift.py) as text,
JSON, CSV or HTML, and an alarm over MQTT when one drifts."""

from __future__ import annotations

import argparse
import json
from typing import TextIO

from .drift import as_json, charts, format_text
from .population import Population, Source


def reference_serials(args: argparse.Namespace) -> tuple[str, ...]:
    """``--reference-serial`` values, else the station config's ``reference_serials``."""
    serials = list(getattr(args, "reference_serial", None) or [])
    if not serials and getattr(args, "config", None):
        from station.config import load_config

        serials = list(load_config(args.config).config.reference_serials)
    return tuple(serials)


def reference_command(args: argparse.Namespace, src: Source, pop: Population, out: TextIO,
                      err: TextIO) -> int:
    """``station stats --reference``: 0, or 2 without reference serials."""
    from dataclasses import replace

    from drivers.base.diagnostics import InputError

    try:
        serials = reference_serials(args)
    except InputError as exc:
        for p in exc.problems:
            print(p, file=err)
        return 2
    if not serials:
        print("station stats --reference: no reference serials (give --reference-serial, or "
              "--config with reference_serials)", file=err)
        return 2
    result = charts(src, replace(pop, serials=serials))
    fmt_ = getattr(args, "format", "text") or "text"
    if fmt_ == "json":
        text = json.dumps(as_json(result), indent=1) + "\n"
    elif fmt_ == "html":
        from .analytics_html import drift_html

        text = drift_html(result)
    elif fmt_ == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["serial", "station", "fixture", "step", "measurement", "utc", "run_id", "value",
                    "centre", "lcl", "ucl", "rules"])
        for c in result:
            for i, (utc, run_id, v) in enumerate(c.points):
                w.writerow([c.serial, c.station, c.fixture, c.path, c.name, utc, run_id, repr(v),
                            c.centre, c.lcl, c.ucl, "; ".join(c.violations.get(i, []))])
        text = buf.getvalue()
    else:
        text = format_text(result)
    alarm = getattr(args, "alarm_mqtt", None)
    if alarm:
        from .drift_alarm import publish_alarm

        publish_alarm(alarm, as_json(result), err)
    from .output import write_output

    return write_output(text, args, out, err, "stats")
