"""``station sim packs``: list the shipped packs, check pack files, print the pack file schema."""

from __future__ import annotations

import json
import sys

from drivers.base.diagnostics import InputError

EXIT_USAGE = 2


def packs_command(files: list[str], *, schema: bool = False) -> int:
    """Print one line per pack (name, topology, chemistry, nameplate, sha256, file); problems of
    a bad file go to stderr as ``FILE:LINE:COL: message``, exit 2."""
    from sim.pack.catalogue import load_pack, shipped
    from sim.pack.packfile import pack_schema

    if schema:
        print(json.dumps(pack_schema(), indent=2, sort_keys=True))
        return 0
    problems = []
    definitions = []
    try:
        definitions = list(shipped().values()) if not files else []
    except InputError as err:
        problems.extend(err.problems)
    for path in files:
        try:
            definitions.append(load_pack(path))
        except InputError as err:
            problems.extend(err.problems)
    for d in definitions:
        print(f"{d.summary()}  sha256 {d.sha256[:16]}  {d.path}")
    for problem in sorted(set(problems)):
        print(problem, file=sys.stderr)
    return EXIT_USAGE if problems else 0
