"""A reload builds its candidate in a separate process first: artifacts that crash, hang or fail to load, a
model of the wrong design in a slot and unknown section keys are refused with a 422 naming the key, and the
serving pipeline is untouched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.app import get_state
from service.config import ServiceConfig
from service.errors import LoadError
from service.reload_check import validate
from tests.service.faults import bad_artifacts


@pytest.fixture(scope="module")
def artifacts(saved, tmp_path_factory):
    """Bad artifacts whose hashes match: name -> (reload body, key the refusal names)."""
    return bad_artifacts(saved, tmp_path_factory.mktemp("bad-artifacts"))


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
    # The models load as LightGBM boosters (no compiled predictor to load), and 20 s leave the validating
    # process time for its imports and the models on a busy machine (3 s did not), so the policy step is
    # reached.
    monkeypatch.setenv("SECTIONRANK_COMPILED", "0")
    # A policy whose metadata never finishes reading (a FIFO nobody writes), as on a stalled mount.
    hanging = tmp_path / "hanging-policy"
    hanging.mkdir()
    (hanging / "policy-0001.vw").write_bytes(b"x")
    os.mkfifo(hanging / "policy-0001.json")
    config = ServiceConfig.from_dict(config_dict(tmp_path / "log.db"), environ={}).with_reload(
        {"policy": str(hanging)}
    )
    with pytest.raises(LoadError, match=r"^policy: loading did not finish within 20 s"):
        validate(config, timeout=20)


def test_reload_check_accepts_the_serving_config(config_dict, tmp_path):
    config = ServiceConfig.from_dict(config_dict(tmp_path / "log.db"), environ={})
    assert validate(config, timeout=60) > 0
    assert not (tmp_path / "log.db").exists()
