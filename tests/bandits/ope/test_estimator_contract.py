"""The contract every off-policy estimator keeps, over each estimator in the `bandits.ope.ESTIMATORS` registry
(with its defaults, and under other options where it has any):

- row order: a permutation of the logged rows, with the target permuted alike, gives the same estimate up to
  float rounding. Estimators that draw random numbers (DM and DR's cross-fitting folds, replay's acceptance
  draws) deal them to the rows in their content order, so this holds for them too, with the seed fixed, on
  logs full of identical rows as well as on logs where no two rows are alike. `evaluate`'s values and weight
  diagnostics are invariant the same way; its bootstrap intervals resample by position and are not;
- determinism: the same input and seed give the same estimate and interval, to the bit;
- empty input: a log of 0 rows is refused with `ReplayInputError`, whatever the call;
- a naive per-row Python reference of each estimator's formula (DM and DR also with their cross-fitted ridge
  reward model, recomputed from the formula) gives the same estimate;
- unbiasedness on a world whose value is known exactly.

An estimator added to the registry is picked up here; it then needs a reference in `REFERENCES`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import bandits.ope
from bandits.ope import (
    ESTIMATORS,
    BaseEstimator,
    DirectMethod,
    DoublyRobust,
    LightGBMRewardModel,
    LoggedBandit,
    RejectionReplay,
    ReplayInputError,
    evaluate,
    load_logged_bandit,
)
from tests.bandits.ope.world import TRUE_VALUE, continuous_log, simulate

#: Every registered estimator with its defaults, and some under other options.
CASES = [pytest.param(cls(), id=name) for name, cls in ESTIMATORS.items()] + [
    pytest.param(DirectMethod(n_folds=5, seed=4), id="dm-5folds-seed4"),
    pytest.param(DoublyRobust(n_folds=2, seed=9), id="dr-2folds-seed9"),
    pytest.param(
        DoublyRobust(reward_model=LightGBMRewardModel(n_estimators=10, min_child_samples=5)), id="dr-lightgbm"
    ),
    pytest.param(RejectionReplay(seed=5), id="replay-seed5"),
]


def datasets() -> list:
    """(logged, target distribution) pairs: a world's log with many identical rows, and a continuous one."""
    logged, dist, _ = simulate(300, 1)
    return [(logged, dist), continuous_log(200, 2)]


def test_estimator_registry_holds_every_exported_estimator() -> None:
    exported = {
        obj
        for name in bandits.ope.__all__
        if isinstance(obj := getattr(bandits.ope, name), type) and issubclass(obj, BaseEstimator)
    }
    assert exported - {BaseEstimator} == set(ESTIMATORS.values())
    assert all(cls.name == name for name, cls in ESTIMATORS.items())


