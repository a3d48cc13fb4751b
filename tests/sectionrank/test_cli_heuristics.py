"""The `sectionrank sections` and `sectionrank rerank` commands, through click's CliRunner."""

from __future__ import annotations

import json
import re

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from heuristics import ContextBatch, SectionPipeline, SectionsConfig
from heuristics.frames import items_from_frame
from sectionrank.cli import main
from sectionrank.sample import sample_candidates

CONFIG = SectionsConfig.load()

SMALL_CONFIG = """
schema_version = 1

[sections.feed]
description = "A small feed."
pipeline = ["freshness", "category_cap"]
knobs.freshness = { weight = [0.0, 0.4] }
knobs.category_cap = { cap = [1, 3] }
"""


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def ok(*args: str) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result


def rerank_json(*args: str) -> dict:
    return json.loads(ok("rerank", "--json", *args).stdout)


def expected_ids(
    frame: pd.DataFrame, section: str, arm_index: int, k: int, context: ContextBatch
) -> list[str]:
    """What the library returns for the same table: the CLI must not change the result."""
    ids, scores, items = items_from_frame(frame)
    cfg = CONFIG[section]
    ranking = SectionPipeline(cfg).rerank(scores, items, context, cfg.arms[arm_index], k)
    return [str(ids[i]) for i in ranking.order[0]]


