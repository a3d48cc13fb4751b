"""Knob specs, knob checks on construction, and the shapes of the typed inputs."""

from __future__ import annotations

import re

import numpy as np
import pytest

from heuristics import ContextBatch, InputError, ItemBatch
from heuristics.base import KnobSpec, as_knob, descending_order
from heuristics.boosts import PromotedBoost
from heuristics.diversity import MMR, CategoryCap
from heuristics.registry import HEURISTICS

WEIGHT = KnobSpec(default=0.0, low=0.0, high=10.0)
HALF_LIFE = KnobSpec(default=7.0, low=0.0, high=3650.0, open_low=True)
CAP = KnobSpec(default=1000, low=1, high=1000, integer=True)

# Values a knob spec refuses, and why.
REFUSED = [
    (WEIGHT, True, "expected a number, found True"),
    (WEIGHT, "1", "expected a number, found '1'"),
    (WEIGHT, None, "expected a number, found None"),
    (WEIGHT, [1.0], r"expected a number, found \[1\.0\]"),
    (WEIGHT, float("nan"), "expected a finite number, found nan"),
    (WEIGHT, float("-inf"), "expected a finite number, found -inf"),
    (WEIGHT, 10**400, "expected a finite number"),
    (WEIGHT, -1e-9, r"expected a value in \[0, 10\], found -1e-09"),
    (WEIGHT, 10.000001, r"expected a value in \[0, 10\]"),
    (HALF_LIFE, 0.0, r"expected a value in \(0, 3650\], found 0\.0"),
    (CAP, 2.5, "expected an integer, found 2.5"),
    (CAP, 0, r"expected a value in \[1, 1000\], found 0"),
    (CAP, float("inf"), "expected a finite number, found inf"),
]


@pytest.mark.parametrize(("spec", "value", "problem"), REFUSED)
def test_knob_spec_refuses_values_outside_its_range(spec, value, problem):
    found = spec.problem(value)
    assert found is not None
    assert re.search(problem, found), found


@pytest.mark.parametrize(
    ("spec", "value"),
    [(WEIGHT, 0), (WEIGHT, 10.0), (WEIGHT, np.float32(2.5)), (HALF_LIFE, 1e-9), (CAP, 1), (CAP, 1000.0)],
)
def test_knob_spec_accepts_values_in_its_range(spec, value):
    assert spec.problem(value) is None


def test_knob_spec_vector_check_agrees_with_the_scalar_check(rng):
    values = np.concatenate(
        [rng.uniform(-2.0, 1002.0, 500), [np.nan, np.inf, -np.inf, 0.0, 1.0, 1000.0, 3.0]]
    )
    values[::3] = np.round(values[::3])
    for spec in (WEIGHT, HALF_LIFE, CAP):
        assert spec.bad(values).tolist() == [spec.problem(float(v)) is not None for v in values]


def test_every_registered_heuristic_accepts_its_defaults_and_identity():
    for cls in HEURISTICS.values():
        defaults = {name: spec.default for name, spec in cls.KNOBS.items()}
        for knobs in (defaults, {**defaults, **cls.IDENTITY}):
            for name, value in knobs.items():
                assert cls.KNOBS[name].problem(value) is None, (cls.NAME, name)
        assert set(cls.IDENTITY) <= set(cls.KNOBS)


# Heuristics refuse knob values and params out of range when they are built, naming heuristic.knob.
BAD_HEURISTICS = [
    (lambda: PromotedBoost(weight=-1.0), r"promoted\.weight: expected a value in \[0, 10\]"),
    (lambda: PromotedBoost(weight=np.array([0.1, 11.0])), r"promoted\.weight: .* found 11\.0"),
    (
        lambda: PromotedBoost(weight=np.array([[0.1]])),
        r"promoted\.weight: expected a scalar or an array of shape",
    ),
    (lambda: PromotedBoost(weight=np.array(["a"])), r"promoted\.weight: expected numbers"),
    (lambda: MMR(lambda_=np.array([0.5, np.nan])), r"mmr\.lambda: expected a finite number, found nan"),
    (lambda: MMR(lambda_=0.5, similarity="cosine"), r"mmr\.similarity: expected one of embedding, category"),
    (lambda: CategoryCap(cap=np.array([1, 2.5])), r"category_cap\.cap: expected an integer, found 2\.5"),
    (
        lambda: CategoryCap(cap=2, field="brand"),
        r"category_cap\.field: expected one of category, subcategory",
    ),
]


