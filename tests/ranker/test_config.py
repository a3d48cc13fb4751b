"""The ranker config: the shipped file, partial overrides, and the refusal of invalid configs by key."""

from __future__ import annotations

import numpy as np
import pytest

from ranker.config import DEFAULT_CONFIG, LabelRule, RankerConfig
from ranker.errors import RankerConfigError, RankerError
from ranker.features import FEATURES, TASK_TYPE


def test_config_shipped_file_defines_four_sections_and_three_designs():
    config = RankerConfig.load()
    assert config.section_names == ("discover", "similar_items", "category_explore", "search")
    assert config.section_contexts["similar_items"] == "source_item"
    assert set(config.designs) == {"base", "consolidated", "independent"}
    assert config.designs["base"].sections == ("discover", "similar_items", "category_explore")
    assert sum(config.split.fractions) == pytest.approx(1.0)


def test_config_base_has_no_task_type_or_context_features_and_consolidated_has_them():
    config = RankerConfig.load()
    base = config.designs["base"].features
    assert TASK_TYPE not in base
    assert all(FEATURES[f].context is None for f in base)
    consolidated = config.designs["consolidated"].features
    assert TASK_TYPE in consolidated
    assert {f for f, d in FEATURES.items() if d.context is not None} <= set(consolidated)


def test_config_partial_override_keeps_the_other_keys():
    config = RankerConfig.from_dict({"lightgbm": {"num_leaves": 15}, "split": {"stats": 0.2, "train": 0.5}})
    default = RankerConfig.load(DEFAULT_CONFIG)
    assert config.lightgbm.num_leaves == (15,)
    assert config.lightgbm.params()["num_leaves"] == 15
    assert config.lightgbm.learning_rate == default.lightgbm.learning_rate
    assert config.split.fractions == (0.2, 0.5, default.split.validation, default.split.test)
    assert config.sections == default.sections


def test_config_load_reads_a_file_over_the_defaults(tmp_path):
    path = tmp_path / "ranker.toml"
    path.write_text('[labels]\nposition_bias = "none"\n')
    config = RankerConfig.load(path)
    assert config.labels.position_bias == "none"
    assert config.source == str(path)


SECTIONS = {
    "a": {"context": "none"},
    "b": {"context": "query", "labels": {"click": 1, "conversion": 3}},
}
DESIGNS = {
    "base": {"sections": ["a"], "features": ["affinity"]},
    "consolidated": {"sections": ["a", "b"], "features": ["task_type", "affinity", "query_match"]},
    "independent": {"sections": ["a", "b"], "features": ["affinity", "query_match"]},
}


def test_config_num_leaves_list_becomes_ascending_choices():
    config = RankerConfig.from_dict({"lightgbm": {"num_leaves": [31, 7]}})
    assert config.lightgbm.num_leaves == (7, 31)
    assert config.lightgbm.params(31)["num_leaves"] == 31


def test_config_own_sections_and_designs_replace_the_defaults_whole():
    config = RankerConfig.from_dict({"sections": SECTIONS, "designs": DESIGNS})
    assert config.section_names == ("a", "b")
    assert config.sections["b"].labels == LabelRule(click=1, conversion=3, revenue_step=0.0, max_grade=3)
    assert config.designs["consolidated"].features == ("task_type", "affinity", "query_match")


def with_design(name: str, **changes) -> dict:
    return {"sections": SECTIONS, "designs": {**DESIGNS, name: {**DESIGNS[name], **changes}}}


