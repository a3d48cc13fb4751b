"""Evaluation: metrics against a naive reference and closed forms; designs side by side on held-out lists."""

from __future__ import annotations

import itertools
import json
import math
import shutil

import numpy as np
import pytest

from ranker.config import EvaluationSettings
from ranker.dataset import TEST
from ranker.errors import EvaluationError
from ranker.evaluate import LOGGED, evaluate_models, evaluate_scores
from ranker.labels import label_lists
from ranker.metrics import OVERALL
from tests.conftest import write_simulation
from tests.ranker.test_labels import SECTIONS, joined_frame

SETTINGS = EvaluationSettings(k=3, n_bootstrap=50, alpha=0.1, seed=0)


def naive_ndcg(labels: list[float], scores: list[float], k: int) -> float:
    """Exponential-gain NDCG@k of one list without tied scores, by definition."""
    ranked = [label for _, label in sorted(zip(scores, labels, strict=True), key=lambda p: -p[0])]
    dcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ranked[:k]))
    ideal = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(sorted(labels, reverse=True)[:k]))
    return dcg / ideal


def naive_recall(labels: list[float], scores: list[float], k: int) -> float:
    ranked = [label for _, label in sorted(zip(scores, labels, strict=True), key=lambda p: -p[0])]
    return sum(g > 0 for g in ranked[:k]) / sum(g > 0 for g in labels)


@pytest.fixture(scope="module")
def lists():
    return label_lists(joined_frame(seed=4, n=200), SECTIONS)


def per_list(lists, scores, fn) -> dict[str, float]:
    """Mean of `fn` over the lists with a positive label, per section."""
    values: dict[str, list[float]] = {}
    for b in range(lists.n_requests):
        a, z = lists.offsets[b], lists.offsets[b + 1]
        labels = lists.label[a:z].tolist()
        if any(g > 0 for g in labels):
            values.setdefault(str(lists.requests.section[b]), []).append(fn(labels, scores[a:z].tolist(), 3))
    return {section: float(np.mean(v)) for section, v in values.items()}


@pytest.mark.parametrize("seed", [0, 1])
def test_evaluate_scores_match_naive_ndcg_and_recall_on_random_scores(lists, seed):
    scores = np.random.default_rng(seed).normal(size=lists.n_rows)
    frame = evaluate_scores(lists, scores, SETTINGS)
    for metric, fn in (("ndcg@3", naive_ndcg), ("recall@3", naive_recall)):
        for section, expected in per_list(lists, scores, fn).items():
            row = frame[(frame["section"] == section) & (frame["metric"] == metric)].iloc[0]
            assert row["mean"] == pytest.approx(expected), (metric, section)
            assert row["ci_low"] <= row["mean"] <= row["ci_high"]


def test_evaluate_scores_perfect_ranking_has_ndcg_and_auc_one(lists):
    frame = evaluate_scores(
        lists, lists.label + 0.01 * np.random.default_rng(0).random(lists.n_rows), SETTINGS
    )
    ndcg = frame[frame["metric"] == "ndcg@3"]
    np.testing.assert_allclose(ndcg["mean"], 1.0)
    auc = frame[frame["metric"] == "auc"].dropna(subset=["mean"])
    np.testing.assert_allclose(auc["mean"], 1.0)


def test_evaluate_scores_tied_scores_count_as_every_order():
    frame = joined_frame(n=3).iloc[:1].copy()
    frame.at[0, "shown"] = np.array([1, 2, 3, 4], dtype=np.int64)
    frame.at[0, "clicks"] = np.array([0, 3], dtype=np.int64)
    frame.at[0, "conversions"] = np.array([], dtype=np.int64)
    one = label_lists(frame, SECTIONS)
    labels = one.label.tolist()
    expected = np.mean(
        [
            naive_ndcg([labels[i] for i in order], [4, 3, 2, 1], 3)
            for order in itertools.permutations(range(4))
        ]
    )
    got = evaluate_scores(one, np.zeros(4), SETTINGS)
    assert got[(got["section"] == OVERALL) & (got["metric"] == "ndcg@3")]["mean"].iloc[0] == pytest.approx(
        expected
    )


def test_evaluate_models_side_by_side_per_section(saved, sim_dir, tables, prepared, tmp_path):
    catalog, users = tables
    paths = [saved[d] for d in ("base", "consolidated", "independent")]
    report = evaluate_models(paths, sim_dir / "log.db", catalog, users, settings=SETTINGS)
    assert [m.name for m in report.models] == [LOGGED, "base", "consolidated", "independent"]
    rows = report.rows
    assert not ((rows["model"] == "base") & (rows["section"] == "search")).any()
    test = prepared.lists_in(TEST)
    for section in report.sections:
        n = int((test.requests.section == section).sum())
        assert set(rows.loc[rows["section"] == section, "n_lists"]) == {n}
    table = report.table()
    for section in report.sections:
        assert f"{section}: " in table
    assert "ndcg@3" in table
    assert "-" in table
    path = report.write_json(tmp_path / "eval.json")
    data = json.loads(path.read_text())
    assert len(data["rows"]) == len(rows)
    assert data["held_out"] == prepared.held_out()


def test_evaluate_models_same_results_as_training_time(saved, sim_dir, tables, trained, ranker_config):
    catalog, users = tables
    report = evaluate_models([saved["consolidated"]], sim_dir / "log.db", catalog, users, logged=False)
    at_training = trained["consolidated"].metrics
    got = report.rows.drop(columns=["model", "design"]).reset_index(drop=True)
    np.testing.assert_allclose(got["mean"], at_training["mean"])
    np.testing.assert_allclose(got["ci_low"], at_training["ci_low"])


def test_evaluate_models_other_log_refused(saved, tables, tmp_path):
    catalog, users = tables
    other = write_simulation(tmp_path, requests=2000, seed=11)
    with pytest.raises(EvaluationError, match="not the log the models were trained on"):
        evaluate_models([saved["base"]], other / "log.db", catalog, users)


def test_evaluate_models_different_splits_refused(saved, sim_dir, tables, tmp_path):
    catalog, users = tables
    moved = tmp_path / "moved"
    shutil.copytree(saved["base"], moved)
    metadata = json.loads((moved / "metadata.json").read_text())
    metadata["split"]["cutoffs"][0] += 1.0
    from ranker.artifact import load_artifact, save_artifact

    artifact = load_artifact(moved)
    save_artifact(
        tmp_path / "resaved",
        artifact.contract,
        artifact.boosters,
        metadata,
        extra_files={name: p.read_bytes() for name, p in artifact.files.items()},
    )
    with pytest.raises(EvaluationError, match="another time split"):
        evaluate_models([saved["base"], tmp_path / "resaved"], sim_dir / "log.db", catalog, users)


def test_evaluate_models_needs_a_model(sim_dir, tables):
    with pytest.raises(EvaluationError, match="at least one model"):
        evaluate_models([], sim_dir / "log.db", *tables)
