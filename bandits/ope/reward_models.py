"""Reward models for DM and DR, and cross-fitting: each row's reward estimates from a model that never saw it.

A reward model estimates ``qhat(x, a)``, the expected reward of arm a at context x (`BaseRewardModel`).
`cross_fit_qhat` fits fresh copies of one on K folds of the rows and predicts each fold from the model
fitted on the others. Folds are dealt to the rows in their content order (`LoggedBandit.content_order`), so
the fold of a row, and with it every estimate built on the cross-fitted ``qhat``, does not depend on the
order in which the rows are given.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
from threadpoolctl import threadpool_limits

from bandits.ope.base import BaseRewardModel
from bandits.ope.data import LoggedBandit, check_int
from bandits.ope.errors import NotFittedError, ReplayInputError

__all__ = ["LightGBMRewardModel", "RidgeRewardModel", "cross_fit_qhat", "fold_ids"]


class RidgeRewardModel(BaseRewardModel):
    """Per-arm ridge regression shrunk towards a pooled ridge regression (numpy, closed form).

    With ``z = [1, standardised x]`` (p = d + 1 columns; columns standardised with the training mean and
    standard deviation, a constant column left unscaled), the model is

        qhat(x, a) = z . (beta_0 + delta_a),

    where ``beta_0`` is a ridge fit of r on z over all rows (intercept not penalised) and ``delta_a`` a ridge
    fit of the residual ``r - z . beta_0`` on the rows of arm a (intercept penalised too). This is a ridge
    regression on [shared features, action one-hot x features] interactions with the penalty on the
    interactions, so an arm with few rows falls back to the pooled model, and one with none gets exactly it.
    Without context it is a shrunk per-arm mean. Deterministic: no randomness at all.

    Predictions may leave the reward range (a linear probability model for clicks can predict below 0).
    That is the default on purpose: DM averages the predictions, and clipping them to ``[min r, max r]``
    biases that average upwards for rare 0/1 rewards (on the Open Bandit Dataset it doubled DM's CTR).

    Parameters
    ----------
    alpha : float
        Ridge penalty, > 0.
    clip : bool
        Clip predictions to ``[min(r), max(r)]`` of the training rows (default False, see above).
    """

    def __init__(self, *, alpha: float = 1.0, clip: bool = False) -> None:
        self.alpha = alpha
        self.clip = clip

    def fit(
        self, context: np.ndarray | None, action: np.ndarray, reward: np.ndarray, *, n_actions: int
    ) -> RidgeRewardModel:
        if not (isinstance(self.alpha, float | int) and self.alpha > 0):
            raise ReplayInputError(f"Expected `alpha` > 0, found {self.alpha!r}")
        n = len(action)
        if n == 0:
            raise ReplayInputError("Expected at least one row to fit a reward model, found 0")
        x = np.zeros((n, 0)) if context is None else np.asarray(context, dtype=np.float64)
        self.mean_ = x.mean(axis=0)
        scale = x.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        z = self._design(x)
        p = z.shape[1]
        reward = np.asarray(reward, dtype=np.float64)
        penalty = self.alpha * np.eye(p)
        penalty[0, 0] = 0.0
        beta0 = np.linalg.solve(z.T @ z + penalty, z.T @ reward)
        resid = reward - z @ beta0
        order = np.argsort(action, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(action, minlength=n_actions))])
        zs, rs = z[order], resid[order]
        gram = np.empty((n_actions, p, p))
        rhs = np.empty((n_actions, p))
        for a in range(n_actions):  # per arm, not per row: each step is one BLAS product over the arm's rows
            block = zs[bounds[a] : bounds[a + 1]]
            gram[a] = block.T @ block
            rhs[a] = block.T @ rs[bounds[a] : bounds[a + 1]]
        delta = np.linalg.solve(gram + self.alpha * np.eye(p), rhs[:, :, None])[:, :, 0]
        self.coef_ = beta0[None, :] + delta
        self.low_, self.high_ = float(reward.min()), float(reward.max())
        return self

    def cross_fit(
        self,
        context: np.ndarray | None,
        action: np.ndarray,
        reward: np.ndarray,
        *,
        folds: np.ndarray,
        n_actions: int,
    ) -> np.ndarray:
        """Cross-fitted estimates equal to fitting a copy per fold, from one pass over the rows.

        The normal equations of every (fold, arm) cell are accumulated once on the unscaled design
        ``u = [1, x - c]`` (c a point near the data, for numerical stability). Fold k's training
        statistics are the sums over the other folds; its mean and standard deviation come from them, and the
        standardisation is the linear map ``z = u M``, so the standardised normal equations are ``M' G M``
        and ``M' h`` and predictions are ``u (M coef)``. Same model, same estimates as `fit` per fold.
        """
        if not (isinstance(self.alpha, float | int) and self.alpha > 0):
            raise ReplayInputError(f"Expected `alpha` > 0, found {self.alpha!r}")
        # Every product here is small (a chunk of rows times p columns): a second BLAS thread costs more in
        # synchronisation than it saves, and much more when another process holds the other core.
        with threadpool_limits(limits=1, user_api="blas"):
            return self._cross_fit(context, action, reward, np.asarray(folds), n_actions)

    def _cross_fit(
        self,
        context: np.ndarray | None,
        action: np.ndarray,
        reward: np.ndarray,
        folds: np.ndarray,
        n_actions: int,
    ) -> np.ndarray:
        n = len(action)
        x = np.zeros((n, 0)) if context is None else np.asarray(context, dtype=np.float64)
        reward = np.asarray(reward, dtype=np.float64)
        labels, fold = np.unique(np.asarray(folds), return_inverse=True)
        n_folds, d = len(labels), x.shape[1]
        p = d + 1
        # Moments are taken around a point near the data (the mean of the first rows): any fixed point gives
        # the same model, and a near one keeps raw moments from losing digits to a large offset.
        centre = x[:256].mean(axis=0) if n else np.zeros(d)
        shifted = bool(centre.any())
        cell = (fold * n_actions + action).astype(np.int16 if n_folds * n_actions < 2**15 else np.int64)
        n_cells = n_folds * n_actions
        gram = np.zeros((n_cells, p, p))
        rhs = np.zeros((n_cells, p))
        low, high = np.full(n_cells, np.inf), np.full(n_cells, -np.inf)
        step = 1 << 15
        for start in range(
            0, n, step
        ):  # chunks of rows sorted by (fold, arm) cell; one BLAS product per cell
            stop = min(n, start + step)
            order = np.argsort(cell[start:stop], kind="stable")
            block, target = x[start:stop][order], reward[start:stop][order]
            if shifted:
                block -= centre
            counts = np.bincount(cell[start:stop], minlength=n_cells)
            ends = np.cumsum(counts)
            for c in np.flatnonzero(counts):
                rows = slice(ends[c] - counts[c], ends[c])
                part, value = block[rows], target[rows]
                gram[c, 0, 0] += counts[c]
                sums = part.sum(axis=0)
                gram[c, 0, 1:] += sums
                gram[c, 1:, 0] += sums
                gram[c, 1:, 1:] += part.T @ part
                rhs[c, 0] += value.sum()
                rhs[c, 1:] += part.T @ value
                low[c], high[c] = min(low[c], value.min()), max(high[c], value.max())
        gram = gram.reshape(n_folds, n_actions, p, p)
        rhs = rhs.reshape(n_folds, n_actions, p)
        low, high = low.reshape(n_folds, n_actions), high.reshape(n_folds, n_actions)
        eye = np.eye(p)
        penalty = self.alpha * eye
        penalty[0, 0] = 0.0
        coefs = np.empty((n_folds, p, n_actions))
        bounds = np.empty((n_folds, 2))
        for k in range(n_folds):
            train = np.arange(n_folds) != k if n_folds > 1 else np.ones(1, dtype=bool)
            g_arm, h_arm = gram[train].sum(axis=0), rhs[train].sum(axis=0)
            g_all, h_all = g_arm.sum(axis=0), h_arm.sum(axis=0)
            count = g_all[0, 0]
            mean = g_all[0, 1:] / count
            second = np.diag(g_all)[1:] / count
            var = np.maximum(second - mean**2, 0.0)
            # A column constant on the training rows has variance 0 up to rounding: leave it unscaled.
            scale = np.where(var > 1e-12 * np.maximum(second, np.finfo(float).tiny), np.sqrt(var), 1.0)
            m = np.zeros((p, p))  # z = u m: [1, u - mean] / [1, scale]
            m[0, 0] = 1.0
            m[0, 1:] = -mean / scale
            m[np.arange(1, p), np.arange(1, p)] = 1.0 / scale
            beta0 = np.linalg.solve(m.T @ g_all @ m + penalty, m.T @ h_all)
            g_std = np.einsum("ji,ajk,kl->ail", m, g_arm, m)
            h_std = np.einsum("ji,aj->ai", m, h_arm) - g_std @ beta0
            delta = np.linalg.solve(g_std + self.alpha * eye, h_std[:, :, None])[:, :, 0]
            coefs[k] = m @ (beta0[None, :] + delta).T  # (p, A) on the unscaled design u = [1, x - centre]
            bounds[k] = low[train].min(), high[train].max()
        qhat = np.empty((n, n_actions))
        for start in range(0, n, step):  # chunks: all folds' predictions of a chunk, then each row's own fold
            stop = min(n, start + step)
            chunk = x[start:stop] - centre if shifted else x[start:stop]
            slopes = coefs[:, 1:, :].transpose(1, 0, 2).reshape(d, n_folds * n_actions)
            every = chunk @ slopes + coefs[:, 0, :].reshape(-1)
            own = (np.arange(stop - start) * n_folds + fold[start:stop]) * n_actions  # the row's own fold
            qhat[start:stop] = every.reshape(-1)[own[:, None] + np.arange(n_actions)]
        if self.clip:
            np.clip(qhat, bounds[fold, :1], bounds[fold, 1:], out=qhat)
        return qhat

    def _design(self, x: np.ndarray) -> np.ndarray:
        return np.hstack([np.ones((len(x), 1)), (x - self.mean_) / self.scale_])

    def predict(self, context: np.ndarray | None, n_rows: int) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise NotFittedError("RidgeRewardModel: call fit before predict")
        x = np.zeros((n_rows, 0)) if context is None else np.asarray(context, dtype=np.float64)
        if x.shape != (n_rows, len(self.mean_)):
            raise ReplayInputError(
                f"Expected `context` of shape ({n_rows}, {len(self.mean_)}), found {x.shape}"
            )
        q = self._design(x) @ self.coef_.T
        return np.clip(q, self.low_, self.high_) if self.clip else q


class LightGBMRewardModel(BaseRewardModel):
    """Gradient-boosted trees on [context, action as a categorical feature], seeded and deterministic.

    Fits one LightGBM model with the arm index as a categorical feature and predicts every arm by setting
    that feature to each arm in turn (A prediction passes of n rows). Slower than `RidgeRewardModel` but
    captures non-linear effects. Built with ``deterministic=True`` and a fixed thread count, so the same
    options and data give the same predictions.

    Parameters
    ----------
    objective : str
        LightGBM objective: ``"regression"`` (squared error) or ``"binary"`` (0/1 rewards; predictions are
        probabilities).
    n_estimators, learning_rate, num_leaves, min_child_samples
        Tree ensemble options (LightGBM's ``num_boost_round``, ``learning_rate``, ``num_leaves``,
        ``min_data_in_leaf``).
    num_threads : int
        Threads used to fit and predict.
    seed : int
        LightGBM's seed.
    """

    def __init__(
        self,
        *,
        objective: str = "regression",
        n_estimators: int = 100,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 50,
        num_threads: int = 1,
        seed: int = 0,
    ) -> None:
        self.objective = objective
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.num_threads = num_threads
        self.seed = seed

    def fit(
        self, context: np.ndarray | None, action: np.ndarray, reward: np.ndarray, *, n_actions: int
    ) -> LightGBMRewardModel:
        if self.objective not in ("regression", "binary"):
            raise ReplayInputError(f"Expected `objective` 'regression' or 'binary', found {self.objective!r}")
        n = len(action)
        x = np.zeros((n, 0)) if context is None else np.asarray(context, dtype=np.float64)
        self.n_features_ = x.shape[1]
        self.n_actions_ = n_actions
        params = {
            "objective": self.objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples,
            "num_threads": self.num_threads,
            "seed": self.seed,
            "deterministic": True,
            "force_col_wise": True,
            "verbose": -1,
        }
        data = lgb.Dataset(
            np.hstack([x, np.asarray(action, dtype=np.float64)[:, None]]),
            label=np.asarray(reward, dtype=np.float64),
            categorical_feature=[self.n_features_],
            params={"verbose": -1},
        )
        self.booster_ = lgb.train(params, data, num_boost_round=self.n_estimators)
        return self

    def predict(self, context: np.ndarray | None, n_rows: int) -> np.ndarray:
        if not hasattr(self, "booster_"):
            raise NotFittedError("LightGBMRewardModel: call fit before predict")
        x = np.zeros((n_rows, 0)) if context is None else np.asarray(context, dtype=np.float64)
        if x.shape != (n_rows, self.n_features_):
            raise ReplayInputError(
                f"Expected `context` of shape ({n_rows}, {self.n_features_}), found {x.shape}"
            )
        design = np.hstack([x, np.zeros((n_rows, 1))])
        q = np.empty((n_rows, self.n_actions_))
        for a in range(self.n_actions_):  # one vectorised prediction pass per arm
            design[:, -1] = a
            q[:, a] = self.booster_.predict(design, num_threads=self.num_threads)
        return q


def fold_ids(order: np.ndarray, *, n_folds: int, seed: int) -> np.ndarray:
    """Fold of each of B rows, (B,) int in [0, n_folds): a seeded permutation of ``0..B-1`` modulo
    `n_folds`, dealt to the rows in `order`.

    Row ``order[r]`` gets fold ``permutation[r] % n_folds``. With ``order = logged.content_order()`` a row's
    fold follows what the row holds, not where it stands: a permuted log gets the same folds, permuted.

    Parameters
    ----------
    order : (B,) int
        A permutation of the row indices ``0..B-1``.
    n_folds : int
        In [1, B].
    seed : int
        Seed of the permutation.
    """
    n_rows = len(order)
    check_int(n_folds, "n_folds", 1)
    if n_folds > n_rows:
        raise ReplayInputError(f"Expected `n_folds` <= the number of rows ({n_rows}), found {n_folds}")
    folds = np.empty(n_rows, dtype=np.int64)
    folds[np.asarray(order)] = np.random.default_rng(seed).permutation(n_rows) % n_folds
    return folds


def cross_fit_qhat(
    logged: LoggedBandit,
    reward_model: BaseRewardModel | None = None,
    *,
    n_actions: int | None = None,
    n_folds: int = 3,
    seed: int = 0,
    folds: np.ndarray | None = None,
) -> np.ndarray:
    """Cross-fitted reward estimates: row i's estimates come from a model fitted without row i's fold.

    Rows are split into `n_folds` folds by a seeded random permutation dealt in the rows' content order
    (`fold_ids` over ``logged.content_order()``); for each fold a fresh deep copy of `reward_model` is fitted
    on the other folds and predicts all arms at the fold's contexts. With ``n_folds=1`` the model is fitted
    and evaluated on all rows (no cross-fitting). A permutation of the rows permutes the result alike (rows
    equal in every field may exchange their estimates).

    Parameters
    ----------
    logged : LoggedBandit
        B logged rows.
    reward_model : BaseRewardModel, optional
        Template model; default ``RidgeRewardModel()``.
    n_actions : int, optional
        A, the number of arms to predict; default ``logged.n_arms``.
    n_folds : int
        Number of folds, in [1, B].
    seed : int
        Seed of the fold assignment.
    folds : (B,) int, optional
        A given fold of each row instead of the seeded assignment (DM and DR pass folds dealt in the content
        order of the rows and the target's distribution; a bootstrap resample passes its rows' original
        folds, so that copies of one row never sit on both sides of a split). A fold whose complement is
        empty is fitted in-sample.

    Returns
    -------
    (B, A) float64
        ``qhat[i, a]`` for every logged row i and arm a.
    """
    fold = (
        fold_ids(logged.content_order(), n_folds=n_folds, seed=seed) if folds is None else np.asarray(folds)
    )
    template = reward_model if reward_model is not None else RidgeRewardModel()
    n_arms = n_actions if n_actions is not None else logged.n_arms
    return template.cross_fit(logged.context, logged.action, logged.reward, folds=fold, n_actions=n_arms)
