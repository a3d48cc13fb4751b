"""World files: the shipped default, merging over it, and refusing bad files with the key at fault."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from simulator import WorldConfig, WorldConfigError
from simulator.world_config import schema_keys

DOCS = Path(__file__).resolve().parents[2] / "docs" / "simulator.md"


def test_world_config_default_has_the_documented_sizes():
    config = WorldConfig.load("default")
    assert config.name == "default"
    assert config.items.count == 5000
    assert config.items.categories == 20
    assert config.users.count == 20000
    assert config.candidates.count == 100
    assert list(config.sections) == ["discover", "similar_items", "category_explore", "search"]
    assert sum(s.traffic for s in config.sections.values()) == pytest.approx(1.0)
    assert config.start_time == int(dt.datetime(2024, 3, 1, tzinfo=dt.UTC).timestamp())
    assert config.end_time - config.start_time == 30 * 86400


def test_world_config_file_keeps_unset_keys_from_the_default(tmp_path: Path):
    path = tmp_path / "small.toml"
    path.write_text(
        "[items]\ncount = 800\n[users]\ncount = 300\nsegments = { new = 0.5, casual = 0.3, heavy = 0.2 }\n"
        "[sections.search]\ntraffic = 0.3\n[sections.discover]\ntraffic = 0.3\n"
    )
    config = WorldConfig.load(path)
    default = WorldConfig.load("default")
    assert config.items.count == 800
    assert config.users.count == 300
    assert dict(config.users.segments) == {"new": 0.5, "casual": 0.3, "heavy": 0.2}
    assert config.items.categories == default.items.categories
    assert config.sections["search"].traffic == 0.3
    assert config.sections["search"].query_match == default.sections["search"].query_match
    assert config.users.freshness == default.users.freshness
    assert config.source == str(path)


def test_world_config_with_overrides_and_round_trip():
    config = WorldConfig.load("default")
    changed = config.with_overrides(
        {"candidates": {"count": 250}, "click_model": {"conversion": {"quality": 0}}}
    )
    assert changed.candidates.count == 250
    assert changed.click_model.conversion.quality == 0.0
    assert changed.click_model.conversion.intercept == config.click_model.conversion.intercept
    assert WorldConfig.from_dict(config.to_dict()) == WorldConfig.from_dict({})
    assert config.candidates.count == 100  # the original is unchanged


def test_world_config_new_section_must_give_every_key():
    with pytest.raises(WorldConfigError, match=r"sections\.trending\.examination_decay: missing"):
        WorldConfig.from_dict({"sections": {"trending": {"context": "none", "traffic": 0.0}}})


def test_world_config_docs_list_every_key():
    text = DOCS.read_text()
    missing = [key for key, _, _ in schema_keys() if f"`{key}`" not in text]
    assert not missing


# Bad world files: (TOML text, the error message must match this, which names the key)
BAD_FILES = [
    ("colour = 'red'", r"^colour: unknown key"),
    ("[items]\ncolour = 3", r"^items\.colour: unknown key"),
    ("[users.freshness]\nslope = 1", r"^users\.freshness\.slope: unknown key"),
    ("[sections.discover]\nweight = 1", r"^sections\.discover\.weight: unknown key"),
    ("[items]\ncount = -5", r"^items\.count: expected an integer in \[1, 2e\+06\], found -5"),
    ("[users]\ncount = 0", r"^users\.count: expected an integer"),
    ("[candidates]\ncount = -1", r"^candidates\.count: expected an integer"),
    ("[items]\ncount = 2.5", r"^items\.count: expected an integer"),
    ("[items]\ncount = '5000'", r"^items\.count: expected an integer"),
    ("[items]\nprice_median = -3.0", r"^items\.price_median: expected a number in \(0"),
    ("[items]\nnew_share = 1.5", r"^items\.new_share: expected a number in \[0, 1\]"),
    ("[period]\ndays = 0", r"^period\.days: expected a number in \(0"),
    ("[period]\nstart = 'yesterday'", r"^period\.start: expected a TOML date-time"),
    (
        "[users]\nsegments = { new = 0.5, casual = 0.6, heavy = 0.25 }",
        r"^users\.segments: shares sum to 1\.35",
    ),
    ("[users]\ndevices = { mobile = 0.5 }", r"^users\.devices: shares sum to 0\.5"),
    (
        "[candidates]\nmix = { popular = 0.5, affinity = 0.5, context = 0.5, random = 0.5 }",
        r"^candidates\.mix: shares sum to 2",
    ),
    ("[candidates]\nmix = { popular = 1.0 }", r"^candidates\.mix: expected the keys"),
    (
        "[sections.discover]\ntraffic = 0.9",
        r"^sections\.<name>\.traffic: the sections' traffic shares sum to 1\.5",
    ),
    ("[sections.search]\ncontext = 'page'", r"^sections\.search\.context: expected one of none"),
    ("[sections.discover]\nquery_match = 1.0", r"^sections\.discover\.query_match: a non-zero weight needs"),
    ("[sections.discover]\nexamination_decay = -1.0", r"^sections\.discover\.examination_decay: expected"),
    (
        "[users]\nsegments = { new = 0.5, pro = 0.5 }",
        r"^users\.segment_activity: expected the keys new, pro",
    ),
    ("[users.satiation]\ndevice = { mobile = 1.0 }", r"^users\.satiation\.device: expected the keys"),
    ("[items]\nvocabulary = 3", r"^items\.tags_per_item: expected at most items\.vocabulary = 3"),
    ("[items]\ncount = 120", r"^candidates\.count: expected at most the 90 items published before"),
    ("schema_version = 2", r"^schema_version: expected an integer in \[1, 1\]"),
    ("sections = 3", r"^sections: expected a table"),
    ("items = 3", r"^items: expected a table, found int"),
    ("[sections]\ndiscover = 3", r"^sections\.discover: expected a table, found int"),
    ("[items\ncount = 3", r"^world: .* is not valid TOML"),
]


@pytest.mark.parametrize(("text", "match"), BAD_FILES, ids=[row[1][:40] for row in BAD_FILES])
def test_world_config_refuses_bad_file(tmp_path: Path, text: str, match: str):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(WorldConfigError, match=match) as info:
        WorldConfig.load(path)
    assert info.value.key == str(info.value).split(":")[0]


def test_world_config_refuses_missing_file(tmp_path: Path):
    with pytest.raises(WorldConfigError, match=re.escape(f"world: file not found: {tmp_path / 'nope.toml'}")):
        WorldConfig.load(tmp_path / "nope.toml")


def test_world_config_refuses_a_directory(tmp_path: Path):
    with pytest.raises(WorldConfigError, match=r"^world: .* is a directory, not a TOML file"):
        WorldConfig.load(tmp_path)


def test_world_config_refuses_a_file_that_is_not_utf8(tmp_path: Path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "caf\u00e9"'.encode("latin-1"))
    with pytest.raises(WorldConfigError, match=r"^world: .* is not UTF-8 text"):
        WorldConfig.load(path)


@pytest.mark.parametrize("data", [[], "items", None])
def test_world_config_from_dict_refuses_a_non_table(data):
    with pytest.raises(WorldConfigError, match=r"^world: expected a table"):
        WorldConfig.from_dict(data)


def test_world_config_refuses_unknown_shipped_name():
    with pytest.raises(WorldConfigError, match=r"no shipped world named 'mars' .*default"):
        WorldConfig.load("mars")


def test_world_config_docs_examples_are_valid_world_files(tmp_path: Path):
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert blocks
    for i, block in enumerate(blocks):
        path = tmp_path / f"example{i}.toml"
        path.write_text(block)
        WorldConfig.load(path)


def test_world_config_docs_section_table_matches_the_default_world():
    text = DOCS.read_text()
    header = "| section | context | traffic |"
    lines = text[text.index(header) :].splitlines()
    names = [cell.strip() for cell in lines[0].strip("|").split("|")]
    config = WorldConfig.load("default")
    rows = [line for line in lines[2:] if line.startswith("|")][: len(config.sections)]
    for line in rows:
        cells = dict(zip(names, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
        section = config.sections[cells.pop("section")]
        assert cells.pop("context") == section.context
        for key, value in cells.items():
            assert float(value) == getattr(section, key), (section.name, key)
