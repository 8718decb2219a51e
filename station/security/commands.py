"""``station verify``, ``station audit verify``, ``station keys new``, ``station users set``.

Exit codes: 0 everything verified; 3 something does not verify (a release whose signature or
content does not match, an audit log that was edited, truncated or reordered); 2 usage or a
config/file that cannot be read (``FILE:LINE:COL`` where there is a file).
"""

from __future__ import annotations

import sys
from pathlib import Path

from drivers.base.diagnostics import InputError, Problem
from station.safetext import printable

EXIT_BROKEN = 3


def cmd_verify(args) -> int:
    """Check every release of a station (or the given plans) against its trusted keys."""
    from station.config import SignedRelease, load_config
    from station.plan.bind import bind_plan
    from station.plan.loader import load_plan
    from station.security.manifest import release_digest
    from station.security.signing import SignatureProblem, verify

    config = load_config(args.station)
    wanted = {Path(p).resolve() for p in args.plans}
    production = config.config.mode == "production"
    bad = checked = 0
    for key, entry in config.config.released.items():
        path = config.resolve_path(key)
        if wanted and path.resolve() not in wanted:
            continue
        checked += 1
        try:
            digest = release_digest(config, bind_plan(load_plan(path)))
        except InputError as err:
            print(f"BROKEN    {printable(key)}: does not load: {printable(err.problems[0])}")
            bad += 1
            continue
        if not isinstance(entry, SignedRelease):
            same = entry.lower() == digest.lower()
            state = "UNSIGNED" if same else "CHANGED"
            print(f"{state:<9} {printable(key)}: " + ("bare digest, no signature" if same else
                  f"content differs from the release (sha256 {digest[:12]}… ≠ {entry[:12]}…)")
                  + (" (refused in production)" if production else ""))
            bad += int(production or not same)
            continue
        try:
            trusted = verify(config, key, entry, digest)
        except SignatureProblem as err:
            print(f"BROKEN    {printable(key)}: {printable(err)}")
            bad += 1
            continue
        print(f"OK        {printable(key)}: signed by key {printable(trusted.id)} ({printable(trusted.owner)}), sha256 {digest}")
    for path in wanted - {config.resolve_path(k).resolve() for k in config.config.released}:
        print(f"UNRELEASED {printable(path)}")
        bad += 1
        checked += 1
    print(f"{checked - bad}/{checked} releases verify on station {printable(config.config.station_id)} ({config.config.mode})")
    return EXIT_BROKEN if bad else 0


def cmd_audit(args) -> int:
    """``station audit verify|show``: the hash chain, and each run's anchor in it."""
    from station.security.audit import AuditLog, audit_path

    db: Path | None = None
    if args.log:
        path = Path(args.log)
    elif args.db:
        db = Path(args.db)
        path = db.with_name("audit.jsonl")
    else:
        from station.config import SIM_CONFIG, load_config

        config = load_config(args.station or SIM_CONFIG)
        db, path = config.resolve_path(config.config.results.db), audit_path(config)
    if path is None:
        raise InputError([Problem(str(db), 1, 1, "an in-memory store keeps no audit log")])
    log = AuditLog(path)
    if not path.is_file():
        raise InputError([Problem(str(path), 1, 1, "no audit log here")])
    if args.audit_command == "show":
        for entry in log.entries():
            fields = " ".join(f"{k}={printable(v)}" for k, v in (entry.get("fields") or {}).items())
            print(f"{entry.get('seq')}\t{printable(entry.get('time'))}\t{printable(entry.get('kind'))}\t{fields}")
        return 0
    problems = log.verify() + (_anchor_problems(log, db) if db is not None else [])
    for problem in problems:
        print(printable(problem))
    if problems:
        print(f"audit log {path}: NOT intact ({len(problems)} problem(s))", file=sys.stderr)
        return EXIT_BROKEN
    print(f"audit log {path}: intact, {len(log.entries())} entries, head {log.head()}")
    return 0


def _anchor_problems(log, db: Path) -> list[str]:
    """Runs in the store beside the log whose recorded audit head is not in the log: entries
    removed (or the log replaced) after that run started."""
    import sqlite3

    if not db.is_file():
        return []
    hashes = {e.get("hash") for e in log.entries()}
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT run_id, json_extract(data, '$.audit_head') FROM events "
                                "WHERE kind = 'RunStarted'").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []
    from station.security.audit import GENESIS

    return [f"{db}: run {run_id} started at audit head {head[:12]}…, which the log no longer holds "
            f"(entries removed or the log replaced)"
            for run_id, head in rows if head and head != GENESIS and head not in hashes]


def cmd_keys(args) -> int:
    """``station keys new FILE``: a new Ed25519 private key (0600); prints the ``trusted_keys``
    entry for it (``owner``: ``--owner``, else the placeholder OPERATOR-ID to replace)."""
    from station.security.signing import new_private_key

    public = new_private_key(args.file)
    print(f"private key written to {args.file} (keep it with its owner; never on the station)")
    owner = args.owner or "OPERATOR-ID"  # the placeholder: the admin's operator id who holds the key
    print(f"add to the station config's trusted_keys:\n  - {{id: {args.id or 'KEY-ID'}, owner: {owner}, "
          f"public_key: \"{public}\"}}")
    return 0


def cmd_users(args) -> int:
    """``station users set ID``: set a user's PIN (or badge) in the station's user file."""
    from station.config import load_config
    from station.security.login import HOW, read_pin
    from station.security.roles import find_operator
    from station.security.users import UserFile

    config = load_config(args.station)
    if not config.config.users_file:
        raise InputError([Problem(str(config.path), 1, 1, "the station config names no users_file:")])
    op = find_operator(config, args.id)
    secret = read_pin(args.pin_file, op.id, stdin=True)
    if not secret:
        what = "badge" if args.badge else "PIN"
        raise InputError([Problem("--pin-file", 1, 1, f"no {what} given for '{op.id}': pipe it in "
                                  f"(echo ... | station users set {op.id} --station FILE), or {HOW}")])
    users = UserFile(config.resolve_path(config.config.users_file)).load()
    users.set(op.id, "badge" if args.badge else "pin", secret)
    print(f"{'badge' if args.badge else 'PIN'} of {op.id} set in {users.path}")
    return 0
