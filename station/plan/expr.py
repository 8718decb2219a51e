"""The restricted expression language of ``${...}`` in plans: parse once, evaluate safely.

No eval/exec/compile and no ``ast``: a tokenizer and a recursive-descent parser build a tree
of our own nodes, and evaluation walks it. Only names from the given mapping, public
attributes, subscripts and whitelisted functions are reachable. Sizes are bounded (text,
nesting, nodes, integers, sequences) and checked before the costly step, so hostile text fails
fast with ``ExprError`` carrying a 1-based column.

Grammar, loosest binding first (Python's precedence):
    cond    := or ['if' or 'else' cond]
    or      := and ('or' and)*           and := not ('and' not)*
    not     := 'not' not | compare
    compare := sum (('<'|'<='|'>'|'>='|'=='|'!='|'in'|'not' 'in') sum)*
    sum     := term (('+'|'-') term)*    term := unary (('*'|'/'|'//'|'%') unary)*
    unary   := ('-'|'+') unary | power   power := postfix ['**' unary]
    postfix := atom ('.' NAME | '[' cond ']')*  |  FUNCTION '(' [cond (',' cond)*] ')'
    atom    := NUMBER [UNIT] | STRING | NAME | true | false | null | '(' cond ')' | '[' items ']'

A unit binds only right after a number literal and only if it is a known unit; a composite
unit has no spaces (``100 ohm/V`` is one literal, ``x / V`` divides by the name ``V``). After a
number, ``%`` is percent unless an operand follows: ``10 % 3`` is 1, ``soc <= 30 %`` is 0.3.
Dimensioned quantities compare only with the same dimension, never with a bare number.
"""

from __future__ import annotations

import difflib
import functools
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from station.plan import units as u
from station.plan.units import Quantity, UnitError

MAX_LENGTH = 2000  # characters of one expression
MAX_NESTING = 32  # brackets, unary chains, nested conditionals (bounds parser recursion)
MAX_DEPTH = 100  # tree depth (bounds evaluator recursion; a + b + ... is a chain)
MAX_NODES = 1000
MAX_INT_BITS = 256  # integer results; 2**256 ~ 1e77 covers every physical count
MAX_FLOAT_EXP10 = 300  # refuse x ** y whose magnitude would exceed 1e300
MAX_SEQUENCE = 100_000  # items or characters a string/list operation may produce


class ExprError(ValueError):
    """A refused expression: ``message`` and the 1-based ``column`` inside the expression text."""

    def __init__(self, message: str, column: int = 1) -> None:
        super().__init__(message, column)
        self.message = message
        self.column = column

    @property
    def offset(self) -> int:
        """0-based position of the problem in the expression text."""
        return self.column - 1

    def shifted(self, by: int) -> ExprError:
        """The same error with the column moved ``by`` characters (expression inside a template)."""
        err = ExprError(self.message, self.column + by)
        err.__cause__ = self.__cause__
        return err

    def __str__(self) -> str:
        return f"{self.message} (column {self.column})"


def _err(message: str, pos: int) -> ExprError:
    return ExprError(message, pos + 1)


def _suggest(name: str, choices) -> str:
    close = difflib.get_close_matches(name, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --- tokens -------------------------------------------------------------------------------

class Tok(NamedTuple):
    kind: str  # "value" (number, quantity, string, constant), "name", "op", "end"
    value: Any
    pos: int  # 0-based offset in the expression


_SPACE = re.compile(r"[ \t\r\n]*")
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNIT_ATOM = re.compile("[A-Za-z\u00b5\u03bc\u03a9\u2126\u00b0][A-Za-z0-9\u00b5\u03bc\u03a9\u2126\u00b0]*(?:\\^-?[0-9]{1,2})?")
_OPS = ("**", "//", "<=", ">=", "==", "!=", "+", "-", "*", "/", "%", "<", ">", "(", ")", "[", "]", ",", ".")
_KEYWORDS = {"and", "or", "not", "if", "else", "in"}
_CONSTANTS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}


