"""``station sim packs``: list the shipped packs, check pack files (or every pack file of a
folder), print the pack file schema."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from drivers.base.diagnostics import InputError

EXIT_USAGE = 2
PACK_SUFFIXES = (".yaml", ".yml")
# The editor modeline a pack file starts with (yaml-language-server), and the schema it names.
MODELINE = re.compile(r"#\s*yaml-language-server:\s*\$schema=(\S+)")


def packs_command(files: list[str], *, schema: bool = False, shipped_too: bool = False) -> int:
    """Print one line per pack (name, topology, chemistry, nameplate, sha256, file): the shipped
    packs when no ``files`` are given (or with ``shipped_too``), then each file, a folder standing
    for every ``*.yaml`` / ``*.yml`` in it. Problems of a bad file go to stderr as
    ``FILE:LINE:COL: message``, exit 2; a file whose schema modeline names no file beside it gets
    a note saying how to write the schema there."""
    from sim.pack.catalogue import load_pack, shipped
    from sim.pack.packfile import pack_schema

    if schema:
        print(json.dumps(pack_schema(), indent=2, sort_keys=True))
        return 0
    problems = []
    definitions = []
    try:
        definitions = list(shipped().values()) if shipped_too or not files else []
    except InputError as err:
        problems.extend(err.problems)
    notes = []
    for path in expand(files):
        try:
            definitions.append(load_pack(path))
        except InputError as err:
            problems.extend(err.problems)
            continue
        notes.extend(schema_note(path))
    for d in definitions:
        print(f"{d.summary()}  sha256 {d.sha256[:16]}  {d.path}")
    for note in notes:
        print(note, file=sys.stderr)
    for problem in sorted(set(problems)):
        print(problem, file=sys.stderr)
    return EXIT_USAGE if problems else 0


def expand(files: list[str]) -> list[Path]:
    """The pack files named: a folder gives its ``*.yaml`` / ``*.yml`` files (sorted, not its
    subfolders); anything else is passed on as it is (the loader refuses what is not a file)."""
    out: list[Path] = []
    for name in files:
        path = Path(name)
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in PACK_SUFFIXES and p.is_file()))
        else:
            out.append(path)
    return out


def schema_note(path: Path) -> list[str]:
    """``[note]`` when ``path``'s first line is a schema modeline naming a relative file that is
    not there (a pack file copied out of the shipped folder), else ``[]``."""
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            first = f.readline(4096)
    except OSError:
        return []
    found = MODELINE.match(first.strip())
    if found is None or "://" in found.group(1) or Path(found.group(1)).is_absolute():
        return []
    target = path.parent / found.group(1)
    if target.exists():
        return []
    return [f"{path}:1:1: note: its schema modeline names {found.group(1)}, which is not beside it, so an editor "
            f"cannot check the file; write it there: mkdir -p {target.parent} && station sim packs --schema > {target}"]
