"""Following a policy directory in one worker: the fallback before any version, each published version
validated and swapped in, a bad version refused and counted, rollback followed, and the worker views."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bandits.shipped import publish_version, rollback
from heuristics import SectionsConfig
from service.app import create_app, get_state
from service.config import ServiceConfig
from service.follow import followed_directory, policy_source, read_views, workers_dir
from tests.service.gunicorn_server import metric

SECTIONS = SectionsConfig.load()


def _publish(directory: Path, arm: int, *, bad: bool = False) -> str:
    """A version serving each section's arm number `arm` (with `bad`, an arm no section has)."""
    sources = {
        s.name: {
            "kind": "fixed",
            "arm": "no-such-arm" if bad else s.arms[arm].id,
            "from": "best_fixed_logged",
        }
        for s in SECTIONS
    }
    return publish_version(directory, sources, {}, {"note": "test"})


@pytest.fixture
def followed(config_dict, tmp_path):
    """An app following an empty policy directory (polling off: the tests check by hand)."""
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    app = create_app(config_dict(tmp_path / "log.db", policy=str(policy_dir), policy_poll_seconds=0.0))
    yield app, policy_dir
    get_state(app).close()


def _served_arm(client, rerank_body) -> tuple[str, float, str]:
    body = client.post("/v1/rerank", json=rerank_body()).get_json()
    return body["arm"]["id"], body["arm"]["propensity"], body["model_versions"]["policy"]


def test_follow_serves_the_fallback_until_a_version_is_published(followed, rerank_body):
    app, policy_dir = followed
    client = app.test_client()
    models = client.get("/v1/models").get_json()
    assert models["policy"]["shipped_version"] is None
    assert models["policy"]["serving"] == "uniform"
    assert models["policy"]["followed"] == str(policy_dir)
    assert [w["policy_version"] for w in models["workers"]] == [None]
    _, propensity, _ = _served_arm(client, rerank_body)
    assert propensity == pytest.approx(1 / len(SECTIONS["discover"].arms))
    assert get_state(app).follow_policy() is False  # nothing published: nothing to do


def test_follow_swaps_in_each_published_version_and_refuses_a_bad_one(followed, rerank_body):
    app, policy_dir = followed
    state, client = get_state(app), app.test_client()
    _publish(policy_dir, 1)
    assert state.follow_policy() is True
    arm, propensity, version = _served_arm(client, rerank_body)
    assert (arm, propensity, version) == (SECTIONS["discover"].arms[1].id, 1.0, "shipped-0001")
    assert client.get("/v1/models").get_json()["worker"]["policy_version"] == "0001"

    _publish(policy_dir, 0, bad=True)
    assert state.follow_policy() is False
    assert state.follow_policy() is False  # a refused version is not tried again
    follows = metric(client.get("/metrics").get_data(), "sectionrank_policy_follows_total")
    assert follows[(("result", "refused"),)] == 1
    assert follows[(("result", "ok"),)] == 1
    view = client.get("/v1/models").get_json()["worker"]
    assert view["policy_version"] == "0001"
    assert view["refused"]["version"] == "0002"
    assert view["refused"]["key"] == "policy"
    assert _served_arm(client, rerank_body)[0] == SECTIONS["discover"].arms[1].id

    _publish(policy_dir, 2)
    assert state.follow_policy() is True
    assert _served_arm(client, rerank_body)[2] == "shipped-0003"


def test_follow_serves_the_previous_version_after_rollback(followed, rerank_body):
    app, policy_dir = followed
    state, client = get_state(app), app.test_client()
    _publish(policy_dir, 1)
    _publish(policy_dir, 2)
    assert state.follow_policy() is True
    assert _served_arm(client, rerank_body)[2] == "shipped-0002"
    assert rollback(policy_dir) == ("0002", "0001")
    assert state.follow_policy() is True
    arm, _, version = _served_arm(client, rerank_body)
    assert (arm, version) == (SECTIONS["discover"].arms[1].id, "shipped-0001")


def test_follow_thread_follows_within_the_poll_interval(config_dict, tmp_path, rerank_body):
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    app = create_app(config_dict(tmp_path / "log.db", policy=str(policy_dir), policy_poll_seconds=0.2))
    try:
        client = app.test_client()
        _publish(policy_dir, 1)
        deadline = time.monotonic() + 60
        while client.get("/v1/models").get_json()["policy"]["shipped_version"] != "0001":
            assert time.monotonic() < deadline, "the worker did not follow version 0001"
            assert client.post("/v1/rerank", json=rerank_body()).status_code == 200
            time.sleep(0.1)
        views = read_views(workers_dir(get_state(app).config))
        assert [v["policy_version"] for v in views] == ["0001"]
    finally:
        get_state(app).close()
    assert read_views(workers_dir(get_state(app).config)) == []  # a closed worker removes its view


def test_follow_mixes_policy_explore_into_every_version(config_dict, tmp_path, rerank_body):
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    config = config_dict(
        tmp_path / "log.db", policy=str(policy_dir), policy_poll_seconds=0.0, policy_explore=0.2
    )
    app = create_app(config)
    try:
        client, n_arms = app.test_client(), len(SECTIONS["discover"].arms)
        _publish(policy_dir, 1)
        assert get_state(app).follow_policy() is True
        served = {}
        for _ in range(40):
            arm, propensity, version = _served_arm(client, rerank_body)
            served[arm] = propensity
            assert version == "shipped-0001+explore=0.2"
        shipped_arm = SECTIONS["discover"].arms[1].id
        assert served.pop(shipped_arm) == pytest.approx(0.8 + 0.2 / n_arms)
        assert all(p == pytest.approx(0.2 / n_arms) for p in served.values())
    finally:
        get_state(app).close()


def test_policy_source_pins_the_published_version(config_dict, tmp_path):
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    config = ServiceConfig.from_dict(config_dict(tmp_path / "log.db", policy=str(policy_dir)), environ={})
    assert followed_directory(config) == policy_dir
    assert policy_source(config) == ("uniform", None)
    _publish(policy_dir, 0)
    assert policy_source(config) == (str(policy_dir / "versions" / "0001"), "0001")
    pinned = config.with_reload({"policy": str(policy_dir / "versions" / "0001")})
    assert followed_directory(pinned) is None
    assert policy_source(pinned) == (str(policy_dir / "versions" / "0001"), "0001")
    assert followed_directory(config.with_reload({"policy": "epsilon:0.1"})) is None


def test_a_missing_policy_directory_is_refused_not_served_as_the_fallback(config_dict, tmp_path):
    app = create_app(config_dict(tmp_path / "log.db", policy=str(tmp_path / "typo")))
    try:
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["error"]["field"] == "policy"
    finally:
        get_state(app).close()
