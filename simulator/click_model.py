"""The ground-truth click model, as pure vectorised functions of its parameters.

A slate of k items is shown to each of B requests. Slot p (0-based) is examined with probability

    exam(p) = (1 + p) ** (-decay)

and an examined item is clicked with its attractiveness

    attr(p) = sigmoid(base_logit(p) - w_cat * n_cat(p) - w_sub * n_sub(p))

where ``n_cat(p)`` (``n_sub(p)``) counts the slots above p showing the same category (subcategory): the
satiation of what is already shown. Clicks at different slots are independent given the slate. A click
converts with probability ``conv(p)``, earning the item's price. So, exactly,

    E[clicks]      = sum_p exam(p) * attr(p)
    E[conversions] = sum_p exam(p) * attr(p) * conv(p)
    E[revenue]     = sum_p exam(p) * attr(p) * conv(p) * price(p)

How `base_logit`, `conv` and the weights come from the world's latent truth is `simulator.world`'s business.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ExpectedOutcomes(NamedTuple):
    """Exact expectations per request, each of shape (B,)."""

    clicks: np.ndarray
    conversions: np.ndarray
    revenue: np.ndarray


class SampledOutcomes(NamedTuple):
    """One draw of the click model.

    Attributes
    ----------
    clicks, conversions : (B, k) bool
        Which slots were clicked, and which clicks converted.
    revenue : (B,) float64
        Sum of the prices of the converted slots.
    """

    clicks: np.ndarray
    conversions: np.ndarray
    revenue: np.ndarray


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, 1 / (1 + exp(-x))."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def examination(k: int, decay: np.ndarray) -> np.ndarray:
    """Examination probabilities (B, k) of slots 0..k-1: ``(1 + p) ** -decay`` with decay (B,) >= 0."""
    positions = np.arange(1, k + 1, dtype=np.float64)
    return positions[None, :] ** -np.asarray(decay, dtype=np.float64)[:, None]


def repeats_above(groups: np.ndarray) -> np.ndarray:
    """For each slot of each row of `groups` (B, k), how many earlier slots hold the same group id.

    Vectorised by a stable sort: within a run of equal ids, the count is the position in the run.
    """
    groups = np.asarray(groups)
    batch, k = groups.shape
    if k == 0:
        return np.zeros((batch, 0), dtype=np.int64)
    by_group = np.argsort(groups, axis=1, kind="stable")
    ordered = np.take_along_axis(groups, by_group, axis=1)
    pos = np.broadcast_to(np.arange(k), ordered.shape)
    starts = np.ones(ordered.shape, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    first = np.maximum.accumulate(np.where(starts, pos, 0), axis=1)
    counts = np.empty((batch, k), dtype=np.int64)
    np.put_along_axis(counts, by_group, pos - first, axis=1)
    return counts


def satiated_logit(
    base_logit: np.ndarray,
    category: np.ndarray,
    subcategory: np.ndarray,
    category_weight: np.ndarray,
    subcategory_weight: np.ndarray,
) -> np.ndarray:
    """``base_logit - w_cat * n_cat - w_sub * n_sub``, all (B, k); the weights are (B,)."""
    penalty = np.asarray(category_weight)[:, None] * repeats_above(category)
    penalty = penalty + np.asarray(subcategory_weight)[:, None] * repeats_above(subcategory)
    return base_logit - penalty


def expected_outcomes(
    exam: np.ndarray, attract: np.ndarray, conversion: np.ndarray, price: np.ndarray
) -> ExpectedOutcomes:
    """Exact expected clicks, conversions and revenue (each (B,)) from per-slot (B, k) probabilities."""
    clicks = exam * attract
    converted = clicks * conversion
    return ExpectedOutcomes(
        clicks=clicks.sum(axis=1),
        conversions=converted.sum(axis=1),
        revenue=(converted * price).sum(axis=1),
    )


def sample_outcomes(
    exam: np.ndarray,
    attract: np.ndarray,
    conversion: np.ndarray,
    price: np.ndarray,
    rng: np.random.Generator,
) -> SampledOutcomes:
    """One independent draw per slot: click ~ Bernoulli(exam * attr), then conversion ~ Bernoulli(conv)."""
    clicks = rng.random(exam.shape) < exam * attract
    conversions = clicks & (rng.random(exam.shape) < conversion)
    return SampledOutcomes(
        clicks=clicks, conversions=conversions, revenue=np.where(conversions, price, 0.0).sum(axis=1)
    )
