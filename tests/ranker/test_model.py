"""Saved rankers: round trip, online scores equal offline ones, and every mismatch refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bandits.log import DecisionLog
from ranker.artifact import load_artifact
from ranker.compiled import SMOKE_ROWS_FILE
from ranker.config import RankerConfig
from ranker.dataset import TEST
from ranker.errors import ContractMismatchError
from ranker.model import ITEM_STATS_FILE, METRICS_FILE, RankerModel


def load(path, tables, config=None) -> RankerModel:
    catalog, users = tables
    return RankerModel.load(path, catalog=catalog, users=users, config=config)


@pytest.mark.parametrize("design", ["base", "consolidated", "independent"])
def test_model_round_trip_scores_equal_the_trained_model(saved, trained, tables, prepared, design):
    model = load(saved[design], tables)
    lists = prepared.lists_in(TEST, model.sections)
    np.testing.assert_array_equal(model.score_lists(lists), trained[design].model.score_lists(lists))
    assert model.version.startswith(f"{design}-")
    assert set(model.boosters) == set(trained[design].model.boosters)


def test_model_directory_holds_stats_and_metrics_under_the_content_hash(saved):
    artifact = load_artifact(saved["consolidated"])
    assert set(artifact.files) == {ITEM_STATS_FILE, METRICS_FILE, SMOKE_ROWS_FILE}
    manifest = json.loads((saved["consolidated"] / "manifest.json").read_text())
    assert {ITEM_STATS_FILE, METRICS_FILE} <= set(manifest["files"])
    metrics = json.loads(artifact.files[METRICS_FILE].read_text())
    assert metrics["design"] == "consolidated"
    assert {row["section"] for row in metrics["rows"]} >= {"search", "discover"}


def test_model_online_score_equals_offline_score_of_a_logged_request(saved, tables, sim_dir, prepared):
    model = load(saved["consolidated"], tables)
    with DecisionLog.open(sim_dir / "log.db") as log:
        frame = log.joined()
    test_events = set(prepared.lists.event_id[prepared.window == TEST].tolist())
    frame = frame[frame["event_id"].isin(test_events)].iloc[:40]
    features, request_of_row = model.builder.from_log(frame)
    for i, row in enumerate(frame.itertuples()):
        online = model.score(row.section, row.user_id, {**row.context, "time": row.time}, row.shown.tolist())
        offline = model.booster_for(row.section).predict(features[request_of_row == i], num_threads=1)
        np.testing.assert_array_equal(online, offline)


def test_model_base_does_not_serve_search(saved, tables):
    model = load(saved["base"], tables)
    assert not model.serves("search")
    with pytest.raises(ContractMismatchError, match="does not serve section 'search'"):
        model.score("search", 1, {"query": "x"}, [1, 2])


def test_model_empty_candidate_list_scores_nothing(saved, tables):
    assert load(saved["consolidated"], tables).score("discover", 1, {}, []).shape == (0,)


@pytest.fixture
def copy_of(saved, tmp_path):
    def make(design: str):
        target = tmp_path / design
        shutil.copytree(saved[design], target)
        return target

    return make


def test_model_corrupted_item_stats_refused(copy_of, tables):
    path = copy_of("consolidated")
    data = bytearray((path / ITEM_STATS_FILE).read_bytes())
    data[-20] ^= 0xFF
    (path / ITEM_STATS_FILE).write_bytes(bytes(data))
    with pytest.raises(ContractMismatchError, match=r"item_stats\.parquet does not match its hash"):
        load(path, tables)


def config_with(**designs) -> RankerConfig:
    default = RankerConfig.load()
    data = default.to_dict()
    for name, features in designs.items():
        data["designs"][name]["features"] = features
    return RankerConfig.from_dict(data)


def swapped(features: list[str]) -> list[str]:
    return [features[1], features[0], *features[2:]]


@pytest.mark.parametrize(
    ("design", "change", "match"),
    # The code's config or tables no longer match what the model was trained with.
    [
        ("base", lambda c, u, f: (c, u, config_with(base=f[:-1])), r"the model needs \['device'\]"),
        ("base", lambda c, u, f: (c, u, config_with(base=swapped(f))), "feature order differs"),
        ("consolidated", lambda c, u, f: (c, u.assign(segment="vip"), None), "'segment' categories changed"),
        (
            "consolidated",
            lambda c, u, f: (c, u.assign(home_device="watch"), None),
            "'device' categories changed",
        ),
    ],
)
def test_model_mismatched_contract_refused(copy_of, tables, design, change, match):
    path = copy_of(design)
    catalog, users = tables
    features = list(json.loads((path / "metadata.json").read_text())["features"])
    catalog, users, config = change(catalog, users, features)
    with pytest.raises(ContractMismatchError, match=match):
        RankerModel.load(path, catalog=catalog, users=users, config=config)


def test_model_changed_section_list_refused(copy_of, tables):
    data = RankerConfig.load().to_dict()
    data["sections"]["deals"] = {"context": "none"}
    config = RankerConfig.from_dict(data)
    with pytest.raises(ContractMismatchError, match="'task_type' categories changed"):
        load(copy_of("consolidated"), tables, config)


def test_model_changed_default_in_code_refused(copy_of, tables, monkeypatch):
    from ranker import feature_defs, features

    changed = dict(features.FEATURES)
    changed["age_days"] = feature_defs.FeatureDef("age_days", "float", -5.0, None, "")
    monkeypatch.setattr(features, "FEATURES", changed)
    with pytest.raises(ContractMismatchError, match=r"'age_days' default changed: model -1\.0, code -5\.0"):
        load(copy_of("base"), tables)
