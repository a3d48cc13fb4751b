"""The one rerank pipeline: features -> ranker scores -> the section's knob policy picks an arm -> the
section's heuristics apply its knobs -> top k.

The HTTP API serves it one request at a time (`RerankPipeline.rerank`); the simulator drives the very same
object over many requests at once (`RerankPipeline.rerank_batch`). Both run the same stages in the same
code: `rerank` is a batch of one plus the serving concerns (latency budget, fallbacks, the decision record).

Fallbacks (single requests): if scoring fails, the candidates come back in input order (``"input_order"``);
if the policy or heuristics fail, or scoring alone used up the section's latency budget, they come back in
the ranker's order (``"base_order"``). A fallback decision is logged with arm id ``"none"``, which learning
skips as an unknown arm.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np

from bandits.base import KnobPolicy
from bandits.context import PolicyContext, candidate_summary
from bandits.errors import BanditsError
from bandits.records import DecisionBatch
from heuristics import HeuristicsError, SectionPipeline, SectionsConfig
from heuristics.base import descending_order
from ranker.errors import PipelineConfigError, RankerError, RequestValidationError
from ranker.model import RankerModel
from ranker.requests import Requests
from ranker.rerank.items import ItemAttributes

FALLBACK_ARM = "none"
CONTEXT_FIELD = {"source_item": "source_item", "category": "category", "query": "query"}


@dataclass(frozen=True)
class RerankRequest:
    """One request to re-rank.

    Attributes
    ----------
    section : str
    user_id : int or str
    context : mapping
        ``device``, ``time`` (Unix seconds; default: now) and the section's own field (``source_item``,
        ``category`` or ``query``).
    candidates : (n,) array of item ids
    k : int, optional
        How many to return (default: the section's ``serving.default_k``).
    request_id : str, optional
        The caller's id, echoed and logged.
    """

    section: str
    user_id: object
    context: Mapping[str, object]
    candidates: np.ndarray
    k: int | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class RerankResult:
    """What the pipeline decided for one request."""

    event_id: str
    section: str
    item_ids: np.ndarray
    scores: np.ndarray
    arm_id: str
    arm_index: int
    knobs: dict[str, float]
    propensity: float
    arm_probs: np.ndarray
    model_versions: dict[str, str]
    timing_ms: dict[str, float]
    fallback: str | None = None
    decision: DecisionBatch | None = field(default=None, repr=False)


@dataclass(frozen=True)
class BatchResult:
    """B requests of one section re-ranked: positions into each candidate list, best first.

    Attributes
    ----------
    order : (B, k) int64
    scores : (B, k) float64
        Final (adjusted) scores.
    base_scores : (B, n) float64
        The ranker's scores of every candidate.
    arm_index, propensity : (B,)
    arm_probs : list of B arrays
    policy_context : PolicyContext
    """

    order: np.ndarray
    scores: np.ndarray
    base_scores: np.ndarray
    arm_index: np.ndarray
    propensity: np.ndarray
    arm_probs: list[np.ndarray]
    policy_context: PolicyContext


def id_array(ids: list[object]) -> np.ndarray:
    """Ids as int64 when all are integers, else as an object array of the values given."""
    if all(isinstance(i, int | np.integer) and not isinstance(i, bool) for i in ids):
        return np.asarray(ids, dtype=np.int64)
    out = np.empty(len(ids), dtype=object)
    out[:] = ids
    return out


def hour_of(times: np.ndarray) -> np.ndarray:
    """UTC hour of day (B,) of Unix times (B,)."""
    return ((np.asarray(times, dtype=np.float64) // 3600) % 24).astype(np.int64)


class RerankPipeline:
    """Composes the ranker, the knob policy and the heuristics of every section.

    Parameters
    ----------
    sections : SectionsConfig
    rankers : mapping section -> RankerModel
        The model that scores each section (e.g. the base ranker for the relevance sections and another
        model for search, or the consolidated model everywhere).
    items : ItemAttributes
        Catalog and user attributes for the heuristics and the knob policy.
    policy : KnobPolicy
        Chooses each request's arm.
    heuristics : bool
        False skips the policy and the heuristics: the ranker's order is served (a model on its own).
    seed : int
        Mixed into each request's generator, which is seeded by its event id: a decision is reproducible.
    """

    def __init__(
        self,
        sections: SectionsConfig,
        rankers: Mapping[str, RankerModel],
        items: ItemAttributes,
        policy: KnobPolicy,
        *,
        heuristics: bool = True,
        seed: int = 0,
        num_threads: int = 1,
    ) -> None:
        missing = [s.name for s in sections if s.name not in rankers]
        if missing:
            raise PipelineConfigError("rankers", f"no ranker configured for sections {missing}")
        for name, model in rankers.items():
            if not model.serves(name):
                raise RankerError(
                    f"the {model.design} model ({model.version}) does not serve section {name!r}"
                )
        self.sections = sections
        self.rankers = dict(rankers)
        self.items = items
        self.policy = policy
        self.heuristics = heuristics
        self.seed = seed
        self.num_threads = num_threads
        self._pipelines = {s.name: SectionPipeline(s) for s in sections}

    # -- validation ------------------------------------------------------------------------------------
    def check(self, request: RerankRequest) -> None:
        """Refuse a request the pipeline cannot serve, naming the field."""
        if request.section not in self.sections.sections:
            known = ", ".join(self.sections.sections)
            raise RequestValidationError(
                "section", f"unknown section {request.section!r} (configured: {known})"
            )
        cfg = self.sections[request.section]
        for needed in cfg.required_context:
            value = request.context.get(needed)
            if value is None or value == "":
                raise RequestValidationError(
                    f"context.{needed}", f"section {request.section!r} needs context field {needed!r}"
                )
        n = len(request.candidates)
        if n > cfg.serving.max_candidates:
            raise RequestValidationError(
                "candidates",
                f"{n} candidates, section {request.section!r} takes at most {cfg.serving.max_candidates}",
            )

    def model_versions(self, section: str) -> dict[str, str]:
        return {
            "ranker": self.rankers[section].version,
            "policy": str(getattr(self.policy, "version", type(self.policy).__name__)),
            "heuristics": "on" if self.heuristics else "off",
        }

    # -- the stages, over a batch of one section's requests --------------------------------------------------
    def score(
        self,
        section: str,
        user_ids: np.ndarray,
        contexts: list[Mapping],
        times: np.ndarray,
        candidates: np.ndarray,
    ) -> np.ndarray:
        """The ranker's scores (B, n) of B requests' candidates (B, n)."""
        model = self.rankers[section]
        booster = model.booster_for(section)
        batch, n = candidates.shape
        if batch == 1:
            context = {**contexts[0], "time": float(times[0])}
            features = model.builder.one(section, user_ids[0], context, candidates[0])
        else:
            requests = Requests.from_contexts([section] * batch, user_ids, times, contexts)
            request_of_row = np.repeat(np.arange(batch), n)
            features = model.builder.transform(requests, candidates.ravel(), request_of_row)
        if features.shape[0] == 0:
            return np.zeros((batch, n))
        return booster.predict(features, num_threads=self.num_threads).reshape(batch, n)

    def policy_context(
        self, section: str, user_ids: np.ndarray, contexts: list[Mapping], times: np.ndarray, items
    ) -> PolicyContext:
        fresh_share, category_entropy = candidate_summary(items.age_days, np.maximum(items.category, 0))
        return PolicyContext(
            section=np.full(len(contexts), section),
            segment=self.items.segment(user_ids).astype(str),
            device=np.array([str(c.get("device") or "unknown") for c in contexts]),
            hour=hour_of(times),
            fresh_share=np.round(fresh_share, 6),
            category_entropy=np.round(category_entropy, 6),
        )

    def rerank_batch(
        self,
        section: str,
        user_ids: np.ndarray,
        contexts: list[Mapping],
        times: np.ndarray,
        candidates: np.ndarray,
        k: int,
        rng: np.random.Generator,
        *,
        scores: np.ndarray | None = None,
    ) -> BatchResult:
        """Re-rank B requests of one section with n candidates each (candidates (B, n) ids).

        `scores` (B, n) skips the ranker (e.g. scores computed once for several policies).
        """
        user_ids = np.asarray(user_ids)
        times = np.asarray(times, dtype=np.float64)
        base = self.score(section, user_ids, contexts, times, candidates) if scores is None else scores
        items = self.items.item_batch(candidates, times)
        policy_context = self.policy_context(section, user_ids, contexts, times, items)
        batch, n = candidates.shape
        k = min(k, n)
        if not self.heuristics:
            order = descending_order(base)[:, :k]
            ones = np.ones(batch)
            return BatchResult(
                order,
                np.take_along_axis(base, order, 1),
                base,
                np.zeros(batch, np.int64),
                ones,
                [np.ones(1)] * batch,
                policy_context,
            )
        choice = self.policy.choose(policy_context, rng)
        context = self.items.context_batch(
            [c.get("source_item") for c in contexts], [c.get("category") for c in contexts]
        )
        ranking = self._pipelines[section].rerank_arms(base, items, context, choice.arm_index, k)
        return BatchResult(
            ranking.order,
            ranking.scores,
            base,
            choice.arm_index,
            choice.propensity,
            choice.probs,
            policy_context,
        )

    # -- serving one request ---------------------------------------------------------------------------
    def rerank(self, request: RerankRequest, *, event_id: str | None = None) -> RerankResult:
        """Serve one request: validate, run the stages within the section's latency budget, fall back when a
        stage fails or the budget is spent, and build the decision record to log."""
        started = time.perf_counter()
        self.check(request)
        cfg = self.sections[request.section]
        event_id = event_id or uuid.uuid4().hex
        k = cfg.serving.default_k if request.k is None else int(request.k)
        context = dict(request.context)
        now = context.get("time")
        now = time.time() if now is None else float(now)
        context["time"] = now
        candidates = np.asarray(request.candidates)
        n = len(candidates)
        user_ids = id_array([request.user_id])
        times = np.array([now])
        timing: dict[str, float] = {}
        fallback = None
        budget = cfg.serving.latency_budget_ms

        def lap(stage: str, since: float) -> float:
            now_ = time.perf_counter()
            timing[stage] = round((now_ - since) * 1e3, 4)
            return now_

        mark = started
        try:
            base = self.score(request.section, user_ids, [context], times, candidates[None, :])
        except (RankerError, lgb.basic.LightGBMError, ValueError):
            base = None
            fallback = "input_order"
        mark = lap("score", mark)
        over_budget = (mark - started) * 1e3 > budget
        arm_id, arm_index, knobs, propensity, probs = FALLBACK_ARM, 0, {}, 1.0, np.ones(1)
        policy_context = None
        if base is None:
            order = np.arange(min(k, n))
            final = np.zeros(len(order))
            base_row = np.zeros(n)
        else:
            base_row = base[0]
            if over_budget or not self.heuristics:
                fallback = "base_order" if over_budget else None
                order = descending_order(base)[0, :k]
                final = base_row[order]
            else:
                try:
                    rng = np.random.default_rng(self._event_seed(event_id))
                    result = self.rerank_batch(
                        request.section, user_ids, [context], times, candidates[None, :], k, rng, scores=base
                    )
                    order, final = result.order[0], result.scores[0]
                    arm = cfg.arms[int(result.arm_index[0])]
                    arm_id, arm_index, knobs = arm.id, arm.index, dict(arm.knobs)
                    propensity, probs = float(result.propensity[0]), result.arm_probs[0]
                    policy_context = result.policy_context
                except (BanditsError, HeuristicsError, ValueError):
                    fallback = "base_order"
                    order = descending_order(base)[0, :k]
                    final = base_row[order]
            mark = lap("policy_heuristics", mark)
        item_ids = candidates[order]
        versions = self.model_versions(request.section)
        logged_context = {k_: v for k_, v in context.items() if k_ != "time"}
        if policy_context is not None:
            logged_context.update(
                segment=str(policy_context.segment[0]),
                hour=int(policy_context.hour[0]),
                fresh_share=float(policy_context.fresh_share[0]),
                category_entropy=float(policy_context.category_entropy[0]),
            )
        if request.request_id is not None:
            logged_context["request_id"] = request.request_id
        if fallback is not None:
            logged_context["fallback"] = fallback
        decision = DecisionBatch(
            event_id=np.array([event_id]),
            time=times,
            section=np.array([request.section]),
            user_id=id_array([request.user_id]),
            context=[logged_context],
            candidates=[candidates],
            shown=[item_ids],
            arm_id=np.array([arm_id]),
            arm_index=np.array([arm_index]),
            knobs=[knobs],
            propensity=np.array([propensity]),
            arm_probs=[np.asarray(probs, dtype=np.float64)],
            model_versions=[versions],
            shown_scores=[np.asarray(final, dtype=np.float64)],
        )
        timing["total"] = round((time.perf_counter() - started) * 1e3, 4)
        return RerankResult(
            event_id=event_id,
            section=request.section,
            item_ids=item_ids,
            scores=np.asarray(final, dtype=np.float64),
            arm_id=arm_id,
            arm_index=arm_index,
            knobs=knobs,
            propensity=propensity,
            arm_probs=np.asarray(probs, dtype=np.float64),
            model_versions=versions,
            timing_ms=timing,
            fallback=fallback,
            decision=decision,
        )

    def _event_seed(self, event_id: str) -> int:
        digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") ^ self.seed
