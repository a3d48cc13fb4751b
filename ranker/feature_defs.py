"""The registry of every feature the feature function computes: name, dtype, default, context kind, meaning.

It sits below the feature function (`ranker.features`) and the config validator (`ranker.config`), which both
read it; it imports nothing from the rest of `ranker`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

#: The request-context kinds a section can have; section-context features belong to one of them.
CONTEXT_KINDS = ("none", "source_item", "category", "query")
#: The feature that tells the consolidated model which section a request comes from.
TASK_TYPE = "task_type"


@dataclass(frozen=True)
class FeatureDef:
    """One feature the code can compute.

    Attributes
    ----------
    name : str
    dtype : {"float", "category"}
    default : float or None
        Its value where it does not apply or its source is unknown; None: the item statistics' prior.
    context : str or None
        The context kind it belongs to (``source_item``, ``category``, ``query``); None for every section.
    description : str
    """

    name: str
    dtype: str
    default: float | None
    context: str | None
    description: str


_DEFS = (
    FeatureDef(
        TASK_TYPE, "category", -1.0, None, "the request's section, a code into the configured sections"
    ),
    FeatureDef(
        "affinity",
        "float",
        0.0,
        None,
        "cos(user profile embedding, item embedding); 0 for an unknown user or item",
    ),
    FeatureDef("popularity_log", "float", 0.0, None, "log1p(catalog popularity); 0 for an unknown item"),
    FeatureDef(
        "item_coec",
        "float",
        1.0,
        None,
        "clicks over expected clicks in the stats window, smoothed; 1 without data",
    ),
    FeatureDef(
        "item_cvr",
        "float",
        None,
        None,
        "conversions per click in the stats window, smoothed; p0 without data",
    ),
    FeatureDef("item_impressions_log", "float", 0.0, None, "log1p(impressions in the stats window)"),
    FeatureDef(
        "age_days",
        "float",
        -1.0,
        None,
        "days since publication at request time, >= 0; -1 for an unknown item",
    ),
    FeatureDef("price_log", "float", -1.0, None, "log1p(price), >= 0; -1 for an unknown item"),
    FeatureDef("promoted", "float", 0.0, None, "1 for a promoted item, else 0"),
    FeatureDef(
        "segment", "category", -1.0, None, "the user's segment (user profiles); -1 for an unknown user"
    ),
    FeatureDef("device", "category", -1.0, None, "the request's device; -1 when absent or unknown"),
    FeatureDef(
        "source_similarity",
        "float",
        -2.0,
        "source_item",
        "cos(source item embedding, item embedding); -2 elsewhere or for an unknown source item",
    ),
    FeatureDef(
        "category_match",
        "float",
        -1.0,
        "category",
        "1 when the item is in the explored category, else 0; -1 elsewhere or without a category",
    ),
    FeatureDef(
        "query_match",
        "float",
        -1.0,
        "query",
        "share of the query's words among the item's tags; -1 elsewhere or for an empty query",
    ),
    FeatureDef(
        "query_similarity",
        "float",
        -2.0,
        "query",
        "cos(query vector, item embedding); -2 elsewhere or for an empty query",
    ),
)
#: Every feature the code computes, by name, in canonical order.
FEATURES: Mapping[str, FeatureDef] = MappingProxyType({d.name: d for d in _DEFS})
