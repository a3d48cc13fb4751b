"""A production-like logging policy: a legacy scorer, the sections' heuristics, and an exploring arm choice.

For every request the policy scores the candidates with `LegacyScorer` (popularity plus a noisy affinity,
and query-word overlap in search) and hands the scores to the serving pipeline
(`ranker.rerank.pipeline.RerankPipeline.rerank_batch`, with the world as its attribute source), which draws
the section's knob arm from an exploring distribution, re-ranks with the section's heuristics under that arm
and keeps the section's ``serving.default_k``; the world then samples the clicks. It logs every decision with
the chosen arm, its exact propensity, the whole arm distribution and the context the arm was chosen on, and
the feedback of every decision.

With ``rankers`` (trained ranker models, one per section) the pipeline scores with them instead of the legacy
scorer: the traffic of a team that has shipped its base ranker and explores the knobs on top of it.

Exploration:

- ``uniform``: every arm of the section with probability 1 / A;
- ``epsilon``: the section's default arm with probability 1 - epsilon + epsilon / A, every other arm with
  epsilon / A.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from bandits.base import KnobPolicy
from bandits.context import build_policy_context
from bandits.policies import EpsilonGreedyPolicy, UniformPolicy
from bandits.records import DecisionBatch, FeedbackBatch
from heuristics import SectionsConfig
from ranker.model import RankerModel
from ranker.rerank.items import ItemAttributes
from ranker.rerank.pipeline import RerankPipeline
from simulator.errors import SimulationInputError
from simulator.records import RequestBatch
from simulator.world import World

T = TypeVar("T")
Progress = Callable[[Iterable[T]], Iterable[T]]
EXPLORATIONS = ("uniform", "epsilon")
RANKER_VERSION = "legacy-scorer"
#: The request-context field each world context kind fills, as the sections config names it.
_RAGGED = ("shown", "shown_scores", "knobs", "clicks", "conversions")
_REQUIRED_CONTEXT = {"none": None, "source_item": "source_item", "category": "category", "query": "query"}


@dataclass(frozen=True)
class LegacyScorer:
    """The base ranker of the logging policy, on observable data only.

    ``score = popularity_weight * log1p(popularity) / log1p(max popularity)
    + affinity_weight * cos(user embedding, item embedding)
    + query_weight * (share of the query's words among the item's tags)
    + noise * N(0, 1)``
    """

    popularity_weight: float = 1.0
    affinity_weight: float = 1.0
    query_weight: float = 2.0
    noise: float = 0.3

    def __post_init__(self) -> None:
        for name in ("popularity_weight", "affinity_weight", "query_weight", "noise"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise SimulationInputError(f"Expected `{name}` to be a finite number, found {value!r}")
        if self.noise < 0:
            raise SimulationInputError(f"Expected `noise` >= 0, found {self.noise!r}")

    def score(self, world: World, requests: RequestBatch, rng: np.random.Generator) -> np.ndarray:
        """Scores (B, n) of the requests' candidates."""
        items, users = world.observed_items, world.observed_users
        ids = requests.candidates
        popularity = np.log1p(items.popularity)
        scores = self.popularity_weight * popularity[ids] / max(popularity.max(), 1e-12)
        user = users.embedding[requests.user_id]
        scores += self.affinity_weight * np.einsum("bnd,bd->bn", items.embedding[ids], user)
        n_words = (requests.query_tokens >= 0).sum(axis=1)
        rows = np.flatnonzero(n_words)
        if self.query_weight and rows.size:
            tags = items.tags[ids[rows]]  # (b, n, T)
            words = requests.query_tokens[rows]
            hits = (tags[:, :, :, None] == np.where(words >= 0, words, -2)[:, None, None, :]).any(axis=2)
            scores[rows] += self.query_weight * hits.sum(axis=2) / n_words[rows, None]
        if self.noise:
            scores += self.noise * rng.standard_normal(scores.shape)
        return scores