# -- row order ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", CASES)
@pytest.mark.parametrize("data", [0, 1], ids=["ties", "continuous"])
def test_estimator_estimate_is_invariant_to_row_order(estimator: BaseEstimator, data: int) -> None:
    logged, dist = datasets()[data]
    before = estimator.estimate(logged, dist)
    for seed in range(3):
        perm = np.random.default_rng(seed).permutation(len(logged))
        after = estimator.estimate(logged.take(perm), dist[perm])
        assert after == pytest.approx(before, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("estimator", [case for case in CASES if not case.values[0].needs_action_dist])
def test_estimator_estimate_from_target_pscore_is_invariant_to_row_order(estimator: BaseEstimator) -> None:
    logged, dist, _ = simulate(300, 3)
    target = dist[np.arange(len(logged)), logged.action]
    before = estimator.estimate(logged, target_pscore=target)
    assert before == pytest.approx(estimator.estimate(logged, dist), rel=1e-12)
    perm = np.random.default_rng(0).permutation(len(logged))
    after = estimator.estimate(logged.take(perm), target_pscore=target[perm])
    assert after == pytest.approx(before, rel=1e-12)


def test_evaluate_values_and_diagnostics_are_invariant_to_row_order() -> None:
    logged, dist = continuous_log(300, 4)
    perm = np.random.default_rng(1).permutation(len(logged))
    first = evaluate(logged, dist, n_bootstrap=20, seed=2)
    second = evaluate(logged.take(perm), dist[perm], n_bootstrap=20, seed=2)
    columns = ["group", "estimator", "n", "n_accepted"]
    pd.testing.assert_frame_equal(first[columns], second[columns])
    for column in ("value", "ess", "max_weight", "zero_weight_share"):
        np.testing.assert_allclose(second[column], first[column], rtol=1e-9, err_msg=column)


def test_content_order_follows_row_content_not_position() -> None:
    logged, dist, _ = simulate(400, 5)  # about 40 distinct rows: mostly ties
    perm = np.random.default_rng(3).permutation(len(logged))
    shuffled = logged.take(perm)
    order, shuffled_order = logged.content_order(dist), shuffled.content_order(dist[perm])
    assert sorted(order.tolist()) == list(range(len(logged)))
    for field in ("action", "reward", "pscore", "context", "group"):
        np.testing.assert_array_equal(
            getattr(shuffled, field)[shuffled_order], getattr(logged, field)[order], err_msg=field
        )
    np.testing.assert_array_equal(dist[perm][shuffled_order], dist[order])


# -- determinism ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", CASES)
def test_estimator_same_seed_same_estimate_and_interval(estimator: BaseEstimator) -> None:
    logged, dist = continuous_log(150, 6)
    assert estimator.estimate(logged, dist) == estimator.estimate(logged, dist)
    first = estimator.estimate_interval(logged, dist, n_bootstrap=20, seed=8)
    assert estimator.estimate_interval(logged, dist, n_bootstrap=20, seed=8) == first
    assert estimator.estimate_interval(logged, dist, n_bootstrap=20, seed=9) != first


@pytest.mark.parametrize(
    "name", [name for name, cls in ESTIMATORS.items() if "seed" in cls.__dataclass_fields__]
)
def test_estimator_seed_changes_its_random_draws(name: str) -> None:
    logged, dist = continuous_log(150, 6)
    estimates = {ESTIMATORS[name](seed=seed).estimate(logged, dist) for seed in range(4)}
    assert len(estimates) > 1


def test_evaluate_same_seed_same_table() -> None:
    logged, dist, _ = simulate(800, 1)
    first = evaluate(logged, dist, n_bootstrap=40, seed=11)
    pd.testing.assert_frame_equal(first, evaluate(logged, dist, n_bootstrap=40, seed=11))
    assert not first.equals(evaluate(logged, dist, n_bootstrap=40, seed=12))


# -- empty input ---------------------------------------------------------------------------------------------

EMPTY = LoggedBandit(action=np.zeros(0, dtype=int), reward=np.zeros(0), pscore=np.zeros(0), n_actions=3)

# Every way of handing an estimator an empty log.
EMPTY_CALLS = [
    pytest.param(lambda est, log: est.estimate(log, np.zeros((0, 3))), id="estimate"),
    pytest.param(lambda est, log: est.estimate(log, target_pscore=np.zeros(0)), id="estimate-pscore"),
    pytest.param(lambda est, log: est.estimate(log, np.zeros((0, 3)), qhat=np.zeros((0, 3))), id="with-qhat"),
    pytest.param(lambda est, log: est.estimate_interval(log, np.zeros((0, 3))), id="interval"),
    pytest.param(lambda est, log: evaluate(log, np.zeros((0, 3)), estimators=(est,)), id="evaluate"),
]


@pytest.mark.parametrize("call", EMPTY_CALLS)
@pytest.mark.parametrize("estimator", CASES)
def test_estimator_refuses_empty_log(estimator: BaseEstimator, call) -> None:
    with pytest.raises(ReplayInputError, match=r"Expected at least one logged row, found 0"):
        call(estimator, EMPTY)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_estimator_refuses_empty_file(name: str, tmp_path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("action,reward,pscore,section\n")
    logged = load_logged_bandit(path, group="section", n_actions=3)
    with pytest.raises(ReplayInputError, match=r"Expected at least one logged row, found 0"):
        evaluate(logged, np.zeros((0, 3)), estimators=(name,))


# -- a naive per-row reference -------------------------------------------------------------------------------


def row_key(logged: LoggedBandit, i: int, *extra: np.ndarray | None) -> bytes:
    """Row i's content as the bytes `LoggedBandit.content_order` sorts by, built field by field."""
    values = [float(logged.action[i]), logged.reward[i], logged.pscore[i]]
    if logged.target_pscore is not None:
        values.append(logged.target_pscore[i])
    if logged.group is not None:
        values.append(float(sorted(set(logged.group)).index(logged.group[i])))
    if logged.context is not None:
        values.extend(logged.context[i])
    for column in extra:
        if column is not None:
            values.extend(np.atleast_1d(column[i]))
    return b"".join(np.float64(v).tobytes() for v in values)


def naive_content_order(logged: LoggedBandit, *extra: np.ndarray | None) -> list[int]:
    return sorted(range(len(logged)), key=lambda i: row_key(logged, i, *extra))


def naive_ridge_qhat(
    logged: LoggedBandit, folds: list[int], n_actions: int, alpha: float = 1.0
) -> np.ndarray:
    """`RidgeRewardModel` cross-fitted, from its formula, accumulating normal equations row by row."""
    n = len(logged)
    x = logged.context if logged.context is not None else np.zeros((n, 0))
    qhat = np.zeros((n, n_actions))
    for k in sorted(set(folds)):
        train = [i for i in range(n) if folds[i] != k] or list(range(n))
        mean = sum(x[i] for i in train) / len(train)
        std = np.sqrt(sum((x[i] - mean) ** 2 for i in train) / len(train))
        scale = np.where(std > 0, std, 1.0)

        def z(i: int, mean=mean, scale=scale) -> np.ndarray:
            return np.concatenate([[1.0], (x[i] - mean) / scale])

        p = x.shape[1] + 1
        gram, rhs = alpha * np.eye(p), np.zeros(p)
        gram[0, 0] = 0.0
        for i in train:
            gram += np.outer(z(i), z(i))
            rhs += z(i) * logged.reward[i]
        beta0 = np.linalg.solve(gram, rhs)
        coef = []
        for a in range(n_actions):
            gram_a, rhs_a = alpha * np.eye(p), np.zeros(p)
            for i in train:
                if logged.action[i] == a:
                    gram_a += np.outer(z(i), z(i))
                    rhs_a += z(i) * (logged.reward[i] - z(i) @ beta0)
            coef.append(beta0 + np.linalg.solve(gram_a, rhs_a))
        for i in range(n):
            if folds[i] == k:
                qhat[i] = [z(i) @ coef[a] for a in range(n_actions)]
    return qhat


def naive_qhat(
    est: DirectMethod, logged: LoggedBandit, dist: np.ndarray, qhat: np.ndarray | None
) -> np.ndarray:
    if qhat is not None:
        return qhat
    order = naive_content_order(logged, dist)
    perm = np.random.default_rng(est.seed).permutation(len(logged))
    folds = [0] * len(logged)
    for rank, i in enumerate(order):
        folds[i] = int(perm[rank]) % est.n_folds
    return naive_ridge_qhat(logged, folds, dist.shape[1])


def weights(logged: LoggedBandit, dist: np.ndarray) -> list[float]:
    return [dist[i][logged.action[i]] / logged.pscore[i] for i in range(len(logged))]


def naive_ips(est, logged, dist, qhat) -> float:
    w = weights(logged, dist)
    return sum(w[i] * logged.reward[i] for i in range(len(logged))) / len(logged)


def naive_snips(est, logged, dist, qhat) -> float:
    w = weights(logged, dist)
    return sum(w[i] * logged.reward[i] for i in range(len(logged))) / sum(w)


def naive_dm(est, logged, dist, qhat) -> float:
    q = naive_qhat(est, logged, dist, qhat)
    return sum(sum(dist[i][a] * q[i][a] for a in range(dist.shape[1])) for i in range(len(logged))) / len(
        logged
    )


def naive_dr(est, logged, dist, qhat) -> float:
    q = naive_qhat(est, logged, dist, qhat)
    w = weights(logged, dist)
    total = 0.0
    for i in range(len(logged)):
        a_i = logged.action[i]
        total += sum(dist[i][a] * q[i][a] for a in range(dist.shape[1]))
        total += w[i] * (logged.reward[i] - q[i][a_i])
    return total / len(logged)


def naive_replay(est, logged, dist, qhat) -> float:
    w = weights(logged, dist)
    target = np.array([dist[i][logged.action[i]] for i in range(len(logged))])
    draws = np.random.default_rng(est.seed).random(len(logged))
    uniform = [0.0] * len(logged)
    for rank, i in enumerate(naive_content_order(logged, target)):
        uniform[i] = draws[rank]
    bound = max(w)
    kept = [i for i in range(len(logged)) if uniform[i] < w[i] / bound]
    return sum(logged.reward[i] for i in kept) / len(kept) if kept else math.nan


REFERENCES = {"ips": naive_ips, "snips": naive_snips, "dm": naive_dm, "dr": naive_dr, "replay": naive_replay}

#: Estimators under the options their naive reference covers (the ridge reward model for DM and DR).
REFERENCE_CASES = [
    *(pytest.param(cls(), id=name) for name, cls in ESTIMATORS.items()),
    pytest.param(DirectMethod(n_folds=4, seed=2), id="dm-4folds"),
    pytest.param(DoublyRobust(n_folds=2, seed=5), id="dr-2folds"),
    pytest.param(RejectionReplay(seed=3), id="replay-seed3"),
]


@pytest.mark.parametrize("estimator", REFERENCE_CASES)
@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("supplied_qhat", [False, True], ids=["fitted-qhat", "given-qhat"])
def test_estimator_matches_naive_reference(estimator: BaseEstimator, seed: int, supplied_qhat: bool) -> None:
    logged, dist = continuous_log(120, 10 + seed)
    qhat = np.random.default_rng(seed).uniform(-1, 1, size=dist.shape) if supplied_qhat else None
    expected = REFERENCES[estimator.name](estimator, logged, dist, qhat)
    assert estimator.estimate(logged, dist, qhat=qhat) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("estimator", REFERENCE_CASES)
def test_estimator_matches_naive_reference_on_a_log_of_ties(estimator: BaseEstimator) -> None:
    logged, dist, _ = simulate(150, 7)
    expected = REFERENCES[estimator.name](estimator, logged, dist, None)
    assert estimator.estimate(logged, dist) == pytest.approx(expected, rel=1e-9, abs=1e-12)


# -- unbiasedness -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_estimator_is_unbiased_on_a_world_of_known_value(name: str) -> None:
    # Mean of 200 independent estimates (1,000 rows each) within 4 standard errors of the exact value.
    # SNIPS and replay are ratio estimators and DM uses a ridge fit: their O(1/B) bias is far below that.
    estimator = ESTIMATORS[name]()
    estimates = np.array([estimator.estimate(*simulate(1000, seed)[:2]) for seed in range(200)])
    std_err = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - TRUE_VALUE) <= 4 * std_err
    assert std_err < 0.005  # the test has power: a bias of 0.02 would fail it
