"""The candidate-set summary a knob policy sees, against a naive per-row reference and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from bandits.context import candidate_summary


def naive_summary(ages, categories, fresh_days=7.0):
    fresh, entropy = [], []
    for age_row, cat_row in zip(ages, categories, strict=True):
        fresh.append(sum(a < fresh_days for a in age_row) / len(age_row))
        h = 0.0
        for c in set(cat_row):
            p = list(cat_row).count(c) / len(cat_row)
            h -= p * np.log(p)
        entropy.append(h)
    return np.array(fresh), np.array(entropy)


@pytest.mark.parametrize("spacing", [3, 100_003])  # small ids counted directly; sparse ids densified
def test_candidate_summary_matches_naive_reference(spacing):
    rng = np.random.default_rng(0)
    ages = rng.exponential(10, size=(50, 30))
    categories = rng.integers(0, 7, size=(50, 30)) * spacing
    fresh, entropy = candidate_summary(ages, categories)
    ref_fresh, ref_entropy = naive_summary(ages, categories)
    np.testing.assert_allclose(fresh, ref_fresh)
    np.testing.assert_allclose(entropy, ref_entropy)


def test_candidate_summary_closed_forms():
    fresh, entropy = candidate_summary(np.zeros((2, 4)), np.array([[1, 1, 1, 1], [0, 1, 2, 3]]))
    np.testing.assert_allclose(fresh, [1.0, 1.0])
    np.testing.assert_allclose(entropy, [0.0, np.log(4)])
    fresh, entropy = candidate_summary(np.zeros((3, 0)), np.zeros((3, 0), dtype=int))
    np.testing.assert_array_equal(fresh, np.zeros(3))  # an empty candidate set: 0 by definition
    np.testing.assert_array_equal(entropy, np.zeros(3))
