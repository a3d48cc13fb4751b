"""Off-policy estimators (IPS, SNIPS, DM, DR, rejection-sampling replay), their registry, and `evaluate`.

Notation, for B logged rows ``(x_i, a_i, r_i, p_i)`` with ``p_i`` the logging propensity of the logged action
and a target policy ``pi``:

- importance weight ``w_i = pi(a_i | x_i) / p_i``;
- reward model ``qhat(x, a)``, an estimate of the expected reward of arm a at context x (the models and
  cross-fitting live in `bandits.ope.reward_models`).

Each estimator is unbiased (or consistent, for the self-normalised ones) under the usual assumptions: the
logged ``p_i`` are the true logging probabilities, and every arm the target can take at a context had a
positive logging probability there (``pi(a|x) > 0`` implies ``mu(a|x) > 0``).

Every estimate is invariant under a permutation of the rows (with the target permuted alike), up to float
rounding: the random parts, DM and DR's cross-fitting folds and replay's acceptance draws, are dealt to the
rows in their content order (`LoggedBandit.content_order`), not in the order given. Bootstrap intervals
resample rows by position: for a fixed order and seed they are reproducible, and a permuted log gives an
interval from other, equally likely resamples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
import pandas as pd

from bandits.ope.base import (
    BaseEstimator,
    BaseRewardModel,
    ReplayInput,
    RoundValues,
    prepare,
    weight_diagnostics,
)
from bandits.ope.bootstrap import bootstrap_ratios, check_options, percentile_interval
from bandits.ope.data import LoggedBandit, check_int
from bandits.ope.errors import ReplayInputError
from bandits.ope.reward_models import cross_fit_qhat, fold_ids

__all__ = [
    "ESTIMATORS",
    "DirectMethod",
    "DoublyRobust",
    "InverseProbabilityWeighting",
    "RejectionReplay",
    "SelfNormalizedIPS",
    "evaluate",
]


def target_folds(data: ReplayInput, *, n_folds: int, seed: int) -> np.ndarray:
    """(B,) cross-fitting folds of DM and DR: `fold_ids` dealt in the content order of the logged rows and
    the target's distribution, so that a row's fold depends on what it holds, not on its position."""
    return fold_ids(data.logged.content_order(data.action_dist), n_folds=n_folds, seed=seed)


@dataclass(frozen=True)
class InverseProbabilityWeighting(BaseEstimator):
    """Inverse propensity scoring (IPS).

    ``V_IPS = (1/B) sum_i w_i r_i``, per-row values ``w_i r_i`` (B,). Unbiased when the propensities are
    exact and the target is covered by the logging policy; its variance grows with the weights (see the
    effective sample size). Works from ``target_pscore`` alone.
    """

    name: ClassVar[str] = "ips"

    def _round_values(self, data: ReplayInput) -> RoundValues:
        return RoundValues(data.weight * data.logged.reward)


@dataclass(frozen=True)
class SelfNormalizedIPS(BaseEstimator):
    """Self-normalised IPS (SNIPS).

    ``V_SNIPS = sum_i w_i r_i / sum_i w_i``: per-row values ``w_i r_i`` over denominators ``w_i``. Equals IPS
    when the weights average exactly 1; always within ``[min r, max r]`` (a weighted mean of the rewards);
    consistent with O(1/B) bias. NaN when every weight is 0 (the target never takes a logged action).
    Works from ``target_pscore`` alone.
    """

    name: ClassVar[str] = "snips"

    def _round_values(self, data: ReplayInput) -> RoundValues:
        return RoundValues(data.weight * data.logged.reward, data.weight)


@dataclass(frozen=True)
class DirectMethod(BaseEstimator):
    """Direct method (DM): the reward model's value of the target.

    ``V_DM = (1/B) sum_i sum_a pi(a | x_i) qhat(x_i, a)``, per-row values (B,). Unbiased only when qhat is;
    its interval reflects the spread over contexts, not the reward model's error. Needs ``action_dist``.
    qhat is the supplied ``qhat`` if any, else `cross_fit_qhat` with the options below, its folds dealt in
    the content order of the rows and the target's distribution (`target_folds`): the estimate does not
    depend on the order of the rows.

    Its bootstrap interval, by default, resamples the per-row values with the cross-fitted qhat fitted once
    (as Open Bandit Pipeline does): it covers the sampling of contexts, not the reward model's own fitting
    variance, and is narrow when the context explains little. ``refit_bootstrap=True`` refits the reward
    model on every resample instead: an honest interval for the model's variance, at the cost of
    ``n_bootstrap`` refits.

    Parameters
    ----------
    reward_model : BaseRewardModel, optional
        Default ``RidgeRewardModel()``.
    n_folds : int
        Cross-fitting folds.
    seed : int
        Seed of the fold assignment.
    refit_bootstrap : bool
        Refit the reward model on each bootstrap resample (default False: resample per-row values).
    """

    name: ClassVar[str] = "dm"
    needs_action_dist: ClassVar[bool] = True
    reward_model: BaseRewardModel | None = field(default=None, compare=False)
    n_folds: int = 3
    seed: int = 0
    refit_bootstrap: bool = False

    def _qhat(self, data: ReplayInput) -> np.ndarray:
        if data.qhat is not None:
            return data.qhat
        return cross_fit_qhat(
            data.logged,
            self.reward_model,
            n_actions=data.n_actions,
            folds=target_folds(data, n_folds=self.n_folds, seed=self.seed),
        )

    def _round_values(self, data: ReplayInput) -> RoundValues:
        assert data.action_dist is not None
        return RoundValues(np.einsum("ba,ba->b", data.action_dist, self._qhat(data)))

    def bootstrap_replicates(
        self,
        data: ReplayInput,
        *,
        n_bootstrap: int,
        rng: np.random.Generator,
        groups: Sequence[np.ndarray] = (),
    ) -> np.ndarray | None:
        """With ``refit_bootstrap``, refit the reward model on each resample; else None (resample the
        per-row values, qhat fixed).

        Each resample keeps its rows' original folds, so copies of one row never sit on both sides of a
        cross-fitting split (which would let the model see the rows it predicts). With `groups`, rows are
        resampled within each group and one refit on the whole resample gives every group's replicate, as
        the point estimates of the groups come from the model fitted on all rows.

        With a supplied ``qhat`` nothing can be refitted: returns None, and the interval then reflects only
        the sampling of contexts (usually far too narrow).
        """
        if data.qhat is not None or not self.refit_bootstrap:
            return None
        n = len(data)
        folds = target_folds(data, n_folds=self.n_folds, seed=self.seed)
        parts = list(groups) if len(groups) else [np.arange(n)]
        ends = np.cumsum([len(part) for part in parts])
        reps = np.empty((1 + len(groups), n_bootstrap))
        for b in range(n_bootstrap):  # one refit per resample; each is vectorised over the resample's rows
            rows = np.concatenate([part[rng.integers(0, len(part), size=len(part))] for part in parts])
            sample = data.take(rows)
            assert sample.action_dist is not None
            qhat = cross_fit_qhat(
                sample.logged, self.reward_model, n_actions=data.n_actions, folds=folds[rows], seed=self.seed
            )
            values = np.einsum("ba,ba->b", sample.action_dist, qhat)
            reps[0, b] = values.mean()
            if len(groups):
                reps[1:, b] = np.add.reduceat(values, np.concatenate([[0], ends[:-1]])) / np.diff(
                    ends, prepend=0
                )
        return reps


@dataclass(frozen=True)
class DoublyRobust(DirectMethod):
    """Doubly robust (DR): DM plus an importance-weighted correction of the reward model's error.

    ``V_DR = (1/B) sum_i [ sum_a pi(a | x_i) qhat(x_i, a) + w_i (r_i - qhat(x_i, a_i)) ]``, per-row values
    (B,). Unbiased when the propensities are exact whatever qhat is, provided qhat for row i does not
    depend on row i, which cross-fitting ensures (each row's qhat comes from a model fitted on the other
    folds). With an exact qhat the correction has expectation 0, and on a log with deterministic rewards it
    is exactly 0, so DR equals DM. Needs ``action_dist``. Options as for `DirectMethod`, except
    ``refit_bootstrap``: DR's interval always resamples its per-row values.
    """

    name: ClassVar[str] = "dr"

    def __post_init__(self) -> None:
        if self.refit_bootstrap:
            raise ReplayInputError(
                "Expected `refit_bootstrap=False` for DR: its interval resamples per-row values, found True"
            )

    def bootstrap_replicates(
        self,
        data: ReplayInput,
        *,
        n_bootstrap: int,
        rng: np.random.Generator,
        groups: Sequence[np.ndarray] = (),
    ) -> np.ndarray | None:
        """None: DR's interval resamples its per-row values with the cross-fitted qhat held fixed."""
        return None

    def _round_values(self, data: ReplayInput) -> RoundValues:
        assert data.action_dist is not None
        qhat = self._qhat(data)
        logged = data.logged
        q_logged = qhat[np.arange(len(logged)), logged.action]
        dm = np.einsum("ba,ba->b", data.action_dist, qhat)
        return RoundValues(dm + data.weight * (logged.reward - q_logged))


