"""The rerank pipeline: one code path for a served request and for batches, validation and fallbacks."""

import tomllib
from pathlib import Path

import numpy as np
import pytest

import heuristics
from bandits.log import DecisionLog
from bandits.policies import FixedArmPolicy, UniformPolicy
from heuristics import SectionsConfig
from heuristics.base import descending_order
from ranker.errors import RankerError, RequestValidationError
from ranker.model import RankerModel
from ranker.requests import Requests
from ranker.rerank.batch import RerankBatch
from ranker.rerank.items import ItemAttributes
from ranker.rerank.pipeline import RerankPipeline, RerankRequest


def relaxed_config() -> SectionsConfig:
    """The shipped sections with a latency budget no loaded machine spends: these tests compare what the
    stages return, and a request over its budget falls back to the ranker's order (tested on its own)."""
    path = Path(heuristics.__file__).parent / "sections.toml"
    raw = tomllib.loads(path.read_text())
    for section in raw["sections"].values():
        section.setdefault("serving", {})["latency_budget_ms"] = 60_000.0
    return SectionsConfig.from_dict(raw, source=str(path))


CONFIG = relaxed_config()


@pytest.fixture(scope="module")
def rankers(saved, tables):
    catalog, users = tables
    base = RankerModel.load(saved["base"], catalog=catalog, users=users)
    independent = RankerModel.load(saved["independent"], catalog=catalog, users=users)
    return {"discover": base, "similar_items": base, "category_explore": base, "search": independent}


@pytest.fixture(scope="module")
def items(tables):
    return ItemAttributes(*tables)


@pytest.fixture(scope="module")
def logged(sim_dir):
    with DecisionLog.open(sim_dir / "log.db") as log:
        return log.joined().head(300)


def make_pipeline(rankers, items, policy=None, **kwargs):
    return RerankPipeline(CONFIG, rankers, items, policy or FixedArmPolicy(CONFIG), **kwargs)


def request_from(row, k=10):
    return RerankRequest(
        section=row.section,
        user_id=row.user_id,
        context={**row.context, "time": float(row.time)},
        candidates=np.asarray(row.candidates),
        k=k,
    )


def batch_of(rows) -> RerankBatch:
    return RerankBatch.from_contexts(
        list(rows["section"]),
        rows["user_id"].to_numpy(),
        rows["time"].to_numpy(),
        list(rows["context"]),
        np.stack(rows["candidates"].to_numpy()),
    )


def test_served_request_equals_a_batch_of_one(rankers, items, logged):
    pipeline = make_pipeline(rankers, items, UniformPolicy(CONFIG))
    for row in logged.head(40).itertuples():
        served = pipeline.rerank(request_from(row), event_id=f"e-{row.Index}")
        one = batch_of(logged.loc[[row.Index]])
        rng = np.random.default_rng(pipeline._event_seed(f"e-{row.Index}"))
        batch = pipeline.rerank_batch(one, rng, k=10)
        np.testing.assert_array_equal(served.item_ids, np.asarray(row.candidates)[batch.order[0]])
        np.testing.assert_array_equal(served.scores, batch.scores[0])
        assert served.arm_index == batch.arm_index[0]
        assert served.propensity == batch.propensity[0]
        assert served.fallback is None


def test_score_of_a_batch_of_one_is_the_models_served_score(rankers, items, logged):
    # The feature function sees the same request as `RankerModel.score` (FeatureBuilder.one): bit-identical.
    pipeline = make_pipeline(rankers, items)
    for row in logged.head(40).itertuples():
        alone = pipeline.score(batch_of(logged.loc[[row.Index]]))[0]
        served = rankers[row.section].score(
            row.section, row.user_id, {**row.context, "time": float(row.time)}, np.asarray(row.candidates)
        )
        assert alone.tobytes() == served.tobytes()


def test_score_of_a_batch_is_the_feature_function_on_the_logged_contexts(rankers, items, logged):
    pipeline = make_pipeline(rankers, items)
    for section, rows in logged.groupby("section"):
        rows = rows.head(30)
        requests = Requests.from_contexts(
            list(rows["section"]), rows["user_id"].to_numpy(), rows["time"].to_numpy(), list(rows["context"])
        )
        candidates = np.stack(rows["candidates"].to_numpy())
        n = candidates.shape[1]
        model = rankers[section]
        features = model.builder.transform(requests, candidates.ravel(), np.repeat(np.arange(len(rows)), n))
        expected = model.booster_for(section).predict(features, num_threads=1).reshape(len(rows), n)
        assert pipeline.score(batch_of(rows)).tobytes() == expected.tobytes()


