"""Typed, columnar records of logged decisions and their feedback.

These cross module boundaries: the simulator's logging policy and the service produce them, the decision log
stores them, the learners and replay read them back. Ragged fields (candidate lists, arm distributions of
sections with different arm counts) are lists of arrays; the rest are arrays of shape (B,).

Item and user ids are int64 or str and are stored as given (JSON keeps the type).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bandits.errors import InvalidArgumentError


@dataclass(frozen=True)
class DecisionBatch:
    """B re-ranking decisions, as logged.

    Attributes
    ----------
    event_id : (B,) str
        Unique id of each decision.
    time : (B,) float64
        When the decision was made, in seconds since the Unix epoch.
    section : (B,) str
    user_id : (B,) int64 or str
    context : list of B dicts
        The request context, JSON-able: device, hour, user segment, and the section's own fields
        (``source_item``, ``category``, ``query``).
    candidates : list of B arrays
        Candidate item ids in the order received.
    shown : list of B arrays
        The shown item ids, best first (the top k).
    arm_id : (B,) str
    arm_index : (B,) int64
        Index of the arm in the section's arm list.
    knobs : list of B dicts
        The chosen arm's knob values, ``"heuristic.knob" -> value``.
    propensity : (B,) float64
        Probability with which the logging policy chose this arm, in (0, 1].
    arm_probs : list of B arrays
        The whole distribution over the section's arms (sums to 1; ``arm_probs[b][arm_index[b]]`` equals
        ``propensity[b]``).
    model_versions : list of B dicts
        Versions of the models that made the decision, e.g. ``{"ranker": ..., "policy": ...}``.
    shown_scores : list of B arrays, optional
        The final score of each shown item.
    variant : (B,) str, optional
        The A/B variant that served each decision, ``"EXPERIMENT/VARIANT"``
        (`bandits.experiment_assign`); ``""`` outside any experiment. None: no row was in one.
    """

    event_id: np.ndarray
    time: np.ndarray
    section: np.ndarray
    user_id: np.ndarray
    context: list[dict[str, Any]]
    candidates: list[np.ndarray]
    shown: list[np.ndarray]
    arm_id: np.ndarray
    arm_index: np.ndarray
    knobs: list[dict[str, float]]
    propensity: np.ndarray
    arm_probs: list[np.ndarray]
    model_versions: list[dict[str, str]]
    shown_scores: list[np.ndarray] | None = None
    variant: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.event_id)

    @classmethod
    def concat(cls, batches: list[DecisionBatch]) -> DecisionBatch:
        """One batch holding the rows of `batches`, in order."""
        if not batches:
            raise InvalidArgumentError("Expected at least one batch to concatenate")
        out: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            values = [getattr(b, name) for b in batches]
            if name == "shown_scores":
                out[name] = None if any(v is None for v in values) else [x for v in values for x in v]
            elif name == "variant":
                out[name] = (
                    None
                    if all(v is None for v in values)
                    else np.concatenate(
                        [
                            np.full(len(b), "", object) if v is None else np.asarray(v, object)
                            for b, v in zip(batches, values, strict=True)
                        ]
                    )
                )
            elif isinstance(values[0], np.ndarray):
                out[name] = np.concatenate(values)
            else:
                out[name] = [x for v in values for x in v]
        return cls(**out)


@dataclass(frozen=True)
class FeedbackBatch:
    """Feedback on B logged decisions.

    Attributes
    ----------
    event_id : (B,) str
        The decision each row is feedback on.
    time : (B,) float64
        When the feedback arrived, in seconds since the Unix epoch.
    clicks : list of B int arrays
        0-based positions in the shown list that were clicked.
    conversions : list of B int arrays
        0-based positions that converted (a subset of the clicks).
    revenue : (B,) float64
        Revenue of the conversions (0 when none).
    reward : (B,) float64
        An explicit reward given by the caller; NaN when none was given (the learner then derives one).
    """

    event_id: np.ndarray
    time: np.ndarray
    clicks: list[np.ndarray]
    conversions: list[np.ndarray] = field(default_factory=list)
    revenue: np.ndarray | None = None
    reward: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.event_id)