@dataclass(frozen=True)
class RejectionReplay(BaseEstimator):
    """Rejection-sampling replay (Li, Chu, Langford and Wang, WSDM 2011), for any known logging policy.

    Row i is kept with probability ``w_i / M``, where ``M`` is `weight_bound` or, when None, the largest
    weight in the data, ``M = max_i w_i``; the estimate is the mean reward of the kept rows,
    ``V = sum_i k_i r_i / sum_i k_i`` (per-row values ``k_i r_i`` over denominators ``k_i``, with
    ``k_i = 1[u_i < w_i / M]``). The uniforms ``u`` are B draws from a generator seeded with `seed`, dealt
    to the rows in their content order (`LoggedBandit.content_order` over the logged fields and the target's
    probability ``pi(a_i|x_i)``): a row's draw follows what it holds, so a permutation of the rows keeps the
    same rows and gives the same estimate.

    This is rejection sampling from the logging distribution ``mu(a|x)`` towards the target ``pi(a|x)``: a
    kept row is a draw of (x, a, r) under the target, provided ``pi(a|x) / mu(a|x) <= M`` everywhere. With
    uniform logging and a deterministic target, ``w_i`` is either 0 or A, so exactly the rows where the
    target's arm equals the logged arm are kept: Li et al.'s replay. Assumptions: the propensities are
    known and exact; taking M from the data makes it an estimate of the bound (an underestimate only where
    the largest ratio never occurs in the log). Consistent; a ratio estimator, so O(1/B) biased. NaN when no
    row is kept. Works from ``target_pscore`` alone.

    Parameters
    ----------
    weight_bound : float, optional
        M, a known upper bound of the weights (> 0); a weight above it is refused.
    seed : int
        Seed of the acceptance draws; the same seed keeps the same rows.
    """

    name: ClassVar[str] = "replay"
    weight_bound: float | None = None
    seed: int = 0

    def _round_values(self, data: ReplayInput) -> RoundValues:
        w = data.weight
        bound = float(w.max()) if self.weight_bound is None else float(self.weight_bound)
        if self.weight_bound is not None:
            if not bound > 0:
                raise ReplayInputError(f"Expected `weight_bound` > 0, found {self.weight_bound!r}")
            over = np.flatnonzero(w > bound * (1 + 1e-12))
            if len(over):
                raise ReplayInputError(
                    f"Expected importance weights <= `weight_bound` = {bound:g}, found {w[over[0]]:g} "
                    f"at row {over[0]}"
                )
        if bound == 0.0:
            kept = np.zeros(len(w))
        else:
            u = np.empty(len(w))
            u[data.logged.content_order(data.target_pscore)] = np.random.default_rng(self.seed).random(len(w))
            kept = (u < w / bound).astype(np.float64)
        return RoundValues(kept * data.logged.reward, kept)