@pytest.mark.parametrize(
    ("data", "match"),
    # One invalid key at a time; the message names it.
    [
        (
            {"lightgbm": {"num_leaves": 1}},
            r"lightgbm\.num_leaves: expected an integer in \[2, 131072\], found 1",
        ),
        ({"lightgbm": {"num_leaves": []}}, r"lightgbm\.num_leaves: expected an integer or a non-empty list"),
        ({"lightgbm": {"num_leaves": [7, 7]}}, r"lightgbm\.num_leaves: expected distinct values"),
        (
            {"lightgbm": {"num_leaves": [7, 1.5]}},
            r"lightgbm\.num_leaves\[1\]: expected an integer in \[2, 131072\], found 1\.5",
        ),
        ({"lightgbm": {"learning_rate": 0}}, r"lightgbm\.learning_rate: expected a number in \(0, 1\]"),
        ({"lightgbm": {"colour": 1}}, r"lightgbm\.colour: unknown key"),
        ({"split": {"test": 0.5}}, r"split: shares sum to 1\.3, expected 1"),
        ({"split": {"test": 0}}, r"split\.test: expected a number in \(0, 1\]"),
        (
            {"labels": {"position_bias": "ips"}},
            r"labels\.position_bias: expected one of unbiased, truncate, none",
        ),
        ({"labels": {"position_bias": 1}}, r"labels\.position_bias: expected a string, found 1"),
        (
            {"labels": {"max_position": 0}},
            r"labels\.max_position: expected an integer in \[1, 10000\], found 0",
        ),
        ({"labels": {"wait_seconds": -1}}, r"labels\.wait_seconds: expected a number > 0, found -1"),
        ({"labels": {"wait_seconds": float("nan")}}, r"labels\.wait_seconds: expected a number, found nan"),
        (
            {"stats": {"coec_prior_strength": 0}},
            r"stats\.coec_prior_strength: expected a number > 0, found 0",
        ),
        (
            {"stats": {"cvr_prior_strength": float("inf")}},
            r"stats\.cvr_prior_strength: expected a finite number > 0, found inf",
        ),
        (
            {"stats": {"cvr_prior_strength": True}},
            r"stats\.cvr_prior_strength: expected a number, found True",
        ),
        ({"evaluation": {"alpha": 1.0}}, r"evaluation\.alpha: expected a number in \(0, 1\), found 1\.0"),
        ({"evaluation": {"alpha": 0}}, r"evaluation\.alpha: expected a number in \(0, 1\], found 0"),
        ({"evaluation": {"k": "10"}}, r"evaluation\.k: expected an integer in \[1, 10000\], found '10'"),
        ({"schema_version": 2}, r"schema_version: expected 1, found 2"),
        ({"extra": 1}, r"config\.extra: unknown key"),
        ({"sections": {}}, r"sections: expected at least one"),
        (
            {"sections": {"a": {"context": "page"}}},
            r"sections\.a\.context: expected one of none.*found 'page'",
        ),
        ({"sections": {"a": []}}, r"sections\.a: expected a table, found list"),
        (
            {"sections": {"a": {"labels": {"revenue_step": -1}}}},
            r"sections\.a\.labels\.revenue_step: expected a number >= 0, found -1",
        ),
        (
            {"sections": {"a": {"labels": {"click": 3, "conversion": 2}}}},
            r"sections\.a\.labels\.conversion: expected a grade >= click \(3\), found 2",
        ),
        (
            {"sections": {"a": {"labels": {"conversion": 2, "max_grade": 4}}}},
            r"sections\.a\.labels\.max_grade: needs a revenue_step > 0",
        ),
        (
            {"sections": {"a": {"labels": {"click": 31}}}},
            r"sections\.a\.labels\.click: expected an integer in \[0, 30\]",
        ),
        (with_design("base", sections=["a", "z"]), r"designs\.base\.sections: unknown sections \['z'\]"),
        (with_design("base", sections=[]), r"designs\.base\.sections: expected a non-empty list of section"),
        (with_design("base", sections=["a", "a"]), r"designs\.base\.sections: a section appears twice"),
        (with_design("base", features="affinity"), r"designs\.base\.features: expected a non-empty list"),
        (
            with_design("base", features=["affinity", "task_type"]),
            r"designs\.base\.features: the base design cannot use \['task_type'\], found in",
        ),
        (
            with_design("base", features=["affinity", "query_match"]),
            r"designs\.base\.features: the base design cannot use \['query_match'\]",
        ),
        (
            with_design("consolidated", features=["affinity"]),
            r"designs\.consolidated\.features: the consolidated design needs \['task_type'\], "
            r"found \['affinity'\]",
        ),
        (
            with_design("independent", features=["task_type"]),
            r"designs\.independent\.features: the independent design cannot use \['task_type'\]",
        ),
        (with_design("base", colour=1), r"designs\.base\.colour: unknown key"),
        ({"designs": {**DESIGNS, "hybrid": DESIGNS["base"]}}, r"designs\.hybrid: unknown key"),
        (
            with_design("base", features=["affinity", "colour"]),
            r"designs\.base\.features: unknown features \['colour'\]",
        ),
        (with_design("base", features=["affinity", "affinity"]), r"a feature appears twice"),
        (with_design("base", union="1,2"), r"designs\.base\.union: .*expected 1 numbers"),
        (with_design("base", union="popular"), r"designs\.base\.union: unknown strategy 'popular'"),
        (with_design("base", union=0.5), r"designs\.base\.union: expected a strategy name or numbers"),
        ([("lightgbm", {})], r"config: expected a table, found list"),
        ({"sections": SECTIONS, "designs": {"base": DESIGNS["base"]}}, r"designs: missing design tables"),
    ],
)
def test_config_invalid_refused_naming_the_key(data, match):
    with pytest.raises(RankerConfigError, match=match):
        RankerConfig.from_dict(data)


def test_config_wait_seconds_may_be_infinite():
    config = RankerConfig.from_dict({"labels": {"wait_seconds": float("inf")}})
    assert config.labels.wait_seconds == float("inf")


def test_config_missing_or_broken_file_refused(tmp_path):
    with pytest.raises(RankerConfigError, match="file not found"):
        RankerConfig.load(tmp_path / "none.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[lightgbm\n")
    with pytest.raises(RankerError, match="not valid TOML"):
        RankerConfig.load(broken)
    with pytest.raises(RankerConfigError, match="is a directory"):
        RankerConfig.load(tmp_path)


@pytest.mark.parametrize(
    ("rule", "clicked", "converted", "revenue", "expected"),
    # grade = conversion + floor(revenue / step) (capped) for conversions, click for clicks, else 0.
    [
        (LabelRule(1, 2), [0, 1, 1], [0, 0, 1], [0.0, 0.0, 50.0], [0, 1, 2]),
        (LabelRule(0, 1), [1, 1], [0, 1], [0.0, 10.0], [0, 1]),
        (LabelRule(1, 2, 30.0, 4), [1, 1, 1, 1], [1, 1, 1, 1], [0.0, 29.9, 65.0, 1000.0], [2, 2, 4, 4]),
    ],
)
def test_label_rule_grades_closed_form(rule, clicked, converted, revenue, expected):
    grades = rule.grades(np.array(clicked, bool), np.array(converted, bool), np.array(revenue))
    np.testing.assert_array_equal(grades, expected)


def test_config_every_key_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "ranker.md").read_text()
    raw = RankerConfig.load().to_dict()
    keys = [
        f"{table}.{key}"
        for table in ("labels", "split", "stats", "lightgbm", "evaluation")
        for key in raw[table]
    ]
    keys += ["sections.<name>.context", "sections.<name>.labels", "schema_version"]
    keys += [f"designs.<design>.{key}" for key in ("sections", "features", "union")]
    for key in keys:
        assert f"`{key}`" in doc, key
    for name in FEATURES:
        assert f"| `{name}` |" in doc, name
