"""The recursive-descent parser: tokens in, a tree of ``expr_nodes`` out, sizes bounded.

Grammar, loosest binding first (Python's precedence):
    cond    := or ['if' or 'else' cond]
    or      := and ('or' and)*           and := not ('and' not)*
    not     := 'not' not | compare
    compare := sum (('<'|'<='|'>'|'>='|'=='|'!='|'in'|'not' 'in') sum)*
    sum     := term (('+'|'-') term)*    term := unary (('*'|'/'|'//'|'%') unary)*
    unary   := ('-'|'+') unary | power   power := postfix ['**' unary]
    postfix := atom ('.' NAME | '[' cond ']')*  |  FUNCTION '(' [cond (',' cond)*] ')'
    atom    := NUMBER [UNIT] | STRING | NAME | true | false | null | '(' cond ')' | '[' items ']'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from station.plan.expr_errors import MAX_DEPTH, MAX_NESTING, MAX_NODES, err, suggest
from station.plan.expr_lex import Tok, tokenize
from station.plan.expr_nodes import (
    Attr,
    Binary,
    Call,
    Compare,
    Const,
    IfElse,
    Index,
    ListLit,
    Logic,
    Name,
    Node,
    Unary,
)


class Parser:
    """Parses one expression text; ``parse()`` gives the root node, ``names`` the free names."""

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
            problem = err(f"expected '{op}'{where}, got {self.describe()}", self.tok.pos)
            problem.opened = opener.pos + 1 if opener else None  # moved with the error (shifted)
            raise problem
        self.i += 1

    def describe(self) -> str:
        tok = self.tok
        return "end of expression" if tok.kind == "end" else f"'{tok.value}'"

    def node(self, cls, *args) -> Node:
        node = cls(*args)
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise err(f"expression too large (more than {MAX_NODES} parts)", node.pos)
        if node.depth > MAX_DEPTH:
            raise err(f"expression nested too deeply (more than {MAX_DEPTH} levels)", node.pos)
        return node

    def nest(self, pos: int) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise err(f"expression nested too deeply (more than {MAX_NESTING} levels)", pos)

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise err("empty expression", 0)
        root = self.cond()
        if self.tok.kind != "end":
            raise err(f"unexpected {self.describe()} after the end of the expression", self.tok.pos)
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
                    raise err(f"expected an attribute name after '.', got '{name.value}'", name.pos)
                if name.value.startswith("_"):
                    raise err(f"attribute '{name.value}' is not allowed", name.pos)
                node = self.node(Attr, name.pos, node, name.value)
            elif tok.value == "[":
                index = self.cond()
                self.expect("]", tok)
                node = self.node(Index, tok.pos, node, index)
            else:
                raise err("only functions can be called, by name (e.g. 'max(a, b)')", tok.pos)
        return node

    def atom(self) -> Node:
        tok = self.take()
        if tok.kind == "value":
            return self.node(Const, tok.pos, tok.value)
        if tok.kind == "name":
            if self.at("("):
                return self.call(tok)
            if tok.value.startswith("_"):
                raise err(f"name '{tok.value}' is not allowed", tok.pos)
            self.names.add(tok.value)
            return self.node(Name, tok.pos, tok.value)
        if tok.kind == "op" and tok.value == "(":
            if self.at(")"):
                raise err("empty parentheses", tok.pos)
            inner = self.cond()
            self.expect(")", tok)
            return inner
        if tok.kind == "op" and tok.value == "[":
            return self.node(ListLit, tok.pos, self.items("]", tok))
        if tok.kind == "end":
            raise err("unexpected end of expression", tok.pos)
        raise err(f"expected a value, got '{tok.value}'", tok.pos)

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
            raise err(f"function '{tok.value}' is not allowed{suggest(tok.value, self.functions)};"
                      f" functions: {allowed}", tok.pos)
        opener = self.take()
        return self.node(Call, tok.pos, tok.value, func, self.items(")", opener))
