"""Additive boosts: promoted items, similarity to the source item, match to the explored category.

Each adds ``weight * signal`` to the scores, where the signal lies in [0, 1] (cosine similarity is clipped
at 0), so a weight is comparable with min-max normalised scores. A weight of 0 leaves the scores unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from heuristics.base import ContextBatch, ItemBatch, KnobSpec, ScoreHeuristic, as_knob
from heuristics.errors import InputError, MissingContextError

WEIGHT = KnobSpec(default=0.0, low=0.0, high=10.0)


@dataclass(frozen=True)
class PromotedBoost(ScoreHeuristic):
    """Business boost: ``s + weight * promoted``."""

    NAME: ClassVar[str] = "promoted"
    KNOBS: ClassVar[dict[str, KnobSpec]] = {"weight": WEIGHT}
    IDENTITY: ClassVar[dict[str, float]] = {"weight": 0.0}

    weight: float | np.ndarray = 0.0

    def adjust(self, scores: np.ndarray, items: ItemBatch, context: ContextBatch) -> np.ndarray:
        return scores + as_knob(self.weight, scores.shape[0]) * items.promoted


def cosine_to(embedding: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Cosine similarity (B, n) of each candidate embedding (B, n, d) to its request's target (B, d).

    A zero vector has similarity 0 to everything.
    """
    dots = np.einsum("bnd,bd->bn", embedding, target)
    norms = np.linalg.norm(embedding, axis=2) * np.linalg.norm(target, axis=1)[:, None]
    return np.divide(dots, norms, out=np.zeros_like(dots, dtype=np.float64), where=norms > 0)


@dataclass(frozen=True)
class SourceSimilarityBoost(ScoreHeuristic):
    """similar_items: ``s + weight * max(cos(item, source item), 0)``."""

    NAME: ClassVar[str] = "source_similarity"
    KNOBS: ClassVar[dict[str, KnobSpec]] = {"weight": WEIGHT}
    IDENTITY: ClassVar[dict[str, float]] = {"weight": 0.0}

    weight: float | np.ndarray = 0.0

    def adjust(self, scores: np.ndarray, items: ItemBatch, context: ContextBatch) -> np.ndarray:
        if context.source_embedding is None:
            raise MissingContextError(self.NAME, "source_item")
        if items.embedding is None:
            raise MissingContextError(self.NAME, "item embedding")
        expected = (scores.shape[0], items.embedding.shape[2])
        if np.shape(context.source_embedding) != expected:
            raise InputError(
                f"Expected `source_embedding` of shape {expected}, found {np.shape(context.source_embedding)}"
            )
        similarity = np.clip(cosine_to(items.embedding, context.source_embedding), 0.0, 1.0)
        return scores + as_knob(self.weight, scores.shape[0]) * similarity


@dataclass(frozen=True)
class CategoryMatchBoost(ScoreHeuristic):
    """category_explore: ``s + weight * [item category == explored category]``."""

    NAME: ClassVar[str] = "category_match"
    KNOBS: ClassVar[dict[str, KnobSpec]] = {"weight": WEIGHT}
    IDENTITY: ClassVar[dict[str, float]] = {"weight": 0.0}

    weight: float | np.ndarray = 0.0

    def adjust(self, scores: np.ndarray, items: ItemBatch, context: ContextBatch) -> np.ndarray:
        if context.category is None:
            raise MissingContextError(self.NAME, "category")
        found = np.shape(context.category)
        if found != (scores.shape[0],):
            raise InputError(f"Expected context `category` of shape ({scores.shape[0]},), found {found}")
        match = items.category == np.asarray(context.category)[:, None]
        return scores + as_knob(self.weight, scores.shape[0]) * match
