"""A section's re-ranking pipeline: normalise, apply the score steps, then the order steps, keep the top k.

The pipeline is built once per section from its config; each call passes the knob values of the chosen arm(s).
A batch may mix arms: knob values are then arrays of shape (B,), gathered from the arm table in one step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from heuristics.base import (
    ContextBatch,
    Heuristic,
    ItemBatch,
    OrderHeuristic,
    Ranking,
    ScoreHeuristic,
    check_k,
    check_scores,
    descending_order,
    field_name,
)
from heuristics.config import Arm, SectionConfig
from heuristics.errors import InputError
from heuristics.normalize import normalize_scores
from heuristics.registry import HEURISTICS


@dataclass(frozen=True)
class SectionPipeline:
    """The configured re-ranker of one section."""

    section: SectionConfig

    def __post_init__(self) -> None:
        # Knob values of every arm as arrays, so that a batch of arm indices gathers its knobs at once.
        table = {
            name: np.array([arm.knobs[name] for arm in self.section.arms], dtype=np.float64)
            for name in self.section.knob_names
        }
        object.__setattr__(self, "_arm_table", table)
        # Each arm's validated heuristics, built once: a batch under one arm (a served request) reuses them.
        object.__setattr__(self, "_arm_steps", {})

    def knobs_for(self, arm_indices: np.ndarray) -> dict[str, np.ndarray]:
        """Knob values (B,) for each request's arm index (B,)."""
        arm_indices = np.asarray(arm_indices, dtype=np.int64)
        if arm_indices.size and (arm_indices.min() < 0 or arm_indices.max() >= len(self.section.arms)):
            raise InputError(
                f"Expected arm indices in [0, {len(self.section.arms)}) for section "
                f"{self.section.name!r}, found {arm_indices.min()}..{arm_indices.max()}"
            )
        return {name: values[arm_indices] for name, values in self._arm_table.items()}

    def steps(self, knobs: Mapping[str, float | np.ndarray]) -> list[Heuristic]:
        """The pipeline's heuristics, instantiated with the given knob values and the section's params."""
        expected = self.section.knob_names
        if len(knobs) != len(expected) or any(name not in knobs for name in expected):
            missing = [name for name in expected if name not in knobs]
            unknown = [name for name in knobs if name not in expected]
            raise InputError(
                f"Expected knobs {', '.join(expected)} for section {self.section.name!r}; "
                f"missing: {', '.join(missing) or 'none'}; unknown: {', '.join(unknown) or 'none'}"
            )
        built = []
        for step in self.section.pipeline:
            cls = HEURISTICS[step]
            kwargs = {field_name(k): knobs[f"{step}.{k}"] for k in cls.KNOBS}
            built.append(cls(**kwargs, **self.section.params[step]))
        return built

    def rerank_batch(
        self,
        scores: np.ndarray,
        items: ItemBatch,
        context: ContextBatch,
        knobs: Mapping[str, float | np.ndarray] | list[Heuristic],
        k: int | None = None,
    ) -> Ranking:
        """Re-rank B requests of n candidates each.

        Parameters
        ----------
        scores : (B, n) float
            Base ranker scores; any scale, normalised here per request.
        items, context
            Candidate attributes and request context of the B requests.
        knobs : mapping ``"heuristic.knob" -> scalar or (B,) array``, or a list of built steps
            Knob values, e.g. ``arm.knobs`` or ``knobs_for(arm_indices)``; or the heuristics `steps` built.
        k : int, optional
            How many to return per request (all when None; at most n).

        Returns
        -------
        Ranking
            ``order`` (B, min(k, n)) and the final normalised, adjusted ``scores`` of the ranked items.
        """
        check_k(k)
        scores = check_scores(scores, items)
        n = scores.shape[1]
        k_eff = n if k is None else min(int(k), n)
        current = normalize_scores(scores, self.section.normalize)
        order = None
        steps = knobs if isinstance(knobs, list) else self.steps(knobs)
        for step in steps:
            if isinstance(step, ScoreHeuristic):
                current = step.adjust(current, items, context)
            else:
                assert isinstance(step, OrderHeuristic)
                if order is None:
                    order = descending_order(current)
                order = step.reorder(order, current, items, context, k_eff)
        if order is None:
            order = descending_order(current)
        order = order[:, :k_eff]
        return Ranking(order=order, scores=np.take_along_axis(current, order, axis=1))

    def rerank_arms(
        self,
        scores: np.ndarray,
        items: ItemBatch,
        context: ContextBatch,
        arm_indices: np.ndarray,
        k: int | None = None,
    ) -> Ranking:
        """Re-rank B requests, each under its own arm (arm_indices has shape (B,))."""
        arm_indices = np.asarray(arm_indices, dtype=np.int64)
        if arm_indices.size and (arm_indices == arm_indices.flat[0]).all():
            arm = int(arm_indices.flat[0])
            if not 0 <= arm < len(self.section.arms):
                self.knobs_for(arm_indices)  # raises the out-of-range error
            if arm not in self._arm_steps:
                self._arm_steps[arm] = self.steps(self.section.arms[arm].knobs)
            return self.rerank_batch(scores, items, context, self._arm_steps[arm], k)
        return self.rerank_batch(scores, items, context, self.knobs_for(arm_indices), k)

    def rerank(
        self,
        scores: np.ndarray,
        items: ItemBatch,
        context: ContextBatch,
        arm: Arm,
        k: int | None = None,
    ) -> Ranking:
        """Re-rank one request (scores of shape (n,), batches of one) under one arm."""
        return self.rerank_batch(np.asarray(scores)[None, :], items, context, arm.knobs, k)
