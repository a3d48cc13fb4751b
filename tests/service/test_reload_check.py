"""A reload builds its candidate in a separate process first: artifacts that crash, hang or fail to load, a
model of the wrong design in a slot and unknown section keys are refused with a 422 naming the key, and the
serving pipeline is untouched."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from importlib.metadata import version as package_version
from pathlib import Path

import pytest

from bandits.vw_policy import FEATURE_FORMAT, VWSettings
from heuristics import SectionsConfig
from service.app import get_state
from service.config import ServiceConfig
from service.errors import LoadError
from service.reload_check import validate


def rehash(directory: Path) -> Path:
    """Rewrite a model directory's manifest so that every file's hash matches again (an edited artifact
    that the hash check alone would accept)."""
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    files = {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in manifest["files"]}
    content = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    manifest_path.write_text(json.dumps({"files": files, "content_hash": content}, indent=2, sort_keys=True))
    return directory


def edited_model(saved, root: Path, name: str, edit) -> Path:
    directory = root / name
    shutil.copytree(saved["base"], directory)
    model = directory / "model.txt"
    model.write_bytes(edit(model.read_bytes()))
    return rehash(directory)


@pytest.fixture(scope="module")
def artifacts(saved, tmp_path_factory):
    """Bad artifacts whose hashes match: name -> (reload body, key the refusal names)."""
    root = tmp_path_factory.mktemp("bad-artifacts")
    truncated = edited_model(saved, root, "truncated", lambda data: data[: len(data) // 3])
    garbage = edited_model(saved, root, "garbage", lambda data: os.urandom(4096))
    policy_dir = root / "policy"
    policy_dir.mkdir()
    junk = b"\x00\x01not a vw model" * 100
    (policy_dir / "policy-0001.vw").write_bytes(junk)
    sections = SectionsConfig.load()
    meta = {
        "version": 1,
        "vowpalwabbit": package_version("vowpalwabbit"),
        "settings": asdict(VWSettings()),
        "arms": {s.name: [arm.id for arm in s.arms] for s in sections},
        "feature_format": FEATURE_FORMAT,
        "sha256": hashlib.sha256(junk).hexdigest(),
    }
    (policy_dir / "policy-0001.json").write_text(json.dumps(meta))
    return {
        "truncated model": ({"models": {"base": str(truncated)}}, "models.base"),
        "garbage model": ({"models": {"base": str(garbage)}}, "models.base"),
        "garbage policy": ({"policy": str(policy_dir)}, "policy"),
        "consolidated model in the base slot": (
            {"models": {"base": str(saved["consolidated"])}},
            "models.base",
        ),
        "base model in the independent slot": (
            {"models": {"independent": str(saved["base"])}},
            "models.independent",
        ),
        "unknown section": ({"section_models": {"nosuch": "base"}}, "section_models.nosuch"),
    }


# Each bad artifact: a 422 naming the key, the serving pipeline unchanged and still serving.
@pytest.mark.parametrize(
    "name",
    [
        "truncated model",
        "garbage model",
        "garbage policy",
        "consolidated model in the base slot",
        "base model in the independent slot",
        "unknown section",
    ],
)
def test_reload_refuses_a_bad_artifact_naming_its_key(client, app, artifacts, rerank_body, admin_auth, name):
    body, key = artifacts[name]
    before = get_state(app).loaded
    response = client.post("/v1/models/reload", json=body, headers=admin_auth)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["field"] == key
    assert get_state(app).loaded is before
    assert client.post("/v1/rerank", json=rerank_body()).status_code == 200


def test_reload_check_names_the_key_a_crashing_loader_was_on(config_dict, artifacts, tmp_path):
    body, _ = artifacts["truncated model"]
    config = ServiceConfig.from_dict(config_dict(tmp_path / "log.db"), environ={}).with_reload(
        {"models": {"base": Path(body["models"]["base"])}}
    )
    with pytest.raises(LoadError, match=r"^models\.base: ") as caught:
        validate(config, timeout=60)
    assert caught.value.key == "models.base"


def test_reload_check_kills_a_hanging_loader_and_names_its_key(config_dict, tmp_path, monkeypatch):
    # The models load as LightGBM boosters (no compiled predictor to load), so that on a busy machine the
    # 3 s reach the policy step.
    monkeypatch.setenv("SECTIONRANK_COMPILED", "0")
    # A policy whose metadata never finishes reading (a FIFO nobody writes), as on a stalled mount.
    hanging = tmp_path / "hanging-policy"
    hanging.mkdir()
    (hanging / "policy-0001.vw").write_bytes(b"x")
    os.mkfifo(hanging / "policy-0001.json")
    config = ServiceConfig.from_dict(config_dict(tmp_path / "log.db"), environ={}).with_reload(
        {"policy": str(hanging)}
    )
    with pytest.raises(LoadError, match=r"^policy: loading did not finish within 3 s"):
        validate(config, timeout=3)


def test_reload_check_accepts_the_serving_config(config_dict, tmp_path):
    config = ServiceConfig.from_dict(config_dict(tmp_path / "log.db"), environ={})
    assert validate(config, timeout=60) > 0
    assert not (tmp_path / "log.db").exists()
