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


class RequestValidationError(RankerError, ValueError):
    """A request the rerank pipeline cannot serve; `field` names the offending field (JSON path).

    The HTTP layer answers it with `status` (422 unless said otherwise) and a body naming `field`.
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
