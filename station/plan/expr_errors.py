"""How the expression language refuses: the size limits and ``ExprError`` with its column.

Every stage (tokenizer, parser, evaluator, functions) raises ``ExprError`` through ``err``, so a
refusal always carries the 1-based column of the offending part of the expression text.
"""

from __future__ import annotations

import difflib

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
        self.opened = None  # 1-based column of the bracket an unclosed construct began with

    @property
    def offset(self) -> int:
        """0-based position of the problem in the expression text."""
        return self.column - 1

    def shifted(self, by: int) -> ExprError:
        """The same error with the column moved ``by`` characters (expression inside a template)."""
        moved = ExprError(self.message, self.column + by)
        moved.__cause__ = self.__cause__
        moved.opened = None if self.opened is None else self.opened + by
        return moved

    def __str__(self) -> str:
        return f"{self.message} (column {self.column})"


def err(message: str, pos: int) -> ExprError:
    """An ``ExprError`` for the 0-based offset ``pos``."""
    return ExprError(message, pos + 1)


def suggest(name: str, choices) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or ``''``."""
    close = difflib.get_close_matches(name, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
