"""The knob policy contract: a distribution over a section's arms for each request, and a seeded draw from it.

Every policy, learned or fixed, gives the *whole* distribution, so that a decision can log its exact
propensity and a replay can evaluate any policy as a target.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from bandits.context import PolicyContext
from heuristics import SectionsConfig


@dataclass(frozen=True)
class Choice:
    """The arms drawn for B requests.

    Attributes
    ----------
    arm_index : (B,) int64
        Index into each request's section arm list.
    propensity : (B,) float64
        Probability of the drawn arm, in (0, 1].
    probs : list of B arrays
        Each request's whole distribution over its section's arms.
    """

    arm_index: np.ndarray
    propensity: np.ndarray
    probs: list[np.ndarray]


class KnobPolicy(ABC):
    """Chooses a knob arm per request. Subclasses implement `_section_distribution`."""

    def __init__(self, sections: SectionsConfig) -> None:
        self.sections = sections

    @abstractmethod
    def _section_distribution(self, section: str, context: PolicyContext) -> np.ndarray:
        """(m, A) arm probabilities of m requests of one section (rows sum to 1)."""

    def distribution(self, context: PolicyContext) -> list[np.ndarray]:
        """Each request's distribution over its section's arms (a list of B arrays)."""
        out: list[np.ndarray] = [np.empty(0)] * len(context)
        for section, rows in _rows_by_section(context.section):
            probs = self._section_distribution(section, context.take(rows))
            for row, p in zip(rows, probs, strict=True):
                out[row] = p
        return out

    def choose(self, context: PolicyContext, rng: np.random.Generator) -> Choice:
        """Draw an arm per request from its distribution, with one uniform draw per request from `rng`."""
        uniforms = rng.random(len(context))
        arm_index = np.zeros(len(context), dtype=np.int64)
        propensity = np.zeros(len(context))
        probs: list[np.ndarray] = [np.empty(0)] * len(context)
        for section, rows in _rows_by_section(context.section):
            p = self._section_distribution(section, context.take(rows))
            cdf = np.cumsum(p, axis=1)
            cdf[:, -1] = 1.0  # guard against rounding: the last arm closes the interval
            drawn = (cdf <= uniforms[rows, None]).sum(axis=1)
            drawn = np.minimum(drawn, p.shape[1] - 1)
            arm_index[rows] = drawn
            propensity[rows] = p[np.arange(len(rows)), drawn]
            for row, dist in zip(rows, p, strict=True):
                probs[row] = dist
        return Choice(arm_index=arm_index, propensity=propensity, probs=probs)


def _rows_by_section(sections: np.ndarray) -> list[tuple[str, np.ndarray]]:
    sections = np.asarray(sections, dtype=str)
    if len(sections) and (sections == sections[0]).all():  # the usual case: one section's batch
        return [(str(sections[0]), np.arange(len(sections)))]
    names, inverse = np.unique(sections, return_inverse=True)
    return [(str(name), np.flatnonzero(inverse == i)) for i, name in enumerate(names)]
