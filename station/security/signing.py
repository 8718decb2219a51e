"""Ed25519 release signatures: an engineer's private key signs a plan's release digest.

What is signed is a canonical *release statement*, not the bare digest, so a signature cannot be
moved to another plan or another station::

    {"format":"eol-release/1","plan":"<released: key>","sha256":"<release digest>","station":"<station id>"}

(JSON, sorted keys, no spaces, UTF-8). The station keeps only public keys (``trusted_keys:`` in
its config, or ``trusted_keys_file:``); the private key stays with the engineer (a PEM file,
``station keys new``). Whoever can edit the config but holds no trusted private key can change
the digest but cannot make a signature that verifies: the run is refused.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from drivers.base.diagnostics import InputError, Problem
from station.config import LoadedConfig, SignedRelease, TrustedKey

FORMAT = "eol-release/1"
PREFIX = "ed25519:"


class SignatureProblem(Exception):
    """A release that does not verify; the message says why in one sentence."""


def statement(station_id: str, plan_key: str, digest: str) -> bytes:
    """The bytes a release signature covers."""
    body = {"format": FORMAT, "station": station_id, "plan": plan_key, "sha256": digest.lower()}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def public_text(key: Ed25519PublicKey) -> str:
    """``ed25519:<base64>`` of the raw 32-byte public key (what ``trusted_keys`` lists)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public(text: str, where: str) -> Ed25519PublicKey:
    """The public key in ``ed25519:<base64>``; ``InputError`` at ``where`` otherwise."""
    try:
        if not text.startswith(PREFIX):
            raise ValueError(f"it does not start with '{PREFIX}'")
        raw = base64.b64decode(text[len(PREFIX):], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as err:
        raise InputError([Problem(where, 1, 1, f"not an Ed25519 public key ({err})")]) from None


def new_private_key(path: str | Path) -> str:
    """Write a new private key (PEM, PKCS#8, mode 0600; refuses to overwrite); return its
    public key text."""
    path = Path(path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InputError([Problem(str(path), 1, 1, "a key file already exists here; not overwritten")]) from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return public_text(key.public_key())


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PEM file; ``InputError`` naming the file otherwise. A key
    file others may read is refused (as ssh does): a copied key releases anything."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as err:
        raise InputError([Problem(str(path), 1, 1, f"cannot read the private key: {err.strerror}")]) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError([Problem(str(path), 1, 1, f"private key is readable by others (mode {stat.S_IMODE(mode):o}): chmod 600 it")])
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise InputError([Problem(str(path), 1, 1, f"not an unencrypted PEM private key ({err})")]) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError([Problem(str(path), 1, 1, "not an Ed25519 private key")])
    return key


def sign(key: Ed25519PrivateKey, station_id: str, plan_key: str, digest: str) -> str:
    """Base64 Ed25519 signature of the release statement."""
    return base64.b64encode(key.sign(statement(station_id, plan_key, digest))).decode("ascii")


@dataclass(frozen=True)
class Trusted:
    id: str
    owner: str
    key: Ed25519PublicKey
    text: str


def trusted_keys(config: LoadedConfig) -> dict[str, Trusted]:
    """Key id -> trusted public key, from ``trusted_keys:`` and ``trusted_keys_file:``.
    ``InputError`` for a malformed key, a duplicate id, or an unreadable keys file."""
    entries: list[tuple[str, TrustedKey]] = [(str(config.path), k) for k in config.config.trusted_keys]
    if config.config.trusted_keys_file:
        entries += _keys_file(config.resolve_path(config.config.trusted_keys_file))
    out: dict[str, Trusted] = {}
    for where, entry in entries:
        if entry.id in out:
            raise InputError([Problem(where, 1, 1, f"trusted key id '{entry.id}' is listed twice")])
        out[entry.id] = Trusted(entry.id, entry.owner, parse_public(entry.public_key, where), entry.public_key)
    return out


def _keys_file(path: Path) -> list[tuple[str, TrustedKey]]:
    """A keys file: a YAML list of ``{id, owner, public_key}`` (read with the data-only loader)."""
    from pydantic import ValidationError

    from drivers.base.yamlsrc import load_file

    if not path.is_file():
        raise InputError([Problem(str(path), 1, 1, "trusted keys file not found")])
    src = load_file(path)
    if src.problems:
        raise InputError(src.problems)
    if not isinstance(src.data, list):
        raise InputError([src.problem((), "a trusted keys file is a list of {id, owner, public_key}")])
    out = []
    for i, item in enumerate(src.data):
        try:
            out.append((str(path), TrustedKey.model_validate(item)))
        except ValidationError as err:
            raise InputError([src.problem((i,), f"not a trusted key: {err.errors()[0]['msg']}")]) from None
    return out


def verify(config: LoadedConfig, plan_key: str, release: SignedRelease, digest: str) -> Trusted:
    """Check a signed release against the station's trusted keys and the content's digest now.
    Returns the key that signed it; ``SignatureProblem`` says why not."""
    keys = trusted_keys(config)
    if release.sha256.lower() != digest.lower():
        raise SignatureProblem(f"content differs from its release (sha256 {digest[:12]}… ≠ released {release.sha256[:12]}…)")
    trusted = keys.get(release.key)
    if trusted is None:
        raise SignatureProblem(f"signed by key '{release.key}', which this station does not trust")
    try:
        raw = base64.b64decode(release.signature, validate=True)
        trusted.key.verify(raw, statement(config.config.station_id, plan_key, release.sha256))
    except (ValueError, InvalidSignature):
        raise SignatureProblem(f"the signature by key '{release.key}' does not match the release "
                               f"(digest, plan or station edited after signing)") from None
    return trusted
