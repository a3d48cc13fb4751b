"""The sections config: the shipped file, the refusal of invalid configs, and stable arm ids."""

from __future__ import annotations

import copy
import re
import tomllib
from typing import Any

import pytest

from heuristics import ConfigError, SectionsConfig
from heuristics.config import DEFAULT_CONFIG, arm_id
from heuristics.registry import HEURISTICS

BASE_TOML = """
schema_version = 1

[sections.feed]
description = "A test feed."
required_context = []
normalize = "minmax"
pipeline = ["freshness", "promoted", "mmr"]
params = { mmr = { similarity = "category" } }
knobs.freshness = { weight = [0.0, 0.5], half_life_days = [7.0] }
knobs.promoted = { weight = [0.0, 0.1, 0.2] }
knobs.mmr = { lambda = [1.0, 0.7] }
default_arm.freshness = { weight = 0.5, half_life_days = 7.0 }
default_arm.promoted = { weight = 0.1 }
default_arm.mmr = { lambda = 0.7 }
serving = { default_k = 10, max_candidates = 500, latency_budget_ms = 20.0 }
"""

# The same config with every table's keys and every value list in another order.
REORDERED_TOML = """
[sections.feed]
serving = { latency_budget_ms = 20.0, max_candidates = 500, default_k = 10 }
default_arm.mmr = { lambda = 0.7 }
default_arm.promoted = { weight = 0.1 }
default_arm.freshness = { half_life_days = 7.0, weight = 0.5 }
knobs.mmr = { lambda = [0.7, 1.0] }
knobs.promoted = { weight = [0.2, 0.0, 0.1] }
knobs.freshness = { half_life_days = [7.0], weight = [0.5, 0.0] }
params = { mmr = { similarity = "category" } }
pipeline = ["freshness", "promoted", "mmr"]
normalize = "minmax"
required_context = []
description = "A test feed, described differently."

"""


def base() -> dict[str, Any]:
    return tomllib.loads(BASE_TOML)


def ids(config: SectionsConfig, section: str = "feed") -> dict[str, dict[str, float]]:
    return {arm.id: dict(arm.knobs) for arm in config[section].arms}


