"""Random candidate batches for the heuristics tests: every attribute a heuristic can read."""

from __future__ import annotations

import itertools

import numpy as np

from heuristics.base import ContextBatch, Heuristic, ItemBatch, KnobSpec, field_name

#: Fractions of each knob's range that make the "arms" of the per-class contract suite.
ARM_FRACTIONS = (0.0, 0.002, 0.05, 0.5, 1.0)


def random_batch(
    rng: np.random.Generator,
    batch: int,
    n: int,
    *,
    dim: int = 6,
    n_categories: int = 4,
    ties: bool = False,
) -> tuple[np.ndarray, ItemBatch, ContextBatch]:
    """Scores (B, n), items and context of B random requests.

    With `ties`, scores are rounded to one decimal so that equal scores are common. Some ages are negative,
    some embeddings are zero vectors, and some contexts explore no category (-1).
    """
    scores = rng.normal(size=(batch, n))
    if ties:
        scores = np.round(scores, 1)
    category = rng.integers(0, n_categories, size=(batch, n))
    embedding = rng.normal(size=(batch, n, dim))
    embedding[rng.random((batch, n)) < 0.05] = 0.0
    items = ItemBatch(
        category=category,
        age_days=rng.exponential(10.0, size=(batch, n)) - 1.0,
        promoted=rng.random((batch, n)) < 0.3,
        embedding=embedding,
        subcategory=category * 10 + rng.integers(0, 3, size=(batch, n)),
    )
    context = ContextBatch(
        source_embedding=rng.normal(size=(batch, dim)),
        category=rng.integers(-1, n_categories, size=batch),
    )
    return scores, items, context


def take_rows(items: ItemBatch, context: ContextBatch, rows: slice) -> tuple[ItemBatch, ContextBatch]:
    """The requests `rows` of a batch, as a smaller batch."""
    return (
        ItemBatch(
            category=items.category[rows],
            age_days=items.age_days[rows],
            promoted=items.promoted[rows],
            embedding=None if items.embedding is None else items.embedding[rows],
            subcategory=None if items.subcategory is None else items.subcategory[rows],
        ),
        ContextBatch(
            source_embedding=None if context.source_embedding is None else context.source_embedding[rows],
            category=None if context.category is None else context.category[rows],
        ),
    )


def knob_at(spec: KnobSpec, fraction: float) -> float:
    """A valid value of a knob at `fraction` of its range (nudged inside an open lower bound)."""
    value = spec.low + fraction * (spec.high - spec.low)
    if spec.open_low and value <= spec.low:
        value = spec.low + 0.001 * (spec.high - spec.low)
    if spec.integer:
        value = float(min(max(round(value), spec.low), spec.high))
    return value


def knob_arms(cls: type[Heuristic]) -> list[dict[str, float]]:
    """Knob settings of a heuristic class, spread over each knob's range: the class's "arms"."""
    return [{name: knob_at(spec, f) for name, spec in cls.KNOBS.items()} for f in ARM_FRACTIONS]


def param_choices(cls: type[Heuristic]) -> list[dict[str, str]]:
    """Every combination of a heuristic class's params."""
    names = list(cls.PARAMS)
    combos = itertools.product(*(cls.PARAMS[name].choices for name in names))
    return [dict(zip(names, combo, strict=True)) for combo in combos]


def build(cls: type[Heuristic], knobs: dict[str, float | np.ndarray], params: dict[str, str]) -> Heuristic:
    """An instance of `cls` from knob names as they appear in configs (``lambda``, not ``lambda_``)."""
    return cls(**{field_name(name): value for name, value in knobs.items()}, **params)
