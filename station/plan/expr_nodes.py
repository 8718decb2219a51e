"""The nodes of a parsed expression; evaluation walks them (``Node.ev``).

Only names from the given mapping, public attributes that are not methods, subscripts and the
parser-resolved functions are reachable; every failure is an ``ExprError`` at the node.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from station.plan.expr_errors import ExprError, err, suggest
from station.plan.expr_ops import arith, as_number, bounded, compare, short, truth, type_name
from station.plan.units import Quantity


class Node:
    """A parsed expression node; ``pos`` is its 0-based offset, ``depth`` its tree height."""

    __slots__ = ("pos", "depth")

    def __init__(self, pos: int, *children: Node) -> None:
        self.pos = pos
        self.depth = 1 + max((c.depth for c in children), default=0)

    def ev(self, names: Mapping[str, Any]) -> Any:  # pragma: no cover - every node overrides
        raise NotImplementedError


class Const(Node):
    __slots__ = ("value",)

    def __init__(self, pos: int, value: Any) -> None:
        super().__init__(pos)
        self.value = value

    def ev(self, names):
        return self.value


class Name(Node):
    __slots__ = ("name",)

    def __init__(self, pos: int, name: str) -> None:
        super().__init__(pos)
        self.name = name

    def ev(self, names):
        try:
            return names[self.name]
        except KeyError:
            raise err(f"unknown name '{self.name}'{suggest(self.name, names)}", self.pos) from None


class Attr(Node):
    __slots__ = ("obj", "attr")

    def __init__(self, pos: int, obj: Node, attr: str) -> None:
        super().__init__(pos, obj)
        self.obj, self.attr = obj, attr

    def ev(self, names):
        obj = self.obj.ev(names)
        if isinstance(obj, Mapping):
            try:
                return obj[self.attr]
            except KeyError:
                raise err(f"no field '{self.attr}'{suggest(self.attr, obj)}", self.pos) from None
        try:
            value = getattr(obj, self.attr)
        except AttributeError:
            public = [a for a in dir(obj) if not a.startswith("_")]
            raise err(f"{type_name(obj)} has no attribute '{self.attr}'{suggest(self.attr, public)}",
                      self.pos) from None
        except Exception as e:
            raise err(f"reading attribute '{self.attr}' failed: {e}", self.pos) from e
        if callable(value):
            raise err(f"attribute '{self.attr}' is a method, not a value", self.pos)
        return value


class Index(Node):
    __slots__ = ("obj", "index")

    def __init__(self, pos: int, obj: Node, index: Node) -> None:
        super().__init__(pos, obj, index)
        self.obj, self.index = obj, index

    def ev(self, names):
        obj, key = self.obj.ev(names), self.index.ev(names)
        if isinstance(obj, Mapping):
            try:
                return obj[key]
            except (KeyError, TypeError):
                raise err(f"no key {short(key)}{suggest(short(key), obj)}", self.pos) from None
        if not isinstance(obj, Sequence):
            raise err(f"cannot index a {type_name(obj)}", self.pos)
        n = as_number(key)
        if n is None or (isinstance(n, float) and not n.is_integer()):
            raise err(f"index must be a whole number, not {short(key)}", self.pos)
        try:
            return obj[int(n)]
        except IndexError:
            raise err(f"index {int(n)} out of range (length {len(obj)})", self.pos) from None


class Call(Node):
    __slots__ = ("name", "func", "args")

    def __init__(self, pos: int, name: str, func: Callable, args: list[Node]) -> None:
        super().__init__(pos, *args)
        self.name, self.func, self.args = name, func, args

    def ev(self, names):
        args = [a.ev(names) for a in self.args]
        try:
            result = self.func(*args)
        except ExprError:
            raise
        except Exception as e:
            raise err(f"{self.name}(): {str(e) or type(e).__name__}", self.pos) from e
        return bounded(result, self.pos)


class Unary(Node):
    __slots__ = ("op", "operand")

    def __init__(self, pos: int, op: str, operand: Node) -> None:
        super().__init__(pos, operand)
        self.op, self.operand = op, operand

    def ev(self, names):
        x = self.operand.ev(names)
        if self.op == "not":
            return not truth(x, self.pos)
        if as_number(x) is None and not isinstance(x, Quantity):
            raise err(f"cannot apply unary '{self.op}' to {type_name(x)}", self.pos)
        return -x if self.op == "-" else +x


class Binary(Node):
    __slots__ = ("op", "left", "right")

    def __init__(self, pos: int, op: str, left: Node, right: Node) -> None:
        super().__init__(pos, left, right)
        self.op, self.left, self.right = op, left, right

    def ev(self, names):
        return arith(self.op, self.left.ev(names), self.right.ev(names), self.pos)


class Logic(Node):
    """``and`` / ``or`` with short-circuit; the result is the deciding operand, as in Python."""

    __slots__ = ("op", "left", "right")

    def __init__(self, pos: int, op: str, left: Node, right: Node) -> None:
        super().__init__(pos, left, right)
        self.op, self.left, self.right = op, left, right

    def ev(self, names):
        a = self.left.ev(names)
        if truth(a, self.pos) == (self.op == "or"):
            return a
        return self.right.ev(names)


class Compare(Node):
    """A comparison chain: ``a < b <= c`` is ``a < b and b <= c`` with ``b`` evaluated once."""

    __slots__ = ("first", "rest")

    def __init__(self, pos: int, first: Node, rest: list[tuple[str, int, Node]]) -> None:
        super().__init__(pos, first, *(n for _, _, n in rest))
        self.first, self.rest = first, rest

    def ev(self, names):
        a = self.first.ev(names)
        for op, pos, node in self.rest:
            b = node.ev(names)
            if not compare(op, a, b, pos):
                return False
            a = b
        return True


class IfElse(Node):
    __slots__ = ("body", "test", "orelse")

    def __init__(self, pos: int, body: Node, test: Node, orelse: Node) -> None:
        super().__init__(pos, body, test, orelse)
        self.body, self.test, self.orelse = body, test, orelse

    def ev(self, names):
        return self.body.ev(names) if truth(self.test.ev(names), self.test.pos) else self.orelse.ev(names)


class ListLit(Node):
    __slots__ = ("items",)

    def __init__(self, pos: int, items: list[Node]) -> None:
        super().__init__(pos, *items)
        self.items = items

    def ev(self, names):
        return [i.ev(names) for i in self.items]
