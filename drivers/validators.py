"""Validators that refuse, never clip (QCoDeS style): they render themselves into errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from drivers.errors import RangeError


@dataclass(frozen=True)
class Range:
    """Closed interval [low, high] in ``unit``."""

    low: float
    high: float
    unit: str = ""

    def check(self, value: float, *, what: str, instrument: str = "") -> float:
        """Return ``value`` if inside the range, else raise ``RangeError`` naming ``what``."""
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
            raise RangeError(f"{what} must be a number, got {value!r}", instrument=instrument)
        if not self.low <= value <= self.high:
            raise RangeError(
                f"{what} {value:g} {self.unit} outside {self}", instrument=instrument
            )
        return float(value)

    def __str__(self) -> str:
        return f"[{self.low:g}, {self.high:g}] {self.unit}".rstrip()


T = TypeVar("T")


@dataclass(frozen=True)
class OneOf(Generic[T]):
    """A value from a fixed set."""

    values: tuple[T, ...]

    def check(self, value: T, *, what: str, instrument: str = "") -> T:
        if value not in self.values:
            raise RangeError(f"{what} {value!r} not one of {list(self.values)}", instrument=instrument)
        return value
