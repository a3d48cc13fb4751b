"""Arms named by their knob values: distinct per arm, in pipeline order, short names that never collide."""

from __future__ import annotations

import tomllib

import pytest

from heuristics import SectionsConfig
from heuristics.arm_labels import arm_label, knob_short_names

ONE_ARM_TOML = """
[sections.feed]
description = "A feed with one arm."
pipeline = ["freshness", "category_cap"]
knobs.freshness = { weight = [0.3], half_life_days = [7.0] }
knobs.category_cap = { cap = [4] }
"""


@pytest.mark.parametrize("section", list(SectionsConfig.load()), ids=lambda s: s.name)
def test_arm_label_tells_every_arm_of_a_shipped_section_apart(section):
    labels = [arm_label(section, arm) for arm in section.arms]
    assert len(set(labels)) == len(section.arms)


@pytest.mark.parametrize("section", list(SectionsConfig.load()), ids=lambda s: s.name)
def test_arm_label_gives_the_arms_knob_values(section):
    varying = [knob for knob, values in section.knob_values.items() if len(values) > 1]
    for arm in section.arms:
        parts = arm_label(section, arm).split(", ")
        assert len(parts) == len(varying)
        for part, knob in zip(parts, varying, strict=True):
            name, value = part.rsplit(" ", 1)
            assert float(value) == arm.knobs[knob]
            assert knob.startswith(name + ".") or knob.endswith("." + name) or name == knob


def test_arm_label_reads_as_knob_values():
    section = SectionsConfig.load()["discover"]
    wanted = {"freshness.weight": 0.5, "promoted.weight": 0.1, "mmr.lambda": 0.8}
    arm = next(a for a in section.arms if all(a.knobs[k] == v for k, v in wanted.items()))
    assert arm_label(section, arm) == "freshness 0.5, promoted 0.1, mmr 0.8"


def test_arm_label_of_a_single_arm_section_lists_every_knob():
    config = SectionsConfig.from_dict(tomllib.loads(ONE_ARM_TOML))
    section = config["feed"]
    assert len(section.arms) == 1
    assert arm_label(section, section.arms[0]) == "freshness 0.3, half_life_days 7, offset_days 0, cap 4"


def test_knob_short_names_fall_back_to_the_dotted_name_when_two_would_collide():
    names = knob_short_names(["freshness.weight", "mmr.lambda", "category_cap.cap", "other_cap.cap"])
    assert names == {
        "freshness.weight": "freshness",
        "mmr.lambda": "mmr",
        "category_cap.cap": "category_cap.cap",
        "other_cap.cap": "other_cap.cap",
    }