def _operand_follows(text: str, i: int) -> bool:
    """Whether an operand starts at ``i`` (after spaces): decides '%' modulo vs percent."""
    i = _SPACE.match(text, i).end()
    if i >= len(text):
        return False
    if text[i] in "0123456789.([\"'":
        return True
    m = _NAME.match(text, i)
    return bool(m) and m.group() not in _KEYWORDS


def _unit_after(text: str, i: int) -> tuple[str, int] | None:
    """The unit written at ``i`` right after a number, as (unit text, end), or None."""
    if text.startswith("%", i):
        return None if _operand_follows(text, i + 1) else ("%", i + 1)
    m = _UNIT_ATOM.match(text, i)
    if not m or m.group() in _KEYWORDS or m.group() in _CONSTANTS:
        return None
    try:
        u.parse_unit(m.group())
    except UnitError as err:
        raise _err(f"{err} after a number", i) from None
    end = m.end()
    while end < len(text) and text[end] in "*/":
        nxt = _UNIT_ATOM.match(text, end + 1)
        if not nxt or nxt.group() not in u.UNITS and nxt.group().split("^")[0] not in u.UNITS:
            break
        end = nxt.end()
    return text[i:end], end


def _string(text: str, i: int) -> tuple[str, int]:
    quote, out, j = text[i], [], i + 1
    while j < len(text):
        c = text[j]
        if c == quote:
            return "".join(out), j + 1
        if c == "\\":
            esc = text[j + 1 : j + 2]
            if esc not in _ESCAPES:
                raise _err(f"unknown escape '\\{esc}' in string", j)
            out.append(_ESCAPES[esc])
            j += 2
            continue
        out.append(c)
        j += 1
    raise _err("unterminated string", i)


def tokenize(text: str) -> list[Tok]:
    """Split an expression into tokens; a number with its unit is one quantity token."""
    toks: list[Tok] = []
    i, n = 0, len(text)
    while True:
        i = _SPACE.match(text, i).end()
        if i >= n:
            toks.append(Tok("end", None, n))
            return toks
        c = text[i]
        if m := _NUMBER.match(text, i):
            digits = m.group()
            if len(digits) > 40:
                raise _err("number literal too long", i)
            value: Any = float(digits) if any(ch in digits for ch in ".eE") else int(digits)
            if not math.isfinite(value):
                raise _err("number out of range", i)
            j = _SPACE.match(text, m.end()).end()
            unit = _unit_after(text, j) if j < n else None
            if unit:
                try:
                    scale, dim = u.parse_unit(unit[0])
                except UnitError as err:
                    raise _err(f"{err} after a number", j) from None
                hint = unit[0] if unit[0] in ("%", "ppm") else None
                value, j = Quantity(value * scale, dim, hint), unit[1]
            else:
                j = m.end()
            toks.append(Tok("value", value, i))
            i = j
        elif m := _NAME.match(text, i):
            word = m.group()
            if word in _CONSTANTS:
                toks.append(Tok("value", _CONSTANTS[word], i))
            else:
                toks.append(Tok("op" if word in _KEYWORDS else "name", word, i))
            i = m.end()
        elif c in "'\"":
            value, j = _string(text, i)
            toks.append(Tok("value", value, i))
            i = j
        else:
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            if op is None:
                hint = " (use '==' to compare)" if c == "=" else ""
                raise _err(f"unexpected character {c!r}{hint}", i)
            toks.append(Tok("op", op, i))
            i += len(op)


# --- evaluation helpers -------------------------------------------------------------------

def _type_name(x: Any) -> str:
    if isinstance(x, Quantity):
        return u.unit_of(x) or "number"
    return {bool: "bool", int: "number", float: "number", str: "string", list: "list",
            tuple: "list", type(None): "null"}.get(type(x), type(x).__name__)


