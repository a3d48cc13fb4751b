"""Bootstrap intervals: coverage of a known value, determinism, chunking, and a naive reference."""

from __future__ import annotations

import numpy as np
import pytest

from bandits.ope import (
    DirectMethod,
    InverseProbabilityWeighting,
    LoggedBandit,
    ReplayInputError,
    SelfNormalizedIPS,
    bootstrap_ratios,
    evaluate,
    percentile_interval,
)

# Three arms with Bernoulli rewards, a fixed logging and target distribution: V = sum_a pi(a) q(a) = 0.41.
Q = np.array([0.2, 0.5, 0.35])
MU = np.array([0.5, 0.3, 0.2])
PI = np.array([0.1, 0.6, 0.3])
TRUE_VALUE = float(PI @ Q)


def simulate(n: int, seed: int) -> tuple[LoggedBandit, np.ndarray]:
    rng = np.random.default_rng(seed)
    action = rng.choice(3, size=n, p=MU)
    reward = (rng.random(n) < Q[action]).astype(np.float64)
    return LoggedBandit(action=action, reward=reward, pscore=MU[action], n_actions=3), np.tile(PI, (n, 1))


def test_bootstrap_intervals_cover_the_truth_at_about_the_nominal_rate() -> None:
    # 200 logs of 400 rows, 95% intervals from 200 resamples: each estimator covers V in >= 85% of runs.
    hits: dict[str, list[bool]] = {}
    for seed in range(200):
        logged, dist = simulate(400, seed)
        table = evaluate(
            logged, dist, estimators=("ips", "snips", "dr", "replay"), n_bootstrap=200, seed=seed
        )
        for row in table.itertuples():
            hits.setdefault(row.estimator, []).append(row.ci_low <= TRUE_VALUE <= row.ci_high)
    coverage = {name: float(np.mean(h)) for name, h in hits.items()}
    assert all(rate >= 0.85 for rate in coverage.values()), coverage
    assert all(rate <= 0.995 for rate in coverage.values()), coverage  # not vacuously wide


def test_dm_interval_with_refit_bootstrap_covers_the_truth() -> None:
    # DM's per-row values barely vary without context: only refitting per resample gives an honest interval.
    hits = []
    for seed in range(100):
        logged, dist = simulate(400, seed)
        low = DirectMethod(n_folds=2, refit_bootstrap=True).estimate_interval(
            logged, dist, n_bootstrap=100, seed=seed
        )
        hits.append(low.low <= TRUE_VALUE <= low.high)
    assert np.mean(hits) >= 0.85
    logged, dist = simulate(400, 0)
    fixed = DirectMethod().estimate_interval(logged, dist, qhat=np.tile(Q, (400, 1)), n_bootstrap=100)
    assert fixed.high - fixed.low == pytest.approx(0.0)  # a supplied exact qhat has no variance to resample


def test_bootstrap_same_seed_same_interval() -> None:
    logged, dist = simulate(300, 1)
    first = SelfNormalizedIPS().estimate_interval(logged, dist, n_bootstrap=100, seed=7)
    assert first == SelfNormalizedIPS().estimate_interval(logged, dist, n_bootstrap=100, seed=7)
    assert first != SelfNormalizedIPS().estimate_interval(logged, dist, n_bootstrap=100, seed=8)
    dm = DirectMethod().estimate_interval(logged, dist, n_bootstrap=20, seed=7)
    assert dm == DirectMethod().estimate_interval(logged, dist, n_bootstrap=20, seed=7)


def test_bootstrap_ratios_do_not_depend_on_chunking() -> None:
    rng = np.random.default_rng(0)
    v, d = rng.normal(size=101), rng.uniform(size=101)
    whole = bootstrap_ratios([v, v], [None, d], n_bootstrap=37, rng=5)
    chunked = bootstrap_ratios([v, v], [None, d], n_bootstrap=37, rng=5, chunk_entries=250)
    assert np.array_equal(whole, chunked)


def test_bootstrap_ratios_match_naive_reference() -> None:
    rng = np.random.default_rng(1)
    n, reps = 50, 30
    v, d = rng.normal(size=n), rng.uniform(size=n)
    fast = bootstrap_ratios([v, v], [None, d], n_bootstrap=reps, rng=3)
    draws = np.random.default_rng(3).integers(0, n, size=(reps, n), dtype=np.int32)
    for r in range(reps):
        rows = [int(i) for i in draws[r]]
        assert fast[0, r] == pytest.approx(sum(v[i] for i in rows) / n, rel=1e-12)
        assert fast[1, r] == pytest.approx(sum(v[i] for i in rows) / sum(d[i] for i in rows), rel=1e-12)