def candidate_table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": [f"c{i}" for i in range(n)],
            "score": rng.normal(size=n).round(3),
            "category": rng.integers(0, 4, size=n),
            "subcategory": rng.integers(0, 8, size=n),
            "age_days": rng.exponential(10.0, size=n).round(2),
            "promoted": rng.random(n) < 0.2,
        }
    )
    for j in range(4):
        frame[f"emb_{j}"] = rng.normal(size=n).round(3)
    return frame


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path under `group`, nested groups included (and the groups themselves)."""
    paths = []
    context = click.Context(group)
    for name in group.list_commands(context):
        paths.append((*prefix, name))
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            paths.extend(all_commands(command, (*prefix, name)))
    return paths


# ----------------------------------------------------------------------------------------------------------
# sections
# ----------------------------------------------------------------------------------------------------------


def test_sections_lists_every_section_and_arm():
    out = ok("sections").output
    for section in CONFIG:
        assert f"[{section.name}]" in out
        assert " -> ".join(section.pipeline) in out
        for arm in section.arms:
            assert arm.id in out
        assert f"arms: {len(section.arms)}; default arm {section.default_arm.id}" in out


def test_sections_json_describes_every_section():
    data = json.loads(ok("sections", "--json").stdout)
    assert list(data) == [s.name for s in CONFIG]
    for section in CONFIG:
        entry = data[section.name]
        assert entry["pipeline"] == list(section.pipeline)
        assert [a["id"] for a in entry["arms"]] == [a.id for a in section.arms]
        assert [a["knobs"] for a in entry["arms"]] == [dict(a.knobs) for a in section.arms]
        assert entry["default_arm"] == section.default_arm.id
        assert entry["serving"]["default_k"] == section.serving.default_k


def test_sections_reads_another_config(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SMALL_CONFIG)
    data = json.loads(ok("sections", "--json", "--config", str(path)).stdout)
    assert list(data) == ["feed"]
    assert len(data["feed"]["arms"]) == 4
    assert str(path) in ok("sections", "--config", str(path)).output


# ----------------------------------------------------------------------------------------------------------
# rerank
# ----------------------------------------------------------------------------------------------------------


def test_rerank_sample_returns_what_the_library_returns():
    for arm_index in (0, CONFIG["discover"].default_arm.index, len(CONFIG["discover"].arms) - 1):
        out = rerank_json(
            "--section", "discover", "--sample", "60", "--seed", "3", "--arm", str(arm_index), "--k", "9"
        )
        assert out["section"] == "discover"
        assert out["arm"]["id"] == CONFIG["discover"].arms[arm_index].id
        assert [item["rank"] for item in out["items"]] == list(range(1, 10))
        frame = sample_candidates(60, 3)
        assert [item["id"] for item in out["items"]] == expected_ids(
            frame, "discover", arm_index, 9, ContextBatch()
        )


@pytest.mark.parametrize("section", [s.name for s in CONFIG])
def test_rerank_sample_runs_every_section(section):
    out = rerank_json("--section", section, "--sample", "30", "--arm", "-1", "--k", "7")
    ids = [item["id"] for item in out["items"]]
    assert len(ids) == len(set(ids)) == 7
    table = ok("rerank", "--section", section, "--sample", "30", "--k", "7").output
    assert table.count("item-") == 7
    assert CONFIG[section].default_arm.id in table


def test_rerank_defaults_to_the_sections_default_arm_and_k():
    out = rerank_json("--section", "search", "--sample", "50")
    assert out["arm"]["id"] == CONFIG["search"].default_arm.id
    assert len(out["items"]) == CONFIG["search"].serving.default_k


def test_rerank_finds_an_arm_by_id():
    arm = CONFIG["similar_items"].arms[3]
    out = rerank_json("--section", "similar_items", "--sample", "20", "--arm", arm.id)
    assert out["arm"] == arm.to_dict()


def test_rerank_candidates_csv_returns_what_the_library_returns(tmp_path):
    frame = candidate_table(40, seed=5)
    path = tmp_path / "candidates.csv"
    frame.to_csv(path, index=False)
    out = rerank_json("--section", "discover", "--candidates", str(path), "--arm", "4", "--k", "12")
    assert [item["id"] for item in out["items"]] == expected_ids(frame, "discover", 4, 12, ContextBatch())
    scores = [item["score"] for item in out["items"]]
    assert all(np.isfinite(scores))


def test_rerank_candidates_with_a_source_item_and_a_category(tmp_path):
    frame = candidate_table(40, seed=6)
    path = tmp_path / "candidates.csv"
    frame.to_csv(path, index=False)
    source = frame[[f"emb_{j}" for j in range(4)]].to_numpy()[17]
    out = rerank_json(
        "--section", "similar_items", "--candidates", str(path), "--source-item", "c17", "--arm", "-1"
    )
    context = ContextBatch.single(source_embedding=source)
    k = CONFIG["similar_items"].serving.default_k
    last = len(CONFIG["similar_items"].arms) - 1
    assert [item["id"] for item in out["items"]] == expected_ids(frame, "similar_items", last, k, context)

    out = rerank_json(
        "--section", "category_explore", "--candidates", str(path), "--category", "2", "--arm", "0"
    )
    context = ContextBatch.single(category=2)
    assert [item["id"] for item in out["items"]] == expected_ids(frame, "category_explore", 0, k, context)


# Errors a user can make: one line starting with "Error:", a non-zero exit, no traceback.
def _bad_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[sections.feed\n")
    return ["sections", "--config", str(path)], r"Error: config: .*bad\.toml is not valid TOML"


def _invalid_config(tmp_path):
    path = tmp_path / "invalid.toml"
    path.write_text(SMALL_CONFIG.replace("cap = [1, 3]", "cap = [0, 3]"))
    return ["rerank", "--config", str(path), "--section", "feed", "--sample", "5"], (
        r"Error: sections\.feed\.knobs\.category_cap\.cap: expected a value in \[1, 1000\], found 0"
    )


def _missing_config(tmp_path):
    return [
        "sections",
        "--config",
        str(tmp_path / "none.toml"),
    ], r"Error: config: file not found: .*none\.toml"


def _bad_candidates(tmp_path):
    path = tmp_path / "candidates.csv"
    candidate_table(5, seed=1).drop(columns=["promoted"]).to_csv(path, index=False)
    return [
        "rerank",
        "--section",
        "discover",
        "--candidates",
        str(path),
    ], r"Error: candidates: missing column 'promoted'"


USER_ERRORS = [
    pytest.param(_bad_toml, id="bad TOML"),
    pytest.param(_invalid_config, id="invalid config"),
    pytest.param(_missing_config, id="missing config"),
    pytest.param(_bad_candidates, id="bad candidates"),
    pytest.param(
        lambda tmp: (
            ["rerank", "--section", "home", "--sample", "5"],
            r"Error: section: unknown section 'home'",
        ),
        id="unknown section",
    ),
    pytest.param(
        lambda tmp: (
            ["rerank", "--section", "discover", "--sample", "5", "--arm", "discover-0"],
            r"Error: sections\.discover\.arms: no arm with id 'discover-0'",
        ),
        id="unknown arm id",
    ),
    pytest.param(
        lambda tmp: (
            ["rerank", "--section", "search", "--sample", "5", "--arm", "99"],
            r"Error: sections\.search\.arms: no arm at index 99; the section has 9 arms",
        ),
        id="arm index out of range",
    ),
]


@pytest.mark.parametrize("case", USER_ERRORS)
def test_cli_reports_a_user_error_in_one_line(case, tmp_path):
    args, match = case(tmp_path)
    result = invoke(*args)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error:")
    assert re.match(match, lines[0]), lines[0]
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


# Wrong usage: click's usage message and exit code 2, still without a traceback.
USAGE_ERRORS = [
    (["rerank", "--section", "discover"], "give exactly one of --candidates FILE or --sample N"),
    (["rerank", "--section", "discover", "--sample", "3", "--candidates", "x.csv"], "'x.csv' does not exist"),
    (["rerank", "--sample", "3"], "Missing option '--section'"),
    (["rerank", "--section", "discover", "--sample", "3", "--k", "0"], "0 is not in the range x>=1"),
]


@pytest.mark.parametrize(("args", "message"), USAGE_ERRORS)
def test_cli_reports_wrong_usage(args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Error:" in result.output
    assert "Traceback" not in result.output


def test_rerank_needs_its_sections_context_with_a_candidate_file(tmp_path):
    path = tmp_path / "candidates.csv"
    candidate_table(5, seed=2).to_csv(path, index=False)
    result = invoke("rerank", "--section", "category_explore", "--candidates", str(path))
    assert result.exit_code == 2
    assert "section 'category_explore' needs --category" in result.output
    result = invoke("rerank", "--section", "similar_items", "--candidates", str(path), "--source-item", "zz")
    assert result.exit_code == 2
    assert "no candidate with id 'zz'" in result.output


@pytest.mark.parametrize("path", all_commands(main), ids=" ".join)
def test_cli_help_of_every_command_has_an_example(path):
    result = ok(*path, "--help")
    assert "Example" in result.output


def test_rerank_similar_items_accepts_an_empty_sample():
    out = rerank_json("--section", "similar_items", "--sample", "0")
    assert out["items"] == []


def test_rerank_reports_an_unreadable_candidate_file_in_one_line(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    result = invoke("rerank", "--section", "discover", "--candidates", str(path))
    assert result.exit_code != 0
    assert result.output.startswith("Error:") or "\nError:" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_group_help_has_an_example():
    assert "Example" in ok("--help").output
