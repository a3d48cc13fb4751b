"""The exact value of knob policies in a world: every arm's expected outcome on a fixed set of requests.

For a request x of section s and each arm a of s, the world gives the exact expected clicks, conversions and
revenue V(x, a) of the slate that the serving pipeline produces under a (from a fixed base scoring). A knob
policy's exact value is then the mean over requests of ``sum_a pi(a | x) V(x, a)``: no noise from drawing arms
or clicks, so policies are compared on common requests without sampling error. The best fixed arm is
``argmax_a mean_x V(x, a)`` per section, and the per-context oracle ``mean_x max_a V(x, a)`` bounds what any
knob policy can reach.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from bandits.base import KnobPolicy
from bandits.context import PolicyContext
from bandits.policies import FixedArmPolicy
from heuristics import SectionsConfig
from ranker.rerank.pipeline import RerankPipeline
from simulator.logging_policy import LegacyScorer
from simulator.records import RequestBatch
from simulator.world import World

OUTCOMES = ("clicks", "conversions", "revenue")


@dataclass(frozen=True)
class ArmValues:
    """Exact expected outcomes of every arm on B requests.

    Attributes
    ----------
    requests : RequestBatch of B requests
    context : PolicyContext of the B requests (what a knob policy sees)
    rows : mapping section -> (m,) int
        The requests of each section.
    values : mapping section -> mapping outcome -> (m, A) float
        Expected clicks, conversions and revenue of each request under each arm of its section.
    """

    requests: RequestBatch
    context: PolicyContext
    rows: dict[str, np.ndarray]
    values: dict[str, dict[str, np.ndarray]]

    @property
    def sections(self) -> list[str]:
        return list(self.rows)

    def fixed_arm_values(self, section: str, outcome: str = "clicks") -> np.ndarray:
        """(A,) the mean value of always choosing each arm."""
        return self.values[section][outcome].mean(axis=0)

    def best_fixed_arm(self, section: str, outcome: str = "clicks") -> int:
        return int(np.argmax(self.fixed_arm_values(section, outcome)))

    def oracle_value(self, section: str, outcome: str = "clicks") -> float:
        """Mean over requests of the best arm for that request."""
        return float(self.values[section][outcome].max(axis=1).mean())

    def context_oracle_value(
        self, section: str, outcome: str = "clicks", keys: tuple[str, ...] = ("segment", "device")
    ) -> float:
        """The value of choosing, in each cell of the observable `keys` (e.g. segment x device), the arm that
        is best on average in that cell: what a knob policy that knows the truth per cell would reach."""
        rows = self.rows[section]
        values = self.values[section][outcome]
        cells = np.unique(
            np.stack([np.asarray(getattr(self.context, key))[rows].astype(str) for key in keys], axis=1),
            axis=0,
            return_inverse=True,
        )[1].ravel()
        total = 0.0
        for cell in np.unique(cells):
            in_cell = cells == cell
            total += values[in_cell].mean(axis=0).max() * in_cell.sum()
        return float(total / len(rows))

    def policy_values(self, policy: KnobPolicy, outcome: str = "clicks") -> dict[str, float]:
        """Exact mean value per request of `policy`, per section."""
        return {
            section: float(self.per_request(policy, section, outcome).mean()) for section in self.sections
        }

    def per_request(self, policy: KnobPolicy, section: str, outcome: str = "clicks") -> np.ndarray:
        """(m,) exact expected value of `policy` on each request of `section`."""
        rows = self.rows[section]
        probs = np.stack(policy.distribution(self.context.take(rows)))
        return (probs * self.values[section][outcome]).sum(axis=1)


def arm_values(
    world: World,
    requests: RequestBatch,
    sections: SectionsConfig,
    *,
    scores: np.ndarray | None = None,
    seed: int = 0,
    chunk: int = 2000,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> ArmValues:
    """Exact expected outcomes of every arm of each request's section.

    Every arm's slates come from the serving pipeline (`RerankPipeline.rerank_arms`, with the world as its
    attribute source) on the same base scores, and the policy context from the same pipeline.

    Parameters
    ----------
    scores : (B, n) float, optional
        Base scores of the candidates; by default the logging policy's legacy scorer, seeded by `seed`.
    chunk : int
        Requests re-ranked at a time.
    """
    if scores is None:
        scores = LegacyScorer().score(world, requests, np.random.default_rng(seed))
    pipeline = RerankPipeline(sections, None, world, FixedArmPolicy(sections))
    batch = requests.to_rerank_batch()
    rows_by_section: dict[str, np.ndarray] = {}
    values: dict[str, dict[str, np.ndarray]] = {}
    work = []
    for section in np.unique(requests.section).tolist():
        rows = np.flatnonzero(requests.section == section)
        rows_by_section[section] = rows
        n_arms = len(sections[section].arms)
        values[section] = {o: np.empty((len(rows), n_arms)) for o in OUTCOMES}
        for start in range(0, len(rows), chunk):
            for arm in range(n_arms):
                work.append((section, start, arm))
    for section, start, arm in progress(work) if progress else work:
        part_rows = rows_by_section[section][start : start + chunk]
        part = requests.take(part_rows)
        ranking = pipeline.rerank_arms(
            batch.take(part_rows), np.full(len(part_rows), arm), scores=scores[part_rows]
        )
        slates = np.take_along_axis(part.candidates, ranking.order, axis=1)
        outcome = world.expected_outcomes(part, slates)
        block = slice(start, start + len(part_rows))
        for name in OUTCOMES:
            values[section][name][block, arm] = getattr(outcome, name)
    return ArmValues(
        requests=requests, context=pipeline.policy_context(batch), rows=rows_by_section, values=values
    )
