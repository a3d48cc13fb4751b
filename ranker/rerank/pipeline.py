"""The one rerank pipeline: features -> ranker scores -> the section's knob policy picks an arm -> the
section's heuristics apply its knobs -> top k.

The HTTP API serves it one request at a time (`RerankPipeline.rerank`); the simulator drives the very same
object over many requests at once (`RerankPipeline.rerank_batch`, `rerank_arms`). Both run the same stages in
the same code on the same typed batch (`ranker.rerank.batch.RerankBatch`): `rerank` is a batch of one plus the
serving concerns (latency budget, fallbacks, the decision record).

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
from bandits.context import PolicyContext, build_policy_context
from bandits.errors import BanditsError
from bandits.records import DecisionBatch
from heuristics import HeuristicsError, ItemBatch, SectionPipeline, SectionsConfig
from heuristics.base import Ranking, check_k, descending_order
from ranker.errors import PipelineConfigError, RankerError, RequestError, RequestValidationError
from ranker.model import RankerModel
from ranker.rerank.batch import AttributeSource, RerankBatch

FALLBACK_ARM = "none"


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
    """B requests re-ranked: positions into each candidate list, best first.

    Attributes
    ----------
    order : (B, k) int64
        k is the longest slate of the batch; a request whose section serves a shorter slate (other sections'
        ``serving.default_k``) has -1 after its last position.
    scores : (B, k) float64
        Final (adjusted) scores; NaN where `order` is -1.
    base_scores : (B, n) float64
        The ranker's scores of every candidate.
    arm_index, propensity : (B,)
    arm_probs : list of B arrays
    policy_context : PolicyContext
        What the knob policy chose on, as the decision log stores it.
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


