"""Freshness: the boost is exactly weight * 0.5 ** (max(age - offset, 0) / half_life)."""

from __future__ import annotations

import numpy as np
import pytest

from heuristics import InputError, ItemBatch
from heuristics.freshness import Freshness
from tests.heuristics.factories import random_batch


def naive_boost(age: float, weight: float, half_life: float, offset: float) -> float:
    return weight * 0.5 ** (max(age - offset, 0.0) / half_life)


def naive_boosts(
    ages: np.ndarray, weight: np.ndarray, half_life: np.ndarray, offset: np.ndarray
) -> np.ndarray:
    return np.array(
        [
            [naive_boost(float(a), float(weight[b]), float(half_life[b]), float(offset[b])) for a in ages[b]]
            for b in range(ages.shape[0])
        ]
    ).reshape(ages.shape)


def test_freshness_boost_matches_the_closed_form(rng):
    scores, items, context = random_batch(rng, 8, 50)
    weight = rng.uniform(0.0, 10.0, size=8)
    half_life = rng.uniform(0.1, 60.0, size=8)
    offset = rng.choice([0.0, 0.5, 3.0, 20.0], size=8)
    adjusted = Freshness(weight=weight, half_life_days=half_life, offset_days=offset).adjust(
        scores, items, context
    )
    expected = naive_boosts(items.age_days, weight, half_life, offset)
    np.testing.assert_allclose(adjusted - scores, expected, rtol=1e-12, atol=1e-12)


def test_freshness_boost_is_exact_on_exact_numbers(rng):
    # Whole half-lives past the offset, dyadic scores and weights: every operation is exact in floating point.
    weight = np.array([0.0, 0.25, 1.0, 8.0])
    half_life = np.array([1.0, 2.0, 4.0, 0.5])
    offset = np.array([0.0, 3.0, 1.5, 7.0])
    halvings = rng.integers(-3, 9, size=(4, 40))  # negative: within the offset, full weight
    ages = offset[:, None] + half_life[:, None] * halvings
    ages[:, :3] = [-2.0, 0.0, 0.0]  # negative ages count as 0
    items = ItemBatch(
        category=np.zeros((4, 40), dtype=np.int64), age_days=ages, promoted=np.zeros((4, 40), dtype=bool)
    )
    scores = rng.integers(-64, 64, size=(4, 40)) / 16.0
    adjusted = Freshness(weight=weight, half_life_days=half_life, offset_days=offset).adjust(
        scores, items, None
    )
    np.testing.assert_array_equal(adjusted - scores, naive_boosts(ages, weight, half_life, offset))


def test_freshness_order_is_the_stable_sort_of_base_plus_boost(rng):
    scores, items, context = random_batch(rng, 6, 40, ties=True)
    weight, half_life, offset = np.full(6, 0.6), np.full(6, 5.0), np.full(6, 2.0)
    ranking = Freshness(weight=0.6, half_life_days=5.0, offset_days=2.0).rerank(scores, items, context)
    expected = scores + naive_boosts(items.age_days, weight, half_life, offset)
    for b in range(6):
        naive = sorted(range(40), key=lambda i: -expected[b, i])  # Python's sort is stable
        assert ranking.order[b].tolist() == naive


def test_freshness_moves_newer_items_up(rng):
    # Equal base scores: with weight > 0 the order is by age, newest first.
    ages = rng.permutation(np.arange(1.0, 31.0))
    items = ItemBatch.single(category=np.zeros(30), age_days=ages, promoted=np.zeros(30))
    ranking = Freshness(weight=0.5, half_life_days=7.0).rerank(np.zeros((1, 30)), items, None)
    assert ranking.order[0].tolist() == np.argsort(ages).tolist()


def test_freshness_boost_halves_every_half_life_after_the_offset():
    ages = np.array([[0.0, 2.0, 3.0, 3.0 + 4.0, 3.0 + 8.0, 3.0 + 12.0]])
    items = ItemBatch(
        category=np.zeros((1, 6), dtype=np.int64), age_days=ages, promoted=np.zeros((1, 6), bool)
    )
    boost = Freshness(weight=2.0, half_life_days=4.0, offset_days=3.0).adjust(np.zeros((1, 6)), items, None)
    np.testing.assert_array_equal(boost, [[2.0, 2.0, 2.0, 1.0, 0.5, 0.25]])


# Knob values outside their ranges are refused, naming the knob.
INVALID_KNOBS = [
    ({"weight": -0.1}, r"freshness\.weight: expected a value in \[0, 10\]"),
    ({"weight": 10.5}, r"freshness\.weight: expected a value in \[0, 10\]"),
    ({"half_life_days": 0.0}, r"freshness\.half_life_days: expected a value in \(0, 3650\]"),
    ({"half_life_days": np.array([7.0, -1.0])}, r"freshness\.half_life_days: .* found -1\.0"),
    ({"offset_days": float("nan")}, r"freshness\.offset_days: expected a finite number"),
]


@pytest.mark.parametrize(("knobs", "match"), INVALID_KNOBS)
def test_freshness_refuses_knobs_out_of_range(knobs, match):
    with pytest.raises(InputError, match=match):
        Freshness(**knobs)
