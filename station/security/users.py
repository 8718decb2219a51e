"""Who is at the keyboard: the station user file (hashed PINs and badges) and authentication.

The user file (``users_file:`` in the station config; keep it mode 0600, owned by the station
account) holds credentials only; roles stay in the config's ``operators:``::

    schema_version: 1
    users:
      - {id: eng1, pin: "scrypt$16384$8$1$<salt b64>$<hash b64>"}
      - {id: op1, badge: "scrypt$..."}

Each secret is hashed with scrypt (RFC 7914) and a random 16-byte salt per credential; it is
compared in constant time. ``authenticate`` returns an ``Authenticated`` token that
``runner.prepare`` requires in production: the CLI gets it from a PIN (prompt, ``--pin-file``
or ``STATION_PIN``), the UI from its log-in screen. Five failures in a row for one id lock it
for 15 minutes (counted from the audit log, so a restart does not reset them). Every failure
and every lock-out is audited.

``Directory`` is the interface a site directory (LDAP, badge server) would implement instead
of the file: ``credential(user_id, kind)`` -> stored hash or None.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from drivers.base.diagnostics import InputError, Problem
from station.config import LoadedConfig, OperatorConfig
from station.security.audit import AuditLog

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MiB, ~40 ms a check on a small PC
KINDS = ("pin", "badge")
MAX_FAILURES = 5
LOCKOUT = dt.timedelta(minutes=15)
MIN_PIN = 4


class AuthError(Exception):
    """Authentication refused; the message is safe to show (it never says which part was wrong)."""


@dataclass(frozen=True)
class Authenticated:
    """Proof, inside this process, that ``operator`` gave a valid credential at ``utc``."""

    operator: str
    role: str
    method: str  # pin | badge | none (development, no credential on file)
    utc: str


def hash_secret(secret: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64) of ``secret`` with a fresh random salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def check_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` matches a ``hash_secret`` string (False for a malformed one)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(secret.encode("utf-8"), salt=base64.b64decode(salt, validate=True),
                             n=int(n), r=int(r), p=int(p), dklen=len(want), maxmem=2**26)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


class Directory(Protocol):
    """Where credentials come from: the user file, or a site directory."""

    def credential(self, user_id: str, kind: str) -> str | None: ...

    def badge_owner(self, badge: str) -> str | None: ...


class UserFile:
    """The station user file. No I/O in the constructor; ``load`` reads it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.users: dict[str, dict[str, str]] = {}

    def load(self) -> UserFile:
        """Read and check the file; ``InputError`` at ``PATH:LINE:COL`` for anything malformed.
        A missing file is an empty directory (nobody has a credential)."""
        from drivers.base.yamlsrc import load_file

        if not os.path.lexists(self.path):  # a dangling link or a link loop is read, and refused
            return self
        src = load_file(self.path)
        if src.problems:
            raise InputError(src.problems)
        data = src.data
        if not isinstance(data, dict) or data.get("schema_version") != 1 or not isinstance(data.get("users", []), list):
            raise InputError([src.problem((), "a user file is {schema_version: 1, users: [{id, pin, badge}]}")])
        for i, entry in enumerate(data.get("users") or []):
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or set(entry) - {"id", *KINDS}:
                raise InputError([src.problem(("users", i), "a user is {id, pin: HASH, badge: HASH}")])
            if entry["id"] in self.users:
                raise InputError([src.problem(("users", i, "id"), f"user '{entry['id']}' is listed twice")])
            self.users[entry["id"]] = {k: str(v) for k, v in entry.items() if k in KINDS}
        return self

    def credential(self, user_id: str, kind: str) -> str | None:
        return self.users.get(user_id, {}).get(kind)

    def badge_owner(self, badge: str) -> str | None:
        for user_id, creds in self.users.items():
            if "badge" in creds and check_secret(badge, creds["badge"]):
                return user_id
        return None

    def set(self, user_id: str, kind: str, secret: str) -> None:
        """Store ``secret`` hashed for ``user_id`` and write the file (atomically, mode 0600)."""
        import yaml

        if kind not in KINDS:
            raise ValueError(f"credential kind must be one of {KINDS}")
        if kind == "pin" and (len(secret) < MIN_PIN or not secret.isdigit()):
            raise InputError([Problem(str(self.path), 1, 1, f"a PIN is at least {MIN_PIN} digits")])
        self.users.setdefault(user_id, {})[kind] = hash_secret(secret)
        body = {"schema_version": 1, "users": [{"id": uid, **creds} for uid, creds in self.users.items()]}
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yaml.safe_dump(body, fh, sort_keys=False, width=4096)
        os.replace(tmp, self.path)


