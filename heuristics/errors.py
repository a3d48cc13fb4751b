"""Errors raised by the heuristics package.

Every message names the thing that is wrong (a config key, an argument) and, where it helps, what was
expected.
"""


class HeuristicsError(Exception):
    """Base class of every error a caller of `heuristics` can cause."""


class ConfigError(HeuristicsError, ValueError):
    """A sections config is invalid; the message starts with the dotted key at fault."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


class MissingContextError(HeuristicsError, ValueError):
    """A heuristic needs a request-context field that the request does not carry."""

    def __init__(self, heuristic: str, field: str) -> None:
        self.heuristic = heuristic
        self.field = field
        super().__init__(f"heuristic {heuristic!r} needs context field {field!r}, which is missing")


class InputError(HeuristicsError, ValueError):
    """Scores, item attributes or knob values of the wrong shape or range."""
