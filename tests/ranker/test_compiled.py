"""The compiled tree predictor: it scores as LightGBM does, is cached by content, and falls back cleanly.

The session's saved models (tests/conftest.py) are compiled once, by the first load; the tests that change a
model directory work on a copy (its compiled files come along, so nothing compiles twice but what must).
"""

from __future__ import annotations

import logging
import shutil
import sys

import numpy as np
import pytest

from ranker import compiled
from ranker.artifact import load_artifact
from ranker.compiled import (
    SMOKE_ROWS_FILE,
    TOLERANCE,
    CompiledPredictor,
    LightGBMPredictor,
    cache_path,
    model_file,
    predictor,
    read_smoke_rows,
)
from ranker.dataset import TEST
from ranker.model import RankerModel

DESIGNS = ("base", "consolidated", "independent")


def load(path, tables, compiled=True) -> RankerModel:
    catalog, users = tables
    return RankerModel.load(path, catalog=catalog, users=users, compiled=compiled)


@pytest.fixture
def fresh_import_state():
    """Forget whether lleaves imported, before and after the test (the answer is cached per process)."""
    compiled._lleaves.cache_clear()
    yield
    compiled._lleaves.cache_clear()


@pytest.mark.parametrize("design", DESIGNS)
def test_compiled_agrees_with_lightgbm_on_every_test_row(saved, tables, prepared, design):
    model = load(saved[design], tables)
    assert {p.kind for p in model.predictors.values()} == {"lleaves"}
    lists = prepared.lists_in(TEST, model.sections)
    features = model.builder.transform(lists.requests, lists.item_id, lists.request_of_row)
    section_of_row = lists.section_of_row
    checked = 0
    for section in model.sections:
        rows = features[section_of_row == section]
        ours = model.predict(section, rows)
        theirs = model.booster_for(section).predict(rows, num_threads=1)
        assert ours.shape == theirs.shape
        assert np.max(np.abs(ours - theirs), initial=0.0) <= TOLERANCE
        checked += len(rows)
    assert checked == lists.n_rows > 0


def test_compiled_smoke_rows_are_saved_without_pickle(saved, trained):
    artifact = load_artifact(saved["consolidated"])
    rows = read_smoke_rows(artifact.files[SMOKE_ROWS_FILE])
    np.testing.assert_array_equal(rows, trained["consolidated"].smoke_rows)
    assert rows.shape[1] == len(artifact.contract.features)
    assert 0 < len(rows) <= 256
    # allow_pickle=False reads it: a plain float64 array, no object pickled.
    assert np.load(artifact.files[SMOKE_ROWS_FILE], allow_pickle=False).dtype == np.float64


def test_compiled_cache_is_beside_the_artifact_and_reused(saved, tables, monkeypatch):
    load(saved["independent"], tables)  # compiles whatever is missing
    artifact = load_artifact(saved["independent"])
    for key in artifact.boosters:
        assert cache_path(model_file(artifact.path, key)).is_file()

    def no_compile(*args, **kwargs):
        raise AssertionError("compiled again although the cache holds the model")

    monkeypatch.setattr(compiled, "_compile", no_compile)
    again = load(saved["independent"], tables)
    assert {p.kind for p in again.predictors.values()} == {"lleaves"}


def test_compiled_cache_is_keyed_by_the_model_content(saved, tmp_path):
    copy = shutil.copytree(saved["base"], tmp_path / "base")
    before = cache_path(model_file(copy, "*"))
    text = (copy / "model.txt").read_text()
    (copy / "model.txt").write_text(text.replace("\n\n", "\n\n\n", 1))
    after = cache_path(model_file(copy, "*"))
    assert before.parent == after.parent == copy / compiled.CACHE_DIR
    assert before.name != after.name
    assert before.name.startswith("model-")


