"""The strategies of the design comparison, run on common evaluation requests, and their slates' metrics.

Every strategy that involves a ranker or a knob policy runs through the serving pipeline
(`ranker.rerank.pipeline.RerankPipeline.rerank_batch`), section by section; each model scores a section's
requests once (`RerankPipeline.score`) and the scores are passed to every knob policy run on top of it. Two
bounds run beside them: ``random`` (a random order of the candidates) and ``oracle`` (the candidates ordered
by their true attractiveness in isolation, `World.true_relevance`: greedy, so it ignores satiation and is a
bound on relevance ordering, not on every slate).

Each slate is valued exactly: expected clicks, conversions and revenue from the world's click model, NDCG@k
of the slate against the true attractiveness of all candidates, intra-list diversity and the mean age of the
shown items (`slate_metrics`); catalog coverage is the share of catalog items shown at least once
(`coverage`).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from bandits.base import KnobPolicy
from bandits.policies import FixedArmPolicy
from heuristics import SectionsConfig
from heuristics.base import descending_order
from ranker.model import RankerModel
from ranker.rerank.batch import RerankBatch
from ranker.rerank.items import ItemAttributes
from ranker.rerank.pipeline import RerankPipeline
from simulator.errors import SimulationInputError
from simulator.population import DAY
from simulator.records import RequestBatch
from simulator.world import World

#: Per-request metrics of a slate, in report order.
SLATE_METRICS = ("clicks", "conversions", "revenue", "ndcg", "diversity", "age_days")
#: Metrics of a section's whole set of slates.
SET_METRICS = ("coverage",)
BOUNDS = ("random", "oracle")


@dataclass(frozen=True)
class EvalSet:
    """Evaluation requests grouped by section, with what every strategy shares.

    Attributes
    ----------
    requests : RequestBatch of B requests
    batch : RerankBatch of the same B requests
        The requests as the pipeline takes them (`RequestBatch.to_rerank_batch`).
    rows : mapping section -> (m,) int
        The requests of each section, in request order.
    relevance : mapping section -> (m, n) float
        True attractiveness of every candidate in isolation (`World.true_relevance`).
    k : mapping section -> int
        Slate length: the section's ``serving.default_k`` (at most n).
    """

    requests: RequestBatch
    batch: RerankBatch
    rows: dict[str, np.ndarray]
    relevance: dict[str, np.ndarray]
    k: dict[str, int]

    @classmethod
    def build(cls, world: World, requests: RequestBatch, sections: SectionsConfig) -> EvalSet:
        rows = {
            str(s): np.flatnonzero(requests.section == s)
            for s in world.sections
            if (requests.section == s).any()
        }
        return cls(
            requests=requests,
            batch=requests.to_rerank_batch(),
            rows=rows,
            relevance={s: world.true_relevance(requests.take(r)) for s, r in rows.items()},
            k={s: min(sections[s].serving.default_k, requests.n_candidates) for s in rows},
        )

    def part(self, section: str) -> tuple[RequestBatch, RerankBatch]:
        """The section's requests, as the world and as the pipeline take them."""
        rows = self.rows[section]
        return self.requests.take(rows), self.batch.take(rows)


@dataclass(frozen=True)
class Strategy:
    """One way of serving: rankers and a knob policy through the pipeline, or a bound.

    Attributes
    ----------
    name : str
    rankers : mapping section -> RankerModel, or None for a bound
    policy : KnobPolicy or None
        The knob policy on top of the rankers; None serves the rankers' own order (heuristics off).
    sections : tuple of str or None
        Evaluate only these sections (None: every section of the evaluation requests).
    bound : {"random", "oracle"} or None
    """

    name: str
    rankers: Mapping[str, RankerModel] | None = None
    policy: KnobPolicy | None = None
    sections: tuple[str, ...] | None = None
    bound: str | None = None

    def __post_init__(self) -> None:
        if (self.bound is None) == (self.rankers is None):
            raise SimulationInputError(f"strategy {self.name!r}: give either rankers or a bound")
        if self.bound is not None and self.bound not in BOUNDS:
            raise SimulationInputError(
                f"strategy {self.name!r}: expected a bound in {BOUNDS}, found {self.bound!r}"
            )


@dataclass(frozen=True)
class StrategyRun:
    """What a strategy served on the evaluation requests, per section.

    Attributes
    ----------
    order : mapping section -> (m, k) int64
        Positions into each request's candidates, best first.
    arm_index : mapping section -> (m,) int64, or None
        The knob arm of each request (strategies with a knob policy).
    """

    name: str
    order: dict[str, np.ndarray]
    arm_index: dict[str, np.ndarray] | None


def _stream(seed: int, *names: str) -> np.random.Generator:
    """A generator seeded by `seed` and names (stable across runs and Python processes)."""
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


