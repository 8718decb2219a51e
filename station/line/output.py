"""Where an analysis command's text goes: ``--output FILE`` (written atomically) or stdout."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from station.results.record import write_text_atomic


def write_output(text: str, args: Any, out: TextIO, err: TextIO, command: str) -> int:
    """Write ``text``; the command's exit code (2 when the file cannot be written, said on ``err``)."""
    try:
        if getattr(args, "output", None):
            write_text_atomic(Path(args.output), text)
        else:
            out.write(text)
    except OSError as exc:
        print(f"station {command}: cannot write: {exc}", file=err)
        return 2
    return 0
