"""Exact policy values: every arm's expected outcome, against a one-request-at-a-time reference."""

import numpy as np
import pytest

from bandits.context import candidate_summary
from bandits.policies import EpsilonGreedyPolicy, FixedArmPolicy, UniformPolicy
from heuristics import ContextBatch, ItemBatch, SectionPipeline, SectionsConfig
from simulator.logging_policy import LegacyScorer
from simulator.policy_eval import OUTCOMES, arm_values
from simulator.world import World
from simulator.world_config import WorldConfig

CONFIG = SectionsConfig.load()


@pytest.fixture(scope="module")
def setup():
    config = WorldConfig.from_dict(
        {"items": {"count": 500}, "users": {"count": 600}, "candidates": {"count": 30}}
    )
    world = World.build(config, 3)
    requests = world.sample_requests(240, np.random.default_rng(8))
    return world, requests, arm_values(world, requests, CONFIG, seed=5, chunk=50)


def test_arm_values_match_one_request_reference(setup):
    world, requests, values = setup
    scores = LegacyScorer().score(world, requests, np.random.default_rng(5))
    for b in range(0, len(requests), 17):
        section = str(requests.section[b])
        one = requests.take(np.array([b]))
        pipeline = SectionPipeline(CONFIG[section])
        items = world.item_batch(one.candidates, one.time)
        context = world.context_batch(one)
        row = int(np.flatnonzero(values.rows[section] == b)[0])
        for arm in CONFIG[section].arms:
            ranking = pipeline.rerank(scores[b], items, context, arm, CONFIG[section].serving.default_k)
            slate = one.candidates[:, ranking.order[0]]
            expected = world.expected_outcomes(one, slate)
            for outcome in OUTCOMES:
                assert values.values[section][outcome][row, arm.index] == pytest.approx(
                    getattr(expected, outcome)[0], rel=1e-12
                )
    assert isinstance(items, ItemBatch)
    assert isinstance(context, ContextBatch)


def test_policy_values_closed_forms(setup):
    _, _, values = setup
    for section in values.sections:
        cfg = CONFIG[section]
        table = values.values[section]["clicks"]
        fixed = values.policy_values(FixedArmPolicy(CONFIG, {section: 1}))[section]
        assert fixed == pytest.approx(table[:, 1].mean())
        uniform = values.policy_values(UniformPolicy(CONFIG))[section]
        assert uniform == pytest.approx(table.mean())
        eps = values.policy_values(EpsilonGreedyPolicy(CONFIG, 0.3))[section]
        assert eps == pytest.approx(0.7 * table[:, cfg.default_arm.index].mean() + 0.3 * table.mean())


def test_oracles_bound_the_fixed_arms(setup):
    _, _, values = setup
    for section in values.sections:
        best = values.fixed_arm_values(section).max()
        context = values.context_oracle_value(section)
        assert best <= context + 1e-12
        assert context <= values.oracle_value(section) + 1e-12
        assert values.best_fixed_arm(section) == int(np.argmax(values.fixed_arm_values(section)))
        single_cell = values.context_oracle_value(section, keys=("section",))
        assert single_cell == pytest.approx(best)


def test_arm_values_context_is_what_the_logging_policy_logs(setup):
    world, requests, values = setup
    items = world.item_batch(requests.candidates, requests.time)
    fresh, entropy = candidate_summary(items.age_days, items.category)
    np.testing.assert_array_equal(values.context.fresh_share, np.round(fresh, 6))
    np.testing.assert_array_equal(values.context.category_entropy, np.round(entropy, 6))
    np.testing.assert_array_equal(values.context.segment, requests.segment)
    np.testing.assert_array_equal(values.context.device, requests.device)
    np.testing.assert_array_equal(values.context.hour, requests.hour)
    np.testing.assert_array_equal(values.context.section, requests.section)
