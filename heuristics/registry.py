"""The heuristics a section pipeline can name, by their config name."""

from __future__ import annotations

from heuristics.base import Heuristic
from heuristics.boosts import CategoryMatchBoost, PromotedBoost, SourceSimilarityBoost
from heuristics.diversity import MMR, CategoryCap
from heuristics.freshness import Freshness

HEURISTICS: dict[str, type[Heuristic]] = {
    cls.NAME: cls
    for cls in (
        PromotedBoost,
        SourceSimilarityBoost,
        CategoryMatchBoost,
        Freshness,
        MMR,
        CategoryCap,
    )
}

#: Request-context fields a section may require, and which heuristics read them.
CONTEXT_FIELDS = ("source_item", "category", "query")
NEEDS_CONTEXT: dict[str, str] = {"source_similarity": "source_item", "category_match": "category"}
