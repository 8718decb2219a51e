"""Release a plan for a station: record its signed digest under ``released:`` in the station config.

A release is an Ed25519 signature (``signing.py``) by the releasing admin's private key over the
plan's release digest (``manifest.py``: plan, included libraries, profile files), recorded as
``{sha256, key, signature, by, files}``. The key's public half must already be trusted by the
station and belong to that admin. Without ``key`` the bare digest is recorded (development
only: production runs refuse it). Every refusal is audited.

The digest is the plan file's sha256, or, for a plan that includes libraries, the sha256 of
a manifest of the plan's and every included file's sha256 (``BoundPlan.release_sha256``):
editing an included library un-releases every plan that includes it.

The config file is edited with ruamel.yaml's round-trip mode so comments, order and flow
style survive; the result is written to a temporary file, re-validated, then moved into place,
so a failed release leaves the config as it was. Only admins release, and only a plan that
loads and binds to this station for every variant. The release is appended to the audit log.
"""

from __future__ import annotations

import os
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from drivers.base.diagnostics import InputError, Problem
from station.config import LoadedConfig, load_config
from station.security.audit import AuditLog, audit_path
from station.security.roles import may_release


def _check_plan(config: LoadedConfig, plan_path: Path) -> tuple[str, dict[str, str]]:
    """Load and bind every variant against the station's roles; return the release digest
    (``manifest.release_digest``) and the manifest of files it covers."""
    from station.plan.bind import bind_plan
    from station.plan.loader import load_plan
    from station.security.manifest import manifest, release_digest

    loaded = load_plan(plan_path)
    if loaded.plan.kind == "library":
        raise InputError([Problem(str(plan_path), 1, 1, "a library is released with the plans that include it")])
    roles = set().union(*(config.roles(f) for f in config.fixture_ids()))
    bounds = [bind_plan(loaded, variant, roles) for variant in list(loaded.plan.variants) or [None]]
    digests = {release_digest(config, b) for b in bounds}
    if len(digests) != 1:  # includes are not variant-dependent today; refuse rather than guess
        raise InputError([Problem(str(plan_path), 1, 1, "its variants include different libraries: release each as its own plan")])
    return digests.pop(), manifest(config, bounds[0])


def plan_release_digest(plan_path: str | Path, config: LoadedConfig | None = None) -> str:
    """The release digest of a plan file as it is now (loaded and bound, no station roles),
    with ``config`` the station's profile files too. Raises ``InputError`` if it does not load
    or bind."""
    from station.plan.bind import bind_plan
    from station.plan.loader import load_plan
    from station.security.manifest import release_digest

    bound = bind_plan(load_plan(plan_path))
    return release_digest(config, bound) if config is not None else bound.release_sha256


def _key_for(config: LoadedConfig, plan_path: Path) -> str:
    """The existing ``released:`` key naming this file, else its path relative to the config."""
    target = plan_path.resolve()
    for key in config.config.released:
        if config.resolve_path(key).resolve() == target:
            return key
    return Path(os.path.relpath(target, config.base.resolve())).as_posix()


def _signer(config: LoadedConfig, key_file: str | Path, operator: str) -> tuple[object, str]:
    """The private key and the id of the trusted key it matches, which must be ``operator``'s."""
    from station.security.signing import load_private_key, public_text, trusted_keys

    private = load_private_key(key_file)
    text = public_text(private.public_key())
    for trusted in trusted_keys(config).values():
        if trusted.text == text:
            if trusted.owner != operator:
                raise ValueError(f"key '{trusted.id}' belongs to '{trusted.owner}', not '{operator}'")
            return private, trusted.id
    raise ValueError(f"this key ({text[:20]}…) is not among station {config.config.station_id}'s trusted keys")


def release_plan(config_path: str | Path, plan_path: str | Path, operator: str, *,
                 key: str | Path | None = None, auth: object = None, audit: AuditLog | None = None) -> str:
    """Record ``plan_path``'s release digest in ``config_path``, signed with the private key in
    ``key`` (a PEM file); return the hex digest.

    Raises ``InputError`` (audited as a ``refusal``) if the config or plan does not load, the
    operator is not an admin, is not authenticated in production (``auth``: an
    ``Authenticated``), the key is not the operator's trusted key, production gets no key, or
    the edited config would not load. ``audit`` defaults to the station's audit log.
    """
    from station.security.provenance import check_authenticated, refuse

    config_path, plan_path = Path(config_path), Path(plan_path)
    config = load_config(config_path)
    audit = audit or AuditLog(audit_path(config))
    who = {"station": config.config.station_id, "plan": str(plan_path), "config_file": str(config_path)}
    try:
        op = may_release(config, operator)
    except InputError as err:
        raise refuse(audit, "role denied", config_path, err.problems[0].message, operator=operator.strip(),
                     action="release", **who) from None
    check_authenticated(config, auth, audit, operator=op.id, action="release", **who)
    digest, files = _check_plan(config, plan_path)
    plan_key = _key_for(config, plan_path)  # the released: entry's name
    key_id = signature = None
    if key is not None:
        from station.security.signing import sign

        try:
            private, key_id = _signer(config, key, op.id)
        except ValueError as err:
            raise refuse(audit, "release refused", key, str(err), operator=op.id, **who) from None
        signature = sign(private, config.config.station_id, plan_key, digest)  # type: ignore[arg-type]
    elif config.config.mode == "production":
        raise refuse(audit, "release refused", config_path, "production mode: a release must be signed (--key FILE)",
                     operator=op.id, **who)
    previous = config.config.released.get(plan_key)
    if previous is not None and not isinstance(previous, str):
        previous = previous.sha256

    # Round-trip editing keeps the file's comments; the file already passed load_config above,
    # whose loader refuses any YAML tag, so this parser only ever sees plain data.
    editor = YAML(typ="rt")
    editor.preserve_quotes = True
    editor.width = 4096  # never re-wrap the user's long lines
    original = config_path.read_text(encoding="utf-8")
    doc = editor.load(original)
    released = doc.get("released")
    if not isinstance(released, dict):
        released = CommentedMap()
        doc["released"] = released
    if signature is None:
        released[plan_key] = digest
    else:
        entry = CommentedMap(sha256=digest, key=key_id, signature=signature, by=op.id)
        entry["files"] = CommentedMap(sorted(files.items()))
        released[plan_key] = entry
    tmp = config_path.with_name(f".{config_path.name}.release-tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        editor.dump(doc, fh)
    try:
        load_config(tmp)  # the edited file must still be a valid config
        os.replace(tmp, config_path)
    finally:
        tmp.unlink(missing_ok=True)
    audit.append("release", operator=op.id, station=config.config.station_id, config=str(config_path),
                 plan=plan_key, sha256=digest, previous=previous, key=key_id, signature=signature)
    return digest