class RerankPipeline:
    """Composes the ranker, the knob policy and the heuristics of every section.

    Parameters
    ----------
    sections : SectionsConfig
    rankers : mapping section -> RankerModel, or None
        The model that scores each section (e.g. the base ranker for the relevance sections and another
        model for search, or the consolidated model everywhere). None: the scores always come from outside
        the pipeline (``scores=`` of `rerank_batch` and `rerank_arms`), as the simulator's legacy scorer does.
    items : AttributeSource
        Catalog and user attributes for the heuristics and the knob policy (`ItemAttributes` of the
        observable tables, or a simulated world).
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
        rankers: Mapping[str, RankerModel] | None,
        items: AttributeSource,
        policy: KnobPolicy,
        *,
        heuristics: bool = True,
        seed: int = 0,
        num_threads: int = 1,
    ) -> None:
        if rankers is not None:
            missing = [s.name for s in sections if s.name not in rankers]
            if missing:
                raise PipelineConfigError("rankers", f"no ranker configured for sections {missing}")
            for name, model in rankers.items():
                if not model.serves(name):
                    raise RankerError(
                        f"the {model.design} model ({model.version}) does not serve section {name!r}"
                    )
        self.sections = sections
        self.rankers = dict(rankers) if rankers is not None else {}
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

    # -- the stages, over a batch of requests ---------------------------------------------------------------
    def score(self, batch: RerankBatch) -> np.ndarray:
        """The rankers' scores (B, n) of the batch's candidates, each section by its own ranker."""
        out = np.zeros(batch.candidates.shape)
        n = batch.n_candidates
        for section, rows in self._sections_of(batch):
            if section not in self.rankers:
                raise PipelineConfigError("rankers", f"no ranker configured for section {section!r}")
            model = self.rankers[section]
            part = batch if len(rows) == len(batch) else batch.take(rows)
            request_of_row = np.repeat(np.arange(len(part)), n)
            features = model.builder.transform(part.requests, part.candidates.ravel(), request_of_row)
            if features.shape[0] == 0:
                continue
            out[rows] = model.predict(section, features, num_threads=self.num_threads).reshape(len(part), n)
        return out

    def policy_context(self, batch: RerankBatch, items: ItemBatch | None = None) -> PolicyContext:
        """What the knob policy sees of B requests (`bandits.context.build_policy_context`).

        `items` is the batch's `ItemBatch` when already at hand.
        """
        requests = batch.requests
        if items is None:
            items = self.items.item_batch(batch.candidates, requests.time)
        return build_policy_context(
            section=requests.section,
            segment=self.items.segment(requests.user_id),
            device=requests.device,
            time=requests.time,
            age_days=items.age_days,
            category=items.category,
        )

    def rerank_batch(
        self,
        batch: RerankBatch,
        rng: np.random.Generator,
        *,
        k: int | None = None,
        scores: np.ndarray | None = None,
    ) -> BatchResult:
        """Re-rank B requests (of one or several sections): the knob policy draws each request's arm from
        `rng` (one uniform per request, for the whole batch at once), the section's heuristics apply it.

        Parameters
        ----------
        batch : RerankBatch
        rng : np.random.Generator
        k : int, optional
            Slate length; each section's ``serving.default_k`` when None; at most n.
        scores : (B, n) float, optional
            Base scores computed outside (e.g. once for several policies, or by another scorer); skips the
            rankers.
        """
        base = self._base(batch, scores)
        items = self.items.item_batch(batch.candidates, batch.requests.time)
        policy_context = self.policy_context(batch, items)
        if not self.heuristics:
            order, final = self._base_order(batch, base, k)
            ones = np.ones(len(batch))
            return BatchResult(
                order,
                final,
                base,
                np.zeros(len(batch), np.int64),
                ones,
                [np.ones(1)] * len(batch),
                policy_context,
            )
        choice = self.policy.choose(policy_context, rng)
        ranking = self._rerank(batch, base, items, choice.arm_index, k)
        return BatchResult(
            ranking.order,
            ranking.scores,
            base,
            choice.arm_index,
            choice.propensity,
            choice.probs,
            policy_context,
        )

    def rerank_arms(
        self,
        batch: RerankBatch,
        arm_index: np.ndarray,
        *,
        k: int | None = None,
        scores: np.ndarray | None = None,
    ) -> Ranking:
        """Re-rank B requests under given arms (B,) of their sections, without the knob policy: the slates a
        fixed-arm policy would serve. `k` and `scores` as in `rerank_batch`; `order` and `scores` of the
        result as in `BatchResult`."""
        base = self._base(batch, scores)
        items = self.items.item_batch(batch.candidates, batch.requests.time)
        arm_index = np.asarray(arm_index, dtype=np.int64)
        if arm_index.shape != (len(batch),):
            raise RequestError(f"Expected `arm_index` of shape ({len(batch)},), found {arm_index.shape}")
        return self._rerank(batch, base, items, arm_index, k)

    def _sections_of(self, batch: RerankBatch) -> list[tuple[str, np.ndarray]]:
        groups = batch.by_section()
        for section, _ in groups:
            if section not in self._pipelines:
                known = ", ".join(self.sections.sections)
                raise RequestValidationError("section", f"unknown section {section!r} (configured: {known})")
        return groups

    def _base(self, batch: RerankBatch, scores: np.ndarray | None) -> np.ndarray:
        if scores is None:
            return self.score(batch)
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != batch.candidates.shape:
            raise RequestError(
                f"Expected `scores` of the candidates' shape {batch.candidates.shape}, found {scores.shape}"
            )
        return scores

    def _slate_lengths(self, groups: list[tuple[str, np.ndarray]], n: int, k: int | None) -> dict[str, int]:
        if k is not None:
            check_k(k)
            return {section: min(int(k), n) for section, _ in groups}
        return {section: min(self.sections[section].serving.default_k, n) for section, _ in groups}

    def _base_order(
        self, batch: RerankBatch, base: np.ndarray, k: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        groups = self._sections_of(batch)
        lengths = self._slate_lengths(groups, batch.n_candidates, k)
        width = max(lengths.values(), default=0)
        order = descending_order(base)[:, :width]
        final = np.take_along_axis(base, order, axis=1)
        if len(set(lengths.values())) > 1:
            short = np.zeros(len(batch), dtype=np.int64)
            for section, rows in groups:
                short[rows] = lengths[section]
            beyond = np.arange(width)[None, :] >= short[:, None]
            order, final = np.where(beyond, -1, order), np.where(beyond, np.nan, final)
        return order, final

    def _rerank(
        self, batch: RerankBatch, base: np.ndarray, items: ItemBatch, arm_index: np.ndarray, k: int | None
    ) -> Ranking:
        """Each section's heuristics under each request's arm; the sections' slates back in batch order."""
        groups = self._sections_of(batch)
        lengths = self._slate_lengths(groups, batch.n_candidates, k)
        context = self.items.request_context(batch.requests)
        if len(groups) == 1:
            section, _ = groups[0]
            return self._pipelines[section].rerank_arms(base, items, context, arm_index, lengths[section])
        width = max(lengths.values(), default=0)
        order = np.full((len(batch), width), -1, dtype=np.int64)
        final = np.full((len(batch), width), np.nan)
        for section, rows in groups:
            ranking = self._pipelines[section].rerank_arms(
                base[rows], items.take(rows), context.take(rows), arm_index[rows], lengths[section]
            )
            order[rows, : ranking.order.shape[1]] = ranking.order
            final[rows, : ranking.scores.shape[1]] = ranking.scores
        return Ranking(order, final)

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
            batch = RerankBatch.from_contexts(
                [request.section], user_ids, times, [context], candidates[None, :]
            )
            base = self.score(batch)
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
                    result = self.rerank_batch(batch, rng, k=k, scores=base)
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
