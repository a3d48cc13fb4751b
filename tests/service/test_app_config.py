"""The service config (TOML + environment) and `sectionrank serve`'s checks before it starts gunicorn."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import service.config
from sectionrank.cli import main
from service.config import DEFAULT_SECTION_MODELS, ServiceConfig
from service.errors import ServiceConfigError, ServiceError
from tests.service.cases import FEED_SECTIONS


def test_config_shipped_file_loads_with_the_documented_defaults():
    config = ServiceConfig.load(environ={})
    assert dict(config.section_models) == dict(DEFAULT_SECTION_MODELS)
    assert config.section_models["search"] == "independent"
    assert config.policy == "default"
    assert config.max_body_bytes == 1_048_576
    assert config.admin_token == ""


def test_config_relative_paths_resolve_against_the_file(tmp_path):
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "service.toml"
    path.write_text('store = "data/store.db"\nlog = "/abs/log.db"\n[models]\nbase = "m/base"\n')
    config = ServiceConfig.load(path, environ={})
    assert config.store == tmp_path / "conf" / "data" / "store.db"
    assert config.log == Path("/abs/log.db")
    assert config.models["base"] == tmp_path / "conf" / "m" / "base"


def test_config_shipped_file_resolves_relative_paths_against_its_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = ServiceConfig.load(environ={})
    shipped = Path(service.config.__file__).parent
    assert config.store == shipped / "store.db"
    assert config.log == shipped / "decisions.db"
    assert config.models["base"] == shipped / "models" / "base"


def test_config_environment_overrides_the_file(tmp_path):
    (tmp_path / "models" / "consolidated").mkdir(parents=True)
    environ = {
        "SECTIONRANK_ADMIN_TOKEN": "tok",
        "SECTIONRANK_STORE": "/env/store.db",
        "SECTIONRANK_POLICY": "epsilon:0.1",
        "SECTIONRANK_SEED": "7",
        "SECTIONRANK_MODELS": str(tmp_path / "models"),
    }
    config = ServiceConfig.from_dict({"store": "a.db", "log": "b.db", "admin_token": "file"}, environ=environ)
    assert config.admin_token == "tok"
    assert config.store == Path("/env/store.db")
    assert config.policy == "epsilon:0.1"
    assert config.seed == 7
    assert dict(config.models) == {"consolidated": tmp_path / "models" / "consolidated"}


def test_config_public_view_hides_the_token():
    config = ServiceConfig.from_dict({"store": "a", "log": "b", "admin_token": "s3cr3t-QZ"}, environ={})
    assert "admin_token" not in config.public()
    assert "s3cr3t-QZ" not in json.dumps(config.public())


# Each row: a config mapping and the key the error must name.
INVALID = [
    ({"log": "b"}, "store"),
    ({"store": "a"}, "log"),
    ({"store": 3, "log": "b"}, "store"),
    ({"store": "a", "log": "b", "colour": 1}, "colour"),
    ({"store": "a", "log": "b", "models": "m"}, "models"),
    ({"store": "a", "log": "b", "models": {"fancy": "m"}}, "models.fancy"),
    ({"store": "a", "log": "b", "models": {"base": ""}}, "models.base"),
    ({"store": "a", "log": "b", "section_models": {"discover": "best"}}, "section_models.discover"),
    ({"store": "a", "log": "b", "section_models": ["x"]}, "section_models"),
    ({"store": "a", "log": "b", "policy": ""}, "policy"),
    ({"store": "a", "log": "b", "reward_wait_seconds": -1}, "reward_wait_seconds"),
    ({"store": "a", "log": "b", "reward_wait_seconds": True}, "reward_wait_seconds"),
    ({"store": "a", "log": "b", "max_body_bytes": 10}, "max_body_bytes"),
    ({"store": "a", "log": "b", "max_body_bytes": 2.5}, "max_body_bytes"),
    ({"store": "a", "log": "b", "seed": -1}, "seed"),
    ({"store": "a", "log": "b", "admin_token": 5}, "admin_token"),
    ({"store": "a", "log": "b", "heuristics": "yes"}, "heuristics"),
]


@pytest.mark.parametrize(("data", "key"), INVALID)
def test_config_invalid_values_name_the_key(data, key):
    with pytest.raises(ServiceConfigError, match=rf"^service config: {key}: ") as info:
        ServiceConfig.from_dict(data, environ={})
    assert info.value.key == key


# Each row: environment variables over a valid file, and the key the error must name.
INVALID_ENVIRONMENT = [
    ({"SECTIONRANK_SEED": "x"}, "seed"),
    ({"SECTIONRANK_SEED": "-2"}, "seed"),
    ({"SECTIONRANK_SEED": "1.5"}, "seed"),
]


@pytest.mark.parametrize(("environ", "key"), INVALID_ENVIRONMENT)
def test_config_invalid_environment_values_name_the_key(environ, key):
    with pytest.raises(
        ServiceConfigError, match=rf"^service config: {key}: expected an integer >= 0, found "
    ):
        ServiceConfig.from_dict({"store": "a", "log": "b"}, environ=environ)


def test_config_environment_numbers_are_text_converted_before_the_check():
    config = ServiceConfig.from_dict(
        {"store": "a", "log": "b", "seed": 3}, environ={"SECTIONRANK_SEED": " 12 "}
    )
    assert config.seed == 12
    assert ServiceConfig.from_dict({"store": "a", "log": "b", "seed": 3}, environ={}).seed == 3


def test_config_error_is_a_service_error_naming_its_key():
    with pytest.raises(ServiceConfigError) as info:
        ServiceConfig.from_dict({"store": "a", "log": "b", "seed": "7"}, environ={})
    assert isinstance(info.value, ServiceError)
    assert (info.value.field, info.value.status) == ("seed", 422)
    assert info.value.message == "expected an integer >= 0, found '7'"


def test_config_unreadable_or_invalid_toml_names_the_file(tmp_path):
    with pytest.raises(ServiceConfigError, match=r"file: file not found: .*none\.toml"):
        ServiceConfig.load(tmp_path / "none.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("store = \n")
    with pytest.raises(ServiceConfigError, match=r"bad\.toml is not valid TOML"):
        ServiceConfig.load(bad, environ={})


# Each row: reload overrides and the key the error must name.
INVALID_OVERRIDES = [
    ({"models": {"fancy": "/x"}}, "models.fancy"),
    ({"models": {"base": ""}}, "models.base"),
    ({"models": "x"}, "models"),
    ({"section_models": {"discover": "other"}}, "section_models.discover"),
    ({"section_models": ["x"]}, "section_models"),
    ({"policy": ""}, "policy"),
]


@pytest.mark.parametrize(("overrides", "key"), INVALID_OVERRIDES)
def test_config_with_reload_refuses_invalid_overrides_naming_the_key(overrides, key):
    config = ServiceConfig.from_dict({"store": "a", "log": "b"}, environ={})
    with pytest.raises(ServiceConfigError, match=rf"^service config: {key}: "):
        config.with_reload(overrides)


def test_config_with_reload_merges_the_overrides():
    config = ServiceConfig.from_dict({"store": "a", "log": "b", "models": {"base": "/m/base"}}, environ={})
    overrides = {"models": {"consolidated": "/m/c"}, "section_models": {"discover": "consolidated"}}
    reloaded = config.with_reload({**overrides, "policy": "uniform"})
    assert dict(reloaded.models) == {"base": Path("/m/base"), "consolidated": Path("/m/c")}
    assert dict(reloaded.section_models) == {**DEFAULT_SECTION_MODELS, "discover": "consolidated"}
    assert reloaded.policy == "uniform"
    assert (config.policy, dict(config.models)) == ("default", {"base": Path("/m/base")})


def test_config_serving_problems_name_each_unserved_section_and_design():
    config = ServiceConfig.from_dict({"store": "a", "log": "b", "models": {"base": "/m/base"}}, environ={})
    problems = config.serving_problems(["discover", "similar_items", "search", "feed"])
    assert [(p.key, p.problem) for p in problems] == [
        ("section_models.feed", "no design serves section 'feed'"),
        ("models.independent", "no model directory, but it serves 'search'"),
    ]
    assert config.serving_problems(["discover", "similar_items"]) == []


# -- sectionrank serve, before gunicorn --------------------------------------------------------------------


def test_serve_dry_run_prints_the_address_a_curl_and_gunicorn_without_preload(store_db, saved, tmp_path):
    args = [
        "--store",
        str(store_db),
        "--log",
        str(tmp_path / "log.db"),
        "--models",
        str(Path(saved["base"]).parent),
    ]
    result = CliRunner().invoke(main, ["serve", *args, "--port", "8123", "--workers", "3", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "on http://127.0.0.1:8123 with 3 workers" in lines[0]
    curl = shlex.split(next(line for line in lines if line.strip().startswith("curl ")))
    body = json.loads(curl[curl.index("-d") + 1])
    assert body["section"] == "discover"
    assert len(body["candidates"]) == 8
    gunicorn = shlex.split(lines[-1])
    assert gunicorn[1:4] == ["-P", "-m", "sectionrank.gunicorn_main"]
    assert "--preload" not in gunicorn
    assert gunicorn[gunicorn.index("--workers") + 1] == "3"
    assert gunicorn[gunicorn.index("--bind") + 1] == "127.0.0.1:8123"


def test_serve_refuses_a_missing_store_and_models_in_one_line(tmp_path):
    args = ["--store", str(tmp_path / "none.db"), "--models", str(tmp_path), "--dry-run"]
    result = CliRunner().invoke(main, ["serve", *args])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "no catalog table (run `sectionrank load-catalog`)" in result.output
    assert "models.base: no model directory, but it serves 'discover'" in result.output


def test_serve_refuses_an_invalid_config_in_one_line(tmp_path):
    path = tmp_path / "service.toml"
    path.write_text('store = "s.db"\nlog = "l.db"\nseed = "x"\n')
    result = CliRunner().invoke(main, ["serve", "--config", str(path), "--dry-run"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: service config: seed: expected an integer >= 0, found 'x'"


def test_serve_refuses_a_section_no_design_serves_in_one_line(store_db, saved, tmp_path):
    sections = tmp_path / "sections.toml"
    sections.write_text(FEED_SECTIONS)
    args = ["--store", str(store_db), "--log", str(tmp_path / "log.db")]
    args += ["--models", str(Path(saved["base"]).parent)]
    path = tmp_path / "service.toml"
    path.write_text(f'store = "s.db"\nlog = "l.db"\nsections_config = "{sections}"\n')
    result = CliRunner().invoke(main, ["serve", "--config", str(path), *args, "--dry-run"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: section_models.feed: no design serves section 'feed'"


def test_serve_creates_the_log_before_its_workers_start(tmp_path):
    """Two workers that found no log created it at once; the one that lost the race failed to boot, and
    gunicorn's master stopped. `serve` now creates it first, so the workers only open it."""
    from bandits.log import DecisionLog
    from sectionrank.commands.serve import create_log

    log = tmp_path / "served.db"
    create_log(log)
    create_log(log)  # an existing log is opened as it is
    with DecisionLog.open(log) as opened:
        assert len(opened.decisions()) == 0
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(click.ClickException, match=r"^log: "):
        create_log(blocked / "served.db")
