"""Driver map files (register maps, signal maps, the DID table): YAML as plain data with the
``line:col`` of every node, and a cache of what a file parsed into, keyed on the file itself.

Parsing goes through the station's libyaml reader (drivers/base/yamlsrc.py: YAML 1.2 core
scalars, ``0x1F`` is 31 and ``on`` a string, no tags, every duplicate key reported), except that
integer, float and boolean keys stay what they are: maps key DIDs (``0xF190:``), security
levels and status bits (``0: OK``) by number, where plans and configs turn keys into strings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache, wraps
from pathlib import Path
from typing import Any, TypeVar

import yaml
from yaml.error import MarkedYAMLError, YAMLError
from yaml.nodes import MappingNode, ScalarNode

from drivers.base import safefile, yamlsrc
from drivers.base.diagnostics import Problem

T = TypeVar("T")


@dataclass
class MapDoc:
    """A parsed map file: ``data`` (plain dicts, lists, scalars) and where each node was written.

    Positions are 1-based ``(line, col)``. ``problems`` (``PATH:LINE:COL: message``) are YAML
    problems; when there are any, ``data`` is not to be trusted.
    """

    path: str
    data: Any = None
    problems: list[str] = field(default_factory=list)
    src: yamlsrc.Source | None = None
    _locs: dict[int, yamlsrc.Loc] = field(default_factory=dict)  # id(dict or list) -> its path of keys

    def key(self, node: Any, key: Any) -> tuple[int, int] | None:
        """Where ``key`` of mapping ``node`` was written, or None."""
        loc = self._locs.get(id(node))
        return None if loc is None or self.src is None else self.src.key_pos.get(loc + (key,))

    def value(self, node: Any, key: Any) -> tuple[int, int] | None:
        """Where the value of ``node[key]`` (a mapping key or a list index) starts, or None."""
        loc = self._locs.get(id(node))
        return None if loc is None or self.src is None else self.src.value_pos.get(loc + (key,))

    def at(self, node: Any) -> tuple[int, int] | None:
        """Where mapping or list ``node`` starts, or None (a scalar, or not from this file)."""
        loc = self._locs.get(id(node))
        return None if loc is None or self.src is None else self.src.value_pos.get(loc)

    def pos(self, node: Any, key: Any = None, *, value: bool = False) -> tuple[int, int]:
        """``key`` of ``node`` (its value if ``value``), else ``node`` itself, else ``(1, 1)``."""
        found = self.value(node, key) if value else self.key(node, key)
        return found or self.at(node) or (1, 1)


class _Builder(yamlsrc._Builder):
    """yamlsrc's builder with non-string scalar keys kept as they are (ruamel kept them too)."""

    def mapping(self, node: MappingNode, loc: yamlsrc.Loc, depth: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.fail(key_node, "merge keys ('<<') are not supported; write the keys out")
                continue
            if not isinstance(key_node, ScalarNode):
                self.fail(key_node, "a mapping key must be a plain scalar")
                continue
            key = self.scalar(key_node)
            if key is None or not isinstance(key, (str, int, float)):
                self.fail(key_node, f"invalid key {key!r}")
                continue
            if key in out:
                first = self.src.key_pos.get(loc + (key,), (0, 0))
                self.fail(key_node, f"duplicate key '{key_node.value}' (first defined at line {first[0]})")
                continue
            self.src.key_pos[loc + (key,)] = yamlsrc._mark(key_node)
            out[key] = self.build(value_node, loc + (key,), depth + 1)
        return out


def parse(text: str, path: str) -> MapDoc:
    """YAML ``text`` of map file ``path``; an empty document gives ``data`` None, no problem."""
    doc = MapDoc(path)
    src = doc.src = yamlsrc.Source(path, lines=text.splitlines())
    if len(text) > yamlsrc.MAX_BYTES:
        doc.problems.append(f"{path}:1:1: file larger than {yamlsrc.MAX_BYTES} bytes")
        return doc
    try:
        root = yaml.compose(text, Loader=yamlsrc._Loader)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        doc.problems.append(f"{where}: {exc.problem or exc.context}")
        return doc
    except (YAMLError, RecursionError, ValueError) as exc:
        doc.problems.append(f"{path}:1:1: YAML: {str(exc).splitlines()[0][:200]}")
        return doc
    if root is None:
        return doc
    try:
        doc.data = _Builder(src).build(root, (), 0)
    except yamlsrc._TooBig as exc:
        line, col = yamlsrc._mark(exc.node)
        src.problems.append(Problem(path, line, col, str(exc)))
    except RecursionError:
        src.problems.append(Problem(path, 1, 1, "nesting too deep"))
    doc.problems += [str(p) for p in src.problems]
    _index(doc._locs, doc.data, ())
    return doc


def _index(locs: dict[int, yamlsrc.Loc], node: Any, loc: yamlsrc.Loc) -> None:
    if isinstance(node, dict):
        locs[id(node)] = loc
        for key, item in node.items():
            _index(locs, item, loc + (key,))
    elif isinstance(node, list):
        locs[id(node)] = loc
        for i, item in enumerate(node):
            _index(locs, item, loc + (i,))


def read(path: str | Path, display: str | None = None) -> MapDoc:
    """Parse a UTF-8 map file (``display`` names it in problems); ``OSError`` if unreadable."""
    name = display or str(path)
    raw = safefile.read_bytes(path)  # bounded, regular files only (UnsafeFile is an OSError)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return MapDoc(name, problems=[f"{name}:{line}:{col}: not valid UTF-8 (byte 0x{raw[exc.start]:02x})"])
    return parse(text, name)


def file_key(path: str | Path) -> tuple[str, int, int, int]:
    """What identifies a file's content for the cache: resolved path, mtime (ns), size, inode.
    ``OSError`` if it cannot be stat'ed."""
    st = Path(path).stat()
    return str(Path(path).resolve()), st.st_mtime_ns, st.st_size, st.st_ino


def cached_per_file(load: Callable[..., T], maxsize: int = 32) -> Callable[..., T]:
    """``load(path, *args)``, remembered per (``file_key(path)``, ``path``, ``args``).

    For loaders whose result is immutable or treated so. The file is stat'ed on every call, so an
    edited file is loaded again; only a rewrite keeping size, inode and mtime (within the file
    system's timestamp resolution) would go unseen. Failures are not cached.
    """
    @lru_cache(maxsize=maxsize)
    def by_key(_key: tuple[object, ...], path: Any, *args: Any) -> T:
        return load(path, *args)

    @wraps(load)
    def call(path: Any, *args: Any) -> T:
        return by_key(file_key(path), path, *args)

    call.cache_clear = by_key.cache_clear  # type: ignore[attr-defined]
    return call
