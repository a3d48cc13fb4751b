"""The logging policy: reproducible logs, exact propensities, and feedback for every decision."""

from __future__ import annotations

import numpy as np
import pytest

from bandits.context import PolicyContext
from bandits.policies import UniformPolicy
from bandits.records import DecisionBatch, FeedbackBatch
from heuristics import SectionPipeline, SectionsConfig
from ranker.rerank.pipeline import RerankPipeline
from simulator import LegacyScorer, LoggingPolicy, SimulationInputError, World, simulate
from simulator.world_config import WorldConfig


@pytest.fixture(scope="module")
def world() -> World:
    config = WorldConfig.load("default").with_overrides({"users": {"count": 3000}})
    return World.build(config, seed=5)


@pytest.fixture(scope="module")
def sections(default_config: SectionsConfig) -> SectionsConfig:
    return default_config


def collect(policy: LoggingPolicy, n: int, chunk: int = 700) -> list[tuple[DecisionBatch, FeedbackBatch]]:
    return list(policy.log(n, chunk=chunk))


def concat(chunks, attr: str, which: int = 0) -> list:
    out: list = []
    for pair in chunks:
        out.extend(list(getattr(pair[which], attr)))
    return out


@pytest.fixture(scope="module")
def uniform_log(world: World):
    return collect(LoggingPolicy(world, exploration="uniform", seed=11), 2000)


@pytest.fixture(scope="module")
def epsilon_log(world: World):
    return collect(LoggingPolicy(world, exploration="epsilon", epsilon=0.3, seed=11), 2000)


def assert_same_records(a, b) -> None:
    for name in a.__dataclass_fields__:
        left, right = getattr(a, name), getattr(b, name)
        if isinstance(left, np.ndarray):
            np.testing.assert_array_equal(left, right, err_msg=name)
        elif isinstance(left, list):
            assert len(left) == len(right), name
            for x, y in zip(left, right, strict=True):
                if isinstance(x, np.ndarray):
                    assert x.dtype == y.dtype, name
                    assert x.tobytes() == y.tobytes(), name
                else:
                    assert x == y, name
        else:
            assert left == right, name


def test_logging_policy_same_seed_gives_identical_logs(world: World, uniform_log):
    again = collect(LoggingPolicy(World.build(world.config, seed=5), exploration="uniform", seed=11), 2000)
    assert len(again) == len(uniform_log)
    for (d1, f1), (d2, f2) in zip(uniform_log, again, strict=True):
        assert_same_records(d1, d2)
        assert_same_records(f1, f2)


def test_logging_policy_different_seed_gives_a_different_log(world: World, uniform_log):
    other = collect(LoggingPolicy(world, exploration="uniform", seed=12), 700)
    assert not np.array_equal(other[0][0].user_id, uniform_log[0][0].user_id)


def test_logging_policy_yields_chunks_in_time_order(uniform_log):
    assert [len(d) for d, _ in uniform_log] == [700, 700, 600]
    event_ids = concat(uniform_log, "event_id")
    assert event_ids == [f"sim-11-{i:08d}" for i in range(2000)]
    times = np.concatenate([d.time for d, _ in uniform_log])
    assert (np.diff(times) >= 0).all()


@pytest.mark.parametrize("log_name", ["uniform_log", "epsilon_log"])
def test_logging_policy_propensities_are_exact(log_name: str, request: pytest.FixtureRequest, sections):
    for decisions, _ in request.getfixturevalue(log_name):
        assert ((decisions.propensity > 0) & (decisions.propensity <= 1)).all()
        for b in range(len(decisions)):
            probs = decisions.arm_probs[b]
            assert len(probs) == len(sections[decisions.section[b]].arms)
            assert probs.sum() == pytest.approx(1.0, abs=1e-12)
            assert probs[decisions.arm_index[b]] == decisions.propensity[b]


def test_logging_policy_uniform_gives_every_arm_one_over_a(uniform_log, sections):
    for decisions, _ in uniform_log:
        n_arms = np.array([len(sections[s].arms) for s in decisions.section])
        np.testing.assert_allclose(decisions.propensity, 1.0 / n_arms)


def test_logging_policy_epsilon_favours_the_default_arm(world: World, epsilon_log, sections):
    policy = LoggingPolicy(world, exploration="epsilon", epsilon=0.3)
    section = sections["discover"]
    n_arms = len(section.arms)
    probs = policy.arm_distribution("discover")
    assert probs[section.default_arm.index] == pytest.approx(1 - 0.3 + 0.3 / n_arms)
    others = np.delete(probs, section.default_arm.index)
    np.testing.assert_allclose(others, 0.3 / n_arms)
    # The logged choices follow it: the default arm's share lies within 4 standard errors.
    arm_index = np.array(concat(epsilon_log, "arm_index"))
    in_section = np.array(concat(epsilon_log, "section")) == "discover"
    chosen = arm_index[in_section] == section.default_arm.index
    p = 1 - 0.3 + 0.3 / n_arms
    assert abs(chosen.mean() - p) < 4 * np.sqrt(p * (1 - p) / in_section.sum())


