"""Errors raised by the bandits package.

Every error a caller of `bandits` can cause derives from `BanditsError`, which the CLI reports as one line and
the HTTP layer as a 4xx body. Errors about a decision-log file start with the file's path, so that the message
says which file is at fault and what is wrong with it: ``"log.db: schema version 3, expected 1"``.
"""

from __future__ import annotations

from os import PathLike


class BanditsError(Exception):
    """Base class of every error a caller of `bandits` can cause."""


class NotFittedError(ValueError, AttributeError):
    """A learnable thing (a ranker design, a VW knob policy, a reward model) was asked to predict, save or
    describe what it learned before `fit` (or `load`) was called.

    The one such error of the whole house: `ranker` re-exports it. Like scikit-learn's, it is both a
    ValueError and an AttributeError. The message names the class and the call: "LambdaRanker: call fit
    before predict".
    """


class InvalidBatchError(BanditsError, ValueError):
    """A `DecisionBatch` or `FeedbackBatch` with a field of the wrong shape, type or range.

    The message names the field and the row: "Expected `propensity` in (0, 1], found 0 at row 17".
    """


class InvalidArgumentError(BanditsError, ValueError):
    """An argument of a public function out of its domain; the message names it, expected vs. found."""


class PolicyContractError(BanditsError, ValueError):
    """A saved knob policy cannot be used with this sections config, this code or this Vowpal Wabbit.

    Raised when loading: no such policy file, no metadata, a content hash that does not match the metadata,
    another VW major version, another feature format, or arms that differ from the sections config. The
    message starts with the policy file (or directory) and says what disagrees: "policy-0003.vw: arms of
    section 'search' differ from the sections config".
    """


class PolicySpecError(BanditsError, ValueError):
    """A target-policy spec (``uniform``, ``epsilon:EPS``, ``fixed:SECTION=ARM``, ...) cannot be understood.

    The message quotes the spec and gives the expected form: "policy 'epsilon:x': expected epsilon:EPS with
    EPS in [0, 1]".
    """


class LearnError(BanditsError, ValueError):
    """Learning a knob policy cannot run on these inputs: an unknown reward, a negative wait window, or no
    usable decision in the window.

    A setting is named with expected vs. found ("Expected `wait_seconds` >= 0, found -1"); an empty window
    names the log and what was skipped ("log.db: no decisions to learn from in this window (skipped: 0 of
    unknown sections, 3 of unknown arms)").
    """


class LogError(BanditsError):
    """A decision-log file cannot be used as asked; the message starts with its path."""

    def __init__(self, path: str | PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class LogNotFoundError(LogError):
    """The decision-log file does not exist (and the caller did not ask to create it)."""


class LogSchemaError(LogError):
    """The file is not a sectionrank decision log, or one of another schema version."""


class LogLockedError(LogError):
    """Another connection held the write lock for longer than the busy timeout."""


class DuplicateEventError(LogError):
    """A decision's `event_id` is already in the log; the whole batch was rolled back."""

    def __init__(self, path: str | PathLike[str], event_id: str) -> None:
        self.event_id = event_id
        super().__init__(
            path,
            f"decision event_id {event_id!r} is already in the log; the batch was rolled back",
        )


class UnknownEventError(LogError):
    """Feedback names an `event_id` for which the log holds no decision."""

    def __init__(self, path: str | PathLike[str], event_id: str, count: int = 1) -> None:
        self.event_id = event_id
        self.count = count
        others = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(path, f"no decision with event_id {event_id!r}{others}")


class UnknownSectionError(LogError):
    """A section was asked for by name, and the log holds no decision of it."""

    def __init__(self, path: str | PathLike[str], section: str, known: list[str]) -> None:
        self.section = section
        listing = ", ".join(map(repr, known)) if known else "none"
        super().__init__(path, f"no decisions of section {section!r} (sections in the log: {listing})")


class DatasetError(LogError):
    """A decision-log dataset (Parquet) cannot be shipped to or read as asked; the message starts with its
    location: "runs/ds: host 'web-1' was shipped from another log (created 2026-01-02T03:04:05Z)"."""


class GateError(BanditsError, ValueError):
    """The promotion gate cannot decide: the window holds too few decisions, or no candidate is found.

    The message says what is short and what the gate needs: "too few decisions in the window to decide
    (discover 37); the gate needs at least 200 per section".
    """
