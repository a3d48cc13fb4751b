"""The knob window: traffic served by trained rankers with uniform knob exploration, logged as the service
would log it (the comparison's knobs learn from it)."""

from __future__ import annotations

import numpy as np
import pytest

from bandits.learn import LearnSettings, read_decisions
from bandits.log import DecisionLog
from bandits.policies import UniformPolicy
from heuristics import SectionsConfig
from ranker.model import RankerModel
from ranker.rerank.items import ItemAttributes
from ranker.rerank.pipeline import RerankPipeline
from simulator import LoggingPolicy, SimulationInputError, World, WorldConfig
from simulator.compare_knobs import log_knob_window
from tests.conftest import SEED, WORLD_FILE


@pytest.fixture(scope="module")
def world() -> World:
    return World.build(WorldConfig.load(WORLD_FILE), SEED)


@pytest.fixture(scope="module")
def rankers(world, saved, ranker_config) -> dict[str, RankerModel]:
    model = RankerModel.load(
        saved["consolidated"], catalog=world.catalog(), users=world.users(), config=ranker_config
    )
    return dict.fromkeys(world.sections, model)


@pytest.fixture(scope="module")
def requests(world):
    return world.sample_requests(
        600, np.random.default_rng(4), times=np.sort(world.sample_times(600, np.random.default_rng(5)))
    )


def test_knob_window_logs_what_the_rankers_serve_under_each_drawn_arm(world, rankers, requests):
    sections = SectionsConfig.load()
    chunks = list(LoggingPolicy(world, sections, seed=7, rankers=rankers).log_requests(requests, chunk=250))
    assert [len(d) for d, _ in chunks] == [250, 250, 100]
    pipeline = RerankPipeline(
        sections, rankers, ItemAttributes(world.catalog(), world.users()), UniformPolicy(sections)
    )
    model = next(iter(rankers.values()))
    for start, (decisions, feedback) in zip((0, 250, 500), chunks, strict=True):
        part = requests.take(np.arange(start, start + len(decisions)))
        assert np.array_equal(decisions.time, part.time)
        assert {v["ranker"] for v in decisions.model_versions} == {model.version}
        n_arms = np.array([len(sections[s].arms) for s in decisions.section])
        np.testing.assert_allclose(decisions.propensity, 1.0 / n_arms)
        # The shown slate is exactly what the rankers and the section's heuristics serve under the logged arm.
        ranking = pipeline.rerank_arms(part.to_rerank_batch(), decisions.arm_index)
        for row, shown in enumerate(decisions.shown):
            expected = part.candidates[row][ranking.order[row, : len(shown)]]
            assert np.array_equal(shown, expected)
        assert np.array_equal(feedback.event_id, decisions.event_id)


def test_knob_window_is_reproducible_and_readable_by_the_learner(world, rankers, requests, tmp_path):
    sections = SectionsConfig.load()
    paths = [
        log_knob_window(world, requests, sections, rankers, tmp_path / f"{i}.db", seed=11) for i in range(2)
    ]
    read = []
    for path in paths:
        with DecisionLog.open(path) as log:
            read.append(read_decisions(log, sections, LearnSettings(wait_seconds=None)))
    assert len(read[0]) == len(requests)
    assert np.array_equal(read[0].arm_index, read[1].arm_index)
    assert np.array_equal(read[0].reward, read[1].reward)
    # Uniform exploration: every arm of the busiest section is drawn.
    busiest = max(world.sections, key=lambda s: int(np.sum(read[0].context.section == s)))
    drawn = np.unique(read[0].arm_index[read[0].context.section == busiest])
    assert len(drawn) == len(sections[busiest].arms)


def test_knob_window_needs_a_ranker_for_every_world_section(world, rankers):
    partial = dict(list(rankers.items())[:1])
    with pytest.raises(SimulationInputError, match="missing"):
        LoggingPolicy(world, seed=0, rankers=partial)