def test_compiled_disagreeing_model_falls_back_with_one_line(saved, tmp_path, caplog):
    copy = shutil.copytree(saved["base"], tmp_path / "base")
    artifact = load_artifact(copy)
    smoke = read_smoke_rows(artifact.files[SMOKE_ROWS_FILE])
    booster = artifact.boosters["*"]
    path = model_file(copy, "*")
    assert isinstance(predictor(path, booster, smoke), CompiledPredictor)
    # The same compiled file checked against a booster that scores otherwise.
    with caplog.at_level(logging.WARNING, logger=compiled.__name__):
        wrong = predictor(path, _Shifted(booster), smoke)
    assert isinstance(wrong, LightGBMPredictor)
    assert len(caplog.records) == 1
    assert "differs from LightGBM" in caplog.records[0].getMessage()
    assert not cache_path(path).exists()  # the disagreeing file is removed, the next load compiles anew


class _Shifted:
    """A booster whose scores are off by 1e-6: more than the tolerance."""

    def __init__(self, booster):
        self.booster = booster

    def predict(self, features, num_threads=1):
        return self.booster.predict(features, num_threads=num_threads) + 1e-6


def test_compiled_package_missing_falls_back_with_one_log_line(
    saved, tables, monkeypatch, caplog, fresh_import_state
):
    monkeypatch.setitem(sys.modules, "lleaves", None)  # `import lleaves` raises ImportError
    with caplog.at_level(logging.WARNING, logger=compiled.__name__):
        models = [load(saved[design], tables) for design in DESIGNS]
    kinds = {p.kind for m in models for p in m.predictors.values()}
    assert kinds == {"lightgbm"}
    assert len(caplog.records) == 1
    assert "compiled predictor unavailable" in caplog.records[0].getMessage()
    section = models[0].sections[0]
    features = np.asarray(read_smoke_rows(load_artifact(saved["base"]).files[SMOKE_ROWS_FILE]))
    np.testing.assert_array_equal(
        models[0].predict(section, features), models[0].booster_for(section).predict(features, num_threads=1)
    )


@pytest.mark.parametrize("value", ["0", "false", "off", "NO"])
def test_compiled_disabled_by_environment(saved, tables, monkeypatch, value):
    monkeypatch.setenv(compiled.ENV, value)
    model = load(saved["base"], tables)
    assert {p.kind for p in model.predictors.values()} == {"lightgbm"}


def test_compiled_off_unless_loading_asks(saved, tables):
    catalog, users = tables
    model = RankerModel.load(saved["base"], catalog=catalog, users=users)
    assert {p.kind for p in model.predictors.values()} == {"lightgbm"}


def test_compiled_artifact_without_smoke_rows_serves_lightgbm(saved, tmp_path, caplog):
    artifact = load_artifact(saved["base"])
    with caplog.at_level(logging.WARNING, logger=compiled.__name__):
        chosen = predictor(model_file(artifact.path, "*"), artifact.boosters["*"], None)
    assert isinstance(chosen, LightGBMPredictor)
    assert len(caplog.records) == 1
    assert "no smoke rows" in caplog.records[0].getMessage()


def test_compiled_prepare_reports_each_booster(saved):
    assert compiled.prepare(saved["independent"]) == dict.fromkeys(
        load_artifact(saved["independent"]).boosters, "lleaves"
    )


def test_compiled_failed_compile_falls_back_with_one_line(saved, tmp_path, monkeypatch, caplog):
    copy = shutil.copytree(saved["base"], tmp_path / "base", ignore=shutil.ignore_patterns("compiled"))
    artifact = load_artifact(copy)

    def broken(*args, **kwargs):
        raise RuntimeError("LLVM ERROR: out of memory")

    monkeypatch.setattr(compiled, "_compile", broken)
    smoke = read_smoke_rows(artifact.files[SMOKE_ROWS_FILE])
    with caplog.at_level(logging.WARNING, logger=compiled.__name__):
        chosen = predictor(model_file(copy, "*"), artifact.boosters["*"], smoke)
    assert isinstance(chosen, LightGBMPredictor)
    assert len(caplog.records) == 1
    assert "compiling failed (LLVM ERROR: out of memory)" in caplog.records[0].getMessage()
