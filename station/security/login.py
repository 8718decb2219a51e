"""Authentication on the command line: where a PIN comes from, and the token a run needs.

The PIN is taken, in order, from ``--pin-file FILE`` (its first line), the ``STATION_PIN``
environment variable, or a no-echo prompt when stdin is a terminal. It is asked only when the
operator needs a credential (``users.needs_credential``: always in production).
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from drivers.base.diagnostics import InputError, Problem
from station.config import LoadedConfig
from station.security.audit import AuditLog
from station.security.users import Authenticated, AuthError, authenticate, needs_credential, user_file

PIN_ENV = "STATION_PIN"


def read_pin(pin_file: str | None, operator: str) -> str | None:
    """The PIN from the file, the environment or the terminal; None when there is none."""
    if pin_file:
        try:
            lines = Path(pin_file).read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise InputError([Problem(pin_file, 1, 1, f"cannot read the PIN file: {err.strerror}")]) from None
        return lines[0].strip() if lines else ""
    if os.environ.get(PIN_ENV):
        return os.environ[PIN_ENV].strip()
    if sys.stdin.isatty():
        return getpass.getpass(f"PIN for {operator}: ")
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
        raise InputError([Problem(str(config.path), 1, 1, str(err))]) from None