def _bounded(x: Any, pos: int) -> Any:
    """Refuse results too large to keep: huge integers, long strings/lists, complex numbers."""
    if isinstance(x, int) and not isinstance(x, bool) and x.bit_length() > MAX_INT_BITS:
        raise _err(f"integer result too large (more than {MAX_INT_BITS} bits)", pos)
    if isinstance(x, str) and len(x) > MAX_SEQUENCE or isinstance(x, (list, tuple)) and _too_big(x):
        raise _err(f"result too long (more than {MAX_SEQUENCE} items)", pos)
    if isinstance(x, complex):
        raise _err("complex result (negative number to a fractional power)", pos)
    return x


def _too_big(x: list | tuple) -> bool:
    """Whether a list holds more than MAX_SEQUENCE items counting nested ones and characters.

    Counted as if written out, so ``[[0] * 1000] * 1000`` is a million: repetition shares the
    inner list, but comparing or printing it would not.
    """
    budget, stack = MAX_SEQUENCE, [x]
    while stack:
        item = stack.pop()
        budget -= len(item) if isinstance(item, (str, list, tuple)) else 1
        if budget < 0:
            return True
        if isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def _short(x: Any) -> str:
    text = repr(x) if isinstance(x, (str, int, float)) else _type_name(x)
    return text if len(text) <= 40 else text[:37] + "..."


def _as_number(x: Any) -> float | int | None:
    if isinstance(x, Quantity):
        return x.value if x.dim == u.DIMENSIONLESS else None
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return x
    return None


def _power(a: Any, b: Any, pos: int) -> Any:
    """``a ** b`` after checking that the result stays within bounds (cost is never paid first)."""
    base, exp = _as_number(a), _as_number(b)
    if isinstance(a, Quantity) and base is None:
        return a ** b
    if base is None or exp is None:
        raise TypeError
    if base not in (0, 1, -1):
        magnitude = exp * math.log10(abs(base))
        if isinstance(base, int) and isinstance(exp, int) and exp > 0:
            if magnitude > MAX_INT_BITS * math.log10(2):
                raise _err(f"power result too large (more than {MAX_INT_BITS} bits)", pos)
        elif magnitude > MAX_FLOAT_EXP10:
            raise _err(f"power result too large (above 1e{MAX_FLOAT_EXP10})", pos)
    return a ** b


def _repeat_check(a: Any, b: Any, pos: int) -> None:
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * max(n, 0) > MAX_SEQUENCE:
            raise _err(f"result too long (more than {MAX_SEQUENCE} items)", pos)


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod,
}
_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
            "==": operator.eq, "!=": operator.ne}


def _arith(op: str, a: Any, b: Any, pos: int) -> Any:
    try:
        if op == "**":
            return _bounded(_power(a, b, pos), pos)
        if op == "*":
            _repeat_check(a, b, pos)
        if op == "%" and isinstance(a, str):
            raise TypeError
        if op == "+" and isinstance(a, (str, list)) and isinstance(b, type(a)) and len(a) + len(b) > MAX_SEQUENCE:
            raise _err(f"result too long (more than {MAX_SEQUENCE} items)", pos)
        return _bounded(_ARITH[op](a, b), pos)
    except ExprError:
        raise
    except UnitError as e:
        raise _err(str(e), pos) from e
    except ZeroDivisionError as e:
        raise _err("division by zero", pos) from e
    except OverflowError as e:
        raise _err(f"numeric overflow in '{op}'", pos) from e
    except (TypeError, ValueError) as e:
        raise _err(f"cannot apply '{op}' to {_type_name(a)} and {_type_name(b)}", pos) from e


def _compare(op: str, a: Any, b: Any, pos: int) -> bool:
    try:
        if op in ("in", "not in"):
            if isinstance(b, str) and not isinstance(a, str):
                raise TypeError
            found = a in b
            return found if op == "in" else not found
        qa, qb = isinstance(a, Quantity), isinstance(b, Quantity)
        if (qa or qb) and not (qa and qb) and _as_number(a if qb else b) is not None:
            q, other = (a, b) if qa else (b, a)
            if q.dim != u.DIMENSIONLESS:
                raise UnitError(f"cannot compare {u.unit_of(q)} with a bare number {other!r} (add a unit)")
        elif qa and qb and a.dim != b.dim:
            raise UnitError(f"cannot compare {_type_name(a)} and {_type_name(b)}")
        return bool(_COMPARE[op](a, b))
    except UnitError as e:
        raise _err(str(e), pos) from e
    except (TypeError, ValueError) as e:
        raise _err(f"cannot apply '{op}' to {_type_name(a)} and {_type_name(b)}", pos) from e


