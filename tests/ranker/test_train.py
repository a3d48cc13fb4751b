"""Training: every design end to end, the union it trains on, task_type in use, determinism, LambdaRanker."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ranker.dataset import TEST, TRAIN, VALIDATION
from ranker.errors import NotFittedError, TrainingDataError, UnionSpecError
from ranker.features import FEATURES, TASK_TYPE
from ranker.labels import LabelledLists
from ranker.metrics import OVERALL
from ranker.requests import Requests
from ranker.train import LambdaRanker, _training_lists, _union_lists, train_design
from ranker.union import UNION_LIST, stratified_union


def test_train_every_design_trains_and_evaluates_its_sections(trained, ranker_config):
    for design, result in trained.items():
        spec = ranker_config.designs[design]
        assert result.model.sections == spec.sections
        assert result.model.builder.features == spec.features
        metrics = result.metrics
        assert set(metrics["section"]) == {OVERALL, *spec.sections}
        assert set(metrics["metric"]) == {"ndcg@10", "map@10", "recall@10", "auc"}
        defined = metrics.dropna(subset=["mean"])
        assert len(defined) == len(metrics)
        assert ((defined["mean"] >= 0) & (defined["mean"] <= 1)).all()
        assert (defined["ci_low"] <= defined["mean"]).all()
        assert (defined["mean"] <= defined["ci_high"]).all()


def test_train_base_serves_the_relevance_sections_without_task_type_or_context(trained):
    model = trained["base"].model
    assert model.sections == ("discover", "similar_items", "category_explore")
    assert not model.serves("search")
    assert model.contract.task_types == ()
    assert all(FEATURES[f].context is None and f != TASK_TYPE for f in model.contract.feature_names)
    assert set(model.boosters) == {"*"}


def test_train_independent_has_one_model_per_section(trained, ranker_config):
    result = trained["independent"]
    assert set(result.model.boosters) == set(ranker_config.designs["independent"].sections)
    for section, info in result.metadata["training"].items():
        assert set(info["lists_by_section"]) == {section}


def test_train_consolidated_uses_task_type(trained, prepared):
    model = trained["consolidated"].model
    lists = prepared.lists_in(TEST)
    x = model.builder.transform(lists.requests, lists.item_id, lists.request_of_row)
    j = model.builder.features.index(TASK_TYPE)
    booster = model.boosters["*"]
    before = booster.predict(x)
    changed = []
    for code in range(len(model.contract.task_types)):
        other = x.copy()
        other[:, j] = code
        changed.append(np.abs(booster.predict(other) - before).max())
    assert max(changed) > 1e-6
    assert booster.feature_importance("split")[j] > 0


def test_train_union_takes_whole_lists_in_the_target_shares(prepared, tables, ranker_config):
    catalog, users = tables
    result = train_design("base", prepared, catalog, users, ranker_config, union="equal")
    union = result.metadata["union"]
    assert union["strategy"] == "equal"
    total = union["lists"]
    for share in union["sections"]:
        assert share["lists_taken"] == share["distinct_taken"]
        assert abs(share["achieved_share"] - 1 / 3) <= 1 / total
    train = prepared.lists_in(TRAIN, ranker_config.designs["base"].sections)
    taken = sum(info["lists"] for info in result.metadata["training"].values())
    assert taken <= total <= train.n_requests


def test_train_union_spec_checked(prepared, tables, ranker_config):
    catalog, users = tables
    with pytest.raises(UnionSpecError, match="expected 3 numbers"):
        train_design("base", prepared, catalog, users, ranker_config, union="1,2")
    with pytest.raises(UnionSpecError, match="not independent"):
        train_design("independent", prepared, catalog, users, ranker_config, union="equal")
    with pytest.raises(TrainingDataError, match=r"train window has no list .* or a union share of 0"):
        train_design("consolidated", prepared, catalog, users, ranker_config, union="1,0,0,0")


def test_train_rows_are_the_examined_top_of_lists_with_a_positive_label(prepared, ranker_config):
    lists = prepared.lists_in(TRAIN)
    rows = _training_lists(lists, 4)
    assert rows.position.max() <= 3
    assert rows.has_positive.all()
    kept = lists.keep_rows(lists.position < 4)
    assert rows.n_requests == int(kept.has_positive.sum())


def test_train_metadata_records_the_split_and_the_held_out_decisions(trained, prepared):
    metadata = trained["consolidated"].metadata
    assert metadata["split"] == prepared.split.to_dict()
    assert metadata["held_out"] == prepared.held_out()
    assert metadata["labels"]["rules"]["search"]["revenue_step"] > 0
    assert metadata["windows"]["test"]["decisions"] == int((prepared.window == TEST).sum())


def test_train_same_data_same_seed_same_model(prepared, tables, ranker_config, trained):
    catalog, users = tables
    again = train_design("independent", prepared, catalog, users, ranker_config)
    for section, booster in trained["independent"].model.boosters.items():
        assert again.model.boosters[section].model_to_string() == booster.model_to_string()


def test_train_too_few_lists_in_a_window_refused(prepared, tables, ranker_config):
    catalog, users = tables
    window = prepared.window.copy()
    window[(prepared.lists.requests.section == "search") & (window == VALIDATION)] = -1
    broken = dataclasses.replace(prepared, window=window)
    with pytest.raises(
        TrainingDataError,
        match=r"validation window has no list with a positive label in section\(s\) \['search'\]",
    ):
        train_design("consolidated", broken, catalog, users, ranker_config)


def ranking_data(seed: int, n_lists: int = 300, size: int = 10):
    """Lists whose label grows with feature 0; feature 1 is noise; positions are the logged order."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_lists * size, 2))
    y = np.clip(np.round(x[:, 0] + 0.3 * rng.normal(size=len(x))), 0, 3).astype(int)
    positions = np.tile(np.arange(size), n_lists)
    return x, y, np.full(n_lists, size), positions