def test_batch_equals_requests_one_at_a_time(rankers, items, logged):
    pipeline = make_pipeline(rankers, items)
    for _, rows in logged.groupby("section"):
        rows = rows.head(25)
        together = pipeline.rerank_batch(batch_of(rows), np.random.default_rng(0), k=10)
        for b in range(len(rows)):
            alone = pipeline.rerank_batch(batch_of(rows.iloc[b : b + 1]), np.random.default_rng(0), k=10)
            np.testing.assert_array_equal(together.order[b], alone.order[0])
            np.testing.assert_allclose(together.base_scores[b], alone.base_scores[0], rtol=1e-12)


def test_mixed_section_batch_equals_each_section_under_the_drawn_arms(rankers, items, logged):
    pipeline = make_pipeline(rankers, items, UniformPolicy(CONFIG))
    rows = logged.head(120)
    batch = batch_of(rows)
    mixed = pipeline.rerank_batch(batch, np.random.default_rng(4))
    # One uniform per request for the whole batch, as the policy draws it on the whole context.
    choice = UniformPolicy(CONFIG).choose(mixed.policy_context, np.random.default_rng(4))
    np.testing.assert_array_equal(mixed.arm_index, choice.arm_index)
    for section, in_section in batch.by_section():
        alone = pipeline.rerank_arms(batch.take(in_section), mixed.arm_index[in_section])
        np.testing.assert_array_equal(mixed.order[in_section], alone.order)
        np.testing.assert_array_equal(mixed.scores[in_section], alone.scores)
        assert alone.order.shape[1] == CONFIG[section].serving.default_k


def test_rerank_arms_equals_a_fixed_arm_policy(rankers, items, logged):
    rows = logged[logged["section"] == "discover"].head(30)
    batch = batch_of(rows)
    for arm in CONFIG["discover"].arms:
        pipeline = make_pipeline(rankers, items, FixedArmPolicy(CONFIG, {"discover": arm.index}))
        fixed = pipeline.rerank_batch(batch, np.random.default_rng(0), k=10)
        under = pipeline.rerank_arms(batch, np.full(len(rows), arm.index), k=10)
        np.testing.assert_array_equal(fixed.order, under.order)
        np.testing.assert_array_equal(fixed.scores, under.scores)


def test_sections_with_other_slate_lengths_pad_with_minus_one(rankers, items, logged):
    raw = tomllib.loads(Path(CONFIG.source).read_text())
    raw["sections"]["discover"]["serving"]["default_k"] = 5
    raw["sections"]["search"]["serving"]["default_k"] = 8
    config = SectionsConfig.from_dict(raw)
    pipeline = RerankPipeline(config, rankers, items, UniformPolicy(config))
    rows = logged[logged["section"].isin(["discover", "search"])].head(60)
    result = pipeline.rerank_batch(batch_of(rows), np.random.default_rng(1))
    search = (rows["section"] == "search").to_numpy()
    assert result.order.shape == (len(rows), 8)
    assert (result.order[~search, 5:] == -1).all()
    assert np.isnan(result.scores[~search, 5:]).all()
    assert (result.order[:, :5] >= 0).all()
    assert (result.order[search] >= 0).all()
    # Each row's slate is distinct positions of its candidates.
    assert all(len(set(r[r >= 0].tolist())) == (r >= 0).sum() for r in result.order)


class RecordingPolicy(UniformPolicy):
    """A uniform policy that keeps the contexts it chose on."""

    def __init__(self, sections):
        super().__init__(sections)
        self.seen = []

    def choose(self, context, rng):
        self.seen.append(context)
        return super().choose(context, rng)


def test_logged_context_is_the_context_the_policy_chose_on(rankers, items, logged):
    policy = RecordingPolicy(CONFIG)
    pipeline = make_pipeline(rankers, items, policy)
    for row in logged.head(20).itertuples():
        result = pipeline.rerank(request_from(row))
        chosen_on, logged_context = policy.seen[-1], result.decision.context[0]
        assert logged_context["fresh_share"] == chosen_on.fresh_share[0]
        assert logged_context["category_entropy"] == chosen_on.category_entropy[0]
        assert logged_context["hour"] == chosen_on.hour[0]
        assert logged_context["segment"] == chosen_on.segment[0]
        assert round(chosen_on.category_entropy[0], 6) == chosen_on.category_entropy[0]


