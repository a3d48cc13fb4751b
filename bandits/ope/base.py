"""Abstract bases of off-policy estimators and reward models, and the validated estimator input.

An estimator turns a logged bandit dataset and a target policy into per-row values (the one private method
each estimator writes, `_round_values`); the public methods aggregate them. Every estimator here is a ratio
of sums over rows,

    V_hat = sum_i v_i / sum_i d_i,

with ``d_i = 1`` for plain means (IPS, DM, DR), which makes per-group estimates and bootstrap intervals the
same code for all of them.

The target policy is given either as ``action_dist`` (B, A), its whole arm distribution at each logged
context, or as ``target_pscore`` (B,), its probability of the logged action only. The importance weight of
row i is ``w_i = pi(a_i | x_i) / pscore_i``.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

from bandits.ope.bootstrap import bootstrap_ratios, check_options, percentile_interval
from bandits.ope.data import LoggedBandit, check_probability
from bandits.ope.errors import ReplayInputError, TargetPolicyError

__all__ = [
    "BaseEstimator",
    "BaseRewardModel",
    "Interval",
    "ReplayInput",
    "RoundValues",
    "WeightDiagnostics",
    "prepare",
    "weight_diagnostics",
]

#: Tolerance on ``sum_a action_dist[i, a] == 1``.
SUM_TOL = 1e-6


@dataclass(frozen=True, eq=False)
class ReplayInput:
    """A logged dataset and a target policy, validated against each other.

    Attributes
    ----------
    logged : LoggedBandit
        The B logged rows.
    target_pscore : (B,) float64
        ``pi(a_i | x_i)``, the target's probability of each logged action, in [0, 1].
    weight : (B,) float64
        Importance weights ``target_pscore / logged.pscore``, >= 0.
    action_dist : (B, A) float64, optional
        The target's arm distribution per row (rows sum to 1); needed by DM and DR.
    qhat : (B, A) float64, optional
        Externally supplied reward estimates ``qhat(x_i, a)``; DM and DR fit one when None.
    """

    logged: LoggedBandit
    target_pscore: np.ndarray
    weight: np.ndarray
    action_dist: np.ndarray | None = None
    qhat: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.logged)

    @property
    def n_actions(self) -> int:
        """A: columns of ``action_dist`` when given, else the logged data's arm count."""
        return self.action_dist.shape[1] if self.action_dist is not None else self.logged.n_arms

    def take(self, rows: np.ndarray) -> ReplayInput:
        """The rows selected by the index array or boolean mask `rows` (indices may repeat)."""
        return ReplayInput(
            logged=self.logged.take(rows),
            target_pscore=self.target_pscore[rows],
            weight=self.weight[rows],
            action_dist=None if self.action_dist is None else self.action_dist[rows],
            qhat=None if self.qhat is None else self.qhat[rows],
        )


