"""Errors raised by the ranker package: every error class of `ranker` is defined here.

Every error a caller of `ranker` can cause derives from `RankerError`, which the CLI reports as one line and
the HTTP layer as a 4xx body. Every message names the argument, column, key or file at fault and, where it
helps, what was expected and what was found. `NotFittedError` is the house's one such error
(`bandits.errors`), re-exported here.
"""

from __future__ import annotations

from bandits.errors import NotFittedError


class RankerError(Exception):
    """Base class of every error a caller of `ranker` can cause."""


# --- inputs of the library functions ----------------------------------------------------------------------


class MetricInputError(RankerError, ValueError):
    """Labels, scores, list ids or metric options of the wrong shape, type or range.

    The message names the argument, expected vs. found, and the first bad row: "Expected `labels` >= 0,
    found -1.0 at row 3".
    """


class UnionError(RankerError, ValueError):
    """A stratified union cannot be built from the given frame, spec or options.

    The message names the argument or column: "frame: missing column 'section'; found columns [...]".
    """


class UnionSpecError(UnionError):
    """A union spec (strategy name, numbers or mapping) is invalid; the message says why: "spec: missing
    weights for sections ['search']"."""


class RequestError(RankerError, ValueError):
    """A request field of the wrong type or value; the message names the field and the request: "Expected
    context `device` to be a string, found 3 at request 0"."""


class FeatureTableError(RankerError, ValueError):
    """A catalog, user or statistics table the feature function cannot use; the message names the table (or
    its file): "catalog: missing columns ['price']; found [...]"."""


class FeatureInputError(RankerError, ValueError):
    """A request the feature function cannot featurise (an unknown section, mismatched lengths) or a feature
    list it cannot compute; the message names the argument: "unknown section 'checkout'; configured: ..."."""


class ItemStatsError(RankerError, ValueError):
    """An item statistics table that cannot be read or does not hold what it should, or a smoothing option
    out of range; the message names the file or the argument: "stats.parquet: missing columns ['clicks']"."""


# --- config, data and training ----------------------------------------------------------------------------


class RankerConfigError(RankerError, ValueError):
    """A ranker config is invalid; the message starts with the dotted key at fault and says what was expected
    and what was found: "lightgbm.num_leaves: expected an integer in [2, 131072], found 1"."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


class TrainingDataError(RankerError, ValueError):
    """The log cannot give the lists a step needs (missing columns, too few decisions, an empty window); the
    message names the window, section or input: "the validation window has no list with a positive label in
    section(s) ['search'] (...)"."""


class EvaluationError(RankerError, ValueError):
    """Models that cannot be evaluated together, or a log that is not the one they were trained on; the
    message names the model directory at fault: "models/base: the model's metadata records no time split"."""


class ContractMismatchError(RankerError, ValueError):
    """An artifact does not match the code or config that tries to load it, or is corrupted; the message
    names the model directory and the file or feature at fault: "models/base: feature 'age_days' default
    changed: model -1.0, code -5.0"."""


# --- the rerank pipeline ----------------------------------------------------------------------------------


class RequestValidationError(RankerError, ValueError):
    """A request the rerank pipeline cannot serve; `field` names the offending field (JSON path).

    The HTTP layer answers it with `status` (422 unless said otherwise) and a body naming `field`: "field:
    problem".
    """

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        self.field = field
        self.status = status
        super().__init__(f"{field}: {message}")


class PipelineConfigError(RankerError, ValueError):
    """The rerank pipeline was put together wrongly (a section without a ranker); the message starts with the
    argument at fault. A configuration problem of the operator, never of a request."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


__all__ = [
    "ContractMismatchError",
    "EvaluationError",
    "FeatureInputError",
    "FeatureTableError",
    "ItemStatsError",
    "MetricInputError",
    "NotFittedError",
    "PipelineConfigError",
    "RankerConfigError",
    "RankerError",
    "RequestError",
    "RequestValidationError",
    "TrainingDataError",
    "UnionError",
    "UnionSpecError",
]