class LoggingPolicy:
    """Logs decisions and feedback on a world's requests, as a production system with exploration would.

    Parameters
    ----------
    world : World
    sections_config : SectionsConfig, optional
        The heuristics' config (the shipped one when None); it must configure every section of the world.
    exploration : {"uniform", "epsilon"}
    epsilon : float in [0, 1]
        Exploration rate of ``"epsilon"`` (ignored by ``"uniform"``).
    seed : int
        Seeds every draw of `log`: the same seed gives the same log.
    scorer : LegacyScorer, optional
    knob_policy : bandits.base.KnobPolicy, optional
        Draws each request's arm. By default the exploring policy that `exploration` names
        (`bandits.policies.UniformPolicy` or `EpsilonGreedyPolicy`); pass e.g. a learned
        `bandits.vw_policy.VWKnobPolicy` to log traffic under it.
    rankers : mapping section -> RankerModel, optional
        Score with these models (through the pipeline's feature function, the world's catalog and users as
        its attributes) instead of `scorer`; the logged ranker version is the model's.
    """

    def __init__(
        self,
        world: World,
        sections_config: SectionsConfig | None = None,
        *,
        exploration: str = "uniform",
        epsilon: float = 0.1,
        seed: int = 0,
        scorer: LegacyScorer | None = None,
        knob_policy: KnobPolicy | None = None,
        rankers: Mapping[str, RankerModel] | None = None,
    ) -> None:
        if exploration not in EXPLORATIONS:
            raise SimulationInputError(
                f"Expected `exploration` in {', '.join(EXPLORATIONS)}, found {exploration!r}"
            )
        if (
            isinstance(epsilon, bool)
            or not isinstance(epsilon, int | float)
            or not math.isfinite(epsilon)
            or not 0 <= epsilon <= 1
        ):
            raise SimulationInputError(f"Expected `epsilon` in [0, 1], found {epsilon!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise SimulationInputError(f"Expected `seed` to be an integer >= 0, found {seed!r}")
        if not isinstance(world, World):
            raise SimulationInputError(f"Expected `world` to be a World, found {type(world).__name__}")
        if sections_config is not None and not isinstance(sections_config, SectionsConfig):
            raise SimulationInputError(
                f"Expected `sections_config` to be a SectionsConfig, found {type(sections_config).__name__}"
            )
        if scorer is not None and not isinstance(scorer, LegacyScorer):
            raise SimulationInputError(
                f"Expected `scorer` to be a LegacyScorer, found {type(scorer).__name__}"
            )
        self.world = world
        self.sections_config = SectionsConfig.load() if sections_config is None else sections_config
        self.exploration = exploration
        self.epsilon = float(epsilon)
        self.seed = seed
        self.scorer = LegacyScorer() if scorer is None else scorer
        if knob_policy is not None:
            if not isinstance(knob_policy, KnobPolicy):
                raise SimulationInputError(
                    f"Expected `knob_policy` to be a KnobPolicy, found {type(knob_policy).__name__}"
                )
            self.knob_policy = knob_policy
            self.policy_version = getattr(knob_policy, "version", type(knob_policy).__name__)
        elif exploration == "uniform":
            self.knob_policy = UniformPolicy(self.sections_config)
            self.policy_version = "uniform"
        else:
            self.knob_policy = EpsilonGreedyPolicy(self.sections_config, self.epsilon)
            self.policy_version = f"epsilon-{self.epsilon:g}"
        for name, section in world.config.sections.items():
            if name not in self.sections_config.sections:
                known = ", ".join(self.sections_config.sections)
                raise SimulationInputError(f"World section {name!r} is not in the sections config ({known})")
            heuristic_section = self.sections_config[name]
            needed = _REQUIRED_CONTEXT[section.context]
            for field in heuristic_section.required_context:
                if field != needed:
                    raise SimulationInputError(
                        f"Section {name!r} requires context {field!r}, but the world gives it "
                        f"context = {section.context!r}"
                    )
        self.rankers = dict(rankers) if rankers is not None else None
        if self.rankers is not None:
            missing = [name for name in world.config.sections if name not in self.rankers]
            if missing:
                raise SimulationInputError(f"Expected a ranker for every world section, missing {missing}")
            items = ItemAttributes(world.catalog(), world.users())
            self.pipeline = RerankPipeline(self.sections_config, self.rankers, items, self.knob_policy)
        else:
            self.pipeline = RerankPipeline(self.sections_config, None, world, self.knob_policy)

    def arm_distribution(self, section: str) -> np.ndarray:
        """The probabilities (A,) with which the default exploring policy draws each arm of `section`.

        Only for the context-free exploring policies; a learned knob policy's distribution depends on the
        request (see `bandits.base.KnobPolicy.distribution`).
        """
        if not isinstance(self.knob_policy, UniformPolicy | EpsilonGreedyPolicy):
            raise SimulationInputError("arm_distribution needs a context-free exploring policy")
        context = build_policy_context(
            section=np.array([section]),
            segment=np.array([""]),
            device=np.array([""]),
            time=np.zeros(1),
            age_days=np.zeros((1, 0)),
            category=np.zeros((1, 0), dtype=np.int64),
        )
        return self.knob_policy.distribution(context)[0]

    def log(
        self, n_requests: int, *, chunk: int = 2000, progress: Progress | None = None
    ) -> Iterator[tuple[DecisionBatch, FeedbackBatch]]:
        """Simulate `n_requests` requests in time order; yield their decisions and feedback chunk by chunk.

        Parameters
        ----------
        n_requests : int
        chunk : int
            Requests per yielded pair of batches (the last may be smaller). The same seed and chunk size
            give the same log.
        progress : callable, optional
            Wraps the list of chunks being processed, e.g. a tqdm progress bar; called once.
        """
        for name, value, low in (("n_requests", n_requests, 0), ("chunk", chunk, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SimulationInputError(f"Expected `{name}` to be an integer >= {low}, found {value!r}")
        chunks = [(start, min(start + chunk, n_requests)) for start in range(0, n_requests, chunk)]
        return self._chunks(n_requests, chunks, progress)

    def log_requests(
        self, requests: RequestBatch, *, chunk: int = 2000, first_event: int = 0
    ) -> Iterator[tuple[DecisionBatch, FeedbackBatch]]:
        """Decide on given `requests` (drawn elsewhere, in time order) chunk by chunk, as `log` does on the
        requests it draws, numbering the events from `first_event`; the same seed and chunk size give the
        same log."""
        _, _, score_rng, arm_rng, click_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(self.seed).spawn(5)
        )
        for start in range(0, len(requests), chunk):
            part = requests.take(np.arange(start, min(start + chunk, len(requests))))
            yield self._decide(first_event + start, part, score_rng, arm_rng, click_rng)

    def _chunks(
        self, n_requests: int, chunks: list[tuple[int, int]], progress: Progress | None
    ) -> Iterator[tuple[DecisionBatch, FeedbackBatch]]:
        time_rng, request_rng, score_rng, arm_rng, click_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(self.seed).spawn(5)
        )
        times = self.world.sample_times(n_requests, time_rng)
        for start, stop in progress(chunks) if progress is not None else chunks:
            requests = self.world.sample_requests(stop - start, request_rng, times=times[start:stop])
            yield self._decide(start, requests, score_rng, arm_rng, click_rng)

    def _decide(
        self,
        first_event: int,
        requests: RequestBatch,
        score_rng: np.random.Generator,
        arm_rng: np.random.Generator,
        click_rng: np.random.Generator,
    ) -> tuple[DecisionBatch, FeedbackBatch]:
        world = self.world
        batch = len(requests)
        # The serving pipeline on the legacy scores (or the rankers' own): one arm draw per request from
        # `arm_rng`, the section's heuristics under it, the section's default k.
        scores = None if self.rankers is not None else self.scorer.score(world, requests, score_rng)
        result = self.pipeline.rerank_batch(requests.to_rerank_batch(), arm_rng, scores=scores)
        names, section_code = np.unique(requests.section, return_inverse=True)
        arm_ids = np.empty(batch, dtype=object)
        revenue = np.empty(batch, dtype=np.float64)
        # Ragged per-request fields are gathered section by section, then put back in request order.
        grouped_rows: list[np.ndarray] = []
        grouped: dict[str, list] = {name: [] for name in _RAGGED}

        for code, name in enumerate(names.tolist()):
            rows = np.flatnonzero(section_code == code)
            part = requests.take(rows)
            section = self.sections_config[name]
            k = min(section.serving.default_k, part.n_candidates)
            arms = result.arm_index[rows]
            slates = np.take_along_axis(part.candidates, result.order[rows, :k], axis=1)
            outcome = world.sample_clicks(part, slates, click_rng)

            arm_ids[rows] = np.array([arm.id for arm in section.arms], dtype=object)[arms]
            revenue[rows] = outcome.revenue
            grouped_rows.append(rows)
            arm_knobs = [arm.knobs for arm in section.arms]
            grouped["shown"] += list(slates)
            grouped["shown_scores"] += list(result.scores[rows, :k])
            grouped["knobs"] += [dict(arm_knobs[arm]) for arm in arms.tolist()]
            grouped["clicks"] += _positions(outcome.clicks)
            grouped["conversions"] += _positions(outcome.conversions)

        position = np.empty(batch, dtype=np.int64)
        if batch:
            position[np.concatenate(grouped_rows)] = np.arange(batch)
        ragged = {name: [values[i] for i in position.tolist()] for name, values in grouped.items()}
        event_id = np.array([f"sim-{self.seed}-{i:08d}" for i in range(first_event, first_event + batch)])
        # The logged context is the one the knob policy chose on (`bandits.context.build_policy_context`).
        chosen_on = result.policy_context
        decisions = DecisionBatch(
            event_id=event_id,
            time=requests.time.copy(),
            section=requests.section.copy(),
            user_id=requests.user_id.copy(),
            context=[
                {**c, "fresh_share": f, "category_entropy": h}
                for c, f, h in zip(
                    requests.context_dicts(),
                    chosen_on.fresh_share.tolist(),
                    chosen_on.category_entropy.tolist(),
                    strict=True,
                )
            ],
            candidates=list(requests.candidates),
            shown=ragged["shown"],
            arm_id=arm_ids.astype(str),
            arm_index=result.arm_index,
            knobs=ragged["knobs"],
            propensity=result.propensity,
            arm_probs=result.arm_probs,
            model_versions=self._versions(requests.section),
            shown_scores=ragged["shown_scores"],
        )
        feedback = FeedbackBatch(
            event_id=event_id,
            time=requests.time + world.config.requests.feedback_delay_s,
            clicks=ragged["clicks"],
            conversions=ragged["conversions"],
            revenue=revenue,
            reward=np.full(batch, np.nan),
        )
        return decisions, feedback

    def _versions(self, section: np.ndarray) -> list[dict[str, str]]:
        """Each decision's model versions: its section's ranker (or the legacy scorer) and the policy."""
        if self.rankers is None:
            return [{"ranker": RANKER_VERSION, "policy": self.policy_version} for _ in range(len(section))]
        names = {s: self.pipeline.model_versions(s).get("ranker", s) for s in np.unique(section).tolist()}
        return [{"ranker": names[s], "policy": self.policy_version} for s in section.tolist()]


def _positions(mask: np.ndarray) -> list[np.ndarray]:
    """The True column indices of each row of `mask` (B, k), as B int64 arrays (empty when none)."""
    rows, cols = np.nonzero(mask)
    counts = np.bincount(rows, minlength=mask.shape[0])
    ends = np.cumsum(counts)
    cols = cols.astype(np.int64)
    return [cols[a:b] for a, b in zip((ends - counts).tolist(), ends.tolist(), strict=True)]
