"""Errors raised by off-policy evaluation (offline replay).

Every message names the argument, column or row at fault and, where it helps, what was expected and what was
found: "Expected `pscore` in (0, 1], found 0 at row 17". Rows are numbered from 0 in the order given (for a
file: the first data row after the header is row 0).

A reward model asked to predict before `fit` raises the house's one `NotFittedError`, from `bandits.errors`;
it is re-exported here, so ``from bandits.ope import NotFittedError`` names that same class.
"""

from bandits.errors import BanditsError, NotFittedError

__all__ = [
    "DatasetDownloadError",
    "DatasetIntegrityError",
    "DatasetNotFoundError",
    "NotFittedError",
    "ReplayError",
    "ReplayInputError",
    "TargetPolicyError",
]


class ReplayError(BanditsError):
    """Base class of every error a caller of `bandits.ope` can cause."""


class ReplayInputError(ReplayError, ValueError):
    """A logged bandit dataset, a target policy or an estimator option is malformed or out of range."""


class TargetPolicyError(ReplayInputError):
    """The target policy is missing, or given in a form the requested estimator cannot use.

    DM and DR need the target's whole arm distribution ``action_dist`` (B, A); IPS, SNIPS and replay also
    work from ``target_pscore`` (B,), the target's probability of each logged action.
    """


class DatasetNotFoundError(ReplayError, FileNotFoundError):
    """A data set is not in the cache and downloading was not asked for; the message says how to fetch it."""


class DatasetDownloadError(ReplayError, RuntimeError):
    """Fetching a data set failed (no network, registry unreachable); the message gives the tool's output."""


class DatasetIntegrityError(ReplayError, RuntimeError):
    """A fetched archive is not the expected file (checksum mismatch) or lacks the expected members."""
