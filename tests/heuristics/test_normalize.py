"""Per-request score normalisation: affine invariance, constant rows, rank ties against a naive reference."""

from __future__ import annotations

import numpy as np
import pytest

from heuristics import InputError
from heuristics.normalize import METHODS, normalize_scores

SCALED = [m for m in METHODS if m != "none"]


def naive_rank(row: list[float]) -> list[float]:
    """Rank normalisation by counting: (#less + #less-or-equal - 1) / 2 / (n - 1), the mean rank of ties."""
    n = len(row)
    if n == 1 or len(set(row)) == 1:
        return [0.0] * n
    out = []
    for value in row:
        less = sum(1 for other in row if other < value)
        less_or_equal = sum(1 for other in row if other <= value)
        out.append((less + less_or_equal - 1) / 2.0 / (n - 1))
    return out


@pytest.mark.parametrize("method", SCALED)
def test_normalize_is_invariant_to_a_positive_affine_transform(method, rng):
    scores = rng.normal(size=(6, 40))
    scores[1] = np.round(scores[1], 1)  # a row with ties
    for _ in range(20):
        a = np.exp(rng.uniform(-6.0, 6.0, size=(6, 1)))
        b = rng.uniform(-1e3, 1e3, size=(6, 1))
        np.testing.assert_allclose(
            normalize_scores(a * scores + b, method), normalize_scores(scores, method), rtol=0, atol=1e-9
        )


@pytest.mark.parametrize("method", SCALED)
@pytest.mark.parametrize("value", [0.0, 0.1, 1 / 3, -7.25, 1e6])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 100])
def test_normalize_constant_scores_become_zeros(method, value, n):
    scores = np.full((2, n), value)
    np.testing.assert_array_equal(normalize_scores(scores, method), np.zeros((2, n)))


def test_normalize_constant_rows_do_not_affect_other_rows(rng):
    scores = np.vstack([np.full(5, 0.1), rng.normal(size=5)])
    for method in SCALED:
        out = normalize_scores(scores, method)
        np.testing.assert_array_equal(out[0], np.zeros(5))
        np.testing.assert_array_equal(out[1], normalize_scores(scores[1:], method)[0])


def test_normalize_rank_matches_a_naive_reference_with_ties(rng):
    for _ in range(200):
        n = int(rng.integers(1, 25))
        scores = rng.integers(0, 5, size=(3, n)).astype(np.float64) * rng.choice([1.0, -0.5])
        expected = np.array([naive_rank(row.tolist()) for row in scores])
        np.testing.assert_array_equal(normalize_scores(scores, "rank"), expected)


def test_normalize_minmax_maps_the_extremes_to_zero_and_one(rng):
    scores = rng.normal(size=(4, 30)) * 50.0 + 3.0
    out = normalize_scores(scores, "minmax")
    np.testing.assert_array_equal(out.min(axis=1), np.zeros(4))
    np.testing.assert_array_equal(out.max(axis=1), np.ones(4))
    np.testing.assert_allclose(
        out, (scores - scores.min(1, keepdims=True)) / np.ptp(scores, 1, keepdims=True)
    )


def test_normalize_zscore_has_zero_mean_and_unit_variance(rng):
    out = normalize_scores(rng.normal(size=(4, 30)) * 9.0 - 2.0, "zscore")
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_normalize_keeps_the_order_of_each_row(method, rng):
    scores = np.round(rng.normal(size=(5, 50)), 1)
    out = normalize_scores(scores, method)
    for row, normalised in zip(scores, out, strict=True):
        # Strictly increasing where the input is, equal where the input ties.
        by_score = np.argsort(row, kind="stable")
        steps_in = np.diff(row[by_score])
        steps_out = np.diff(normalised[by_score])
        assert ((steps_in > 0) == (steps_out > 0)).all()
        assert (steps_out[steps_in == 0] == 0).all()


def test_normalize_none_returns_the_scores_unchanged(rng):
    scores = rng.normal(size=(2, 9))
    np.testing.assert_array_equal(normalize_scores(scores, "none"), scores)


@pytest.mark.parametrize("method", METHODS)
def test_normalize_handles_empty_requests(method):
    assert normalize_scores(np.zeros((3, 0)), method).shape == (3, 0)
    assert normalize_scores(np.zeros((0, 4)), method).shape == (0, 4)


# Unknown method names are refused with the accepted ones listed.
@pytest.mark.parametrize("method", ["min-max", "", "Rank", "softmax"])
def test_normalize_refuses_an_unknown_method(method):
    with pytest.raises(InputError, match=r"Expected a normalisation in minmax, zscore, rank, none"):
        normalize_scores(np.zeros((1, 3)), method)