def test_lambda_ranker_learns_the_relevant_feature_and_stops_early(ranker_config):
    x, y, groups, _ = ranking_data(0)
    xv, yv, gv, _ = ranking_data(1)
    settings = dataclasses.replace(ranker_config.lightgbm, num_boost_round=200, early_stopping_rounds=5)
    ranker = LambdaRanker(settings, feature_names=("signal", "noise"), position_bias="none")
    assert ranker.fit(x, y, groups, valid=(xv, yv, gv)) is ranker
    assert ranker.best_iteration_ <= len(ranker.history_) < 200
    assert ranker.best_score_ == max(ranker.history_)
    assert ranker.booster_.num_trees() == ranker.best_iteration_
    scores = ranker.predict(xv)
    assert np.corrcoef(scores, xv[:, 0])[0, 1] > 0.8
    assert not ranker.used_positions_


def test_lambda_ranker_keeps_the_num_leaves_with_the_best_validation_score(ranker_config):
    x, y, groups, _ = ranking_data(4)
    xv, yv, gv, _ = ranking_data(5)
    settings = dataclasses.replace(
        ranker_config.lightgbm, num_leaves=(2, 7, 31), num_boost_round=30, early_stopping_rounds=5
    )
    names = ("signal", "noise")
    ranker = LambdaRanker(settings, feature_names=names, position_bias="none").fit(
        x, y, groups, valid=(xv, yv, gv)
    )
    scores = ranker.scores_by_num_leaves_
    assert list(scores) == [2, 7, 31]
    best = max(scores.values())
    assert ranker.num_leaves_ == min(k for k, v in scores.items() if v == best)
    assert ranker.best_score_ == best
    # Each candidate's score is what a fit with that tree size alone gives.
    for leaves in (2, 7, 31):
        alone = LambdaRanker(dataclasses.replace(settings, num_leaves=(leaves,)), feature_names=names)
        assert alone.fit(x, y, groups, valid=(xv, yv, gv)).best_score_ == scores[leaves]
    trees = ranker.booster_.dump_model()["tree_info"]
    assert max(t["num_leaves"] for t in trees) <= ranker.num_leaves_
    # Without validation lists there is nothing to choose by: the smallest size is used.
    plain = LambdaRanker(settings, feature_names=names, position_bias="none").fit(x, y, groups)
    assert plain.num_leaves_ == 2
    assert list(plain.scores_by_num_leaves_) == [2]


@pytest.mark.parametrize(("mode", "used"), [("unbiased", True), ("truncate", False), ("none", False)])
def test_lambda_ranker_passes_positions_only_when_unbiased(ranker_config, mode, used):
    x, y, groups, positions = ranking_data(2)
    settings = dataclasses.replace(ranker_config.lightgbm, num_boost_round=5)
    ranker = LambdaRanker(settings, feature_names=("signal", "noise"), position_bias=mode)
    ranker.fit(x, y, groups, positions=positions)
    assert ranker.used_positions_ is used


