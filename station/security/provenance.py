"""Run-start integrity: the checks production makes before a run, and what the record keeps.

Before any instrument is touched (``runner.prepare``):

- ``check_store_mode``: the result store belongs to the station's mode (a production store
  refuses a development station, and the reverse);
- ``check_authenticated``: in production, the run's operator is the one who authenticated;
- ``check_release``: in production, the plan's release is signed by a trusted key and the
  signature covers the content as it is now (plan, libraries, profile files).

Each refusal is appended to the audit log (``refusal``, ``fields.what`` naming the check) and
raised as ``InputError`` (exit 2, nothing touched). At run start, ``fields`` gives the
RunStarted provenance (mode, config sha256, release key and signature, audit head) and
``note_config_change`` audits a config whose sha256 differs from the store's last run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from drivers.base.diagnostics import InputError, Problem
from station.config import LoadedConfig, SignedRelease
from station.plan.tree import BoundPlan
from station.security.audit import AuditLog


def refuse(audit: AuditLog, what: str, where: str | Path, message: str, **fields: Any) -> InputError:
    """Audit a refusal (``refusal`` entry, ``what`` naming it) and return the error to raise."""
    audit.append("refusal", what=what, message=message, **fields)
    return InputError([Problem(str(where), 1, 1, message)])


def config_sha256(config: LoadedConfig) -> str:
    """sha256 of the station config file's bytes as loaded."""
    digest = getattr(config.src, "sha256", None)
    return digest or hashlib.sha256(Path(config.path).read_bytes()).hexdigest()


def check_store_mode(config: LoadedConfig, db: Path, audit: AuditLog, **who: Any) -> None:
    """Refuse (audited) when the store at ``db`` was claimed for the other mode."""
    from station.results.store import ResultStore, StoreError

    if not db.is_file():
        return  # a new store: the run's own writer claims it for this mode
    try:
        with ResultStore(db, readonly=True) as store:
            found = store.store_mode()
    except StoreError:
        return  # unreadable here: the writer's open() reports it with the file's name
    mode = config.config.mode
    if found is not None and found != mode:
        raise refuse(audit, "store mode mismatch", db,
                     f"{db} is a {found} store: a {mode} station may not write to it "
                     f"(development runs never enter production records)",
                     store_mode=found, station_mode=mode, config=str(config.path),
                     config_sha256=config_sha256(config), **who)


def check_authenticated(config: LoadedConfig, auth: Any, audit: AuditLog, *, operator: str, **who: Any) -> None:
    """In production, ``auth`` must be an ``Authenticated`` for this very operator id."""
    from station.security.users import Authenticated

    if config.config.mode != "production":
        return
    if not operator:
        raise refuse(audit, "authentication required", config.path,
                     "production mode: give the operator id (--operator) and authenticate", operator="", **who)
    if not isinstance(auth, Authenticated) or auth.operator != operator or auth.method == "none":
        raise refuse(audit, "authentication required", config.path,
                     f"production mode: operator '{operator}' is not authenticated "
                     f"(give the PIN: prompt, --pin-file FILE or STATION_PIN)", operator=operator, **who)


def check_release(config: LoadedConfig, bound: BoundPlan, audit: AuditLog, **who: Any) -> tuple[str, str]:
    """(key id, signature) of the release this content runs under; ("", "") when unsigned.
    In production anything but a valid signature by a trusted key is refused (audited)."""
    from station.security.manifest import release_digest
    from station.security.roles import MAY_CHOOSE_PLAN, find_operator, released_entry
    from station.security.signing import SignatureProblem, verify

    production = config.config.mode == "production"
    digest = release_digest(config, bound)
    found = released_entry(config, bound.path)
    name = Path(bound.path).name

    def problem(why: str) -> InputError:
        return refuse(audit, "release refused", bound.path,
                      f"plan {name} {why}; production mode runs plans released with a trusted signature only",
                      plan=str(bound.path), sha256=digest, **who)

    if found is None:
        if production:
            raise problem(f"is not released for station {config.config.station_id}")
        return "", ""
    key, entry = found
    if not isinstance(entry, SignedRelease):
        if production:
            raise problem("has an unsigned release (a bare digest anyone can edit): release it again with "
                          "`station release --key`")
        return "", ""
    try:
        trusted = verify(config, key, entry, digest)
        signer = find_operator(config, trusted.owner)
        if signer.role not in MAY_CHOOSE_PLAN:
            article = "an" if signer.role[0] in "aeiou" else "a"
            raise ValueError(f"key '{trusted.id}' belongs to '{signer.id}', {article} {signer.role}, who may not release")
    except (ValueError, InputError, SignatureProblem) as err:
        why = err.problems[0].message if isinstance(err, InputError) else str(err)
        if production:
            raise problem(f"is refused: {why}") from None
        return "", ""
    return trusted.id, entry.signature


def fields(config: LoadedConfig, release: tuple[str, str], audit: AuditLog) -> dict[str, str]:
    """The provenance a run's RunStarted carries (see ``station.events.RunStarted``)."""
    return {"station_mode": config.config.mode, "config_sha256": config_sha256(config),
            "release_key": release[0], "release_signature": release[1], "audit_head": audit.head()}


def note_config_change(config: LoadedConfig, store: Any, audit: AuditLog) -> bool:
    """Audit ``config_change`` when the config's sha256 differs from the store's last run's;
    True if it did."""
    previous = store.last_config_sha256()
    current = config_sha256(config)
    if previous is None or previous == current:
        return False
    audit.append("config_change", station=config.config.station_id, config=str(config.path),
                 previous=previous, current=current, mode=config.config.mode)
    return True
