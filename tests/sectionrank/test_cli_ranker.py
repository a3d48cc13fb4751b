"""`sectionrank train` and `sectionrank evaluate` through click's CliRunner, on a local command group."""

from __future__ import annotations

import json
import shutil

import click
import pytest
from click.testing import CliRunner, Result

from ranker.artifact import load_artifact
from sectionrank.cli import Group
from sectionrank.commands.train import evaluate_command, train_command


@click.group(cls=Group)
def cli() -> None:
    """A local group with the two commands, turning domain errors into one line."""


cli.add_command(train_command)
cli.add_command(evaluate_command)


def invoke(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(*args: object) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def models(sim_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-models")
    for design in ("base", "consolidated"):
        ok("train", "--design", design, "--log", sim_dir / "log.db", "--out", root / design)
    return root


def test_cli_train_writes_a_model_directory_and_prints_the_sections(models):
    artifact = load_artifact(models / "consolidated")
    assert artifact.contract.design == "consolidated"
    metrics = json.loads((models / "consolidated" / "metrics.json").read_text())
    assert {row["section"] for row in metrics["rows"]} == {
        "(all)",
        "discover",
        "similar_items",
        "category_explore",
        "search",
    }


def test_cli_train_output_has_a_table_per_section(sim_dir, tmp_path):
    result = ok(
        "train", "--design", "base", "--log", sim_dir / "log.db", "--out", tmp_path / "m", "--union", "equal"
    )
    for section in ("discover", "similar_items", "category_explore"):
        assert f"{section}: " in result.stdout
    assert "search: " not in result.stdout
    assert "ndcg@10" in result.stdout
    assert "rows/s" in result.stdout
    assert load_artifact(tmp_path / "m").metadata["union"]["strategy"] == "equal"


def test_cli_evaluate_prints_designs_side_by_side_and_writes_json(models, sim_dir, tmp_path):
    out = tmp_path / "eval.json"
    result = ok(
        "evaluate",
        models / "base",
        models / "consolidated",
        "--log",
        sim_dir / "log.db",
        "--out",
        out,
        "--bootstrap",
        50,
        "--k",
        5,
    )
    header = next(line for line in result.stdout.splitlines() if line.strip().startswith("metric"))
    assert header.split() == ["metric", "logged", "base", "consolidated"]
    assert "ndcg@5" in result.stdout
    # Why base trails where sections carry a context, said under the table; the consolidated model sees it.
    assert (
        "base: it has no section-context feature, so in similar_items (source_item) and category_explore "
        "(category)"
    ) in " ".join(result.stdout.split())
    assert "consolidated: it has no" not in result.stdout
    data = json.loads(out.read_text())
    assert data["settings"]["n_bootstrap"] == 50
    assert {m["name"] for m in data["models"]} == {"logged", "base", "consolidated"}


def test_cli_evaluate_no_logged_leaves_the_reference_out(models, sim_dir):
    result = ok("evaluate", models / "base", "--log", sim_dir / "log.db", "--no-logged", "--bootstrap", 20)
    assert "logged" not in result.stdout


def test_cli_train_force_replaces_only_model_directories(models, sim_dir, tmp_path):
    refused = invoke("train", "--design", "base", "--log", sim_dir / "log.db", "--out", models / "base")
    assert refused.exit_code == 1
    assert "exists and is not empty" in refused.output
    other = tmp_path / "notes"
    other.mkdir()
    (other / "a.txt").write_text("keep me")
    result = invoke("train", "--design", "base", "--log", sim_dir / "log.db", "--out", other, "--force")
    assert result.exit_code == 1
    assert "not a model directory" in result.output
    assert (other / "a.txt").read_text() == "keep me"


def test_cli_train_force_replaces_a_model_directory(models, sim_dir, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(models / "consolidated", target)
    ok("train", "--design", "base", "--log", sim_dir / "log.db", "--out", target, "--force")
    artifact = load_artifact(target)
    assert artifact.contract.design == "base"
    assert not (target / "models").exists()


@pytest.mark.parametrize(
    ("args", "code", "match"),
    # Errors a user can cause: one line, no traceback.
    [
        (
            ["train", "--design", "base", "--log", "{tmp}/missing.db", "--out", "{tmp}/m"],
            1,
            "no such decision log",
        ),
        (
            ["train", "--design", "base", "--log", "{log}", "--out", "{tmp}/m", "--union", "fair"],
            1,
            "unknown strategy 'fair'",
        ),
        (
            ["train", "--design", "base", "--log", "{log}", "--out", "{tmp}/m", "--union", "1,2"],
            1,
            "expected 3 numbers",
        ),
        (
            ["train", "--design", "independent", "--log", "{log}", "--out", "{tmp}/m", "--union", "equal"],
            2,
            "not independent",
        ),
        (
            [
                "train",
                "--design",
                "base",
                "--log",
                "{log}",
                "--out",
                "{tmp}/m",
                "--catalog",
                "{tmp}/no.parquet",
            ],
            1,
            "no such catalog",
        ),
        (
            ["train", "--design", "hybrid", "--log", "{log}", "--out", "{tmp}/m"],
            2,
            "Invalid value for '--design'",
        ),
        (["evaluate", "{tmp}", "--log", "{log}"], 1, "not a model directory"),
        (["evaluate", "{tmp}/m", "--log", "{tmp}/missing.db"], 1, "no such decision log"),
        (
            [
                "train",
                "--design",
                "base",
                "--log",
                "{log}",
                "--out",
                "{tmp}/m",
                "--ranker-config",
                "{tmp}/r.toml",
            ],
            1,
            "file not found",
        ),
    ],
)
def test_cli_errors_are_one_line(sim_dir, tmp_path, args, code, match):
    filled = [a.format(tmp=tmp_path, log=sim_dir / "log.db") for a in args]
    result = invoke(*filled)
    assert result.exit_code == code, result.output
    assert match in result.output
    assert "Traceback" not in result.output
    if code == 1:
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1
