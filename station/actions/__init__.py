"""Plan actions: what ``instrument.action`` means. Each module defines an ``ActionSet``, found
through its entry point (``station/actions/registry.py``)."""

from station.actions.registry import ActionSet, ActionSpec, Arg, all_actions, get_action

__all__ = ["ActionSet", "ActionSpec", "Arg", "all_actions", "get_action"]
