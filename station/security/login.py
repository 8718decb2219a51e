"""Authentication on the command line: where a PIN comes from, and the token a run needs.

The PIN is taken, in order, from ``--pin-file FILE`` (its first line; ``-``: the first line
of stdin), the ``STATION_PIN`` environment variable, or a no-echo prompt when stdin is a
terminal; ``station users set`` also reads it piped in (``stdin=True``). It is asked only when
the operator needs a credential (``users.needs_credential``: always in production).
"""

from __future__ import annotations

import getpass
import os
import sys

from drivers.base import safefile
from drivers.base.diagnostics import InputError, Problem
from station.config import LoadedConfig
from station.security.audit import AuditLog
from station.security.users import Authenticated, AuthError, authenticate, needs_credential, user_file

PIN_ENV = "STATION_PIN"
PIN_FILE_MAX_BYTES = 4096  # a PIN or badge code on its first line; anything bigger is not one


# How to give a PIN, for the messages that say one is missing.
HOW = ("put it on the first line of a file and give --pin-file FILE (--pin-file - reads it from stdin), "
       f"or set {PIN_ENV}, or run in a terminal to be asked")


def read_pin(pin_file: str | None, operator: str, *, stdin: bool = False) -> str | None:
    """The PIN from the file (``-``: stdin), the environment or the terminal, or with ``stdin``
    piped in; None when there is none."""
    if pin_file == "-":
        return sys.stdin.readline().strip()
    if pin_file:
        try:  # a FIFO, device or directory is refused, never waited on or read whole
            raw = safefile.read_bytes(pin_file, max_bytes=PIN_FILE_MAX_BYTES)
        except safefile.UnsafeFile as err:
            raise InputError([Problem(pin_file, 1, 1, f"PIN file refused: {err.message}")]) from None
        try:
            lines = raw.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise InputError([Problem(pin_file, 1, 1, "the PIN file is not UTF-8 text")]) from None
        return lines[0].strip() if lines else ""
    if os.environ.get(PIN_ENV):
        return os.environ[PIN_ENV].strip()
    if sys.stdin.isatty():
        return getpass.getpass(f"PIN for {operator}: ")
    if stdin:
        return sys.stdin.readline().strip()
    return None


def cli_authenticate(config: LoadedConfig, audit: AuditLog, operator: str, pin_file: str | None) -> Authenticated | None:
    """The token for ``operator`` (None without an operator id); ``InputError`` (exit 2) when
    authentication fails. Failures are audited by ``authenticate``."""
    from station.security.roles import find_operator

    operator = operator.strip()
    if not operator:
        return None
    try:
        op = find_operator(config, operator)
    except InputError:
        op = None
    production = config.config.mode == "production"
    if not production and (op is None or not needs_credential(config, user_file(config), op)):
        return None  # development: the run's own role check names an unknown id
    pin = read_pin(pin_file, operator) if op is not None else None
    try:
        return authenticate(config, audit, operator, pin=pin, where="cli")
    except AuthError as err:
        raise InputError([Problem(str(config.path), 1, 1, _explained(config, op, pin, err))]) from None


def _explained(config: LoadedConfig, op, pin: str | None, err: AuthError) -> str:
    """The refusal in words: what is missing and how to give it, when that is all it is (nothing
    secret: the caller gave no PIN, or the station has no user file); else ``err`` as it is, which
    never says whether the id or the PIN was wrong."""
    if op is None or str(err) != f"authentication failed for '{op.id}'":
        return str(err)  # an unknown id, or a lockout
    if user_file(config) is None:
        return (f"authentication failed for '{op.id}': the station config names no users_file: (the station's "
                "user file of hashed PINs; `station users set ID --station FILE` fills it)")
    if not pin:
        return f"'{op.id}' needs a PIN on this station ({config.config.mode} mode) and none was given: {HOW}"
    return str(err)
