"""The feature check (question 7): a removed feature really leaves the retrained models' inputs, which
sections carry a feature, the injected pipeline bug (through the serving pipeline itself), and the known
answer: the bug is found as a regression below 0 where the feature should be defaulted; correct serving is
not."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from bandits.policies import FixedArmPolicy
from heuristics import SectionsConfig
from ranker.config import RankerConfig
from ranker.dataset import TEST
from ranker.model import RankerModel
from ranker.rerank.items import ItemAttributes
from ranker.rerank.pipeline import RerankPipeline
from simulator import World, WorldConfig
from simulator.compare import compare
from simulator.compare_results import CompareResults
from simulator.compare_settings import CHECKABLE_FEATURES, QUICK, CompareSettings
from simulator.errors import CompareInputError
from simulator.feature_check import (
    leaked_batch,
    leaking,
    split_sections,
    train_without,
    without_feature,
)
from simulator.feature_check_stats import REGRESSION

SECTIONS = ("discover", "similar_items", "category_explore", "search")
WORLD_SMALL = Path(__file__).parents[1] / "ranker" / "world_small.toml"
WORLD_TINY = Path(__file__).parents[1] / "fixtures" / "world_tiny.toml"


def test_split_sections_by_the_ranker_configs_context_kinds(ranker_config):
    split = split_sections("source_similarity", SECTIONS, ranker_config)
    assert (split.context, split.carrying) == ("source_item", ("similar_items",))
    assert split.default_only == ("discover", "category_explore", "search")
    query = split_sections("query_similarity", SECTIONS, ranker_config)
    assert (query.carrying, query.default_only) == (("search",), SECTIONS[:3])


# Features the check refuses: (feature, sections, message).
BAD_SPLITS = [
    ("affinity", SECTIONS, "section-context feature"),
    ("nope", SECTIONS, "section-context feature"),
    ("source_similarity", ("discover", "search"), "no section of discover, search carries"),
    ("query_match", ("search",), "every section of search carries"),
]


@pytest.mark.parametrize(("feature", "sections", "message"), BAD_SPLITS)
def test_split_sections_refuses_a_feature_it_cannot_check(ranker_config, feature, sections, message):
    with pytest.raises(CompareInputError, match=message):
        split_sections(feature, sections, ranker_config)


def test_split_sections_refuses_a_feature_the_designs_do_not_use(ranker_config):
    data = ranker_config.to_dict()
    features = data["designs"]["independent"]["features"]
    data["designs"]["independent"]["features"] = [f for f in features if f != "category_match"]
    config = RankerConfig.from_dict(data, source="test")
    with pytest.raises(CompareInputError, match=r"'category_match' is not among designs\.independent"):
        split_sections("category_match", SECTIONS, config)


def test_without_feature_removes_it_from_the_checked_designs_only(ranker_config):
    before = ranker_config.to_dict()
    after = without_feature(ranker_config, "category_match").to_dict()
    for design in ("consolidated", "independent"):
        expected = [f for f in before["designs"][design]["features"] if f != "category_match"]
        assert after["designs"][design]["features"] == expected
        after["designs"][design]["features"] = before["designs"][design]["features"]
    assert after == before  # sections, union, LightGBM settings and seed unchanged


def test_feature_check_removed_feature_changes_the_trained_models_inputs(
    prepared, tables, ranker_config, saved, tmp_path
):
    catalog, users = tables
    split = split_sections("source_similarity", SECTIONS, ranker_config)
    models = train_without(tmp_path, prepared, catalog, users, ranker_config, 1, split)
    with_ = RankerModel.load(saved["consolidated"], catalog=catalog, users=users, config=ranker_config)
    without = models.consolidated.model
    assert "source_similarity" in with_.contract.feature_names
    expected = [f for f in with_.contract.feature_names if f != "source_similarity"]
    assert list(without.contract.feature_names) == expected
    assert without.boosters["*"].num_feature() == with_.boosters["*"].num_feature() - 1
    assert without.builder.features == tuple(expected)
    (independent,) = models.independent.values()
    assert list(models.independent) == ["similar_items"]
    assert "source_similarity" not in independent.model.contract.feature_names
    assert independent.model.sections == ("similar_items",)
    # Not the same model under another name: it ranks the same similar_items lists differently.
    test_lists = prepared.lists_in(TEST)
    lists = test_lists.keep_rows(test_lists.section_of_row == "similar_items")
    assert not np.allclose(with_.score_lists(lists), without.score_lists(lists))


@pytest.fixture(scope="module")
def world():
    return World.build(WorldConfig.load(WORLD_SMALL), 5)


@pytest.fixture(scope="module")
def requests(world):
    return world.sample_requests(300, np.random.default_rng(0))


def test_leaked_batch_gives_default_only_requests_the_carrying_sections_field(world, requests, ranker_config):
    split = split_sections("source_similarity", SECTIONS, ranker_config)
    batch = requests.to_rerank_batch()
    leaked = leaked_batch(world, requests, batch, split, np.random.default_rng(1))
    again = leaked_batch(world, requests, batch, split, np.random.default_rng(1))
    carrying = requests.section == "similar_items"
    source = leaked.requests.source_item
    assert all(s is not None and 0 <= s < world.n_items for s in source[~carrying])
    assert list(source[carrying]) == list(batch.requests.source_item[carrying])
    assert list(again.requests.source_item) == list(source)  # seeded
    for f in fields(batch.requests):
        if f.name != "source_item":
            assert list(getattr(leaked.requests, f.name)) == list(getattr(batch.requests, f.name)), f.name
    np.testing.assert_array_equal(leaked.candidates, batch.candidates)


def test_leaking_model_changes_scores_only_where_the_feature_should_be_defaulted(
    world, requests, saved, ranker_config
):
    catalog, users = world.catalog(), world.users()
    model = RankerModel.load(saved["consolidated"], catalog=catalog, users=users, config=ranker_config)
    split = split_sections("source_similarity", SECTIONS, ranker_config)
    leaked = leaked_batch(world, requests, requests.to_rerank_batch(), split, np.random.default_rng(1))
    bug = leaking(model, "source_similarity")
    assert bug.boosters == model.boosters
    assert bug.builder.everywhere == {"source_similarity"}
    sections = SectionsConfig.load()

    def scores(ranker: RankerModel, batch) -> np.ndarray:
        rankers = dict.fromkeys(SECTIONS, ranker)
        pipeline = RerankPipeline(sections, rankers, ItemAttributes(catalog, users), FixedArmPolicy(sections))
        return pipeline.score(batch)

    correct, buggy = scores(model, leaked), scores(bug, leaked)
    carrying = requests.section == "similar_items"
    np.testing.assert_array_equal(buggy[carrying], correct[carrying])
    # Served correctly, a source item in a discover request changes nothing; served with the bug it does.
    np.testing.assert_array_equal(correct, scores(model, requests.to_rerank_batch()))
    changed = ~np.isclose(buggy[~carrying], correct[~carrying]).all(axis=1)
    assert changed.mean() > 0.5


# Settings the check refuses: (changes, message).
BAD_SETTINGS = [
    ({"feature_check": ("affinity",)}, "`feature_check` features among"),
    ({"feature_check": ("query_match", "query_match")}, "distinct `feature_check`"),
    ({"feature_leak": True}, "`feature_check` features with `feature_leak`"),
    ({"feature_check": ("query_match",), "feature_leak": "yes"}, "`feature_leak` to be true or false"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_SETTINGS)
def test_feature_check_settings_refused(changes, message):
    with pytest.raises(CompareInputError, match=message):
        CompareSettings(**changes)


def test_feature_check_settings_defaults():
    assert CompareSettings().feature_check == ()
    assert QUICK.feature_check == ("source_similarity",)
    assert set(CHECKABLE_FEATURES) == {
        "source_similarity",
        "category_match",
        "query_match",
        "query_similarity",
    }
    assert CompareSettings(feature_check="query_match").feature_check == ("query_match",)


def test_compare_refuses_a_feature_no_section_carries_before_any_work(ranker_config):
    data = ranker_config.to_dict()
    data["sections"]["search"] = {**data["sections"]["search"], "context": "none"}
    config = RankerConfig.from_dict(data, source="search without a query")
    settings = CompareSettings(feature_check=("query_match",))
    with pytest.raises(CompareInputError, match=r"no section of .* carries 'query_match'"):
        compare(WORLD_TINY, seeds=2, settings=settings, ranker_config=config)


# The known answer, on the tiny test world: 4 seeds, small sizes, and only what the check needs.
KNOWN = CompareSettings(
    log_requests=6000,
    knob_requests=600,
    eval_requests=1000,
    tune_requests=10,
    curve_shares=(1.0,),
    unions=("traffic",),
    n_bootstrap=10,
    estimators=("ips",),
    feature_check=("query_match",),
    feature_leak=True,
)


@pytest.mark.slow
def test_feature_check_finds_the_injected_pipeline_bug_and_not_the_correct_serving():
    results = compare(WORLD_TINY, seeds=4, settings=KNOWN)
    check = results.feature_check
    assert check is not None
    (correct,), (bug,) = check.features, check.leaking
    # The bug: the model learned query_match at its default outside search, and receives real values there.
    assert bug.finding == REGRESSION
    assert bug.consolidated["default_only"].clicks.high < 0
    assert bug.consolidated["default_only"].ndcg.high < 0
    assert bug.regressed_in
    # Served correctly, the same models on the same requests: no significant regression.
    assert correct.finding != REGRESSION
    assert correct.consolidated["default_only"].clicks.verdict != "worse"
    # The bug changes nothing where the feature is carried: the requests and models are the same.
    assert bug.consolidated["search"] == correct.consolidated["search"]
    assert bug.independent == correct.independent
    assert CompareResults.from_json(results.to_json()).feature_check == check
    assert results.runtime.steps["feature_check"] > 0