def _truth(x: Any, pos: int) -> bool:
    try:
        return bool(x)
    except Exception as e:  # an object from the station whose __bool__ fails
        raise _err(f"cannot use {_type_name(x)} as a condition", pos) from e


# --- nodes --------------------------------------------------------------------------------

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
            raise _err(f"unknown name '{self.name}'{_suggest(self.name, names)}", self.pos) from None


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
                raise _err(f"no field '{self.attr}'{_suggest(self.attr, obj)}", self.pos) from None
        try:
            value = getattr(obj, self.attr)
        except AttributeError:
            public = [a for a in dir(obj) if not a.startswith("_")]
            raise _err(f"{_type_name(obj)} has no attribute '{self.attr}'{_suggest(self.attr, public)}",
                       self.pos) from None
        except Exception as e:
            raise _err(f"reading attribute '{self.attr}' failed: {e}", self.pos) from e
        if callable(value):
            raise _err(f"attribute '{self.attr}' is a method, not a value", self.pos)
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
                raise _err(f"no key {_short(key)}{_suggest(_short(key), obj)}", self.pos) from None
        if not isinstance(obj, Sequence):
            raise _err(f"cannot index a {_type_name(obj)}", self.pos)
        n = _as_number(key)
        if n is None or isinstance(n, float) and not n.is_integer():
            raise _err(f"index must be a whole number, not {_short(key)}", self.pos)
        try:
            return obj[int(n)]
        except IndexError:
            raise _err(f"index {int(n)} out of range (length {len(obj)})", self.pos) from None


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
            raise _err(f"{self.name}(): {str(e) or type(e).__name__}", self.pos) from e
        return _bounded(result, self.pos)


class Unary(Node):
    __slots__ = ("op", "operand")

    def __init__(self, pos: int, op: str, operand: Node) -> None:
        super().__init__(pos, operand)
        self.op, self.operand = op, operand

    def ev(self, names):
        x = self.operand.ev(names)
        if self.op == "not":
            return not _truth(x, self.pos)
        if _as_number(x) is None and not isinstance(x, Quantity):
            raise _err(f"cannot apply unary '{self.op}' to {_type_name(x)}", self.pos)
        return -x if self.op == "-" else +x


class Binary(Node):
    __slots__ = ("op", "left", "right")

    def __init__(self, pos: int, op: str, left: Node, right: Node) -> None:
        super().__init__(pos, left, right)
        self.op, self.left, self.right = op, left, right

    def ev(self, names):
        return _arith(self.op, self.left.ev(names), self.right.ev(names), self.pos)


class Logic(Node):
    """``and`` / ``or`` with short-circuit; the result is the deciding operand, as in Python."""

    __slots__ = ("op", "left", "right")

    def __init__(self, pos: int, op: str, left: Node, right: Node) -> None:
        super().__init__(pos, left, right)
        self.op, self.left, self.right = op, left, right

    def ev(self, names):
        a = self.left.ev(names)
        if _truth(a, self.pos) == (self.op == "or"):
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
            if not _compare(op, a, b, pos):
                return False
            a = b
        return True


class IfElse(Node):
    __slots__ = ("body", "test", "orelse")

    def __init__(self, pos: int, body: Node, test: Node, orelse: Node) -> None:
        super().__init__(pos, body, test, orelse)
        self.body, self.test, self.orelse = body, test, orelse

    def ev(self, names):
        return self.body.ev(names) if _truth(self.test.ev(names), self.test.pos) else self.orelse.ev(names)


