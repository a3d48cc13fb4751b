"""Errors raised by the simulator package.

Every message names the thing that is wrong (a world-file key, an argument) and what was expected.
"""


class SimulatorError(Exception):
    """Base class of every error a caller of `simulator` can cause."""


class WorldConfigError(SimulatorError, ValueError):
    """A world file is invalid; the message starts with the dotted key at fault."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


class SimulationInputError(SimulatorError, ValueError):
    """An argument of a world or logging-policy method has the wrong shape, type or range."""


class CompareInputError(SimulatorError, ValueError):
    """A comparison cannot run with these settings, or a results file cannot be read back; the message
    names the setting or the file: "Expected `seeds` to be an integer >= 1, found 0"."""
