"""Model artifacts: a save/load round trip, and every way a contract can fail to hold."""

import json

import lightgbm as lgb
import numpy as np
import pytest

from ranker.artifact import (
    FeatureSpec,
    InferenceContract,
    check_contract,
    library_versions,
    load_artifact,
    save_artifact,
)
from ranker.errors import ContractMismatchError

FEATURES = (
    FeatureSpec("affinity", "float", 0.0),
    FeatureSpec("age_days", "float", 30.0),
    FeatureSpec("task_type", "category", -1.0, ("discover", "search")),
)


def train_booster(seed: int = 0) -> lgb.Booster:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, 3))
    x[:, 2] = rng.integers(0, 2, 400)
    y = (x[:, 0] + 0.5 * x[:, 2] + 0.1 * rng.normal(size=400) > 0).astype(int)
    data = lgb.Dataset(
        x, y, group=[20] * 20, feature_name=[f.name for f in FEATURES], categorical_feature=[2]
    )
    params = {"objective": "lambdarank", "verbosity": -1, "num_leaves": 7, "seed": seed, "num_threads": 1}
    return lgb.train(params, data, num_boost_round=10)


def contract(**changes) -> InferenceContract:
    base = {
        "design": "consolidated",
        "features": FEATURES,
        "sections": ("discover", "search"),
        "task_types": ("discover", "search"),
        "library_versions": library_versions(),
    }
    return InferenceContract(**{**base, **changes})


@pytest.fixture(scope="module")
def booster():
    return train_booster()


@pytest.fixture
def saved(tmp_path, booster):
    return save_artifact(tmp_path / "model", contract(), {"*": booster}, {"rows": 400})


def test_artifact_round_trip_same_predictions(saved, booster):
    artifact = load_artifact(saved, expected_features=FEATURES, expected_task_types=("discover", "search"))
    x = np.random.default_rng(1).normal(size=(50, 3))
    np.testing.assert_array_equal(artifact.booster_for("search").predict(x), booster.predict(x))
    assert artifact.metadata == {"rows": 400}
    assert artifact.contract == contract()
    assert artifact.version.startswith("consolidated-")


def test_artifact_independent_design_one_model_per_section(tmp_path):
    boosters = {"discover": train_booster(1), "search": train_booster(2)}
    path = save_artifact(tmp_path / "ind", contract(design="independent"), boosters)
    artifact = load_artifact(path)
    x = np.random.default_rng(3).normal(size=(10, 3))
    for section, booster in boosters.items():
        np.testing.assert_array_equal(artifact.booster_for(section).predict(x), booster.predict(x))
    with pytest.raises(ContractMismatchError, match="does not serve section 'similar_items'"):
        artifact.booster_for("similar_items")


def test_artifact_content_hash_is_stable(tmp_path, booster):
    a = load_artifact(save_artifact(tmp_path / "a", contract(), {"*": booster}))
    b = load_artifact(save_artifact(tmp_path / "b", contract(), {"*": booster}))
    assert a.content_hash == b.content_hash


def edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("tamper", "match"),
    # Corrupted artifacts: every file is covered by the manifest.
    [
        (
            lambda d: (d / "model.txt").write_text((d / "model.txt").read_text() + "\n"),
            "model.txt does not match",
        ),
        (
            lambda d: edit_json(d / "contract.json", lambda c: c.update(design="base")),
            "contract.json does not",
        ),
        (lambda d: (d / "metadata.json").write_text("{}"), "metadata.json does not match"),
        (lambda d: (d / "model.txt").unlink(), "model.txt is missing"),
        (lambda d: (d / "manifest.json").unlink(), "not a model directory"),
        (lambda d: (d / "manifest.json").write_text("{"), "unreadable manifest"),
        (lambda d: edit_json(d / "manifest.json", lambda m: m.update(content_hash="0")), "content hash"),
    ],
)
def test_artifact_corrupted_refused(saved, tamper, match):
    tamper(saved)
    with pytest.raises(ContractMismatchError, match=match):
        load_artifact(saved)