def test_bootstrap_ratios_of_buckets_match_naive_reference() -> None:
    # Above `max_units` rows, rows are dealt into buckets and buckets are resampled: each replicate is the
    # ratio of the resampled buckets' sums, a plain mean dividing by the resampled buckets' row counts.
    rng = np.random.default_rng(2)
    n, units, reps = 200, 16, 25
    v, d = rng.normal(size=n), rng.uniform(size=n)
    fast = bootstrap_ratios([v, v], [None, d], n_bootstrap=reps, rng=4, max_units=units)
    gen = np.random.default_rng(4)
    bucket = gen.integers(0, units, size=n)
    draws = gen.integers(0, units, size=(reps, units), dtype=np.int32)
    for r in range(reps):
        picked = [int(j) for j in draws[r]]
        num = sum(sum(v[i] for i in range(n) if bucket[i] == j) for j in picked)
        rows = sum(sum(1 for i in range(n) if bucket[i] == j) for j in picked)
        den = sum(sum(d[i] for i in range(n) if bucket[i] == j) for j in picked)
        assert fast[0, r] == pytest.approx(num / rows, rel=1e-9)
        assert fast[1, r] == pytest.approx(num / den, rel=1e-9)


def test_bootstrap_of_buckets_has_the_spread_of_rows() -> None:
    # Skewed per-row values (rare large weights): bucket and row resampling give the same spread and skew.
    rng = np.random.default_rng(5)
    n = 20_000
    v = rng.exponential(size=n) ** 3
    rows = bootstrap_ratios([v], [None], n_bootstrap=2000, rng=1, max_units=n)[0]
    buckets = bootstrap_ratios([v], [None], n_bootstrap=2000, rng=1, max_units=2000)[0]
    assert buckets.std() == pytest.approx(rows.std(), rel=0.1)
    assert buckets.mean() == pytest.approx(rows.mean(), rel=0.01)
    skew = [np.mean((x - x.mean()) ** 3) / x.std() ** 3 for x in (rows, buckets)]
    assert skew[1] == pytest.approx(skew[0], abs=0.25)


def test_percentile_interval_closed_form_and_nan_replicates() -> None:
    reps = np.array([np.arange(101, dtype=float), np.full(101, np.nan)])
    reps[0, :3] = np.nan  # replicates with a zero denominator are left out
    bounds = percentile_interval(reps, alpha=0.1)
    assert bounds[0] == pytest.approx(np.quantile(np.arange(3, 101), [0.05, 0.95]))
    assert np.isnan(bounds[1]).all()


def test_bootstrap_of_all_zero_weights_is_nan() -> None:
    reps = bootstrap_ratios([np.zeros(5)], [np.zeros(5)], n_bootstrap=10, rng=0)
    assert np.isnan(reps).all()


def test_interval_narrows_with_more_rows() -> None:
    small = InverseProbabilityWeighting().estimate_interval(*simulate(200, 0), n_bootstrap=200)
    large = InverseProbabilityWeighting().estimate_interval(*simulate(5000, 0), n_bootstrap=200)
    assert (large.high - large.low) < 0.5 * (small.high - small.low)


# Invalid bootstrap calls: (arguments, expected message).
INVALID = [
    (
        {"numerators": [np.ones(3)], "denominators": [None], "n_bootstrap": 0},
        r"`n_bootstrap` .* >= 1, found 0",
    ),
    ({"numerators": [np.ones(3)], "denominators": [None], "n_bootstrap": 2.5}, r"`n_bootstrap` .* found 2.5"),
    ({"numerators": [np.ones(0)], "denominators": [None], "n_bootstrap": 5}, r"at least one row .* found 0"),
    (
        {"numerators": [np.ones(3)], "denominators": [np.ones(2)], "n_bootstrap": 5},
        r"shape \(3,\), found \(2,\)",
    ),
    ({"numerators": [np.ones(3)], "denominators": [], "n_bootstrap": 5}, r"as many `denominators`"),
]


@pytest.mark.parametrize(("kwargs", "match"), INVALID)
def test_bootstrap_ratios_reject_invalid_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ReplayInputError, match=match):
        bootstrap_ratios(**kwargs, rng=0)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, "0.05"])
def test_percentile_interval_rejects_invalid_alpha(alpha: object) -> None:
    with pytest.raises(ReplayInputError, match=r"Expected `alpha` in \(0, 1\)"):
        percentile_interval(np.zeros((1, 5)), alpha=alpha)  # type: ignore[arg-type]