ESTIMATORS: dict[str, type[BaseEstimator]] = {
    cls.name: cls
    for cls in (InverseProbabilityWeighting, SelfNormalizedIPS, DirectMethod, DoublyRobust, RejectionReplay)
}

COLUMNS = (
    "group",
    "estimator",
    "value",
    "ci_low",
    "ci_high",
    "ess",
    "max_weight",
    "zero_weight_share",
    "n",
    "n_accepted",
)


def evaluate(
    logged: LoggedBandit,
    action_dist: np.ndarray | None = None,
    *,
    target_pscore: np.ndarray | None = None,
    qhat: np.ndarray | None = None,
    estimators: Sequence[str | BaseEstimator] = ("ips", "snips", "dm", "dr", "replay"),
    reward_model: BaseRewardModel | None = None,
    n_folds: int = 3,
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Estimate a target policy's value with several estimators, per group and overall, with intervals.

    Parameters
    ----------
    logged : LoggedBandit
        B >= 1 logged rows; when it has a `group`, each group is reported besides ``"overall"``.
    action_dist : (B, A) float, optional
        The target's arm distribution at each logged context (needed by ``"dm"`` and ``"dr"``).
    target_pscore : (B,) float, optional
        The target's probability of each logged action, when `action_dist` is not given; when both are
        None, ``logged.target_pscore`` is used.
    qhat : (B, A) float, optional
        Reward estimates to use in DM and DR instead of a cross-fitted reward model.
    estimators : sequence of str or BaseEstimator
        Names from ``ESTIMATORS`` (``"ips"``, ``"snips"``, ``"dm"``, ``"dr"``, ``"replay"``) or configured
        estimator instances. Named DM and DR share one cross-fitted qhat (from `reward_model`, `n_folds`,
        `seed`); an instance uses its own options.
    reward_model : BaseRewardModel, optional
        Reward model of named DM / DR; default ``RidgeRewardModel()``.
    n_folds : int
        Cross-fitting folds of named DM / DR.
    n_bootstrap : int
        Bootstrap resamples per group; 0 gives point estimates only (NaN interval ends). Estimators share
        the same resamples of their per-row values within a group (the reward model of DM and DR is fitted
        once); a `DirectMethod` instance with ``refit_bootstrap=True`` refits it on each of its own
        resamples instead, drawn within each group (stratified) when the log has groups.
    alpha : float
        Intervals have nominal coverage ``1 - alpha``.
    seed : int
        Seeds the folds, the replay acceptance draws and the bootstrap: the same seed gives the same table.
        The overall row uses the same streams as ``estimator.estimate_interval(..., seed=seed)``. Folds and
        acceptance draws follow the rows' content, so the values do not depend on the order of the rows;
        the bootstrap resamples rows by position, so the intervals do (within their sampling noise).

    Returns
    -------
    pandas.DataFrame
        One row per (group, estimator), ``"overall"`` first and then the groups in sorted order, with
        columns ``group, estimator, value, ci_low, ci_high, ess, max_weight, zero_weight_share, n,
        n_accepted``. The weight diagnostics (`weight_diagnostics`) describe the group's rows and are the
        same for every estimator; ``n_accepted`` is the number of kept rows for replay and missing
        otherwise. Per-row values are computed once on the whole log (so a group's DR uses the reward model
        fitted on all rows) and aggregated per group.

    Raises
    ------
    TargetPolicyError
        No target policy, or DM/DR asked for with ``target_pscore`` only.
    ReplayInputError
        Malformed input, an empty or unknown estimator list, an empty log, or a group named ``"overall"``.
    """
    check_int(seed, "seed", 0)
    check_int(n_bootstrap, "n_bootstrap", 0)
    check_options(max(n_bootstrap, 1), alpha)
    if isinstance(estimators, str) or not len(estimators):
        raise ReplayInputError(
            f"Expected a non-empty sequence of estimators among {', '.join(ESTIMATORS)}, found {estimators!r}"
        )
    data = prepare(logged, action_dist, target_pscore=target_pscore, qhat=qhat)
    if len(data) == 0:
        raise ReplayInputError("Expected at least one logged row, found 0")
    resolved: list[tuple[BaseEstimator, bool]] = []  # (estimator, uses the shared qhat)
    for item in estimators:
        if isinstance(item, BaseEstimator):
            resolved.append((item, False))
        elif item in ("dm", "dr"):
            resolved.append((ESTIMATORS[item](reward_model=reward_model, n_folds=n_folds, seed=seed), True))
        elif item == "replay":
            resolved.append((RejectionReplay(seed=seed), False))
        elif item in ESTIMATORS:
            resolved.append((ESTIMATORS[item](), False))
        else:
            raise ReplayInputError(f"Unknown estimator {item!r}; expected one of {', '.join(ESTIMATORS)}")
    names = [est.name for est, _ in resolved]
    if len(set(names)) != len(names):
        raise ReplayInputError(f"Expected each estimator once, found {', '.join(names)}")
    for est, _ in resolved:
        est.check_input(data)
    shared = data
    if data.qhat is None and data.action_dist is not None and any(uses for _, uses in resolved):
        folds = target_folds(data, n_folds=n_folds, seed=seed)
        fitted = cross_fit_qhat(logged, reward_model, n_actions=data.n_actions, folds=folds)
        shared = replace(data, qhat=fitted)
    rounds = [est.round_values(shared if uses else data) for est, uses in resolved]

    groups: list[tuple[str, np.ndarray | None]] = [("overall", None)]
    if logged.group is not None:
        labels, inverse = np.unique(logged.group.astype(str), return_inverse=True)
        if "overall" in labels:
            raise ReplayInputError("Expected no group named 'overall' (it names the whole log), found one")
        order = np.argsort(inverse, kind="stable")
        splits = np.split(order, np.cumsum(np.bincount(inverse, minlength=len(labels)))[:-1])
        groups.extend((str(label), rows) for label, rows in zip(labels, splits, strict=True))

    group_rows = [rows for _, rows in groups[1:] if rows is not None]
    refitted = [
        None
        if n_bootstrap == 0
        else est.bootstrap_replicates(
            data, n_bootstrap=n_bootstrap, rng=np.random.default_rng(seed), groups=group_rows
        )
        for est, _ in resolved
    ]
    records = []
    for k, (label, rows) in enumerate(groups):
        pick = (lambda a: a) if rows is None else (lambda a, rows=rows: a[rows])
        diag = weight_diagnostics(pick(data.weight))
        stream = seed if k == 0 else [seed, k]
        reps: list[np.ndarray | None] = [None if rep is None else rep[k] for rep in refitted]
        plain = [j for j, rep in enumerate(reps) if rep is None]
        if n_bootstrap == 0:  # point estimates only
            reps = [np.full(1, np.nan) for _ in resolved]
        elif plain:
            shared_reps = bootstrap_ratios(
                [pick(rounds[j].value) for j in plain],
                [None if rounds[j].weight is None else pick(rounds[j].weight) for j in plain],
                n_bootstrap=n_bootstrap,
                rng=np.random.default_rng(stream),
            )
            for j, rep in zip(plain, shared_reps, strict=True):
                reps[j] = rep
        bounds = percentile_interval(np.vstack(reps), alpha=alpha)
        for (est, _), r, (low, high) in zip(resolved, rounds, bounds, strict=True):
            accepted = int(pick(r.weight).sum()) if isinstance(est, RejectionReplay) else pd.NA
            records.append(
                {
                    "group": label,
                    "estimator": est.name,
                    "value": r.aggregate(rows),
                    "ci_low": low,
                    "ci_high": high,
                    "ess": diag.ess,
                    "max_weight": diag.max_weight,
                    "zero_weight_share": diag.zero_weight_share,
                    "n": diag.n,
                    "n_accepted": accepted,
                }
            )
    frame = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    frame["n_accepted"] = frame["n_accepted"].astype("Int64")
    return frame
