"""The rerank pipeline: one code path for a served request and for batches, validation and fallbacks."""

import numpy as np
import pytest

from bandits.log import DecisionLog
from bandits.policies import FixedArmPolicy, UniformPolicy
from heuristics import SectionsConfig
from heuristics.base import descending_order
from ranker.errors import RankerError, RequestValidationError
from ranker.model import RankerModel
from ranker.rerank.items import ItemAttributes
from ranker.rerank.pipeline import RerankPipeline, RerankRequest

CONFIG = SectionsConfig.load()


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


def test_served_request_equals_a_batch_of_one(rankers, items, logged):
    pipeline = make_pipeline(rankers, items)
    for row in logged.head(40).itertuples():
        served = pipeline.rerank(request_from(row))
        batch = pipeline.rerank_batch(
            row.section,
            np.array([row.user_id]),
            [row.context],
            np.array([row.time]),
            np.asarray(row.candidates)[None, :],
            10,
            np.random.default_rng(0),
        )
        np.testing.assert_array_equal(served.item_ids, np.asarray(row.candidates)[batch.order[0]])
        np.testing.assert_allclose(served.scores, batch.scores[0])
        assert served.fallback is None


def test_batch_equals_requests_one_at_a_time(rankers, items, logged):
    pipeline = make_pipeline(rankers, items)
    for section, rows in logged.groupby("section"):
        rows = rows.head(25)
        candidates = np.stack(rows["candidates"].to_numpy())
        contexts, users, times = list(rows["context"]), rows["user_id"].to_numpy(), rows["time"].to_numpy()
        together = pipeline.rerank_batch(
            section, users, contexts, times, candidates, 10, np.random.default_rng(0)
        )
        for b in range(len(rows)):
            alone = pipeline.rerank_batch(
                section,
                users[b : b + 1],
                contexts[b : b + 1],
                times[b : b + 1],
                candidates[b : b + 1],
                10,
                np.random.default_rng(0),
            )
            np.testing.assert_array_equal(together.order[b], alone.order[0])
            np.testing.assert_allclose(together.base_scores[b], alone.base_scores[0], rtol=1e-12)


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
    base = pipeline.score(
        row.section,
        np.array([row.user_id]),
        [row.context],
        np.array([row.time]),
        np.asarray(row.candidates)[None, :],
    )
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
