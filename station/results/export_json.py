"""The full record as one JSON file (strict JSON: non-finite numbers become strings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .record import to_jsonable, write_text_atomic


def dumps_record(record: dict[str, Any]) -> str:
    """The record as indented, strict JSON text (UTF-8 characters kept as they are)."""
    return json.dumps(to_jsonable(record), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(record: dict[str, Any], path: str | Path) -> Path:
    """Write the full record to ``path`` atomically; returns the path."""
    return write_text_atomic(path, dumps_record(record))
