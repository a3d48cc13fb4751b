"""Errors raised by the ranker package.

Every message names the argument, column or key at fault and, where it helps, what was expected and what was
found.
"""


class RankerError(Exception):
    """Base class of every error a caller of `ranker` can cause."""


class MetricInputError(RankerError, ValueError):
    """Labels, scores, list ids or metric options of the wrong shape, type or range."""


class UnionError(RankerError, ValueError):
    """A stratified union cannot be built from the given frame, spec or options."""


class UnionSpecError(UnionError):
    """A union spec (strategy name, numbers or mapping) is invalid; the message says why."""
