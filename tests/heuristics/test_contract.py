"""The contract every re-ranker keeps: each heuristic class in the registry, and each configured section
pipeline of the shipped config under several of its arms.

- the output is a permutation of the input, or of its top k (distinct, in range, min(k, n) long);
- the same input gives the same output, and the input is not modified;
- empty (n = 0) and single-candidate lists work;
- identity knobs (the class's IDENTITY) give exactly the base order: a stable descending sort of the scores;
- a batch whose requests run under different arms equals each request run alone.

New heuristics and sections are picked up from the registry and the config without editing this file.
"""

from __future__ import annotations

import numpy as np
import pytest

from heuristics import Ranking, SectionPipeline, SectionsConfig
from heuristics.base import OrderHeuristic, ScoreHeuristic, descending_order
from heuristics.registry import HEURISTICS
from tests.heuristics.factories import build, knob_arms, param_choices, random_batch, take_rows

SIZES = (0, 1, 2, 7, 31)
KS = (None, 0, 1, 5, 31, 40)

HEURISTIC_CASES = [
    pytest.param(name, params, knobs, id=f"{name}-{'-'.join(params.values()) or 'noparams'}-arm{i}")
    for name, cls in HEURISTICS.items()
    for params in param_choices(cls)
    for i, knobs in enumerate(knob_arms(cls))
]


