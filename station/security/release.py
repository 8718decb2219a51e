"""Release a plan for a station: record its digest under ``released:`` in the station config.

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

from station.config import LoadedConfig, load_config
from drivers.base.diagnostics import InputError, Problem
from station.security.audit import AuditLog, audit_path
from station.security.roles import may_release


def _check_plan(config: LoadedConfig, plan_path: Path) -> str:
    """Load and bind every variant against the station's roles; return the release digest
    (``BoundPlan.release_sha256``: the file's sha256, with its included libraries' if any)."""
    from station.plan.bind import bind_plan
    from station.plan.loader import load_plan

    loaded = load_plan(plan_path)
    if loaded.plan.kind == "library":
        raise InputError([Problem(str(plan_path), 1, 1, "a library is released with the plans that include it")])
    roles = set().union(*(config.roles(f) for f in config.fixture_ids()))
    digests = {bind_plan(loaded, variant, roles).release_sha256 for variant in list(loaded.plan.variants) or [None]}
    if len(digests) != 1:  # includes are not variant-dependent today; refuse rather than guess
        raise InputError([Problem(str(plan_path), 1, 1, "its variants include different libraries: release each as its own plan")])
    return digests.pop()


def plan_release_digest(plan_path: str | Path) -> str:
    """The release digest of a plan file as it is now (loaded and bound, no station roles).
    Raises ``InputError`` if it does not load or bind."""
    from station.plan.bind import bind_plan
    from station.plan.loader import load_plan

    return bind_plan(load_plan(plan_path)).release_sha256


def _key_for(config: LoadedConfig, plan_path: Path) -> str:
    """The existing ``released:`` key naming this file, else its path relative to the config."""
    target = plan_path.resolve()
    for key in config.config.released:
        if config.resolve_path(key).resolve() == target:
            return key
    return Path(os.path.relpath(target, config.base.resolve())).as_posix()


def release_plan(config_path: str | Path, plan_path: str | Path, operator: str, *,
                 audit: AuditLog | None = None) -> str:
    """Record ``plan_path``'s sha256 as released in ``config_path``; return the hex digest.

    Raises ``InputError`` if the config or plan does not load, the operator is not an admin,
    or the edited config would not load. ``audit`` defaults to the station's audit log.
    """
    config_path, plan_path = Path(config_path), Path(plan_path)
    config = load_config(config_path)
    op = may_release(config, operator)
    digest = _check_plan(config, plan_path)
    key = _key_for(config, plan_path)
    previous = config.config.released.get(key)

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
    released[key] = digest
    tmp = config_path.with_name(f".{config_path.name}.release-tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        editor.dump(doc, fh)
    try:
        load_config(tmp)  # the edited file must still be a valid config
        os.replace(tmp, config_path)
    finally:
        tmp.unlink(missing_ok=True)
    (audit or AuditLog(audit_path(config))).append(
        "release", operator=op.id, station=config.config.station_id, config=str(config_path),
        plan=key, sha256=digest, previous=previous)
    return digest