class StrategyRunner:
    """Runs strategies on one `EvalSet`, sharing each model's scores between the strategies that use it."""

    def __init__(self, eval_set: EvalSet, sections: SectionsConfig, items: ItemAttributes, seed: int) -> None:
        self.eval_set = eval_set
        self.sections = sections
        self.items = items
        self.seed = seed
        self._scores: dict[tuple[int, str], np.ndarray] = {}

    def scores(self, pipeline: RerankPipeline, section: str) -> np.ndarray:
        """The section's ranker scores (m, n) of the evaluation requests, computed once per model."""
        model = pipeline.rankers[section]
        key = (id(model), section)
        if key not in self._scores:
            _, batch = self.eval_set.part(section)
            self._scores[key] = pipeline.score(batch)
        return self._scores[key]

    def run(self, strategy: Strategy) -> StrategyRun:
        ev = self.eval_set
        wanted = [s for s in ev.rows if strategy.sections is None or s in strategy.sections]
        order: dict[str, np.ndarray] = {}
        arms: dict[str, np.ndarray] = {}
        if strategy.bound is not None:
            for section in wanted:
                relevance = ev.relevance[section]
                k = ev.k[section]
                if strategy.bound == "random":
                    noise = _stream(self.seed, strategy.name, section).random(relevance.shape)
                    order[section] = np.argsort(noise, axis=1)[:, :k]
                else:
                    order[section] = descending_order(relevance)[:, :k]
            return StrategyRun(strategy.name, order, None)
        assert strategy.rankers is not None
        pipeline = RerankPipeline(
            self.sections,
            strategy.rankers,
            self.items,
            strategy.policy or FixedArmPolicy(self.sections),
            heuristics=strategy.policy is not None,
            seed=self.seed,
        )
        for section in wanted:
            _, batch = ev.part(section)
            result = pipeline.rerank_batch(
                batch,
                _stream(self.seed, strategy.name, section),
                k=ev.k[section],
                scores=self.scores(pipeline, section),
            )
            order[section] = result.order
            arms[section] = result.arm_index
        return StrategyRun(strategy.name, order, arms if strategy.policy is not None else None)


# --- metrics ------------------------------------------------------------------------------------------------


def slate_ndcg(relevance: np.ndarray, order: np.ndarray) -> np.ndarray:
    """NDCG@k (linear gain) of slates against the true relevance of all candidates.

    ``DCG = sum_p rel[order_p] / log2(p + 2)`` over the k slots, divided by the DCG of the k most relevant
    candidates; 0 when every candidate has relevance 0.

    Parameters
    ----------
    relevance : (B, n) float >= 0
    order : (B, k) int
        Positions into the candidates, best first (k <= n).

    Returns
    -------
    (B,) float64 in [0, 1]
    """
    k = order.shape[1]
    discount = 1.0 / np.log2(np.arange(k) + 2.0)
    dcg = np.take_along_axis(relevance, order, axis=1) @ discount
    ideal = -np.sort(-relevance, axis=1)[:, :k] @ discount
    return np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)


def intra_list_diversity(embedding: np.ndarray) -> np.ndarray:
    """Mean cosine distance ``1 - cos(e_i, e_j)`` over the pairs i != j of each slate.

    Parameters
    ----------
    embedding : (B, k, d) float
        The shown items' embeddings; a zero vector has cosine 0 with everything.

    Returns
    -------
    (B,) float64 in [0, 2]; 0 for slates of fewer than 2 items.
    """
    batch, k, _ = embedding.shape
    if k < 2:
        return np.zeros(batch)
    norm = np.linalg.norm(embedding, axis=2, keepdims=True)
    unit = np.divide(embedding, norm, out=np.zeros_like(embedding), where=norm > 0)
    gram = np.einsum("bid,bjd->bij", unit, unit)
    off_diagonal = gram.sum(axis=(1, 2)) - np.trace(gram, axis1=1, axis2=2)
    return 1.0 - off_diagonal / (k * (k - 1))


def slate_metrics(
    world: World, requests: RequestBatch, order: np.ndarray, relevance: np.ndarray
) -> dict[str, np.ndarray]:
    """Every per-request metric of `SLATE_METRICS`, each (B,), of the slates `order` (B, k) positions."""
    slates = np.take_along_axis(requests.candidates, order, axis=1)
    outcome = world.expected_outcomes(requests, slates)
    observed = world.observed_items
    age = (requests.time[:, None] - observed.publish_time[slates]) / DAY
    return {
        "clicks": outcome.clicks,
        "conversions": outcome.conversions,
        "revenue": outcome.revenue,
        "ndcg": slate_ndcg(relevance, order),
        "diversity": intra_list_diversity(observed.embedding[slates]),
        "age_days": age.mean(axis=1),
    }


def coverage(world: World, requests: RequestBatch, order: np.ndarray) -> float:
    """Share of the catalog shown at least once in the slates `order` (B, k)."""
    slates = np.take_along_axis(requests.candidates, order, axis=1)
    return float(np.unique(slates).size / world.n_items)