@pytest.mark.parametrize(
    ("expected", "match"),
    # The code computes other features than the model was trained on.
    [
        (FEATURES[:2], r"needs \['task_type'\]"),
        ((*FEATURES, FeatureSpec("price")), r"computes \['price'\]"),
        ((FEATURES[1], FEATURES[0], FEATURES[2]), "order differs"),
        ((FEATURES[0], FeatureSpec("age_days", "float", 0.0), FEATURES[2]), "'age_days' default changed"),
        (
            (*FEATURES[:2], FeatureSpec("task_type", "category", -1.0, ("discover", "search", "new"))),
            "'task_type' categories changed",
        ),
    ],
)
def test_artifact_feature_mismatch_refused(saved, expected, match):
    with pytest.raises(ContractMismatchError, match=match):
        load_artifact(saved, expected_features=expected)


def test_artifact_changed_task_types_refused(saved):
    with pytest.raises(ContractMismatchError, match="task_type categories"):
        load_artifact(saved, expected_task_types=("discover", "search", "similar_items"))


def test_artifact_other_lightgbm_major_refused(tmp_path, booster):
    versions = {**library_versions(), "lightgbm": "3.3.5"}
    path = save_artifact(tmp_path / "old", contract(library_versions=versions), {"*": booster})
    with pytest.raises(ContractMismatchError, match=r"lightgbm 3\.3\.5"):
        load_artifact(path)


def test_artifact_save_refuses_booster_with_other_features(tmp_path, booster):
    other = contract(features=(FeatureSpec("x"), FeatureSpec("y"), FeatureSpec("z")))
    with pytest.raises(ContractMismatchError, match="differ from the contract"):
        save_artifact(tmp_path / "m", other, {"*": booster})


def test_contract_unknown_design_refused():
    with pytest.raises(ContractMismatchError, match="design"):
        contract(design="hybrid")


# ------------------------------------------------------------------------------------------- extra files


def test_artifact_extra_files_round_trip_under_the_content_hash(tmp_path, booster):
    extra = {"item_stats.parquet": b"PAR1 table", "reports/metrics.json": b'{"ndcg": 0.5}'}
    path = save_artifact(tmp_path / "m", contract(), {"*": booster}, extra_files=extra)
    artifact = load_artifact(path)
    assert {name: p.read_bytes() for name, p in artifact.files.items()} == extra
    plain = load_artifact(save_artifact(tmp_path / "plain", contract(), {"*": booster}))
    assert plain.files == {}
    assert artifact.content_hash != plain.content_hash


def test_artifact_tampered_extra_file_refused(tmp_path, booster):
    path = save_artifact(tmp_path / "m", contract(), {"*": booster}, extra_files={"stats.bin": b"abc"})
    (path / "stats.bin").write_bytes(b"abd")
    with pytest.raises(ContractMismatchError, match=r"stats\.bin does not match its hash"):
        load_artifact(path)


@pytest.mark.parametrize(
    "name",
    # Names that would overwrite the artifact's own files or leave its directory.
    ["model.txt", "contract.json", "manifest.json", "metadata.json", "models/x.txt", "../x", "/tmp/x", ""],
)
def test_artifact_reserved_extra_file_names_refused(tmp_path, booster, name):
    with pytest.raises(ContractMismatchError, match="extra file"):
        save_artifact(tmp_path / "m", contract(), {"*": booster}, extra_files={name: b"x"})


def test_artifact_single_model_writes_no_models_directory(saved):
    assert not (saved / "models").exists()


def test_check_contract_alone_refuses_other_features(saved):
    artifact = load_artifact(saved)
    check_contract(
        saved, artifact.contract, expected_features=FEATURES, expected_task_types=("discover", "search")
    )
    with pytest.raises(ContractMismatchError, match=r"needs \['task_type'\]"):
        check_contract(saved, artifact.contract, expected_features=FEATURES[:2])
