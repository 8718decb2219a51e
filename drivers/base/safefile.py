"""Reading a user-named file safely: plans, libraries, configs, map files, pack files.

A path typed by a user or written in a plan may name anything: a FIFO (``open`` blocks for
ever), ``/dev/zero`` (endless bytes), a 1 GB log, a symlink loop, a file outside the folder a
plan may include from. Every refusal is an ``UnsafeFile`` with a message that names the path
and the reason and never quotes the file's content. The read itself is bounded: the size is
checked with ``fstat`` on the opened descriptor (the object actually read, not a name that
could be swapped after a check), and at most ``max_bytes + 1`` bytes are ever read.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

DEFAULT_MAX_BYTES = 5_000_000


class UnsafeFile(OSError):
    """A file refused before (or while) reading it: ``message`` says why, without its content."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return self.message


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> Path:
    """``path`` resolved (symlinks followed) if it stays inside ``root``; else ``UnsafeFile``.

    ``path`` relative to ``root``; an absolute path is refused outright (a plan must not name
    files by where they happen to be on this machine).
    """
    text = os.fspath(path)
    if os.path.isabs(text) or text.startswith("~"):
        raise UnsafeFile(text, f"absolute path '{text}' refused: name files relative to the plan's folder")
    base = Path(root)
    try:
        real_root = base.resolve(strict=True)
        real = (base / text).resolve(strict=False)
    except RuntimeError:  # Python < 3.13 raises this for symlink loops when strict=False
        raise UnsafeFile(text, f"'{text}': symbolic link loop") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UnsafeFile(text, f"'{text}': symbolic link loop") from None
        raise UnsafeFile(text, f"'{text}': {err.strerror or err}") from None
    if real != real_root and real_root not in real.parents:
        lexical = Path(os.path.normpath(base.absolute() / text))
        by_link = lexical == base.absolute() or base.absolute() in lexical.parents
        link = " through a symbolic link" if by_link else ""
        raise UnsafeFile(text, f"'{text}' leads outside the plan's folder {real_root}{link}: refused")
    return real


def read_bytes(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; ``UnsafeFile`` otherwise.

    Never blocks on a FIFO (opened non-blocking, then refused by ``fstat``), never reads more
    than ``max_bytes + 1`` bytes (a file growing while read is refused too).
    """
    name = os.fspath(path)
    check_readable(name, max_bytes=max_bytes)  # follows links; a FIFO is not opened yet, so nothing blocks
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(name, flags)
    except OSError as err:
        raise _refusal(name, err) from None
    try:
        _check_stat(name, os.fstat(fd), max_bytes)  # the object opened: a name swapped after the check
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise UnsafeFile(name, f"'{name}' grew past the {max_bytes} bytes allowed while read: not read")
        return b"".join(chunks)
    except OSError as err:
        if isinstance(err, UnsafeFile):
            raise
        raise UnsafeFile(name, f"cannot read '{name}': {err.strerror or err}") from None
    finally:
        os.close(fd)


def check_readable(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Refuse (``UnsafeFile``) what ``read_bytes`` would refuse, without reading the content."""
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except OSError as err:
        raise _refusal(name, err) from None
    _check_stat(name, st, max_bytes)


def _refusal(name: str, err: OSError) -> UnsafeFile:
    if err.errno == errno.ELOOP:
        return UnsafeFile(name, f"'{name}': symbolic link loop")
    return UnsafeFile(name, f"cannot read '{name}': {err.strerror or err}")


def _check_stat(name: str, st: os.stat_result, max_bytes: int) -> None:
    """A regular file of at most ``max_bytes``, or ``UnsafeFile``."""
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(name, f"'{name}' is {_kind(st.st_mode)}, not a regular file: refused")
    if st.st_size > max_bytes:
        raise UnsafeFile(name, f"'{name}' is {st.st_size} bytes, larger than the {max_bytes} allowed: not read")
