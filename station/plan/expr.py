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

The parts: ``expr_errors`` (limits, ``ExprError``), ``expr_lex`` (tokens, units after numbers),
``expr_parse`` (the grammar), ``expr_nodes`` (the tree and its evaluation), ``expr_ops`` (the
bounded operators), ``expr_funcs`` (the whitelisted functions). This module is the public API.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from station.plan.expr_errors import MAX_LENGTH, ExprError, err  # MAX_LENGTH: part of the API
from station.plan.expr_funcs import DEFAULT_FUNCTIONS, as_text
from station.plan.expr_nodes import Node
from station.plan.expr_parse import Parser


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
            raise err("expression nested too deeply to evaluate", 0) from None
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as e:
            # last line of defence: whatever a node did not anticipate still surfaces typed
            raise err(f"cannot evaluate: {e}", 0) from e

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
        parser = Parser(text, functions)
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
            raise err("unterminated '${' (missing '}')", start)
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
            out.append(as_text(value))
        except Exception as e:  # a station object whose str() fails, or a huge list
            raise err(f"cannot show the value as text: {e}", start + 2) from e
        last = end
    out.append(template[last:].replace("$${", "${"))
    return "".join(out)


def _evaluate_at(expr: Expr, names: Mapping[str, Any], offset: int) -> Any:
    try:
        return expr.evaluate(names)
    except ExprError as e:
        raise e.shifted(offset) from e.__cause__
