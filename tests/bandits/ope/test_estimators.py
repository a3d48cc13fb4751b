"""What each estimator does beyond the shared contract (test_estimator_contract.py): closed forms, the
relations between estimators, replay's bound, the weight diagnostics, and `evaluate`'s table and refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bandits.ope import (
    DirectMethod,
    DoublyRobust,
    InverseProbabilityWeighting,
    LoggedBandit,
    RejectionReplay,
    ReplayInputError,
    SelfNormalizedIPS,
    TargetPolicyError,
    evaluate,
    weight_diagnostics,
)
from tests.bandits.ope.world import MU, PI, TRUE_VALUE, simulate


def test_world_truth_is_consistent() -> None:
    assert np.allclose(MU.sum(axis=1), 1.0)
    assert np.allclose(PI.sum(axis=1), 1.0)


def test_dr_and_dm_with_true_qhat_are_unbiased() -> None:
    dm = DirectMethod()
    dr = DoublyRobust()
    runs = [simulate(1000, seed) for seed in range(100)]
    dm_values = np.array([dm.estimate(log, dist, qhat=q) for log, dist, q in runs])
    dr_values = np.array([dr.estimate(log, dist, qhat=q) for log, dist, q in runs])
    for values in (dm_values, dr_values):
        assert abs(values.mean() - TRUE_VALUE) <= 4 * values.std(ddof=1) / np.sqrt(len(values))


def test_dr_equals_dm_when_reward_model_is_exact() -> None:
    logged, dist, q = simulate(2000, 3, deterministic=True)
    dm = DirectMethod().estimate(logged, dist, qhat=q)
    dr = DoublyRobust().estimate(logged, dist, qhat=q)
    assert dr == pytest.approx(dm, abs=1e-12)
    # with a wrong model the correction is not zero: it moves DR from the wrong DM back near the exact DM
    wrong_dm = DirectMethod().estimate(logged, dist, qhat=q * 0.5)
    wrong_dr = DoublyRobust().estimate(logged, dist, qhat=q * 0.5)
    assert wrong_dm == pytest.approx(dm / 2)
    assert abs(wrong_dr - dm) < 0.05 < abs(wrong_dr - wrong_dm)


def test_snips_equals_ips_when_weights_average_one() -> None:
    rng = np.random.default_rng(0)
    n = 500
    pscore = rng.uniform(0.2, 0.5, size=n)
    raw = rng.uniform(0.0, 2.0, size=n)
    weight = raw / raw.mean()  # averages exactly 1 (up to rounding), each <= 1 / pscore
    target = weight * pscore
    assert target.max() <= 1.0
    logged = LoggedBandit(action=np.zeros(n, dtype=int), reward=rng.normal(size=n), pscore=pscore)
    ips = InverseProbabilityWeighting().estimate(logged, target_pscore=target)
    snips = SelfNormalizedIPS().estimate(logged, target_pscore=target)
    assert snips == pytest.approx(ips, rel=1e-12)
    # and they differ once the weights no longer average 1
    assert SelfNormalizedIPS().estimate(logged, target_pscore=target * 0.5) != pytest.approx(
        InverseProbabilityWeighting().estimate(logged, target_pscore=target * 0.5)
    )


@pytest.mark.parametrize("seed", range(5))
def test_snips_stays_within_reward_range(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    reward = rng.uniform(-2.0, 5.0, size=n)
    pscore = rng.uniform(0.001, 1.0, size=n) ** 3  # heavy-tailed weights
    target = rng.uniform(0.0, 1.0, size=n)
    logged = LoggedBandit(action=np.zeros(n, dtype=int), reward=reward, pscore=pscore)
    interval = SelfNormalizedIPS().estimate_interval(logged, target_pscore=target, n_bootstrap=100, seed=seed)
    for value in interval:
        assert reward.min() <= value <= reward.max()


def test_snips_stays_within_reward_range_where_ips_does_not() -> None:
    # rewards all 1 and weights averaging 2: IPS = 2, SNIPS = 1
    logged = LoggedBandit(action=np.zeros(4, dtype=int), reward=np.ones(4), pscore=np.full(4, 0.25))
    target = np.array([0.25, 0.75, 0.5, 0.5])
    assert InverseProbabilityWeighting().estimate(logged, target_pscore=target) == pytest.approx(2.0)
    assert SelfNormalizedIPS().estimate(logged, target_pscore=target) == pytest.approx(1.0)


def test_replay_keeps_exactly_matching_rows_for_deterministic_target_and_uniform_logging() -> None:
    rng = np.random.default_rng(4)
    n, arms = 1000, 5
    action = rng.integers(0, arms, size=n)
    reward = rng.random(n)
    chosen = rng.integers(0, arms, size=n)  # the target's arm at each row
    dist = np.eye(arms)[chosen]
    logged = LoggedBandit(action=action, reward=reward, pscore=np.full(n, 1 / arms))
    match = chosen == action
    for seed in range(3):
        assert RejectionReplay(seed=seed).estimate(logged, dist) == pytest.approx(reward[match].mean())


def test_replay_refuses_weight_above_bound() -> None:
    logged, dist, _ = simulate(100, 0)
    with pytest.raises(
        ReplayInputError, match=r"Expected importance weights <= `weight_bound` = 2, found .* at row"
    ):
        RejectionReplay(weight_bound=2.0).estimate(logged, dist)


def test_self_normalised_estimators_are_nan_without_positive_weight() -> None:
    logged = LoggedBandit(action=np.zeros(4, dtype=int), reward=np.ones(4), pscore=np.full(4, 0.5))
    target = np.zeros(4)
    assert np.isnan(SelfNormalizedIPS().estimate(logged, target_pscore=target))
    assert np.isnan(RejectionReplay().estimate(logged, target_pscore=target))
    assert InverseProbabilityWeighting().estimate(logged, target_pscore=target) == 0.0


def test_weight_diagnostics_closed_forms() -> None:
    equal = weight_diagnostics(np.full(10, 3.0))
    assert (equal.n, equal.ess, equal.max_weight, equal.zero_weight_share) == (
        10,
        pytest.approx(10.0),
        3.0,
        0.0,
    )
    single = weight_diagnostics(np.array([0.0, 0.0, 5.0, 0.0]))
    assert (single.ess, single.max_weight, single.zero_weight_share) == (pytest.approx(1.0), 5.0, 0.75)
    w = np.array([1.0, 2.0, 3.0])
    assert weight_diagnostics(w).ess == pytest.approx(36.0 / 14.0)
    assert weight_diagnostics(np.zeros(3)).ess == 0.0


# -- evaluate ----------------------------------------------------------------------------------------------


def test_evaluate_reports_each_group_and_overall() -> None:
    logged, dist, _ = simulate(2000, 0)
    table = evaluate(logged, dist, n_bootstrap=50, seed=3)
    assert list(table.columns) == [
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
    ]
    assert list(table["group"].unique()) == ["overall", "discover", "search"]
    assert list(table["estimator"].unique()) == ["ips", "snips", "dm", "dr", "replay"]
    overall = table[table.group == "overall"].set_index("estimator")
    assert overall.loc["ips", "n"] == len(logged)
    assert table[(table.group != "overall") & (table.estimator == "ips")]["n"].sum() == len(logged)
    # the overall row uses the same draws as the estimator's own interval
    ips = InverseProbabilityWeighting().estimate_interval(logged, dist, n_bootstrap=50, seed=3)
    assert tuple(overall.loc["ips", ["value", "ci_low", "ci_high"]]) == pytest.approx(tuple(ips))
    dr = DoublyRobust(seed=3).estimate_interval(logged, dist, n_bootstrap=50, seed=3)
    assert tuple(overall.loc["dr", ["value", "ci_low", "ci_high"]]) == pytest.approx(tuple(dr))
    # a group's IPS is IPS on that group's rows
    rows = logged.group == "search"
    sub = LoggedBandit(action=logged.action[rows], reward=logged.reward[rows], pscore=logged.pscore[rows])
    search_ips = table[(table.group == "search") & (table.estimator == "ips")]["value"].item()
    assert search_ips == pytest.approx(InverseProbabilityWeighting().estimate(sub, dist[rows]))
    w = dist[np.arange(len(logged)), logged.action] / logged.pscore
    assert overall.loc["snips", "ess"] == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert overall.loc["replay", "n_accepted"] > 0
    assert pd.isna(overall.loc["ips", "n_accepted"])
    assert (table.ci_low <= table.value).all()
    assert (table.value <= table.ci_high).all()


def test_evaluate_with_target_pscore_only_runs_weighting_estimators() -> None:
    logged, dist, _ = simulate(300, 1)
    target = dist[np.arange(len(logged)), logged.action]
    table = evaluate(logged, target_pscore=target, estimators=("ips", "snips", "replay"), n_bootstrap=20)
    full = evaluate(logged, dist, estimators=("ips", "snips", "replay"), n_bootstrap=20)
    pd.testing.assert_frame_equal(table, full)


# Invalid calls of evaluate and the estimators.
INVALID_CALLS = [
    ({"estimators": ("dm",), "use_pscore": True}, TargetPolicyError, r"'dm' needs .*`action_dist`"),
    ({"estimators": ("dr",), "use_pscore": True}, TargetPolicyError, r"'dr' needs .*`action_dist`"),
    ({"estimators": ("ips", "magic")}, ReplayInputError, r"Unknown estimator 'magic'"),
    ({"estimators": ("ips", "ips")}, ReplayInputError, r"Expected each estimator once"),
    ({"n_bootstrap": -1}, ReplayInputError, r"Expected `n_bootstrap` to be an integer >= 0, found -1"),
    ({"n_bootstrap": 2.5}, ReplayInputError, r"Expected `n_bootstrap` to be an integer >= 0, found 2.5"),
    ({"estimators": ()}, ReplayInputError, r"Expected a non-empty sequence of estimators .* found \(\)"),
    ({"estimators": "ips"}, ReplayInputError, r"Expected a non-empty sequence of estimators .* found 'ips'"),
    ({"alpha": 1.5}, ReplayInputError, r"Expected `alpha` in \(0, 1\), found 1.5"),
    ({"n_folds": 0, "estimators": ("dr",)}, ReplayInputError, r"Expected `n_folds` to be an integer >= 1"),
    ({"seed": -1}, ReplayInputError, r"Expected `seed` to be an integer >= 0, found -1"),
    ({"no_target": True}, TargetPolicyError, r"No target policy"),
]


@pytest.mark.parametrize(("options", "error", "match"), INVALID_CALLS)
def test_evaluate_rejects_invalid_calls(options: dict, error: type, match: str) -> None:
    logged, dist, _ = simulate(100, 0)
    options = dict(options)
    if options.pop("use_pscore", False):
        kwargs = {"target_pscore": dist[np.arange(100), logged.action]}
    elif options.pop("no_target", False):
        kwargs = {}
    else:
        kwargs = {"action_dist": dist}
    with pytest.raises(error, match=match):
        evaluate(logged, **kwargs, **options)


def test_doubly_robust_refuses_refit_bootstrap() -> None:
    with pytest.raises(ReplayInputError, match=r"`refit_bootstrap=False` for DR"):
        DoublyRobust(refit_bootstrap=True)


def test_evaluate_without_resamples_gives_point_estimates_only() -> None:
    logged, dist, _ = simulate(300, 2)
    points = evaluate(logged, dist, n_bootstrap=0, seed=1)
    full = evaluate(logged, dist, n_bootstrap=20, seed=1)
    np.testing.assert_array_equal(points["value"], full["value"])
    assert points[["ci_low", "ci_high"]].isna().all().all()


def test_evaluate_rejects_group_named_overall() -> None:
    logged = LoggedBandit(
        action=np.zeros(3, dtype=int),
        reward=np.ones(3),
        pscore=np.ones(3),
        group=np.array(["overall", "a", "a"], dtype=object),
    )
    with pytest.raises(ReplayInputError, match="no group named 'overall'"):
        evaluate(logged, target_pscore=np.ones(3), estimators=("ips",))
