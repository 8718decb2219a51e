"""Which files are plans: the rule `station validate DIR`, `station test DIR` and the pytest
plugin share. A file named is always taken as a plan (if it is not one, its problems say why);
in a directory, searched with its subdirectories as pytest walks a test tree, a ``*.yaml`` /
``*.yml`` file is a plan when it has a top-level ``schema_version:``, a library when it also
says ``kind: library``, and otherwise not a plan (CI files, notes, fixtures)."""

from __future__ import annotations

import os
import re
from pathlib import Path

_PLAN_MARK = re.compile(r"^schema_version\s*:", re.MULTILINE)
_LIBRARY_MARK = re.compile(r"^kind\s*:\s*['\"]?library\b", re.MULTILINE)
# directories a plan search does not enter: pytest's default ``norecursedirs``
_NO_RECURSE = ("*.egg", ".*", "_darcs", "build", "CVS", "dist", "node_modules", "venv", "{arch}")


def file_kind(path: Path) -> str | None:
    """``"plan"``, ``"library"`` or None (not a plan) for a YAML file found in a directory. Read
    as every plan file is (``safefile``): a FIFO, a device or a symlink loop named ``*.yaml`` is
    not a plan and never blocks the search."""
    from drivers.base import safefile

    try:
        head = safefile.read_bytes(path)[:20000].decode("utf-8", errors="replace")
    except OSError:  # UnsafeFile included
        return None
    if not _PLAN_MARK.search(head):
        return None
    return "library" if _LIBRARY_MARK.search(head) else "plan"


def is_plan_file(path: Path) -> bool:
    """A plan to prove or validate (``file_kind``)."""
    return file_kind(path) == "plan"


def _yaml_under(directory: Path) -> list[Path]:
    """``*.yaml`` / ``*.yml`` under ``directory`` and its subdirectories, sorted (not into
    ``.git``, ``venv``, ``build``, ...)."""
    out: list[Path] = []
    for entry in sorted(directory.iterdir()):
        if entry.is_dir():
            if not any(entry.match(pattern) for pattern in _NO_RECURSE):
                out.extend(_yaml_under(entry))
        elif entry.suffix in (".yaml", ".yml"):
            out.append(entry)
    return out


def plan_files(paths: list[str], skipped: list[str] | None = None) -> list[str]:
    """Plan files named, or found in the directories named, in order, each once (however it was
    named); YAML found that is not a plan goes to ``skipped``, libraries found are left out."""
    out: list[str] = []
    seen: set[Path] = set()

    def add(path: str) -> None:
        try:
            resolved = Path(path).resolve()
        except (OSError, RuntimeError):  # a symlink loop: its own problems say so when it is read
            resolved = Path(os.path.abspath(path))
        if resolved not in seen:
            seen.add(resolved)
            out.append(path)

    for path in paths:
        p = Path(path)
        if p.is_dir():
            for f in _yaml_under(p):
                kind = file_kind(f)
                if kind == "plan":
                    add(str(f))
                elif kind is None and skipped is not None:
                    skipped.append(str(f))
        else:
            add(path)
    return out