def user_file(config: LoadedConfig) -> UserFile | None:
    """The station's user file (loaded), or None when the config names none."""
    if not config.config.users_file:
        return None
    return UserFile(config.resolve_path(config.config.users_file)).load()


def needs_credential(config: LoadedConfig, directory: Directory | None, op: OperatorConfig) -> bool:
    """Production: everyone. Development with a user file: engineers and admins (they choose
    plans and inject faults), and anyone else who has a credential on file. Development without
    one (CI, the simulator's bench): nobody, as before."""
    if config.config.mode == "production":
        return True
    if directory is None:
        return False
    return op.role in ("engineer", "admin") or any(directory.credential(op.id, k) for k in KINDS)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _recent_failures(audit: AuditLog, user_id: str) -> list[dt.datetime]:
    """Times of this id's authentication failures since its last success."""
    failures: list[dt.datetime] = []
    for entry in audit.entries():
        fields = entry.get("fields") or {}
        if fields.get("operator") != user_id:
            continue
        if entry.get("kind") == "login":
            failures = []
        elif entry.get("kind") == "refusal" and fields.get("what") == "authentication failed":
            try:
                failures.append(dt.datetime.fromisoformat(entry["time"]))
            except (KeyError, ValueError):
                continue
    return failures


def authenticate(config: LoadedConfig, audit: AuditLog, operator_id: str, *, pin: str | None = None,
                 badge: str | None = None, where: str = "cli") -> Authenticated:
    """Check ``operator_id`` with a PIN or badge against the station's user file.

    Raises ``AuthError`` (audited: ``refusal`` with ``what: authentication failed``) for an
    unknown id, a missing or wrong credential, or an id locked out after ``MAX_FAILURES``;
    a success is audited as ``login``. In development, an operator with no credential on file
    is let through without one (method ``none``)."""
    from station.security.roles import find_operator

    operator_id = operator_id.strip()
    directory = user_file(config)

    def refuse(why: str, **extra) -> AuthError:
        audit.append("refusal", what="authentication failed", operator=operator_id, where=where,
                     station=config.config.station_id, detail=why, **extra)
        return AuthError(f"authentication failed for '{operator_id}'")

    try:
        op = find_operator(config, operator_id)
    except InputError:
        raise refuse("unknown operator id") from None
    failures = [t for t in _recent_failures(audit, op.id) if _now() - t < LOCKOUT]
    if len(failures) >= MAX_FAILURES:
        audit.append("refusal", what="authentication failed", operator=op.id, where=where,
                     station=config.config.station_id, detail="locked out")
        raise AuthError(f"'{op.id}' is locked for {LOCKOUT.seconds // 60} minutes after "
                        f"{MAX_FAILURES} failed attempts; ask a supervisor")
    if not needs_credential(config, directory, op):
        return Authenticated(op.id, op.role, "none", _now().isoformat())
    if directory is None:
        raise refuse("production mode without a user file (users_file:)")
    checks = [("pin", pin), ("badge", badge)]
    given = [(kind, secret) for kind, secret in checks if secret]
    if not given:
        raise refuse("no PIN or badge given")
    for kind, secret in given:
        stored = directory.credential(op.id, kind)
        if stored is None or not check_secret(secret, stored):
            raise refuse(f"wrong or unknown {kind}")
    audit.append("login", operator=op.id, role=op.role, method=given[0][0], where=where,
                 station=config.config.station_id)
    return Authenticated(op.id, op.role, given[0][0], _now().isoformat())


def authenticate_badge(config: LoadedConfig, audit: AuditLog, badge: str, *, where: str = "ui") -> Authenticated | None:
    """The operator whose badge this is, authenticated; None when no badge on file matches
    (the caller then treats the text as an operator id)."""
    directory = user_file(config)
    owner = directory.badge_owner(badge) if directory is not None and badge else None
    if owner is None:
        return None
    return authenticate(config, audit, owner, badge=badge, where=where)