def edit(path: str, value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    """The base config with the dotted `path` set to `value` (or deleted)."""
    data = copy.deepcopy(base())
    *parents, last = path.split(".")
    table = data
    for key in parents:
        table = table.setdefault(key, {})
    if delete:
        del table[last]
    else:
        table[last] = value
    return data


# ----------------------------------------------------------------------------------------------------------
# The shipped config
# ----------------------------------------------------------------------------------------------------------


def test_default_config_loads_every_section(default_config):
    assert [s.name for s in default_config] == ["discover", "similar_items", "category_explore", "search"]
    assert default_config.source == str(DEFAULT_CONFIG)


def test_default_config_arms_are_the_product_of_the_knob_values(default_config):
    for section in default_config:
        expected = 1
        for values in section.knob_values.values():
            expected *= len(values)
        assert len(section.arms) == expected
        assert [arm.index for arm in section.arms] == list(range(expected))
        assert len({arm.id for arm in section.arms}) == expected
        assert len({tuple(arm.knobs.values()) for arm in section.arms}) == expected
        assert section.default_arm in section.arms


def test_default_config_arms_carry_every_knob_of_the_pipeline(default_config):
    for section in default_config:
        expected = [f"{step}.{knob}" for step in section.pipeline for knob in HEURISTICS[step].KNOBS]
        assert list(section.knob_names) == expected
        for arm in section.arms:
            assert list(arm.knobs) == expected


def test_default_config_default_arm_has_the_configured_values(default_config):
    arm = default_config["discover"].default_arm
    assert dict(arm.knobs) == {
        "freshness.weight": 0.2,
        "freshness.half_life_days": 7.0,
        "freshness.offset_days": 0.0,
        "promoted.weight": 0.1,
        "mmr.lambda": 0.8,
    }


# ----------------------------------------------------------------------------------------------------------
# Invalid configs: each refused with the dotted key at fault
# ----------------------------------------------------------------------------------------------------------

S = r"sections\.feed"
INVALID = [
    # (id, config, dotted key the message starts with, more of the message)
    (
        "unknown heuristic",
        edit("sections.feed.pipeline", ["freshness", "boost_all"]),
        rf"{S}\.pipeline",
        "unknown heuristic 'boost_all'",
    ),
    (
        "pipeline entry not a name",
        edit("sections.feed.pipeline", ["freshness", ["mmr"]]),
        rf"{S}\.pipeline",
        r"unknown heuristic \['mmr'\]",
    ),
    ("empty pipeline", edit("sections.feed.pipeline", []), rf"{S}\.pipeline", "non-empty list"),
    ("missing pipeline", edit("sections.feed.pipeline", delete=True), rf"{S}\.pipeline", "non-empty list"),
    (
        "repeated step",
        edit("sections.feed.pipeline", ["promoted", "promoted", "mmr"]),
        rf"{S}\.pipeline",
        "appears twice",
    ),
    (
        "unknown knob",
        edit("sections.feed.knobs.mmr", {"lamda": [0.5]}),
        rf"{S}\.knobs\.mmr\.lamda",
        "unknown key",
    ),
    (
        "knobs of a step not in the pipeline",
        edit("sections.feed.knobs.category_cap", {"cap": [2]}),
        rf"{S}\.knobs\.category_cap",
        "unknown key",
    ),
    ("unknown top-level key", {**base(), "sectoins": {}}, r"config\.sectoins", "unknown key"),
    ("unknown section key", edit("sections.feed.knob", {}), rf"{S}\.knob", "unknown key"),
    ("schema version", {**base(), "schema_version": 2}, r"schema_version", "expected 1, found 2"),
    ("no sections", {"schema_version": 1}, r"sections", "at least one"),
    ("section not a table", {"sections": {"feed": 3}}, rf"{S}", "expected a table, found int"),
    (
        "weight below range",
        edit("sections.feed.knobs.promoted", {"weight": [-0.1]}),
        rf"{S}\.knobs\.promoted\.weight",
        r"in \[0, 10\], found -0\.1",
    ),
    (
        "lambda above range",
        edit("sections.feed.knobs.mmr", {"lambda": [0.5, 1.5]}),
        rf"{S}\.knobs\.mmr\.lambda",
        r"in \[0, 1\], found 1\.5",
    ),
    (
        "half-life at open bound",
        edit("sections.feed.knobs.freshness", {"half_life_days": [0.0]}),
        rf"{S}\.knobs\.freshness\.half_life_days",
        r"in \(0, 3650\]",
    ),
    (
        "knob not a number",
        edit("sections.feed.knobs.mmr", {"lambda": ["high"]}),
        rf"{S}\.knobs\.mmr\.lambda",
        "expected a number, found 'high'",
    ),
    (
        "knob a boolean",
        edit("sections.feed.knobs.mmr", {"lambda": [True]}),
        rf"{S}\.knobs\.mmr\.lambda",
        "expected a number, found True",
    ),
    (
        "knob not finite",
        edit("sections.feed.knobs.mmr", {"lambda": [float("nan")]}),
        rf"{S}\.knobs\.mmr\.lambda",
        "finite",
    ),
    (
        "empty value list",
        edit("sections.feed.knobs.promoted", {"weight": []}),
        rf"{S}\.knobs\.promoted\.weight",
        "empty list",
    ),
    (
        "duplicate values",
        edit("sections.feed.knobs.promoted", {"weight": [0.1, 0.2, 0.1]}),
        rf"{S}\.knobs\.promoted\.weight",
        "duplicate values",
    ),
    (
        "duplicate values in two spellings",
        edit("sections.feed.knobs.promoted", {"weight": [0, 0.0]}),
        rf"{S}\.knobs\.promoted\.weight",
        "duplicate values",
    ),
    ("explicit arms with both knobs", {**base()}, rf"{S}\.arms", "not both"),
    ("duplicate explicit arms", None, rf"{S}\.arms\[2\]", "duplicate of arm 0"),
    ("explicit arms empty", None, rf"{S}\.arms", "non-empty list"),
    ("explicit arm unknown knob", None, rf"{S}\.arms\[0\]\.mmr\.lamda", "unknown key"),
    ("explicit arm out of range", None, rf"{S}\.arms\[1\]\.promoted\.weight", r"in \[0, 10\]"),
    (
        "default arm not among the arms",
        edit("sections.feed.default_arm.mmr", {"lambda": 0.9}),
        rf"{S}\.default_arm",
        "not one of the arms",
    ),
    (
        "default arm unknown heuristic",
        edit("sections.feed.default_arm.boost", {}),
        rf"{S}\.default_arm\.boost",
        "unknown key",
    ),
    (
        "score step after an order step",
        edit("sections.feed.pipeline", ["freshness", "mmr", "promoted"]),
        rf"{S}\.pipeline",
        "score step 'promoted' must come before the order step 'mmr'",
    ),
    (
        "mmr after category_cap",
        None,
        rf"{S}\.pipeline",
        "'mmr' ranks by score, so it must come before 'category_cap'",
    ),
    (
        "source_similarity without source_item",
        None,
        rf"{S}\.required_context",
        "'source_similarity' reads context 'source_item'",
    ),
    (
        "category_match without category",
        None,
        rf"{S}\.required_context",
        "'category_match' reads context 'category'",
    ),
    (
        "unknown context field",
        edit("sections.feed.required_context", ["user"]),
        rf"{S}\.required_context",
        "expected a list drawn from",
    ),
    (
        "unknown normalisation",
        edit("sections.feed.normalize", "softmax"),
        rf"{S}\.normalize",
        "found 'softmax'",
    ),
    (
        "unknown param",
        edit("sections.feed.params.mmr", {"similarity": "category", "metric": "cos"}),
        rf"{S}\.params\.mmr\.metric",
        "unknown key",
    ),
    (
        "bad param value",
        edit("sections.feed.params.mmr", {"similarity": "colour"}),
        rf"{S}\.params\.mmr\.similarity",
        "expected one of embedding, category, subcategory",
    ),
    (
        "params of a step not in the pipeline",
        edit("sections.feed.params.category_cap", {"field": "category"}),
        rf"{S}\.params\.category_cap",
        "unknown key",
    ),
    (
        "serving unknown key",
        edit("sections.feed.serving.timeout", 3),
        rf"{S}\.serving\.timeout",
        "unknown key",
    ),
    (
        "serving k zero",
        edit("sections.feed.serving.default_k", 0),
        rf"{S}\.serving\.default_k",
        r"an integer in \[1, 1000\], found 0",
    ),
    (
        "serving k fractional",
        edit("sections.feed.serving.max_candidates", 10.5),
        rf"{S}\.serving\.max_candidates",
        "an integer",
    ),
    (
        "serving budget a string",
        edit("sections.feed.serving.latency_budget_ms", "fast"),
        rf"{S}\.serving\.latency_budget_ms",
        "a number",
    ),
    (
        "serving cache a boolean",
        edit("sections.feed.serving.cache_size", True),
        rf"{S}\.serving\.cache_size",
        "found True",
    ),
    ("cap not an integer", None, rf"{S}\.knobs\.category_cap\.cap", "expected an integer, found 2.5"),
    ("cap infinite", None, rf"{S}\.knobs\.category_cap\.cap", "expected a finite number, found inf"),
]


def _special(case: str, data: dict[str, Any] | None) -> dict[str, Any]:
    """Cases that change more than one key."""
    feed = copy.deepcopy(base()["sections"]["feed"])
    arms = [{"promoted": {"weight": 0.1}}, {"promoted": {"weight": 0.2}}, {"promoted": {"weight": 0.1}}]
    if case == "explicit arms with both knobs":
        feed["arms"] = arms[:1]
    elif case == "duplicate explicit arms":
        del feed["knobs"], feed["default_arm"]
        feed["arms"] = arms
    elif case == "explicit arms empty":
        del feed["knobs"], feed["default_arm"]
        feed["arms"] = []
    elif case == "explicit arm unknown knob":
        del feed["knobs"], feed["default_arm"]
        feed["arms"] = [{"mmr": {"lamda": 0.5}}]
    elif case == "explicit arm out of range":
        del feed["knobs"], feed["default_arm"]
        feed["arms"] = [{"promoted": {"weight": 0.1}}, {"promoted": {"weight": 11}}]
    elif case == "mmr after category_cap":
        feed = {"pipeline": ["freshness", "category_cap", "mmr"]}
    elif case == "source_similarity without source_item":
        feed = {"pipeline": ["source_similarity", "mmr"]}
    elif case == "category_match without category":
        feed = {"pipeline": ["category_match"], "required_context": ["source_item"]}
    elif case == "cap not an integer":
        feed = {"pipeline": ["category_cap"], "knobs": {"category_cap": {"cap": [2, 2.5]}}}
    elif case == "cap infinite":
        feed = {"pipeline": ["category_cap"], "knobs": {"category_cap": {"cap": [float("inf")]}}}
    else:
        assert data is not None
        return data
    return {"schema_version": 1, "sections": {"feed": feed}}


@pytest.mark.parametrize(("case", "data", "key", "problem"), [pytest.param(*c, id=c[0]) for c in INVALID])
def test_config_refuses_an_invalid_config_naming_the_key(case, data, key, problem):
    with pytest.raises(ConfigError, match=rf"^{key}: .*{problem}") as caught:
        SectionsConfig.from_dict(_special(case, data))
    assert re.fullmatch(key, caught.value.key)


# Files that cannot be read as a config.
BAD_FILES = [
    ("bad TOML", b"[sections.feed\npipeline = ['mmr']\n", r"^config: .* is not valid TOML"),
    ("not UTF-8", b"description = '\xff\xfe'\n", r"^config: .* is not UTF-8 text"),
    (
        "TOML but invalid",
        b"[sections.feed]\npipeline = ['nope']\n",
        r"^sections\.feed\.pipeline: unknown heuristic 'nope'",
    ),
]


@pytest.mark.parametrize(("case", "content", "match"), [pytest.param(*c, id=c[0]) for c in BAD_FILES])
def test_config_load_refuses_a_bad_file(case, content, match, tmp_path):
    path = tmp_path / "sections.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=match):
        SectionsConfig.load(path)


def test_config_load_refuses_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"^config: file not found: .*nowhere\.toml"):
        SectionsConfig.load(tmp_path / "nowhere.toml")


