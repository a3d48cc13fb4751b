"""Additive boosts: each adds exactly weight * signal, with the signal computed here by plain loops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from heuristics import ContextBatch, InputError, ItemBatch, MissingContextError
from heuristics.boosts import CategoryMatchBoost, PromotedBoost, SourceSimilarityBoost
from tests.heuristics.factories import random_batch


def naive_cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms > 0 else 0.0


def source_signal(items: ItemBatch, context: ContextBatch) -> np.ndarray:
    batch, n = items.shape
    return np.array(
        [
            [
                max(naive_cosine(items.embedding[b, i].tolist(), context.source_embedding[b].tolist()), 0.0)
                for i in range(n)
            ]
            for b in range(batch)
        ]
    ).reshape(batch, n)


def promoted_signal(items: ItemBatch, context: ContextBatch) -> np.ndarray:
    return items.promoted.astype(np.float64)


def category_signal(items: ItemBatch, context: ContextBatch) -> np.ndarray:
    batch, n = items.shape
    return np.array(
        [[float(items.category[b, i] == context.category[b]) for i in range(n)] for b in range(batch)]
    ).reshape(batch, n)


BOOSTS = [
    pytest.param(PromotedBoost, promoted_signal, id="promoted"),
    pytest.param(SourceSimilarityBoost, source_signal, id="source_similarity"),
    pytest.param(CategoryMatchBoost, category_signal, id="category_match"),
]


@pytest.mark.parametrize(("cls", "signal"), BOOSTS)
def test_boost_adds_weight_times_signal(cls, signal, rng):
    scores, items, context = random_batch(rng, 6, 40)
    weight = rng.uniform(0.0, 10.0, size=6)
    adjusted = cls(weight=weight).adjust(scores, items, context)
    np.testing.assert_allclose(
        adjusted - scores, weight[:, None] * signal(items, context), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize(("cls", "signal"), BOOSTS)
def test_boost_adds_exactly_weight_times_signal_on_exact_numbers(cls, signal, rng):
    # Scores and weights on a binary grid, so that every sum and difference is exact in floating point.
    scores, items, context = random_batch(rng, 4, 30)
    scores = rng.integers(-16, 16, size=scores.shape) / 8.0
    if cls is SourceSimilarityBoost:
        # Cosines of 1, 1/2, 0 and -1 (clipped to 0), all exact: the norms are 1, 2, 6, 2 and 3.
        directions = np.array(
            [
                [1.0, 0.0, 0.0, 0.0],
                [1.0, 1.0, 1.0, 1.0],
                [3.0, 3.0, 3.0, 3.0],
                [0.0, 2.0, 0.0, 0.0],
                [-3.0, 0, 0, 0],
            ]
        )
        items = ItemBatch(
            category=items.category,
            age_days=items.age_days,
            promoted=items.promoted,
            embedding=directions[rng.integers(0, len(directions), size=items.shape)],
        )
        context = ContextBatch(source_embedding=np.tile([4.0, 0.0, 0.0, 0.0], (4, 1)))
    weight = np.array([0.0, 0.25, 1.5, 10.0])
    adjusted = cls(weight=weight).adjust(scores, items, context)
    np.testing.assert_array_equal(adjusted - scores, weight[:, None] * signal(items, context))


@pytest.mark.parametrize(("cls", "signal"), BOOSTS)
def test_boost_order_is_the_stable_sort_of_the_boosted_scores(cls, signal, rng):
    scores, items, context = random_batch(rng, 5, 30, ties=True)
    ranking = cls(weight=0.7).rerank(scores, items, context)
    expected = scores + 0.7 * signal(items, context)
    for b in range(5):
        naive = sorted(range(30), key=lambda i: -expected[b, i])  # Python's sort is stable
        assert ranking.order[b].tolist() == naive


def test_source_similarity_signal_is_zero_for_zero_or_opposite_vectors():
    items = ItemBatch.single(
        category=[0, 0, 0],
        age_days=[0.0, 0.0, 0.0],
        promoted=[False] * 3,
        embedding=np.array([[0.0, 0.0], [-1.0, -1.0], [2.0, 2.0]]),
    )
    adjusted = SourceSimilarityBoost(weight=1.0).adjust(
        np.zeros((1, 3)), items, ContextBatch.single(source_embedding=[1.0, 1.0])
    )
    np.testing.assert_allclose(adjusted, [[0.0, 0.0, 1.0]])


def test_category_match_without_an_explored_category_boosts_nothing(rng):
    scores, items, _ = random_batch(rng, 3, 20)
    adjusted = CategoryMatchBoost(weight=2.0).adjust(scores, items, ContextBatch(category=np.full(3, -1)))
    np.testing.assert_array_equal(adjusted, scores)


# Boosts that read request context refuse a request without it, or with the wrong shape.
MISSING_OR_BAD_CONTEXT = [
    (
        SourceSimilarityBoost,
        ContextBatch(),
        MissingContextError,
        r"'source_similarity' needs context field 'source_item'",
    ),
    (
        CategoryMatchBoost,
        ContextBatch(),
        MissingContextError,
        r"'category_match' needs context field 'category'",
    ),
    (
        SourceSimilarityBoost,
        ContextBatch(source_embedding=np.ones((2, 6))),
        InputError,
        r"`source_embedding` of shape \(3, 6\)",
    ),
    (
        SourceSimilarityBoost,
        ContextBatch(source_embedding=np.ones((3, 5))),
        InputError,
        r"`source_embedding` of shape \(3, 6\)",
    ),
    (
        CategoryMatchBoost,
        ContextBatch(category=np.zeros(2, dtype=np.int64)),
        InputError,
        r"context `category` of shape \(3,\)",
    ),
]


@pytest.mark.parametrize(("cls", "context", "error", "match"), MISSING_OR_BAD_CONTEXT)
def test_boost_refuses_missing_or_misshapen_context(cls, context, error, match, rng):
    scores, items, _ = random_batch(rng, 3, 8)
    with pytest.raises(error, match=match):
        cls(weight=1.0).adjust(scores, items, context)


def test_source_similarity_refuses_items_without_embeddings(rng):
    scores, items, context = random_batch(rng, 1, 4)
    bare = ItemBatch(category=items.category, age_days=items.age_days, promoted=items.promoted)
    with pytest.raises(MissingContextError, match="item embedding"):
        SourceSimilarityBoost(weight=1.0).adjust(scores, bare, context)