def test_logging_policy_decisions_describe_the_shown_slate(uniform_log, sections):
    for decisions, _ in uniform_log:
        for b in range(len(decisions)):
            section = sections[decisions.section[b]]
            arm = section.arms[decisions.arm_index[b]]
            assert decisions.arm_id[b] == arm.id
            assert decisions.knobs[b] == dict(arm.knobs)
            shown = decisions.shown[b]
            assert len(shown) == section.serving.default_k
            assert np.isin(shown, decisions.candidates[b]).all()
            assert len(np.unique(shown)) == len(shown)
            assert (np.diff(decisions.shown_scores[b]) <= 1e-12).all() or "mmr" in section.pipeline
            assert decisions.model_versions[b] == {"ranker": "legacy-scorer", "policy": "uniform"}
            context = decisions.context[b]
            assert {"device", "hour", "segment"} <= set(context)
            assert ("source_item" in context) == (decisions.section[b] == "similar_items")
            assert ("query" in context) == (decisions.section[b] == "search")


def test_logging_policy_feedback_for_every_decision(world: World, uniform_log):
    price = world.observed_items.price
    delay = world.config.requests.feedback_delay_s
    n_clicked = 0
    for decisions, feedback in uniform_log:
        np.testing.assert_array_equal(feedback.event_id, decisions.event_id)
        np.testing.assert_allclose(feedback.time, decisions.time + delay)
        assert np.isnan(feedback.reward).all()
        for b in range(len(decisions)):
            clicks, conversions = feedback.clicks[b], feedback.conversions[b]
            assert clicks.dtype == np.int64
            assert conversions.dtype == np.int64
            assert ((clicks >= 0) & (clicks < len(decisions.shown[b]))).all()
            assert np.isin(conversions, clicks).all()
            assert feedback.revenue[b] == pytest.approx(price[decisions.shown[b][conversions]].sum())
            n_clicked += len(clicks) > 0
    assert 0 < n_clicked < 2000  # some requests get clicks, some get an empty array


def test_logging_policy_passes_progress_the_chunks(world: World):
    seen = []

    def progress(chunks):
        seen.append(list(chunks))
        return chunks

    policy = LoggingPolicy(world, seed=1)
    assert sum(len(d) for d, _ in policy.log(250, chunk=100, progress=progress)) == 250
    assert seen == [[(0, 100), (100, 200), (200, 250)]]


def test_logging_policy_zero_requests_yield_nothing(world: World):
    assert list(LoggingPolicy(world).log(0)) == []


class RecordingPolicy(UniformPolicy):
    """A uniform policy that keeps the contexts it chose on."""

    def __init__(self, sections: SectionsConfig) -> None:
        super().__init__(sections)
        self.seen: list[PolicyContext] = []

    def choose(self, context: PolicyContext, rng: np.random.Generator):
        self.seen.append(context)
        return super().choose(context, rng)


def test_logging_policy_logs_the_context_its_policy_chose_on(world: World, sections):
    recording = RecordingPolicy(sections)
    chunks = collect(LoggingPolicy(world, sections, seed=11, knob_policy=recording), 1500)
    assert len(recording.seen) == len(chunks)
    for (decisions, _), chosen_on in zip(chunks, recording.seen, strict=True):
        logged = PolicyContext.from_records(decisions.context, decisions.section)
        for name in ("section", "segment", "device", "hour", "fresh_share", "category_entropy"):
            np.testing.assert_array_equal(getattr(logged, name), getattr(chosen_on, name), err_msg=name)
        # One rounding rule: what the policy saw already has the logged precision.
        np.testing.assert_array_equal(chosen_on.category_entropy, np.round(chosen_on.category_entropy, 6))


def test_logging_policy_slates_are_the_pipelines_on_the_same_scores_and_rng(world: World, sections):
    policy = LoggingPolicy(world, sections, seed=4)
    requests = world.sample_requests(900, np.random.default_rng(6))
    decisions, _ = policy._decide(
        0, requests, np.random.default_rng(1), np.random.default_rng(2), np.random.default_rng(3)
    )
    scores = LegacyScorer().score(world, requests, np.random.default_rng(1))
    pipeline = RerankPipeline(sections, None, world, UniformPolicy(sections))
    direct = pipeline.rerank_batch(requests.to_rerank_batch(), np.random.default_rng(2), scores=scores)
    np.testing.assert_array_equal(decisions.arm_index, direct.arm_index)
    np.testing.assert_array_equal(decisions.propensity, direct.propensity)
    for b in range(len(requests)):
        k = sections[requests.section[b]].serving.default_k
        np.testing.assert_array_equal(decisions.shown[b], requests.candidates[b, direct.order[b, :k]])
        np.testing.assert_array_equal(decisions.shown_scores[b], direct.scores[b, :k])
        assert decisions.context[b]["fresh_share"] == direct.policy_context.fresh_share[b]