class ListLit(Node):
    __slots__ = ("items",)

    def __init__(self, pos: int, items: list[Node]) -> None:
        super().__init__(pos, *items)
        self.items = items

    def ev(self, names):
        return [i.ev(names) for i in self.items]


# --- parser -------------------------------------------------------------------------------

class _Parser:
    def __init__(self, text: str, functions: Mapping[str, Callable]) -> None:
        self.toks = tokenize(text)
        self.i = 0
        self.nesting = 0
        self.nodes = 0
        self.functions = functions
        self.names: set[str] = set()

    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def take(self) -> Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def at(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.value in ops

    def expect(self, op: str, opener: Tok | None = None) -> None:
        if not self.at(op):
            where = f" to close '{opener.value}' at column {opener.pos + 1}" if opener else ""
            raise _err(f"expected '{op}'{where}, got {self.describe()}", self.tok.pos)
        self.i += 1

    def describe(self) -> str:
        tok = self.tok
        return "end of expression" if tok.kind == "end" else f"'{tok.value}'"

    def node(self, cls, *args) -> Node:
        node = cls(*args)
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _err(f"expression too large (more than {MAX_NODES} parts)", node.pos)
        if node.depth > MAX_DEPTH:
            raise _err(f"expression nested too deeply (more than {MAX_DEPTH} levels)", node.pos)
        return node

    def nest(self, pos: int) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise _err(f"expression nested too deeply (more than {MAX_NESTING} levels)", pos)

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise _err("empty expression", 0)
        root = self.cond()
        if self.tok.kind != "end":
            raise _err(f"unexpected {self.describe()} after the end of the expression", self.tok.pos)
        return root

    def cond(self) -> Node:
        self.nest(self.tok.pos)
        body = self.or_()
        if self.at("if"):
            pos = self.take().pos
            test = self.or_()
            self.expect("else")
            body = self.node(IfElse, pos, body, test, self.cond())
        self.nesting -= 1
        return body

    def or_(self) -> Node:
        left = self.and_()
        while self.at("or"):
            pos = self.take().pos
            left = self.node(Logic, pos, "or", left, self.and_())
        return left

    def and_(self) -> Node:
        left = self.not_()
        while self.at("and"):
            pos = self.take().pos
            left = self.node(Logic, pos, "and", left, self.not_())
        return left

    def not_(self) -> Node:
        if self.at("not"):
            pos = self.take().pos
            self.nest(pos)
            node = self.node(Unary, pos, "not", self.not_())
            self.nesting -= 1
            return node
        return self.compare()

    def compare(self) -> Node:
        first = self.sum()
        rest = []
        while self.at("<", "<=", ">", ">=", "==", "!=", "in", "not"):
            tok = self.take()
            op = tok.value
            if op == "not":
                self.expect("in")
                op = "not in"
            rest.append((op, tok.pos, self.sum()))
        return self.node(Compare, rest[0][1], first, rest) if rest else first

    def sum(self) -> Node:
        left = self.term()
        while self.at("+", "-"):
            tok = self.take()
            left = self.node(Binary, tok.pos, tok.value, left, self.term())
        return left

    def term(self) -> Node:
        left = self.unary()
        while self.at("*", "/", "//", "%"):
            tok = self.take()
            left = self.node(Binary, tok.pos, tok.value, left, self.unary())
        return left

    def unary(self) -> Node:
        if self.at("-", "+"):
            tok = self.take()
            self.nest(tok.pos)
            node = self.node(Unary, tok.pos, tok.value, self.unary())
            self.nesting -= 1
            return node
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        if self.at("**"):
            pos = self.take().pos
            self.nest(pos)
            base = self.node(Binary, pos, "**", base, self.unary())
            self.nesting -= 1
        return base

    def postfix(self) -> Node:
        node = self.atom()
        while self.at(".", "[", "("):
            tok = self.take()
            if tok.value == ".":
                name = self.take()
                if name.kind != "name":
                    raise _err(f"expected an attribute name after '.', got '{name.value}'", name.pos)
                if name.value.startswith("_"):
                    raise _err(f"attribute '{name.value}' is not allowed", name.pos)
                node = self.node(Attr, name.pos, node, name.value)
            elif tok.value == "[":
                index = self.cond()
                self.expect("]", tok)
                node = self.node(Index, tok.pos, node, index)
            else:
                raise _err("only functions can be called, by name (e.g. 'max(a, b)')", tok.pos)
        return node

    def atom(self) -> Node:
        tok = self.take()
        if tok.kind == "value":
            return self.node(Const, tok.pos, tok.value)
        if tok.kind == "name":
            if self.at("("):
                return self.call(tok)
            if tok.value.startswith("_"):
                raise _err(f"name '{tok.value}' is not allowed", tok.pos)
            self.names.add(tok.value)
            return self.node(Name, tok.pos, tok.value)
        if tok.kind == "op" and tok.value == "(":
            if self.at(")"):
                raise _err("empty parentheses", tok.pos)
            inner = self.cond()
            self.expect(")", tok)
            return inner
        if tok.kind == "op" and tok.value == "[":
            return self.node(ListLit, tok.pos, self.items("]", tok))
        if tok.kind == "end":
            raise _err("unexpected end of expression", tok.pos)
        raise _err(f"expected a value, got '{tok.value}'", tok.pos)

    def items(self, close: str, opener: Tok) -> list[Node]:
        out: list[Node] = []
        while not self.at(close):
            out.append(self.cond())
            if not self.at(","):
                break
            self.i += 1
        self.expect(close, opener)
        return out

    def call(self, tok: Tok) -> Node:
        func = self.functions.get(tok.value)
        if func is None or tok.value.startswith("_"):
            allowed = ", ".join(sorted(self.functions))
            raise _err(f"function '{tok.value}' is not allowed{_suggest(tok.value, self.functions)};"
                       f" functions: {allowed}", tok.pos)
        opener = self.take()
        return self.node(Call, tok.pos, tok.value, func, self.items(")", opener))


# --- the whitelisted functions ------------------------------------------------------------

def _items(args: tuple, fname: str) -> list:
    items = list(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else list(args)
    if not items:
        raise ValueError(f"{fname} of nothing")
    return items


def _sum(values) -> Any:
    items = list(values)
    if any(_as_number(i) is None and not isinstance(i, Quantity) for i in items):
        raise TypeError("can only add numbers and quantities")
    total = items[0] if items else 0
    for x in items[1:]:
        total = total + x
    return total


def _mean(values) -> Any:
    items = _items((values,), "mean")
    return _sum(items) / len(items)


def _round(x, ndigits=None):
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > 30):
        raise ValueError("digits must be a whole number within +-30")
    return round(x, ndigits) if ndigits is not None or not isinstance(x, Quantity) else round(x)


def _sqrt(x):
    return u.sqrt(x) if isinstance(x, Quantity) else math.sqrt(x)


def _text(x: Any) -> str:
    """How a value reads inside a string: quantities with units, floats short, lists bounded."""
    if isinstance(x, (list, tuple)) and _too_big(x):
        raise ValueError(f"text too long (more than {MAX_SEQUENCE} items)")
    if isinstance(x, Quantity):
        return u.format_quantity(x)
    if isinstance(x, float):
        return format(x, ".6g")
    if isinstance(x, bool) or x is None:
        return {True: "true", False: "false", None: "null"}[x]
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_text(i) for i in x) + "]"
    return str(x)