def _section_arm_cases() -> list:
    config = SectionsConfig.load()
    cases = []
    for section in config:
        last = len(section.arms) - 1
        for index in sorted({0, section.default_arm.index, last // 2, last}):
            cases.append(pytest.param(section.name, index, id=f"{section.name}-arm{index}"))
    return cases


SECTION_ARM_CASES = _section_arm_cases()


def check_top_k(ranking: Ranking, batch: int, n: int, k: int | None) -> None:
    """The order of each request is distinct in-range indices, min(k, n) of them (all n when k is None)."""
    length = n if k is None else min(k, n)
    assert ranking.order.shape == (batch, length)
    assert ranking.scores.shape == (batch, length)
    assert ranking.order.dtype.kind == "i"
    for row in ranking.order:
        assert len(set(row.tolist())) == length
        assert all(0 <= i < n for i in row)
    if k is None:
        assert (np.sort(ranking.order, axis=1) == np.arange(n)).all()


# ----------------------------------------------------------------------------------------------------------
# Every heuristic class
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params", "knobs"), HEURISTIC_CASES)
def test_heuristic_rerank_returns_a_permutation_of_the_top_k(name, params, knobs, rng):
    heuristic = build(HEURISTICS[name], knobs, params)
    for n in SIZES:
        scores, items, context = random_batch(rng, 3, n, ties=True)
        for k in KS:
            ranking = heuristic.rerank(scores, items, context, k)
            check_top_k(ranking, 3, n, k)


@pytest.mark.parametrize(("name", "params", "knobs"), HEURISTIC_CASES)
def test_heuristic_rerank_scores_are_the_ranked_items_scores(name, params, knobs, rng):
    heuristic = build(HEURISTICS[name], knobs, params)
    scores, items, context = random_batch(rng, 4, 25, ties=True)
    ranking = heuristic.rerank(scores, items, context, 10)
    if isinstance(heuristic, ScoreHeuristic):
        adjusted = heuristic.adjust(scores, items, context)
        np.testing.assert_array_equal(ranking.scores, np.take_along_axis(adjusted, ranking.order, axis=1))
        # A score step ranks by its adjusted scores, best first.
        assert (np.diff(ranking.scores, axis=1) <= 0).all()
    else:
        assert isinstance(heuristic, OrderHeuristic)
        np.testing.assert_array_equal(ranking.scores, np.take_along_axis(scores, ranking.order, axis=1))


@pytest.mark.parametrize(("name", "params", "knobs"), HEURISTIC_CASES)
def test_heuristic_rerank_is_deterministic_and_leaves_inputs_alone(name, params, knobs, rng):
    scores, items, context = random_batch(rng, 5, 30, ties=True)
    before = (scores.copy(), items.embedding.copy(), items.age_days.copy(), context.source_embedding.copy())
    first = build(HEURISTICS[name], knobs, params).rerank(scores, items, context, 12)
    second = build(HEURISTICS[name], knobs, params).rerank(scores, items, context, 12)
    np.testing.assert_array_equal(first.order, second.order)
    np.testing.assert_array_equal(first.scores, second.scores)
    after = (scores, items.embedding, items.age_days, context.source_embedding)
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize(("name", "params", "knobs"), HEURISTIC_CASES)
def test_heuristic_identity_knobs_keep_the_base_order(name, params, knobs, rng):
    cls = HEURISTICS[name]
    identity = build(cls, {**knobs, **cls.IDENTITY}, params)
    for n in SIZES:
        # Ties in the scores check the tie rule too: equal scores keep the lower index first.
        scores, items, context = random_batch(rng, 3, n, ties=True)
        ranking = identity.rerank(scores, items, context)
        np.testing.assert_array_equal(ranking.order, descending_order(scores))
        np.testing.assert_array_equal(ranking.order, np.argsort(-scores, axis=1, kind="stable"))


@pytest.mark.parametrize(
    ("name", "params"), [(n, p) for n, c in HEURISTICS.items() for p in param_choices(c)]
)
def test_heuristic_batch_of_mixed_arms_equals_each_request_alone(name, params, rng):
    cls = HEURISTICS[name]
    arms = knob_arms(cls)
    batch = 2 * len(arms)
    scores, items, context = random_batch(rng, batch, 24, ties=True)
    per_request = [arms[b % len(arms)] for b in range(batch)]
    mixed = {knob: np.array([arm[knob] for arm in per_request]) for knob in cls.KNOBS}
    together = build(cls, mixed, params).rerank(scores, items, context, 9)
    for b in range(batch):
        one_items, one_context = take_rows(items, context, slice(b, b + 1))
        alone = build(cls, per_request[b], params).rerank(scores[b : b + 1], one_items, one_context, 9)
        np.testing.assert_array_equal(together.order[b], alone.order[0])
        np.testing.assert_array_equal(together.scores[b], alone.scores[0])


@pytest.mark.parametrize(("name", "params", "knobs"), HEURISTIC_CASES)
def test_heuristic_rerank_handles_an_empty_batch(name, params, knobs, rng):
    scores, items, context = random_batch(rng, 0, 6)
    ranking = build(HEURISTICS[name], knobs, params).rerank(scores, items, context, 3)
    assert ranking.order.shape == (0, 3)


# ----------------------------------------------------------------------------------------------------------
# Every configured section pipeline, under several arms
# ----------------------------------------------------------------------------------------------------------


def _pipeline(config: SectionsConfig, section: str) -> SectionPipeline:
    return SectionPipeline(config[section])


@pytest.mark.parametrize(("section", "arm_index"), SECTION_ARM_CASES)
def test_pipeline_rerank_returns_a_permutation_of_the_top_k(section, arm_index, default_config, rng):
    pipeline = _pipeline(default_config, section)
    arm = default_config[section].arms[arm_index]
    for n in SIZES:
        scores, items, context = random_batch(rng, 1, n, ties=True)
        for k in KS:
            check_top_k(pipeline.rerank(scores[0], items, context, arm, k), 1, n, k)
            check_top_k(pipeline.rerank_batch(scores, items, context, arm.knobs, k), 1, n, k)


@pytest.mark.parametrize(("section", "arm_index"), SECTION_ARM_CASES)
def test_pipeline_rerank_is_deterministic(section, arm_index, default_config, rng):
    arm = default_config[section].arms[arm_index]
    scores, items, context = random_batch(rng, 1, 40, ties=True)
    first = _pipeline(default_config, section).rerank(scores[0], items, context, arm, 15)
    second = _pipeline(default_config, section).rerank(scores[0].copy(), items, context, arm, 15)
    np.testing.assert_array_equal(first.order, second.order)
    np.testing.assert_array_equal(first.scores, second.scores)


@pytest.mark.parametrize(("section", "arm_index"), SECTION_ARM_CASES)
def test_pipeline_identity_knobs_keep_the_base_order(section, arm_index, default_config, rng):
    config = default_config[section]
    knobs = dict(config.arms[arm_index].knobs)
    for step in config.pipeline:
        for knob, value in HEURISTICS[step].IDENTITY.items():
            knobs[f"{step}.{knob}"] = value
    pipeline = _pipeline(default_config, section)
    for n in SIZES:
        scores, items, context = random_batch(rng, 2, n, ties=True)
        ranking = pipeline.rerank_batch(scores, items, context, knobs)
        np.testing.assert_array_equal(ranking.order, np.argsort(-scores, axis=1, kind="stable"))


@pytest.mark.parametrize("section", [c.values[0] for c in SECTION_ARM_CASES if c.values[1] == 0])
def test_pipeline_batch_of_mixed_arms_equals_each_request_alone(section, default_config, rng):
    config = default_config[section]
    pipeline = _pipeline(default_config, section)
    batch = 3 * len(config.arms)
    scores, items, context = random_batch(rng, batch, 30, ties=True)
    arm_indices = rng.permutation(np.arange(batch) % len(config.arms))
    together = pipeline.rerank_arms(scores, items, context, arm_indices, 12)
    for b in range(batch):
        one_items, one_context = take_rows(items, context, slice(b, b + 1))
        alone = pipeline.rerank(scores[b], one_items, one_context, config.arms[arm_indices[b]], 12)
        np.testing.assert_array_equal(together.order[b], alone.order[0])
        np.testing.assert_array_equal(together.scores[b], alone.scores[0])