def test_decision_record_is_loggable_and_exact(rankers, items, logged, tmp_path):
    pipeline = make_pipeline(rankers, items, UniformPolicy(CONFIG))
    results = [pipeline.rerank(request_from(row)) for row in logged.head(30).itertuples()]
    with DecisionLog.open(tmp_path / "log.db", create=True) as log:
        for result in results:
            log.append_decisions(result.decision)
            assert result.propensity == result.arm_probs[result.arm_index]
            assert result.propensity == pytest.approx(1 / len(CONFIG[result.section].arms))
            assert result.decision.context[0]["segment"] != ""
        assert log.count() == 30


def test_same_event_id_same_decision(rankers, items, logged):
    pipeline = make_pipeline(rankers, items, UniformPolicy(CONFIG))
    row = next(logged.itertuples())
    first = pipeline.rerank(request_from(row), event_id="e-1")
    again = pipeline.rerank(request_from(row), event_id="e-1")
    assert first.arm_id == again.arm_id
    np.testing.assert_array_equal(first.item_ids, again.item_ids)


def test_without_heuristics_serves_the_ranker_order(rankers, items, logged):
    pipeline = make_pipeline(rankers, items, heuristics=False)
    row = next(logged.itertuples())
    result = pipeline.rerank(request_from(row, k=len(row.candidates)))
    assert np.all(np.diff(result.scores) <= 0)
    assert result.arm_id == "none"


def test_unknown_items_and_users_get_defaults(rankers, items):
    pipeline = make_pipeline(rankers, items)
    request = RerankRequest("discover", 10**9, {"time": 1.71e9}, np.array([10**8, 10**8 + 1, 3]), k=3)
    result = pipeline.rerank(request)
    assert sorted(result.item_ids.tolist()) == [3, 10**8, 10**8 + 1]
    assert result.decision.context[0]["segment"] == "unknown"


@pytest.mark.parametrize(
    ("request_", "field"),
    # Requests the pipeline refuses, and the field each error names.
    [
        (RerankRequest("nope", 1, {}, np.array([1, 2])), "section"),
        (RerankRequest("similar_items", 1, {}, np.array([1, 2])), "context.source_item"),
        (RerankRequest("category_explore", 1, {"category": None}, np.array([1])), "context.category"),
        (RerankRequest("search", 1, {"query": ""}, np.array([1])), "context.query"),
        (RerankRequest("discover", 1, {}, np.arange(1001)), "candidates"),
    ],
)
def test_invalid_requests_name_the_field(rankers, items, request_, field):
    pipeline = make_pipeline(rankers, items)
    with pytest.raises(RequestValidationError) as caught:
        pipeline.rerank(request_)
    assert caught.value.field == field


def test_scoring_failure_falls_back_to_input_order(rankers, items, logged, monkeypatch):
    pipeline = make_pipeline(rankers, items)

    def broken(*args, **kwargs):
        raise RankerError("scoring failed")

    monkeypatch.setattr(pipeline, "score", broken)
    row = next(logged.itertuples())
    result = pipeline.rerank(request_from(row, k=5))
    assert result.fallback == "input_order"
    np.testing.assert_array_equal(result.item_ids, np.asarray(row.candidates)[:5])
    assert result.arm_id == "none"


def test_heuristics_failure_falls_back_to_base_order(rankers, items, logged, monkeypatch):
    pipeline = make_pipeline(rankers, items)

    def broken(*args, **kwargs):
        raise ValueError("policy failed")

    monkeypatch.setattr(pipeline.policy, "choose", broken)
    row = next(logged.itertuples())
    result = pipeline.rerank(request_from(row, k=8))
    assert result.fallback == "base_order"
    base = pipeline.score(batch_of(logged.loc[[row.Index]]))
    np.testing.assert_array_equal(result.item_ids, np.asarray(row.candidates)[descending_order(base)[0, :8]])


def test_spent_latency_budget_falls_back_to_base_order(rankers, items, logged):
    raw = {
        "sections": {"discover": {"pipeline": ["freshness", "mmr"], "serving": {"latency_budget_ms": 0.1}}}
    }
    tight = SectionsConfig.from_dict(raw)
    pipeline = RerankPipeline(tight, {"discover": rankers["discover"]}, items, FixedArmPolicy(tight))
    row = next(r for r in logged.itertuples() if r.section == "discover")
    result = pipeline.rerank(request_from(row))
    assert result.fallback == "base_order"
    assert result.timing_ms["score"] > 0.1
