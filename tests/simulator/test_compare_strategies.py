"""Slate metrics, the strategy runner and the per-seed helpers of the design comparison, on the tiny world of
the shared ranker fixtures (its log, prepared log and trained designs)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bandits.log import DecisionLog
from bandits.policies import FixedArmPolicy
from heuristics.base import descending_order
from ranker.dataset import STATS, TEST, TRAIN, VALIDATION
from ranker.metrics import ndcg_at_k
from ranker.rerank.items import ItemAttributes
from ranker.rerank.pipeline import RerankPipeline
from simulator import World, WorldConfig
from simulator.compare_evaluate import sample_window
from simulator.compare_replay import logged_requests
from simulator.compare_train import subsample_section
from simulator.strategies import (
    EvalSet,
    Strategy,
    StrategyRunner,
    coverage,
    intra_list_diversity,
    slate_metrics,
    slate_ndcg,
)
from tests.conftest import SEED, WORLD_FILE


def naive_ndcg(relevance: np.ndarray, order: np.ndarray) -> np.ndarray:
    out = []
    for rel, slate in zip(relevance, order, strict=True):
        dcg = sum(rel[i] / np.log2(p + 2) for p, i in enumerate(slate))
        ideal = sum(r / np.log2(p + 2) for p, r in enumerate(sorted(rel, reverse=True)[: len(slate)]))
        out.append(dcg / ideal if ideal > 0 else 0.0)
    return np.array(out)


def naive_diversity(embedding: np.ndarray) -> np.ndarray:
    out = []
    for slate in embedding:
        k = len(slate)
        if k < 2:
            out.append(0.0)
            continue
        total = 0.0
        for i, j in itertools.permutations(range(k), 2):
            a, b = slate[i], slate[j]
            na, nb = np.linalg.norm(a), np.linalg.norm(b)
            cos = a @ b / (na * nb) if na > 0 and nb > 0 else 0.0
            total += 1.0 - cos
        out.append(total / (k * (k - 1)))
    return np.array(out)


def test_slate_ndcg_matches_a_naive_loop_and_ranker_metrics(rng):
    relevance = rng.random((30, 12))
    order = np.argsort(rng.random((30, 12)), axis=1)[:, :5]
    fast = slate_ndcg(relevance, order)
    np.testing.assert_allclose(fast, naive_ndcg(relevance, order))
    # ranker.metrics on the full ranking: the slate first (scores k..1), the rest below it.
    scores = np.zeros_like(relevance)
    np.put_along_axis(scores, order, np.arange(5, 0, -1, dtype=float), axis=1)
    reference = ndcg_at_k(relevance.ravel(), scores.ravel(), group_sizes=np.full(30, 12), k=5, gain="linear")
    np.testing.assert_allclose(fast, reference.values)


def test_slate_ndcg_ideal_order_is_one_and_empty_relevance_is_zero(rng):
    relevance = rng.random((4, 9))
    assert slate_ndcg(relevance, descending_order(relevance)[:, :3]) == pytest.approx(np.ones(4))
    assert (slate_ndcg(np.zeros((2, 9)), np.tile(np.arange(3), (2, 1))) == 0).all()


def test_intra_list_diversity_matches_a_naive_loop(rng):
    embedding = rng.normal(size=(8, 6, 4))
    embedding[0, 2] = 0.0  # a zero vector: cosine 0 with everything
    np.testing.assert_allclose(intra_list_diversity(embedding), naive_diversity(embedding))
    assert (intra_list_diversity(embedding[:, :1]) == 0).all()
    same = np.tile(rng.normal(size=(1, 1, 4)), (3, 5, 1))
    np.testing.assert_allclose(intra_list_diversity(same), 0.0, atol=1e-12)


@pytest.fixture(scope="module")
def world() -> World:
    return World.build(WorldConfig.load(WORLD_FILE), SEED)


@pytest.fixture(scope="module")
def eval_set(world, default_config) -> EvalSet:
    requests = world.sample_requests(240, np.random.default_rng(5))
    return EvalSet.build(world, requests, default_config)


def test_sample_window_draws_seeded_requests_in_the_window(world):
    since = world.config.start_time + 0.6 * (world.config.end_time - world.config.start_time)
    a = sample_window(world, 300, np.random.default_rng(1), since)
    b = sample_window(world, 300, np.random.default_rng(1), since)
    assert len(a) == 300
    assert (a.time >= since).all()
    assert (a.time < world.config.end_time).all()
    assert (np.diff(a.time) >= 0).all()
    np.testing.assert_array_equal(a.candidates, b.candidates)
    np.testing.assert_array_equal(a.user_id, b.user_id)


def test_logged_requests_rebuild_the_logged_requests(world, sim_dir):
    with DecisionLog.open(sim_dir / "log.db") as log:
        frame = log.decisions().iloc[:300]
    requests = logged_requests(world, frame)
    assert len(requests) == 300
    for context, rebuilt in zip(frame["context"], requests.context_dicts(), strict=True):
        assert rebuilt == {k: v for k, v in context.items() if k not in ("fresh_share", "category_entropy")}
    words = world.vocabulary
    for query, tokens in zip(requests.query, requests.query_tokens, strict=True):
        assert " ".join(words[tokens[tokens >= 0]]) == query
    np.testing.assert_array_equal(requests.candidates, np.stack(frame["candidates"]))
    # The world accepts them: the truth can be computed on the logged requests.
    assert world.true_relevance(requests).shape == requests.candidates.shape


@pytest.mark.parametrize("share", [0.05, 0.5])
def test_subsample_section_keeps_a_share_of_one_section_only(prepared, share):
    section = "category_explore"
    sub = subsample_section(
        prepared, section, share, np.random.default_rng(0), min_positive=3, max_position=10
    )
    in_section = np.asarray(prepared.lists.requests.section == section)
    # Other sections and the test window are untouched.
    np.testing.assert_array_equal(sub.window[~in_section], prepared.window[~in_section])
    test = prepared.window == TEST
    np.testing.assert_array_equal(sub.window[test], prepared.window[test])
    positive = prepared.lists.keep_rows(prepared.lists.position < 10).has_positive
    for w in (STATS, TRAIN, VALIDATION):
        before = int((in_section & (prepared.window == w)).sum())
        after = int((in_section & (sub.window == w)).sum())
        assert after >= max(round(share * before), 1)
        if w != STATS:
            kept_positive = int((in_section & (sub.window == w) & positive).sum())
            assert kept_positive >= min(3, int((in_section & (prepared.window == w) & positive).sum()))
            assert after <= max(round(share * before), 1) + 3


def test_runner_bounds(world, eval_set, default_config):
    items = ItemAttributes(world.catalog(), world.users())
    runner = StrategyRunner(eval_set, default_config, items, seed=3)
    oracle = runner.run(Strategy("oracle", bound="oracle"))
    random_a = runner.run(Strategy("random", bound="random"))
    random_b = StrategyRunner(eval_set, default_config, items, seed=3).run(Strategy("random", bound="random"))
    for section, order in oracle.order.items():
        assert order.shape == (len(eval_set.rows[section]), eval_set.k[section])
        assert slate_ndcg(eval_set.relevance[section], order) == pytest.approx(np.ones(len(order)))
        np.testing.assert_array_equal(random_a.order[section], random_b.order[section])
        # Distinct positions per slate.
        assert all(len(set(row)) == len(row) for row in random_a.order[section].tolist())
        assert slate_ndcg(eval_set.relevance[section], random_a.order[section]).mean() < 1.0


def test_runner_serves_through_the_pipeline(world, eval_set, default_config, trained):
    items = ItemAttributes(world.catalog(), world.users())
    model = trained["consolidated"].model
    rankers = {s: model for s in default_config.sections}
    policy = FixedArmPolicy(default_config)
    runner = StrategyRunner(eval_set, default_config, items, seed=0)
    alone = runner.run(Strategy("alone", rankers=rankers))
    knobs = runner.run(Strategy("knobs", rankers=rankers, policy=policy))
    pipeline = RerankPipeline(default_config, rankers, items, policy)
    for section in eval_set.rows:
        part, batch = eval_set.part(section)
        np.testing.assert_array_equal(batch.candidates, part.candidates)
        scores = pipeline.score(batch)
        # Heuristics off: the model's own order.
        np.testing.assert_array_equal(
            alone.order[section], descending_order(scores)[:, : eval_set.k[section]]
        )
        direct = pipeline.rerank_batch(batch, np.random.default_rng(0), k=eval_set.k[section])
        np.testing.assert_array_equal(knobs.order[section], direct.order)
        assert (knobs.arm_index[section] == default_config[section].default_arm.index).all()
    assert alone.arm_index is None


def test_slate_metrics_are_the_worlds_exact_outcomes(world, eval_set):
    section = next(iter(eval_set.rows))
    part, _ = eval_set.part(section)
    order = descending_order(eval_set.relevance[section])[:, :5]
    metrics = slate_metrics(world, part, order, eval_set.relevance[section])
    slates = np.take_along_axis(part.candidates, order, axis=1)
    exact = world.expected_outcomes(part, slates)
    np.testing.assert_array_equal(metrics["clicks"], exact.clicks)
    np.testing.assert_array_equal(metrics["revenue"], exact.revenue)
    catalog = world.catalog().set_index("item_id")
    age = (
        part.time[:, None] - catalog.loc[slates.ravel(), "publish_time"].to_numpy().reshape(slates.shape)
    ) / 86400
    np.testing.assert_allclose(metrics["age_days"], age.mean(axis=1))
    assert coverage(world, part, order) == pytest.approx(np.unique(slates).size / world.n_items)