def test_config_load_refuses_a_directory(tmp_path):
    with pytest.raises(ConfigError, match=r"^config: .* is a directory, not a TOML file"):
        SectionsConfig.load(tmp_path)


def test_config_unknown_section_names_the_configured_ones(default_config):
    with pytest.raises(
        ConfigError, match=r"^section: unknown section 'home'; configured: discover, similar_items"
    ):
        default_config["home"]


# Arm references that name no arm.
BAD_ARM_REFS = [
    ("discover-0000000000", r"no arm with id 'discover-0000000000'"),
    (18, "no arm at index 18"),
    (-19, "no arm at index -19"),
]


@pytest.mark.parametrize(("ref", "problem"), BAD_ARM_REFS)
def test_config_arm_refuses_an_unknown_reference(ref, problem, default_config):
    with pytest.raises(ConfigError, match=rf"^sections\.discover\.arms: {problem}"):
        default_config["discover"].arm(ref)


def test_config_arm_finds_arms_by_id_and_index(default_config):
    section = default_config["discover"]
    for arm in section.arms:
        assert section.arm(arm.id) is arm
        assert section.arm(arm.index) is arm
        assert section.arm(arm.index - len(section.arms)) is arm


# ----------------------------------------------------------------------------------------------------------
# Arms and their stable ids
# ----------------------------------------------------------------------------------------------------------