@pytest.mark.parametrize(("build", "match"), BAD_HEURISTICS)
def test_heuristic_refuses_bad_knobs_on_construction(build, match):
    with pytest.raises(InputError, match=match):
        build()


# Item batches whose fields disagree in shape.
BAD_ITEMS = [
    ({"category": np.zeros(3)}, r"`category` of shape \(B, n\), found shape \(3,\)"),
    ({"age_days": np.zeros((2, 4))}, r"`age_days` of shape \(2, 3\), found \(2, 4\)"),
    ({"promoted": np.zeros((1, 3))}, r"`promoted` of shape \(2, 3\)"),
    ({"subcategory": np.zeros((2, 2))}, r"`subcategory` of shape \(2, 3\)"),
    ({"embedding": np.zeros((2, 3))}, r"`embedding` of shape \(2, 3, 'd'\), found \(2, 3\)"),
    ({"embedding": np.zeros((2, 4, 5))}, r"`embedding` of shape \(2, 3, 'd'\), found \(2, 4, 5\)"),
]


@pytest.mark.parametrize(("override", "match"), BAD_ITEMS)
def test_item_batch_refuses_fields_of_different_shapes(override, match):
    fields = {"category": np.zeros((2, 3)), "age_days": np.zeros((2, 3)), "promoted": np.zeros((2, 3))}
    with pytest.raises(InputError, match=match):
        ItemBatch(**{**fields, **override})


def test_item_batch_single_is_a_batch_of_one():
    items = ItemBatch.single([1, 2], [0.5, 3.0], [True, False], np.ones((2, 4)), [10, 20])
    assert items.shape == (1, 2)
    assert items.embedding.shape == (1, 2, 4)
    assert items.subcategory.tolist() == [[10, 20]]
    context = ContextBatch.single(source_embedding=[1.0, 0.0], category=3)
    assert context.source_embedding.shape == (1, 2)
    assert context.category.tolist() == [3]


def test_as_knob_broadcasts_scalars_and_refuses_wrong_lengths():
    np.testing.assert_array_equal(as_knob(0.5, 3), [[0.5], [0.5], [0.5]])
    np.testing.assert_array_equal(as_knob(np.array([1.0, 2.0]), 2), [[1.0], [2.0]])
    with pytest.raises(InputError, match=r"knob value of shape \(2,\) or a scalar, found \(3,\)"):
        as_knob(np.zeros(3), 2)


def test_descending_order_breaks_ties_by_the_lower_index():
    scores = np.array([[1.0, 3.0, 1.0, 3.0, 2.0, -0.0, 0.0]])
    assert descending_order(scores).tolist() == [[1, 3, 4, 0, 2, 5, 6]]


# A top-k size must be None or a non-negative integer.
@pytest.mark.parametrize("k", [-1, 2.0, "3", True])
def test_heuristic_rerank_refuses_a_bad_k(k):
    items = ItemBatch.single([0, 1], [0.0, 0.0], [False, True])
    with pytest.raises(InputError, match=r"Expected `k` to be None or an integer >= 0"):
        PromotedBoost(weight=1.0).rerank(np.zeros((1, 2)), items, ContextBatch(), k)


def test_item_batch_accepts_nested_lists():
    items = ItemBatch(
        category=[[1, 2]], age_days=[[0.5, 3.0]], promoted=[[True, False]], embedding=[[[1.0], [0.0]]]
    )
    assert items.shape == (1, 2)
    assert isinstance(items.age_days, np.ndarray)
    assert items.embedding.shape == (1, 2, 1)


def test_item_and_context_batches_take_rows():
    rng = np.random.default_rng(0)
    items = ItemBatch(
        category=rng.integers(0, 3, (4, 5)),
        age_days=rng.random((4, 5)),
        promoted=rng.random((4, 5)) < 0.5,
        embedding=rng.random((4, 5, 2)),
    )
    rows = np.array([3, 1])
    taken = items.take(rows)
    np.testing.assert_array_equal(taken.category, items.category[rows])
    np.testing.assert_array_equal(taken.embedding, items.embedding[rows])
    assert taken.subcategory is None
    context = ContextBatch(source_embedding=rng.random((4, 2)), category=np.arange(4))
    np.testing.assert_array_equal(context.take(rows).category, [3, 1])
    assert ContextBatch().take(rows).source_embedding is None
