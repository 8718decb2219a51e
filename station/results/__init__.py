"""Results: the SQLite journal of every run, its record model, and the exporters.

- ``ResultStore`` (store.py): ``handle(event)`` journals each event as it happens;
  ``runs()`` / ``record(run_id)`` read them back.
- ``write_json`` / ``write_junit`` / ``write_html``: one run's record as a file.
- commands.py: ``station results list|show|export``.
"""

from .export_json import write_json
from .html_report import write_html
from .junit import write_junit
from .record import RECORD_SCHEMA_VERSION, record_schema_version
from .store import ResultStore, StoreError, UnknownRunError

__all__ = [
    "RECORD_SCHEMA_VERSION", "ResultStore", "StoreError", "UnknownRunError",
    "record_schema_version", "write_html", "write_json", "write_junit",
]