def test_arm_ids_do_not_depend_on_the_order_of_keys_or_values():
    first = SectionsConfig.from_dict(base())
    second = SectionsConfig.from_dict({"sections": tomllib.loads(REORDERED_TOML)["sections"]})
    assert ids(first) == ids(second)
    assert first["feed"].default_arm.id == second["feed"].default_arm.id
    # Reordered values reorder the arm list, so indices may differ; the knob values behind each id do not.
    assert [a.id for a in first["feed"].arms] != [a.id for a in second["feed"].arms]


def test_arm_ids_do_not_depend_on_the_spelling_of_a_number():
    spelled = edit("sections.feed.knobs.promoted", {"weight": [-0.0, 0.1, 2e-1]})
    spelled["sections"]["feed"]["knobs"]["freshness"] = {"weight": [0, 0.5], "half_life_days": [7]}
    assert ids(SectionsConfig.from_dict(spelled)) == ids(SectionsConfig.from_dict(base()))


def test_arm_ids_name_their_section_and_differ_between_sections():
    data = base()
    data["sections"]["feed_copy"] = copy.deepcopy(data["sections"]["feed"])
    config = SectionsConfig.from_dict(data)
    for arm in config["feed"].arms:
        assert re.fullmatch(r"feed-[0-9a-f]{10}", arm.id)
    assert not set(ids(config, "feed")) & set(ids(config, "feed_copy"))
    # The same knob values in both sections, in the same order.
    assert list(ids(config, "feed").values()) == list(ids(config, "feed_copy").values())