def _check_matrix(
    matrix: object, name: str, n_rows: int, n_actions: int | None, min_actions: int
) -> np.ndarray:
    arr = np.asarray(matrix, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != n_rows:
        raise ReplayInputError(f"Expected `{name}` of shape ({n_rows}, A), found shape {arr.shape}")
    if n_actions is not None and arr.shape[1] != n_actions:
        raise ReplayInputError(
            f"Expected `{name}` with {n_actions} columns (n_actions of the log), found {arr.shape[1]}"
        )
    if arr.shape[1] < min_actions:
        raise ReplayInputError(
            f"Expected `{name}` with at least {min_actions} columns (the largest logged action is "
            f"{min_actions - 1}), found {arr.shape[1]}"
        )
    if arr.size and not np.isfinite(arr).all():
        row, col = (int(v[0]) for v in np.nonzero(~np.isfinite(arr)))
        raise ReplayInputError(
            f"Expected finite `{name}`, found {arr[row, col]:g} at row {row}, column {col}"
        )
    return arr


def prepare(
    logged: LoggedBandit,
    action_dist: np.ndarray | None = None,
    *,
    target_pscore: np.ndarray | None = None,
    qhat: np.ndarray | None = None,
) -> ReplayInput:
    """Validate a target policy (and optional reward estimates) against a logged dataset.

    Parameters
    ----------
    logged : LoggedBandit
    action_dist : (B, A) float, optional
        The target's arm distribution at each logged context: entries in [0, 1], rows summing to 1 (within
        1e-6). A equals ``logged.n_actions`` when that is set, else A > max(action).
    target_pscore : (B,) float, optional
        The target's probability of each logged action, in [0, 1]. Used when `action_dist` is None; when
        both are None, ``logged.target_pscore`` is used.
    qhat : (B, A) float, optional
        Reward estimates for every arm at every logged context.

    Returns
    -------
    ReplayInput

    Raises
    ------
    TargetPolicyError
        Both or neither of the target forms are available.
    ReplayInputError
        A shape or value is out of range; the message names the argument, row and column.
    """
    n = len(logged)
    min_actions = int(logged.action.max()) + 1 if n else 0
    if action_dist is not None and target_pscore is not None:
        raise TargetPolicyError("Give the target policy as `action_dist` or as `target_pscore`, not both")
    if action_dist is not None:
        dist = _check_matrix(action_dist, "action_dist", n, logged.n_actions, min_actions)
        bad = (dist < 0.0) | (dist > 1.0)
        if bad.any():
            row, col = (int(v[0]) for v in np.nonzero(bad))
            raise ReplayInputError(
                f"Expected `action_dist` in [0, 1], found {dist[row, col]:g} at row {row}, column {col}"
            )
        sums = dist.sum(axis=1)
        off = np.flatnonzero(np.abs(sums - 1.0) > SUM_TOL)
        if len(off):
            raise ReplayInputError(
                f"Expected each row of `action_dist` to sum to 1, found {sums[off[0]]:g} at row {off[0]}"
            )
        tp = dist[np.arange(n), logged.action]
    else:
        dist = None
        source = target_pscore if target_pscore is not None else logged.target_pscore
        if source is None:
            raise TargetPolicyError(
                "No target policy: give `action_dist` (B, A), `target_pscore` (B,), or a log with a "
                "target_pscore column"
            )
        tp = check_probability(source, "target_pscore", length=(n, "logged.action"))
    q = None
    if qhat is not None:
        q = _check_matrix(
            qhat, "qhat", n, dist.shape[1] if dist is not None else logged.n_actions, min_actions
        )
    return ReplayInput(logged=logged, target_pscore=tp, weight=tp / logged.pscore, action_dist=dist, qhat=q)


class RoundValues(NamedTuple):
    """Per-row values of an estimator: ``V_hat = sum(value) / sum(weight)`` (``weight`` None: mean)."""

    value: np.ndarray
    weight: np.ndarray | None = None

    def aggregate(self, rows: np.ndarray | None = None) -> float:
        """The estimate over all rows, or over the rows selected by the index or mask `rows`.

        NaN when the selected denominator is 0 (no row with positive weight).
        """
        value = self.value if rows is None else self.value[rows]
        if self.weight is None:
            return float(value.mean()) if len(value) else float("nan")
        weight = self.weight if rows is None else self.weight[rows]
        total = float(weight.sum())
        return float(value.sum()) / total if total != 0.0 else float("nan")


class Interval(NamedTuple):
    """A point estimate and its percentile bootstrap interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class WeightDiagnostics:
    """How well the log covers the target policy.

    Attributes
    ----------
    n : int
        Number of rows.
    ess : float
        Effective sample size ``(sum w)^2 / sum(w^2)``; 0 when every weight is 0. Equals n when all weights
        are equal.
    max_weight : float
        The largest importance weight.
    zero_weight_share : float
        Share of rows with ``w == 0`` (the target never takes the logged action there).
    """

    n: int
    ess: float
    max_weight: float
    zero_weight_share: float


def weight_diagnostics(weight: np.ndarray) -> WeightDiagnostics:
    """Diagnostics of importance weights `weight` (B,); NaN ess and max_weight for B = 0."""
    w = np.asarray(weight, dtype=np.float64)
    if len(w) == 0:
        return WeightDiagnostics(
            n=0, ess=float("nan"), max_weight=float("nan"), zero_weight_share=float("nan")
        )
    sq = float(np.dot(w, w))
    ess = float(w.sum()) ** 2 / sq if sq > 0 else 0.0
    return WeightDiagnostics(
        n=len(w), ess=ess, max_weight=float(w.max()), zero_weight_share=float(np.mean(w == 0.0))
    )


class BaseEstimator(ABC):
    """Base class of off-policy estimators (in the manner of Open Bandit Pipeline's estimators).

    Subclasses are frozen dataclasses holding options only, set a class-level `name`, and implement
    `_round_values`, which returns per-row values ``v`` (B,) and optionally per-row denominators ``d`` (B,):
    the estimate is ``sum(v) / sum(d)`` (a mean when ``d`` is None). Subclasses that need the target's whole
    distribution set ``needs_action_dist = True``.
    """

    name: ClassVar[str]
    needs_action_dist: ClassVar[bool] = False

    @abstractmethod
    def _round_values(self, data: ReplayInput) -> RoundValues:
        """Per-row values of this estimator on validated input `data` of B >= 1 rows."""

    def round_values(self, data: ReplayInput) -> RoundValues:
        """Per-row values on validated input; refuses empty input and a missing ``action_dist``."""
        self.check_input(data)
        return self._round_values(data)

    def bootstrap_replicates(
        self,
        data: ReplayInput,
        *,
        n_bootstrap: int,
        rng: np.random.Generator,
        groups: Sequence[np.ndarray] = (),
    ) -> np.ndarray | None:
        """Replicates computed by redoing the estimate on resamples, or None to resample per-row values.

        The default (None) lets the caller resample the per-row values of `_round_values`, held fixed. An
        estimator whose per-row values hide most of its variance (DM, whose reward model is fitted on the
        same rows) overrides this to redo its whole computation on each resample of `data`.

        Parameters
        ----------
        data : ReplayInput
            All B rows.
        n_bootstrap : int
        rng : numpy.random.Generator
        groups : sequence of G index arrays
            Row indices of each group. When given, each resample draws every group's rows within that group
            (a stratified bootstrap), so one refit yields replicates for all groups.

        Returns
        -------
        (1 + G, n_bootstrap) float64 or None
            Row 0 holds the overall replicates, row 1 + g those of group g.
        """
        return None

    def check_input(self, data: ReplayInput) -> None:
        """Refuse input this estimator cannot use: no rows, or no ``action_dist`` when it needs one."""
        if len(data) == 0:
            raise ReplayInputError("Expected at least one logged row, found 0")
        if self.needs_action_dist and data.action_dist is None:
            raise TargetPolicyError(
                f"Estimator {self.name!r} needs the target's whole arm distribution `action_dist` (B, A); "
                "only the probability of the logged action (`target_pscore`) was given, which is enough for "
                "'ips', 'snips' and 'replay'"
            )

    def estimate(
        self,
        logged: LoggedBandit,
        action_dist: np.ndarray | None = None,
        *,
        target_pscore: np.ndarray | None = None,
        qhat: np.ndarray | None = None,
    ) -> float:
        """Estimate the target policy's value (expected reward per decision) from the log.

        Parameters
        ----------
        logged : LoggedBandit
            B >= 1 logged rows.
        action_dist : (B, A) float, optional
            The target's arm distribution at each logged context.
        target_pscore : (B,) float, optional
            The target's probability of each logged action (enough for IPS, SNIPS and replay).
        qhat : (B, A) float, optional
            Reward estimates to use instead of fitting a reward model (DM and DR only).

        Returns
        -------
        float
            The estimate; NaN for self-normalised estimators when no row has positive weight.
        """
        data = prepare(logged, action_dist, target_pscore=target_pscore, qhat=qhat)
        return self.round_values(data).aggregate()

    def estimate_interval(
        self,
        logged: LoggedBandit,
        action_dist: np.ndarray | None = None,
        *,
        target_pscore: np.ndarray | None = None,
        qhat: np.ndarray | None = None,
        n_bootstrap: int = 200,
        alpha: float = 0.05,
        seed: int | np.random.Generator = 0,
    ) -> Interval:
        """The estimate and its ``1 - alpha`` percentile bootstrap interval.

        Rows are resampled with replacement `n_bootstrap` times (see `bandits.ope.bootstrap`). Per-row values
        are held fixed (so the cross-fitted reward model of DM and DR is not refitted per resample), except
        for estimators that override `bootstrap_replicates` (a DM with ``refit_bootstrap=True`` refits its
        reward model on every resample). The same `seed` gives the same interval.

        Returns
        -------
        Interval
            ``(value, low, high)``.
        """
        check_options(n_bootstrap, alpha)
        data = prepare(logged, action_dist, target_pscore=target_pscore, qhat=qhat)
        rounds = self.round_values(data)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        reps = self.bootstrap_replicates(data, n_bootstrap=n_bootstrap, rng=rng)
        if reps is not None:
            reps = reps[:1]
        else:
            reps = bootstrap_ratios([rounds.value], [rounds.weight], n_bootstrap=n_bootstrap, rng=rng)
        low, high = percentile_interval(reps, alpha=alpha)[0]
        return Interval(value=rounds.aggregate(), low=float(low), high=float(high))


class BaseRewardModel(ABC):
    """A model of the expected reward ``q(x, a)`` of arm a at context x, for DM and DR.

    Follows scikit-learn's contract: ``__init__`` stores options only, `fit` returns ``self``, learned state
    ends in ``_``, and `predict` before `fit` raises `NotFittedError`. It must be deterministic for fixed
    options (seeded). DR fits a fresh deep copy on each cross-fitting fold.
    """

    @abstractmethod
    def fit(
        self, context: np.ndarray | None, action: np.ndarray, reward: np.ndarray, *, n_actions: int
    ) -> BaseRewardModel:
        """Fit on n rows: `context` (n, d) or None, `action` (n,) int in [0, n_actions), `reward` (n,)."""

    @abstractmethod
    def predict(self, context: np.ndarray | None, n_rows: int) -> np.ndarray:
        """Reward estimates (n_rows, n_actions) for every arm at each of the `n_rows` contexts."""

    def cross_fit(
        self,
        context: np.ndarray | None,
        action: np.ndarray,
        reward: np.ndarray,
        *,
        folds: np.ndarray,
        n_actions: int,
    ) -> np.ndarray:
        """(n, n_actions) estimates where row i's come from a copy of this model fitted without fold
        ``folds[i]`` (fitted on all rows when that fold is every row).

        The default fits a fresh deep copy per fold; a model with a cheaper exact route (the ridge model
        accumulates its normal equations once per fold and arm) overrides it with the same result.
        """
        n = len(action)
        qhat = np.empty((n, n_actions))
        for k in np.unique(folds):  # per fold: each fit and predict is vectorised over the fold's rows
            test = folds == k
            train = ~test if not test.all() else test
            model = copy.deepcopy(self).fit(
                None if context is None else context[train], action[train], reward[train], n_actions=n_actions
            )
            qhat[test] = model.predict(None if context is None else context[test], int(test.sum()))
        return qhat