def test_lambda_ranker_unbiased_model_differs_from_the_plain_one(ranker_config):
    x, y, groups, positions = ranking_data(3)
    # Clicks fall off down the list whatever the relevance: the debiased model must weigh pairs differently.
    y = np.where(positions < 3, y, 0)
    settings = dataclasses.replace(ranker_config.lightgbm, num_boost_round=10)
    plain = LambdaRanker(settings, feature_names=("signal", "noise"), position_bias="none").fit(x, y, groups)
    debiased = LambdaRanker(settings, feature_names=("signal", "noise"), position_bias="unbiased").fit(
        x, y, groups, positions=positions
    )
    assert plain.booster_.model_to_string() != debiased.booster_.model_to_string()


def test_lambda_ranker_predict_before_fit_refused(ranker_config):
    with pytest.raises(NotFittedError, match="call fit before predict"):
        LambdaRanker(ranker_config.lightgbm, feature_names=("a",)).predict(np.zeros((1, 1)))


@pytest.mark.parametrize(
    ("x", "y", "groups", "match"),
    # Shapes and labels LightGBM would misread.
    [
        (np.zeros((4, 3)), np.zeros(4), [4], r"features of shape \(R, 2\)"),
        (np.zeros((4, 2)), np.array([0, 1, -1, 0]), [4], "integer labels >= 0"),
        (np.zeros((4, 2)), np.array([0, 1, 0.5, 0]), [4], "integer labels >= 0"),
        (np.zeros((4, 2)), np.zeros(4), [3], "group sizes >= 1 summing to 4"),
    ],
)
def test_lambda_ranker_bad_input_refused(ranker_config, x, y, groups, match):
    with pytest.raises(TrainingDataError, match=match):
        LambdaRanker(ranker_config.lightgbm, feature_names=("a", "b")).fit(x, y, np.asarray(groups))


def test_train_timings_report_rows_per_second(trained):
    timings = trained["consolidated"].timings
    assert timings["rows"] == sum(
        info["rows"] for info in trained["consolidated"].metadata["training"].values()
    )
    assert timings["rows_per_second"] == pytest.approx(timings["rows"] / timings["fit_seconds"])


def _random_lists(rng: np.random.Generator, sections: tuple[str, ...], n: int = 400) -> LabelledLists:
    """Random labelled lists of `sections`, some without rows, revenue on a few converted rows."""
    sizes = rng.integers(0, 9, size=n)
    offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    rows = int(offsets[-1])
    converted = rng.random(rows) < 0.15
    blank = np.full(n, "", dtype=object)
    requests = Requests(
        section=rng.choice(np.asarray(sections, dtype=object), size=n),
        user_id=np.arange(n, dtype=np.int64),
        time=np.sort(rng.random(n)),
        device=blank,
        source_item=np.full(n, None, dtype=object),
        category=np.full(n, None, dtype=object),
        query=blank,
    )
    return LabelledLists(
        requests=requests,
        event_id=np.array([f"e{i}" for i in range(n)], dtype=object),
        feedback_time=np.full(n, np.nan),
        revenue=rng.gamma(2.0, 20.0, size=n),
        offsets=offsets,
        item_id=rng.integers(0, 50, size=rows),
        position=np.arange(rows, dtype=np.int64) - np.repeat(offsets[:-1], sizes),
        clicked=converted | (rng.random(rows) < 0.2),
        converted=converted,
        item_revenue=np.where(converted, rng.gamma(2.0, 10.0, size=rows), 0.0),
        label=converted.astype(np.int64),
    )


@pytest.mark.parametrize("union", ["traffic", "equal", "business", "1,2,3,0.5"])
@pytest.mark.parametrize("seed", [0, 7])
def test_train_union_on_one_row_per_list_draws_the_row_level_lists(rng, ranker_config, union, seed):
    spec = ranker_config.design("consolidated")
    assert len(spec.sections) == 4
    lists = _random_lists(rng, spec.sections)
    # reference: the union drawn from one row per labelled row (lists without rows have none)
    reference = stratified_union(lists.union_frame(), union, sections=spec.sections, seed=seed)
    first = np.flatnonzero(np.r_[True, np.diff(reference.frame[UNION_LIST].to_numpy()) != 0])
    expected = reference.frame["list_id"].to_numpy()[first]
    chosen, summary = _union_lists(lists, spec, union, seed)
    np.testing.assert_array_equal(chosen.event_id, lists.event_id[expected])
    assert 0 < chosen.n_requests <= (lists.sizes > 0).sum()
    assert chosen.n_rows == reference.summary.n_rows
    assert summary["lists"] == reference.summary.n_lists
    assert summary["sections"] == [dataclasses.asdict(share) for share in reference.summary.sections]
