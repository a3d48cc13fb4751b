"""Section pipelines: composition against naive steps, invariance to the score scale, k and input rules."""

from __future__ import annotations

import numpy as np
import pytest

from heuristics import ContextBatch, InputError, MissingContextError, SectionPipeline, SectionsConfig
from heuristics.normalize import normalize_scores
from tests.heuristics.factories import random_batch, take_rows
from tests.heuristics.test_diversity import naive_cap, naive_mmr, similarity_matrix, stable_descending

SECTIONS = ["discover", "similar_items", "category_explore", "search"]


def naive_signals(step: str, items, context, b: int) -> list[float]:
    """The boost signal of one score step for request b, by plain loops (freshness: the decayed age)."""
    n = items.shape[1]
    if step == "promoted":
        return [float(items.promoted[b, i]) for i in range(n)]
    if step == "category_match":
        return [float(items.category[b, i] == context.category[b]) for i in range(n)]
    if step == "source_similarity":
        source = context.source_embedding[b]
        out = []
        for i in range(n):
            e = items.embedding[b, i]
            norms = float(np.sqrt(e @ e) * np.sqrt(source @ source))
            out.append(max(float(e @ source) / norms, 0.0) if norms > 0 else 0.0)
        return out
    raise AssertionError(step)


def naive_pipeline(config, knobs: dict[str, float], scores, items, context, b: int, k: int) -> list[int]:
    """Normalise, add every score step's boost, then run the order steps: each written out by hand."""
    n = scores.shape[1]
    row = scores[b].tolist()
    low, high = min(row), max(row)
    current = [(s - low) / (high - low) if high > low else 0.0 for s in row]
    assert config.normalize == "minmax"
    order = None
    for step in config.pipeline:
        if step == "freshness":
            w, h, o = (knobs[f"freshness.{x}"] for x in ("weight", "half_life_days", "offset_days"))
            ages = [max(float(a), 0.0) for a in items.age_days[b]]
            current = [s + w * 0.5 ** (max(a - o, 0.0) / h) for s, a in zip(current, ages, strict=True)]
        elif step in ("promoted", "category_match", "source_similarity"):
            w = knobs[f"{step}.weight"]
            signal = naive_signals(step, items, context, b)
            current = [s + w * x for s, x in zip(current, signal, strict=True)]
        elif step == "mmr":
            sim = similarity_matrix(items, b, config.params["mmr"]["similarity"])
            order = naive_mmr(stable_descending(current), current, sim, knobs["mmr.lambda"], k)
        elif step == "category_cap":
            groups = getattr(items, config.params["category_cap"]["field"])[b].tolist()
            start = order if order is not None else stable_descending(current)
            order = naive_cap(start, groups, int(knobs["category_cap.cap"]), k)
        else:
            raise AssertionError(step)
    if order is None:
        order = stable_descending(current)
    return order[: min(k, n)]


@pytest.mark.parametrize("section", SECTIONS)
def test_pipeline_equals_its_steps_written_out_by_hand(section, default_config, rng):
    config = default_config[section]
    pipeline = SectionPipeline(config)
    for arm in config.arms:
        scores, items, context = random_batch(rng, 2, 25, ties=True)
        ranking = pipeline.rerank_batch(scores, items, context, arm.knobs, 10)
        for b in range(2):
            assert ranking.order[b].tolist() == naive_pipeline(
                config, dict(arm.knobs), scores, items, context, b, 10
            )


@pytest.mark.parametrize("section", SECTIONS)
def test_pipeline_order_is_invariant_to_a_positive_affine_transform(section, default_config, rng):
    config = default_config[section]
    pipeline = SectionPipeline(config)
    for arm in config.arms:
        scores, items, context = random_batch(rng, 3, 40)
        a = np.exp(rng.uniform(-4.0, 4.0, size=(3, 1)))
        b = rng.uniform(-100.0, 100.0, size=(3, 1))
        base = pipeline.rerank_batch(scores, items, context, arm.knobs, 15)
        moved = pipeline.rerank_batch(a * scores + b, items, context, arm.knobs, 15)
        np.testing.assert_array_equal(moved.order, base.order)
        np.testing.assert_allclose(moved.scores, base.scores, atol=1e-9)


def test_pipeline_scores_are_normalised_then_adjusted(default_config, rng):
    # search has only a score step before its cap: with the cap lifted, the scores are minmax + freshness.
    config = default_config["search"]
    knobs = {**config.default_arm.knobs, "freshness.weight": 0.3, "category_cap.cap": 1000}
    scores, items, context = random_batch(rng, 2, 30)
    ranking = SectionPipeline(config).rerank_batch(scores, items, context, knobs)
    ages = np.maximum(items.age_days, 0.0)
    expected = normalize_scores(scores, "minmax") + 0.3 * 0.5 ** (ages / knobs["freshness.half_life_days"])
    np.testing.assert_allclose(
        ranking.scores, np.take_along_axis(expected, ranking.order, axis=1), rtol=1e-12
    )
    assert (np.diff(ranking.scores, axis=1) <= 0).all()


