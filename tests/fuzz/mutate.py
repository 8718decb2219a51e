"""Hypothesis strategies that break valid YAML documents the way people (and disks) do."""

from __future__ import annotations

from hypothesis import strategies as st

NASTY_VALUES = [
    "1e999", "-1e999", "9" * 400, "0x" + "f" * 80, ".nan", ".inf", "-.inf", "null", "~", "[]", "{}", "''",
    "true", "on", "NO", "0755", "1_000_000", "12:30:45", "2026-13-45", "&a x", "*a", "*nope", "!!str 5",
    "!!python/object:os.system x", "!custom x", "<<: *a", "? complex", "|", ">-", "- - -", "[[[[[[", "{a: {b: {c:",
    '"${1/0}"', '"${9 ** 99999}"', '"${__import__(\'os\')}"', '"${x.__class__}"', '"${" + "("*300 + "1" + ")"*300 + "}"',
    '"${undefined_name}"', '"5 parsecs"', '"-0 V"', '"1e308 V"', '"1e-320 s"', '"\\u0000"', "'\\x00'",
    "\t", "\u00a0", "\ufeff", "\u202e", "é", "\U0001f50b", "%YAML 1.1", "---", "...",
]
KEYS = ["id", "action", "with", "expect", "min", "max", "steps", "main", "setup", "teardown", "finally", "retry",
        "when", "for_each", "do", "include", "variants", "parameters", "value", "unit", "monitors", "catches",
        "requires", "instruments", "schema_version", "kind", "__class__", "<<", "fixture.clamp", "dmm.voltage"]


@st.composite
def mutated(draw, text: str) -> str:
    """``text`` with 1–4 line-level mutations: delete, duplicate, swap, re-indent, replace a value
    or a key, insert junk, truncate."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            lines = [""]
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        op = draw(st.sampled_from(["delete", "dup", "swap", "indent", "value", "key", "junk", "truncate", "type"]))
        if op == "delete":
            del lines[i]
        elif op == "dup":
            lines.insert(i, line)
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "indent":
            shift = draw(st.sampled_from(["", " ", "  ", "   ", "\t", "        "]))
            lines[i] = shift + line.lstrip() if draw(st.booleans()) else shift + line
        elif op == "value" and ":" in line:
            head = line[: line.index(":") + 1]
            lines[i] = head + " " + draw(st.sampled_from(NASTY_VALUES) | st.text(max_size=20))
        elif op == "key" and ":" in line:
            indent = line[: len(line) - len(line.lstrip())]
            key = draw(st.sampled_from(KEYS) | st.from_regex(r"[a-z_.]{1,12}", fullmatch=True))
            lines[i] = indent + key + line[line.index(":"):]
        elif op == "type" and ":" in line:  # scalar <-> list <-> mapping
            head, _, rest = line.partition(":")
            rest = rest.strip()
            lines[i] = head + ": " + draw(st.sampled_from([f"[{rest}]", f"{{x: {rest}}}", f"- {rest}", "", "[" + rest]))
        elif op == "junk":
            at = draw(st.integers(0, len(line)))
            lines[i] = line[:at] + draw(st.text(min_size=1, max_size=8)) + line[at:]
        else:  # truncate here
            at = draw(st.integers(0, len(line)))
            lines = lines[:i] + [line[:at]]
    return "\n".join(lines) + ("\n" if draw(st.booleans()) else "")


def yaml_like() -> st.SearchStrategy[str]:
    """Random YAML-ish text: nested structures of nasty scalars rendered in flow or block style."""
    scalar = st.sampled_from(NASTY_VALUES) | st.text(max_size=12) | st.integers().map(str) | st.floats().map(repr)
    key = st.sampled_from(KEYS) | st.text(min_size=1, max_size=8)

    def render(tree) -> str:
        if isinstance(tree, dict):
            return "{" + ", ".join(f"{k!s}: {render(v)}" for k, v in tree.items()) + "}"
        if isinstance(tree, list):
            return "[" + ", ".join(render(v) for v in tree) + "]"
        return str(tree)

    tree = st.recursive(scalar, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(key, kids, max_size=4),
                        max_leaves=20)
    block = st.lists(st.tuples(st.integers(0, 6), key, scalar), max_size=12).map(
        lambda rows: "\n".join(" " * ind + f"{k}: {v}" for ind, k, v in rows))
    return st.one_of(tree.map(render), block, st.text(max_size=200))
