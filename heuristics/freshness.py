"""Freshness: an exponential decay of item age, added to the scores.

Modelled on the decay functions of search engines (origin = now, offset, scale, decay = 0.5): an item of age
``a`` days gets the boost

    weight * 0.5 ** (max(a - offset_days, 0) / half_life_days)

so an item within the offset gets the full weight, and the boost halves every half-life after that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from heuristics.base import ContextBatch, ItemBatch, KnobSpec, ScoreHeuristic, as_knob


def decay(
    age_days: np.ndarray, half_life_days: np.ndarray | float, offset_days: np.ndarray | float = 0.0
) -> np.ndarray:
    """The freshness multiplier in (0, 1] of items of the given ages (negative ages count as 0)."""
    excess = np.maximum(np.maximum(age_days, 0.0) - offset_days, 0.0)
    return np.exp2(-excess / half_life_days)


@dataclass(frozen=True)
class Freshness(ScoreHeuristic):
    """``s + weight * 0.5 ** (max(age - offset_days, 0) / half_life_days)``."""

    NAME: ClassVar[str] = "freshness"
    KNOBS: ClassVar[dict[str, KnobSpec]] = {
        "weight": KnobSpec(default=0.0, low=0.0, high=10.0),
        "half_life_days": KnobSpec(default=7.0, low=0.0, high=3650.0, open_low=True),
        "offset_days": KnobSpec(default=0.0, low=0.0, high=3650.0),
    }
    IDENTITY: ClassVar[dict[str, float]] = {"weight": 0.0}

    weight: float | np.ndarray = 0.0
    half_life_days: float | np.ndarray = 7.0
    offset_days: float | np.ndarray = 0.0

    def adjust(self, scores: np.ndarray, items: ItemBatch, context: ContextBatch) -> np.ndarray:
        batch = scores.shape[0]
        boost = decay(
            items.age_days,
            as_knob(self.half_life_days, batch),
            as_knob(self.offset_days, batch),
        )
        return scores + as_knob(self.weight, batch) * boost