def test_arm_ids_keep_their_published_values():
    # Logged decisions refer to arms by id: a change in how ids are derived would orphan them.
    knobs = {"freshness.weight": 0.2, "freshness.half_life_days": 7.0, "freshness.offset_days": 0.0,
             "promoted.weight": 0.1, "mmr.lambda": 0.8}  # fmt: skip
    assert arm_id("discover", knobs) == "discover-c330198915"
    assert arm_id("discover", dict(reversed(knobs.items()))) == "discover-c330198915"


def test_explicit_arm_list_gives_the_same_ids_as_the_grid():
    grid = SectionsConfig.from_dict(base())["feed"]
    chosen = [grid.arms[5], grid.arms[0], grid.arms[9]]
    data = base()
    feed = data["sections"]["feed"]
    del feed["knobs"]
    feed["arms"] = [
        {
            step: {k.split(".")[1]: v for k, v in arm.knobs.items() if k.startswith(step + ".")}
            for step in feed["pipeline"]
        }
        for arm in chosen
    ]
    feed["default_arm"] = feed["arms"][2]
    explicit = SectionsConfig.from_dict(data)["feed"]
    assert [a.id for a in explicit.arms] == [a.id for a in chosen]
    assert [a.index for a in explicit.arms] == [0, 1, 2]
    assert explicit.default_arm.id == chosen[2].id


def test_explicit_arms_fill_unlisted_knobs_with_defaults_and_list_sorted_values():
    data = {
        "sections": {
            "feed": {
                "pipeline": ["freshness", "mmr"],
                "arms": [
                    {"mmr": {"lambda": 0.6}},
                    {"freshness": {"weight": 0.3}, "mmr": {"lambda": 0.2}},
                    {},
                ],
            }
        }
    }
    section = SectionsConfig.from_dict(data)["feed"]
    defaults = {
        f"{s}.{k}": spec.default for s in ("freshness", "mmr") for k, spec in HEURISTICS[s].KNOBS.items()
    }
    assert [dict(a.knobs) for a in section.arms] == [
        {**defaults, "mmr.lambda": 0.6},
        {**defaults, "freshness.weight": 0.3, "mmr.lambda": 0.2},
        defaults,
    ]
    assert section.knob_values["mmr.lambda"] == (0.2, 0.6, 1.0)
    assert section.knob_values["freshness.half_life_days"] == (7.0,)
    assert section.default_arm is section.arms[0]  # no default_arm given: the first arm


def test_config_defaults_fill_an_almost_empty_section():
    section = SectionsConfig.from_dict({"sections": {"feed": {"pipeline": ["category_cap"]}}})["feed"]
    assert section.normalize == "minmax"
    assert dict(section.params["category_cap"]) == {"field": "category"}
    assert [dict(a.knobs) for a in section.arms] == [{"category_cap.cap": 1000}]
    assert section.serving.default_k == 20
