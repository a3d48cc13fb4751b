"""Rewards of logged decisions, computed from their feedback.

- ``clicks``: the number of clicked positions;
- ``discounted_clicks``: ``sum over clicked positions p (0-based) of 1 / log2(p + 2)``;
- ``conversions``: the number of converted positions;
- ``revenue``: the revenue of the conversions;
- ``explicit``: the reward the caller sent with the feedback (decisions without one get the default).

A decision without feedback (none arrived within the wait window) gets ``default`` (0 unless configured).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bandits.errors import InvalidArgumentError

REWARDS = ("clicks", "discounted_clicks", "conversions", "revenue", "explicit")


def _flatten(lists: Sequence[np.ndarray | list | None]) -> tuple[np.ndarray, np.ndarray]:
    """Row index and value of every element of B ragged lists (None counts as empty)."""
    lengths = np.fromiter((0 if x is None else len(x) for x in lists), dtype=np.int64, count=len(lists))
    values = [np.asarray(x, dtype=np.float64) for x in lists if x is not None and len(x)]
    flat = np.concatenate(values) if values else np.empty(0)
    return np.repeat(np.arange(len(lists)), lengths), flat


def compute_rewards(
    kind: str,
    *,
    clicks: Sequence[np.ndarray | list | None],
    conversions: Sequence[np.ndarray | list | None] | None = None,
    revenue: np.ndarray | None = None,
    explicit: np.ndarray | None = None,
    has_feedback: np.ndarray | None = None,
    default: float = 0.0,
) -> np.ndarray:
    """Reward (B,) of B decisions.

    Parameters
    ----------
    kind : one of `REWARDS`
    clicks, conversions : B lists of 0-based positions (None when no feedback)
    revenue, explicit : (B,) float, NaN where absent
    has_feedback : (B,) bool, optional
        Decisions without feedback get `default`; by default a decision has feedback when its clicks entry is
        not None.
    """
    if kind not in REWARDS:
        raise InvalidArgumentError(f"Expected a reward in {', '.join(REWARDS)}, found {kind!r}")
    batch = len(clicks)
    if has_feedback is None:
        has_feedback = np.fromiter((c is not None for c in clicks), dtype=bool, count=batch)
    if kind in ("clicks", "discounted_clicks"):
        rows, positions = _flatten(clicks)
        weights = np.ones_like(positions) if kind == "clicks" else 1.0 / np.log2(positions + 2.0)
        reward = np.bincount(rows, weights=weights, minlength=batch)
    elif kind == "conversions":
        rows, _ = _flatten(conversions if conversions is not None else [None] * batch)
        reward = np.bincount(rows, minlength=batch).astype(np.float64)
    elif kind == "revenue":
        reward = np.nan_to_num(np.asarray(revenue if revenue is not None else np.zeros(batch), dtype=float))
    else:
        values = np.asarray(explicit if explicit is not None else np.full(batch, np.nan), dtype=float)
        has_feedback = has_feedback & ~np.isnan(values)
        reward = np.nan_to_num(values)
    return np.where(has_feedback, reward, default)
