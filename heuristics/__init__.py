"""Per-section heuristic re-rankers (boosts, freshness, MMR, category caps) and their knob configs."""

from heuristics.base import ContextBatch, ItemBatch, Ranking
from heuristics.config import Arm, SectionConfig, SectionsConfig
from heuristics.errors import ConfigError, HeuristicsError, InputError, MissingContextError
from heuristics.pipeline import SectionPipeline

__all__ = [
    "Arm",
    "ConfigError",
    "ContextBatch",
    "HeuristicsError",
    "InputError",
    "ItemBatch",
    "MissingContextError",
    "Ranking",
    "SectionConfig",
    "SectionPipeline",
    "SectionsConfig",
]