def test_pipeline_rerank_arms_equals_rerank_batch_with_the_arms_knobs(default_config, rng):
    config = default_config["discover"]
    pipeline = SectionPipeline(config)
    scores, items, context = random_batch(rng, 4, 20)
    arm_indices = np.array([0, 5, len(config.arms) - 1, 5])
    got = pipeline.rerank_arms(scores, items, context, arm_indices, 7)
    for b, index in enumerate(arm_indices):
        one_items, one_context = take_rows(items, context, slice(b, b + 1))
        alone = pipeline.rerank_batch(scores[b : b + 1], one_items, one_context, config.arms[index].knobs, 7)
        np.testing.assert_array_equal(got.order[b], alone.order[0])


def test_pipeline_knobs_for_gathers_each_requests_arm(default_config):
    config = default_config["category_explore"]
    indices = np.array([3, 0, 3, len(config.arms) - 1])
    knobs = SectionPipeline(config).knobs_for(indices)
    for name in config.knob_names:
        assert knobs[name].tolist() == [config.arms[i].knobs[name] for i in indices]


def test_pipeline_k_larger_than_n_returns_everything(default_config, rng):
    scores, items, context = random_batch(rng, 1, 6)
    ranking = SectionPipeline(default_config["discover"]).rerank(
        scores[0], items, context, default_config["discover"].default_arm, 50
    )
    assert sorted(ranking.order[0].tolist()) == list(range(6))


def _discover(config: SectionsConfig) -> SectionPipeline:
    return SectionPipeline(config["discover"])


# Invalid calls are refused with InputError naming the argument.
INVALID_CALLS = [
    (
        "k=-1",
        lambda p, s, i, c, kn: p.rerank_batch(s, i, c, kn, -1),
        r"Expected `k` to be None or an integer >= 0",
    ),
    ("k=2.5", lambda p, s, i, c, kn: p.rerank_batch(s, i, c, kn, 2.5), r"found 2\.5"),
    (
        "scores shape",
        lambda p, s, i, c, kn: p.rerank_batch(s[:, :-1], i, c, kn),
        r"`scores` of the item batch's shape \(2, 9\)",
    ),
    (
        "scores 1-d",
        lambda p, s, i, c, kn: p.rerank_batch(s[0], i, c, kn),
        r"`scores` of the item batch's shape",
    ),
    (
        "scores nan",
        lambda p, s, i, c, kn: p.rerank_batch(np.where(s > 0, np.nan, s), i, c, kn),
        r"finite `scores`",
    ),
    ("scores inf", lambda p, s, i, c, kn: p.rerank_batch(s + np.inf, i, c, kn), r"finite `scores`"),
    (
        "knob missing",
        lambda p, s, i, c, kn: p.rerank_batch(s, i, c, {x: v for x, v in kn.items() if x != "mmr.lambda"}),
        r"missing: mmr\.lambda",
    ),
    (
        "knob unknown",
        lambda p, s, i, c, kn: p.rerank_batch(s, i, c, {**kn, "mmr.lamda": 0.5}),
        r"unknown: mmr\.lamda",
    ),
    (
        "knob range",
        lambda p, s, i, c, kn: p.rerank_batch(s, i, c, {**kn, "mmr.lambda": 1.5}),
        r"mmr\.lambda: expected a value in \[0, 1\]",
    ),
    (
        "knob shape",
        lambda p, s, i, c, kn: p.rerank_batch(s, i, c, {**kn, "promoted.weight": np.zeros(3)}),
        r"knob value of shape \(2,\)",
    ),
    (
        "arm index",
        lambda p, s, i, c, kn: p.rerank_arms(s, i, c, np.array([0, 99])),
        r"arm indices in \[0, 12\) for section 'discover', found 0\.\.99",
    ),
    (
        "arm negative",
        lambda p, s, i, c, kn: p.rerank_arms(s, i, c, np.array([-1, 0])),
        r"arm indices in \[0, 12\)",
    ),
]


@pytest.mark.parametrize(("call", "match"), [pytest.param(c, m, id=i) for i, c, m in INVALID_CALLS])
def test_pipeline_refuses_invalid_calls(call, match, default_config, rng):
    scores, items, context = random_batch(rng, 2, 9)
    with pytest.raises(InputError, match=match):
        call(
            _discover(default_config),
            scores,
            items,
            context,
            dict(default_config["discover"].default_arm.knobs),
        )


def test_pipeline_refuses_a_request_without_its_sections_context(default_config, rng):
    config = default_config["similar_items"]
    scores, items, _ = random_batch(rng, 1, 5)
    with pytest.raises(MissingContextError, match="'source_similarity' needs context field 'source_item'"):
        SectionPipeline(config).rerank(scores[0], items, ContextBatch(), config.default_arm)
