"""Telling a live writer from a dead one, so an unfinished run can be shown as interrupted.

Each open ``ResultStore`` holds an exclusive ``flock`` on its own lock file
``<db>-writers/<token>.lock`` and stamps its token on the runs it starts. The kernel drops
the lock when the process dies (crash, kill -9, power loss), so "running" with a lock nobody
holds means the run was interrupted. This works for several stations sharing one store and
for several stores in one process (flock locks belong to the open file, not the process).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


def writers_dir(db_path: Path) -> Path:
    """Directory holding the writer lock files of a store."""
    return db_path.with_name(db_path.name + "-writers")


class WriterLock:
    """The lock a writing store holds while it is open."""

    def __init__(self, db_path: Path) -> None:
        self.token = uuid.uuid4().hex
        self._path = writers_dir(db_path) / f"{self.token}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()
        os.close(self._fd)
        self._fd = None


@contextlib.contextmanager
def setup_lock(db_path: Path) -> Iterator[None]:
    """Hold the store's set-up lock (blocking) while a writer switches the file to WAL and
    migrates it. SQLite answers "database is locked" at once, without waiting out its busy
    timeout, when two processes switch a new file to WAL together (seen with four proof
    workers opening one fresh store); holders only do that switch, so the wait is short."""
    directory = writers_dir(db_path)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "setup.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the file drops the flock


def writer_alive(db_path: Path, token: str | None) -> bool:
    """True if the store that stamped ``token`` still holds its lock."""
    if not token or not token.isalnum():
        return False
    path = writers_dir(db_path) / f"{token}.lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:  # shared: two probes never mistake each other for the writer
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops our probe lock if we got it
    return False


def reap(db_path: Path, tokens: set[str]) -> None:
    """Delete the lock files of dead writers (best effort: a stale file is harmless)."""
    for token in tokens:
        if token and token.isalnum() and not writer_alive(db_path, token):
            with contextlib.suppress(OSError):
                (writers_dir(db_path) / f"{token}.lock").unlink()
