"""Plan actions: what ``instrument.action`` means. Each module registers its actions on import."""

from station.actions.registry import ACTIONS, ActionSpec, Arg, action, all_actions, get_action

__all__ = ["ACTIONS", "ActionSpec", "Arg", "action", "all_actions", "get_action"]
