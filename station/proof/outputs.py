"""Where ``station test`` writes — its reports (``--junit``, ``--json``) and its result store
(``--db``) — checked before the first run: a path it cannot write is a usage error said once
(exit 2), not a column of failed proofs, nor a traceback after every run has finished."""

from __future__ import annotations

import tempfile
from pathlib import Path


def report_problem(flag: str, path: str) -> str | None:
    """Why ``path`` cannot take the report ``flag`` names, or None. Nothing is left behind: a
    file is created for the check only in the deepest directory that exists (and removed), the
    directories below it are created when the report is written. Creating a file is the only
    check that also holds for root, read-only mounts and pseudo-filesystems."""
    target = Path(path)
    if target.is_dir():
        return f"{flag} {path}: is a directory, not a file"
    if target.exists():
        try:
            with open(target, "a", encoding="utf-8"):
                return None
        except OSError as err:
            return f"{flag} {path}: cannot write it: {err.strerror or err}"
    where = target.parent
    while not where.exists() and where != where.parent:
        where = where.parent
    if not where.is_dir():
        return f"{flag} {path}: {where} is a file, not a directory"
    try:
        with tempfile.NamedTemporaryFile(dir=where, prefix=".station-test-"):
            pass
    except OSError as err:
        return f"{flag} {path}: cannot write in {where}: {err.strerror or err}"
    return None


def store_problems(db: str, flag: str = "--db") -> list[str]:
    """Why the result store ``db`` cannot take a proof's runs (a development station's: a
    production station is refused before this), or nothing. Opening it creates it, as the first
    run would; it is closed again before any worker starts (a SQLite connection must not cross a
    fork), and one that cannot be opened leaves nothing behind (``ResultStore.open``)."""
    from station.results.store import ResultStore, StoreError, StoreModeError

    target = Path(db)
    if target.is_dir():
        return [f"{flag} {db}: is a directory, not a result store"]
    if target.is_file() and target.stat().st_size and not _is_sqlite(target):
        return [f"{flag} {db}: is not a result store (not an SQLite database); give a new file or a store"]
    if not target.exists() and (problem := report_problem(flag, db)) is not None:
        return [problem]  # a file in the way, a directory it cannot write: said before anything is made
    try:
        ResultStore(db, mode="development").open().close()
    except StoreModeError as err:
        return [f"{flag} {db}: a {err.store_mode} store; the proof's runs are those of a "
                f"{err.station_mode} station: give a {err.station_mode} store (or a new file)"]
    except StoreError as err:
        return [f"{flag}: {err}"]
    return []


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return True  # unreadable: let the store say why


def output_problems(db: str, junit: str | None, json_path: str | None) -> list[str]:
    """Every path of the command it cannot write, in words (empty: all can be written)."""
    problems = [p for flag, path in (("--junit", junit), ("--json", json_path)) if path
                if (p := report_problem(flag, path)) is not None]
    return problems or store_problems(db)  # a bad report path: the store is left untouched