DEFAULT_FUNCTIONS: dict[str, Callable] = {
    "abs": abs, "min": lambda *a: min(_items(a, "min")), "max": lambda *a: max(_items(a, "max")),
    "round": _round, "len": len, "sqrt": _sqrt, "sum": _sum, "mean": _mean, "any": any, "all": all,
    "float": float, "int": int, "str": _text,
}


# --- public API ---------------------------------------------------------------------------

class Expr:
    """A parsed expression. ``evaluate(names)`` may be called any number of times."""

    __slots__ = ("text", "root", "_names")

    def __init__(self, text: str, root: Node, names: frozenset[str]) -> None:
        self.text, self.root, self._names = text, root, names

    def evaluate(self, names: Mapping[str, Any] | None = None) -> Any:
        """The value, with names resolved from ``names``; raises ``ExprError`` only."""
        try:
            return self.root.ev({} if names is None else names)
        except ExprError:
            raise
        except RecursionError:
            raise _err("expression nested too deeply to evaluate", 0) from None
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as e:
            # last line of defence: whatever a node did not anticipate still surfaces typed
            raise _err(f"cannot evaluate: {e}", 0) from e

    def names(self) -> set[str]:
        """Free identifiers (the first part of ``dmm_v.voltage``), to check before running."""
        return set(self._names)

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"


