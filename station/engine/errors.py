"""Engine-level outcomes that are not instrument errors."""

from __future__ import annotations


class RunAborted(Exception):
    """The run must stop now and go to the safe state (monitor trip, interlock, operator, signal)."""

    def __init__(self, reason: str, *, source: str = "operator") -> None:
        super().__init__(reason)
        self.reason = reason
        self.source = source


class StepError(Exception):
    """A step could not produce valid measurements (bad argument value, unit mismatch, ...)."""


class StepTimeout(StepError, TimeoutError):
    """A step ran past its timeout."""


class PromptUnavailable(StepError):
    """A prompt needs an operator but none is attached and the prompt has no default."""
