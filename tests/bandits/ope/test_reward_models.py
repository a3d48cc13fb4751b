"""Reward models against linear truths and their own determinism, and cross-fitting's fold discipline."""

from __future__ import annotations

import numpy as np
import pytest

from bandits.errors import NotFittedError as HouseNotFittedError
from bandits.ope import (
    LightGBMRewardModel,
    LoggedBandit,
    NotFittedError,
    ReplayInputError,
    RidgeRewardModel,
    cross_fit_qhat,
)
from bandits.ope.reward_models import fold_ids
from tests.bandits.ope.world import continuous_log, simulate


def test_ridge_reward_model_recovers_linear_truth() -> None:
    rng = np.random.default_rng(0)
    n, d, arms = 5000, 3, 4
    x = rng.normal(size=(n, d))
    a = rng.integers(0, arms, size=n)
    coef = rng.normal(size=(arms, d))
    intercept = rng.normal(size=arms)
    truth = x @ coef.T + intercept  # (n, A)
    model = RidgeRewardModel(alpha=1e-6).fit(x, a, truth[np.arange(n), a], n_actions=arms)
    assert np.allclose(model.predict(x, n), truth, atol=1e-5)


def test_ridge_reward_model_falls_back_to_pooled_model_for_unseen_arm() -> None:
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = RidgeRewardModel().fit(x, np.array([0, 0, 1, 1]), np.array([1.0, 1.0, 1.0, 1.0]), n_actions=3)
    assert np.allclose(model.predict(x, 4)[:, 2], 1.0)


@pytest.mark.parametrize("model", [RidgeRewardModel(), LightGBMRewardModel()], ids=type)
def test_reward_model_predict_before_fit_raises_the_house_not_fitted_error(model) -> None:
    with pytest.raises(NotFittedError, match=rf"{type(model).__name__}: call fit before predict"):
        model.predict(None, 3)
    assert NotFittedError is HouseNotFittedError


def test_lightgbm_reward_model_is_deterministic_and_learns_arm_effects() -> None:
    logged, _, q = simulate(3000, 2, deterministic=True)
    first = LightGBMRewardModel(n_estimators=100, learning_rate=0.1, min_child_samples=5).fit(
        logged.context, logged.action, logged.reward, n_actions=4
    )
    second = LightGBMRewardModel(n_estimators=100, learning_rate=0.1, min_child_samples=5).fit(
        logged.context, logged.action, logged.reward, n_actions=4
    )
    pred = first.predict(logged.context, len(logged))
    assert np.array_equal(pred, second.predict(logged.context, len(logged)))
    assert np.abs(pred - q).max() < 0.01


def test_cross_fit_qhat_row_does_not_see_its_own_reward() -> None:
    logged, _, _ = simulate(300, 5)
    folds = fold_ids(logged.content_order(), n_folds=3, seed=1)
    base = cross_fit_qhat(logged, folds=folds)
    np.testing.assert_array_equal(base, cross_fit_qhat(logged, n_folds=3, seed=1))  # the default folds
    changed_reward = logged.reward.copy()
    changed_reward[7] += 50.0
    changed = LoggedBandit(
        action=logged.action, reward=changed_reward, pscore=logged.pscore, context=logged.context, n_actions=4
    )
    after = cross_fit_qhat(changed, folds=folds)
    moved = np.abs(after - base).max(axis=1) > 1e-9
    assert not moved[7]  # row 7's own estimates come from the other folds
    assert moved.sum() >= len(logged) // 2  # the other folds' rows were fitted on row 7
    assert np.array_equal(base, cross_fit_qhat(logged, n_folds=3, seed=1))  # seeded


def test_cross_fit_qhat_permutes_with_the_rows() -> None:
    logged, _ = continuous_log(300, 6)
    perm = np.random.default_rng(0).permutation(len(logged))
    base = cross_fit_qhat(logged, n_folds=3, seed=2)
    shuffled = cross_fit_qhat(logged.take(perm), n_folds=3, seed=2)
    np.testing.assert_allclose(shuffled, base[perm], rtol=1e-9, atol=1e-12)


def test_fold_ids_deal_balanced_folds_in_the_given_order() -> None:
    order = np.random.default_rng(1).permutation(10)
    folds = fold_ids(order, n_folds=3, seed=4)
    assert np.bincount(folds).tolist() == [4, 3, 3]
    expected = np.random.default_rng(4).permutation(10) % 3
    np.testing.assert_array_equal(folds[order], expected)


# Invalid fold counts: not an integer, below 1, more folds than rows.
INVALID_FOLDS = [
    (0, r"Expected `n_folds` to be an integer >= 1, found 0"),
    (2.5, r"Expected `n_folds` to be an integer >= 1, found 2.5"),
    (True, r"Expected `n_folds` to be an integer >= 1, found True"),
    (11, r"Expected `n_folds` <= the number of rows \(10\), found 11"),
]


@pytest.mark.parametrize(("n_folds", "match"), INVALID_FOLDS)
def test_fold_ids_refuse_invalid_fold_count(n_folds, match: str) -> None:
    with pytest.raises(ReplayInputError, match=match):
        fold_ids(np.arange(10), n_folds=n_folds, seed=0)


def per_fold_fits(model, x, action, reward, folds, n_actions) -> np.ndarray:
    """The definition of cross-fitting: a fresh fit per fold, on the other folds' rows."""
    qhat = np.empty((len(action), n_actions))
    for k in np.unique(folds):
        test = folds == k
        train = ~test if not test.all() else test
        fitted = type(model)(alpha=model.alpha, clip=model.clip).fit(
            None if x is None else x[train], action[train], reward[train], n_actions=n_actions
        )
        qhat[test] = fitted.predict(None if x is None else x[test], int(test.sum()))
    return qhat


@pytest.mark.parametrize(
    ("n_folds", "context", "clip"),
    [
        (3, "normal", False),
        (3, "normal", True),
        (1, "normal", False),
        (4, "none", False),
        (2, "offset", False),  # a column far from 0 against its spread: centred before its moments
        (3, "one-hot", False),  # a column constant on some folds' training rows
    ],
)
def test_ridge_cross_fit_matches_a_fit_per_fold(n_folds: int, context: str, clip: bool) -> None:
    rng = np.random.default_rng(n_folds)
    n, arms = 3000, 5
    x = {
        "normal": rng.normal(size=(n, 4)),
        "none": None,
        "offset": np.column_stack([1e6 + rng.normal(size=n), rng.normal(size=n)]),
        "one-hot": np.column_stack([np.arange(n) < 40, rng.normal(size=n)]).astype(float),
    }[context]
    action = rng.integers(0, arms, size=n)
    reward = (rng.random(n) < 0.3).astype(float) + (0 if x is None else 0.1 * x[:, -1])
    folds = np.arange(n) % n_folds if context == "one-hot" else rng.integers(0, n_folds, size=n)
    model = RidgeRewardModel(alpha=0.5, clip=clip)
    fast = model.cross_fit(x, action, reward, folds=folds, n_actions=arms)
    np.testing.assert_allclose(
        fast, per_fold_fits(model, x, action, reward, folds, arms), rtol=1e-9, atol=1e-9
    )