def _compile(text: str, functions: Mapping[str, Callable]) -> Expr:
    if not isinstance(text, str):
        raise ExprError(f"expression must be text, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression too long ({len(text)} characters, at most {MAX_LENGTH})")
    try:
        parser = _Parser(text, functions)
        root = parser.parse()
    except RecursionError:
        raise ExprError("expression nested too deeply") from None
    return Expr(text, root, frozenset(parser.names))


_compile_default = functools.lru_cache(maxsize=2048)(lambda text: _compile(text, DEFAULT_FUNCTIONS))


def compile_expr(text: str, functions: Mapping[str, Callable] | None = None) -> Expr:
    """Parse once. ``functions`` adds to (or overrides) ``DEFAULT_FUNCTIONS``."""
    if functions is None:
        return _compile_default(text) if isinstance(text, str) else _compile(text, DEFAULT_FUNCTIONS)
    return _compile(text, {**DEFAULT_FUNCTIONS, **functions})


def _closing_brace(template: str, i: int) -> int:
    """Index of the '}' ending an expression that starts at ``i``, skipping string literals."""
    quote = None
    while i < len(template):
        c = template[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "}":
            return i
        i += 1
    return -1


def find_expressions(template: str, functions: Mapping[str, Callable] | None = None) -> list[tuple[int, int, Expr]]:
    """Every ``${...}`` in a string as (start, end, Expr); columns of errors are in the template.

    ``start`` is the offset of ``$``, ``end`` one past ``}``. ``$${`` is a literal ``${``.
    """
    found, i = [], 0
    while (start := template.find("${", i)) >= 0:
        if start and template[start - 1] == "$":
            i = start + 2
            continue
        end = _closing_brace(template, start + 2)
        if end < 0:
            raise _err("unterminated '${' (missing '}')", start)
        try:
            expr = compile_expr(template[start + 2 : end], functions)
        except ExprError as e:
            raise e.shifted(start + 2) from e.__cause__
        found.append((start, end + 1, expr))
        i = end + 1
    return found


def interpolate(template: str, names: Mapping[str, Any], functions: Mapping[str, Callable] | None = None) -> Any:
    """Fill ``${...}`` in a string: exactly one ``${...}`` gives the typed value, else a string."""
    if not isinstance(template, str) or "${" not in template:
        return template
    spans = find_expressions(template, functions)
    if len(spans) == 1 and spans[0][0] == 0 and spans[0][1] == len(template):
        return _evaluate_at(spans[0][2], names, 2)
    out, last = [], 0
    for start, end, expr in spans:
        out.append(template[last:start].replace("$${", "${"))
        value = _evaluate_at(expr, names, start + 2)
        try:
            out.append(_text(value))
        except Exception as e:  # a station object whose str() fails, or a huge list
            raise _err(f"cannot show the value as text: {e}", start + 2) from e
        last = end
    out.append(template[last:].replace("$${", "${"))
    return "".join(out)


def _evaluate_at(expr: Expr, names: Mapping[str, Any], offset: int) -> Any:
    try:
        return expr.evaluate(names)
    except ExprError as e:
        raise e.shifted(offset) from e.__cause__