def test_legacy_scorer_counts_query_words(world: World):
    reqs = world.sample_requests(200, np.random.default_rng(2), section="search")
    no_noise = LegacyScorer(noise=0.0, popularity_weight=0.0, affinity_weight=0.0, query_weight=1.0)
    scores = no_noise.score(world, reqs, np.random.default_rng(0))
    tags = world.observed_items.tags
    for b in range(0, 200, 17):
        words = reqs.query_tokens[b][reqs.query_tokens[b] >= 0]
        for j in range(0, reqs.n_candidates, 9):
            item_tags = set(tags[reqs.candidates[b, j]].tolist())
            assert scores[b, j] == pytest.approx(sum(w in item_tags for w in words.tolist()) / len(words))


def test_simulate_hands_every_chunk_to_the_sink(world: World):
    received: list[tuple[DecisionBatch, FeedbackBatch]] = []
    summary = simulate(world, 900, seed=3, chunk=400, sink=lambda d, f: received.append((d, f)))
    assert [len(d) for d, _ in received] == [400, 400, 100]
    assert summary.requests == 900
    assert summary.clicks == sum(len(c) for _, f in received for c in f.clicks)
    assert summary.revenue == pytest.approx(sum(f.revenue.sum() for _, f in received))
    assert sum(summary.by_section.values()) == 900
    assert summary.requests_per_second > 0


# Invalid arguments: (keyword arguments of LoggingPolicy, message fragment)
INVALID_POLICIES = [
    ({"exploration": "greedy"}, "`exploration` in uniform, epsilon"),
    ({"exploration": "epsilon", "epsilon": 1.5}, r"`epsilon` in \[0, 1\], found 1.5"),
    ({"exploration": "epsilon", "epsilon": float("nan")}, "`epsilon`"),
    ({"seed": -1}, "`seed`"),
    ({"scorer": "legacy"}, "`scorer`"),
]


@pytest.mark.parametrize(("kwargs", "match"), INVALID_POLICIES, ids=[m for _, m in INVALID_POLICIES])
def test_logging_policy_refuses_invalid_arguments(world: World, kwargs, match: str):
    with pytest.raises(SimulationInputError, match=match):
        LoggingPolicy(world, **kwargs)


@pytest.mark.parametrize(
    ("n", "chunk", "match"), [(-1, 10, "n_requests"), (10, 0, "chunk"), (2.5, 10, "n_requests")]
)
def test_logging_policy_log_refuses_invalid_sizes(world: World, n, chunk, match: str):
    with pytest.raises(SimulationInputError, match=match):
        LoggingPolicy(world).log(n, chunk=chunk)  # refused at the call, before any iteration


def test_logging_policy_refuses_a_sections_config_without_a_world_section(world: World, sections):
    partial = SectionsConfig(
        sections={k: v for k, v in sections.sections.items() if k != "search"}, source="x"
    )
    with pytest.raises(SimulationInputError, match="'search' is not in the sections config"):
        LoggingPolicy(world, partial)


def test_logging_policy_refuses_mismatched_context(sections):
    config = WorldConfig.load("default").with_overrides(
        {
            "users": {"count": 500},
            "sections": {"similar_items": {"context": "none", "source_similarity": 0.0}},
        }
    )
    with pytest.raises(SimulationInputError, match="'similar_items' requires context 'source_item'"):
        LoggingPolicy(World.build(config, seed=0), sections)


def test_legacy_scorer_refuses_negative_noise():
    with pytest.raises(SimulationInputError, match="`noise`"):
        LegacyScorer(noise=-1.0)


def test_default_world_best_arm_depends_on_context(sections):
    # The truth must make the bandit's choice matter: in discover, new users (who prefer established items)
    # are best served with less freshness boost than heavy users, and revenue prefers another arm than clicks.
    world = World.build("default", seed=2)
    reqs = world.sample_requests(1500, np.random.default_rng(3), section="discover")
    scores = LegacyScorer(noise=0.0).score(world, reqs, np.random.default_rng(0))
    section = sections["discover"]
    pipeline = SectionPipeline(section)
    items, context = world.item_batch(reqs.candidates, reqs.time), world.context_batch(reqs)
    clicks, revenue = [], []
    for arm in section.arms:
        order = pipeline.rerank_arms(scores, items, context, np.full(len(reqs), arm.index), 20).order
        outcome = world.expected_outcomes(reqs, np.take_along_axis(reqs.candidates, order, axis=1))
        clicks.append(outcome.clicks)
        revenue.append(outcome.revenue)
    clicks, revenue = np.stack(clicks, axis=1), np.stack(revenue, axis=1)

    def best_freshness(segment: str) -> float:
        best = clicks[reqs.segment == segment].mean(axis=0).argmax()
        return section.arms[best].knobs["freshness.weight"]

    assert best_freshness("new") < best_freshness("heavy")
    assert clicks.mean(axis=0).argmax() != revenue.mean(axis=0).argmax()
