"""The one config reader: every failure is the package's error, naming the key, expected vs. found."""

import math

import pytest

from heuristics.config_reader import ConfigChecks
from heuristics.errors import ConfigError

CHECK = ConfigChecks(ConfigError)


def test_read_toml_reads_a_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('a = 1\n[b]\nc = "x"\n')
    assert CHECK.read_toml(path) == {"a": 1, "b": {"c": "x"}}


# Files the reader refuses: (content or None for no file, expected message)
BAD_FILES = [
    (None, r"^config: file not found: "),
    ("a = [", r"^config: .* is not valid TOML: "),
    (b"a = '\xff\xfe'", r"^config: .* is not UTF-8 text"),
]


@pytest.mark.parametrize(("content", "match"), BAD_FILES)
def test_read_toml_refuses_bad_files_with_the_package_error(tmp_path, content, match):
    path = tmp_path / "c.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=match):
        CHECK.read_toml(path)


def test_read_toml_refuses_a_directory(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        CHECK.read_toml(tmp_path)


def test_file_key_names_the_file_errors(tmp_path):
    with pytest.raises(ConfigError) as caught:
        ConfigChecks(ConfigError, file_key="world").read_toml(tmp_path / "missing.toml")
    assert caught.value.key == "world"


def test_parse_toml_names_the_source():
    assert CHECK.parse_toml("x = 2", "$ENV") == {"x": 2}
    with pytest.raises(ConfigError, match=r"\$ENV is not valid TOML"):
        CHECK.parse_toml("x = ", "$ENV")


def test_keys_returns_the_table_and_names_an_unknown_key():
    table = {"a": 1, "b": 2}
    assert CHECK.keys("t", table, {"a", "b", "c"}) is table
    with pytest.raises(ConfigError, match=r"^t\.z: unknown key \(allowed: a, b\)$"):
        CHECK.keys("t", {"z": 1}, {"b", "a"})
    with pytest.raises(ConfigError, match=r"^z: unknown key"):
        CHECK.keys("", {"z": 1}, {"a"})
    with pytest.raises(ConfigError, match=r"^t: expected a table, found list$"):
        CHECK.keys("t", [1], {"a"})


# Values out of their domain: (check, value, options, message)
BAD_VALUES = [
    ("number", True, {}, r"^k: expected a number, found True$"),
    ("number", "1", {}, r"expected a number, found '1'"),
    ("number", math.nan, {}, r"expected a number, found nan"),
    ("number", math.inf, {}, r"expected a finite number, found inf"),
    ("number", 0, {"low": 0, "low_open": True}, r"expected a number > 0, found 0"),
    ("number", -1, {"low": 0}, r"expected a number >= 0, found -1"),
    ("number", 2, {"low": 0, "high": 1}, r"expected a number in \[0, 1\], found 2"),
    ("number", 0, {"low": 0, "high": 1, "low_open": True}, r"expected a number in \(0, 1\], found 0"),
    ("number", 5, {"high": 4}, r"expected a number <= 4, found 5"),
    ("integer", 1.0, {}, r"^k: expected an integer, found 1\.0$"),
    ("integer", False, {"low": 0}, r"expected an integer >= 0, found False"),
    ("integer", 9, {"low": 1, "high": 8}, r"expected an integer in \[1, 8\], found 9"),
    ("integer", -1, {"low": 0, "high": 2**31 - 1}, r"expected an integer in \[0, 2147483647\], found -1"),
    ("number", 2, {"low": 0.5, "high": 1.5}, r"expected a number in \[0\.5, 1\.5\], found 2"),
    ("string", 3, {}, r"expected a string, found 3"),
    ("string", "c", {"choices": ("a", "b")}, r"expected one of a, b, found 'c'"),
    ("boolean", 1, {}, r"expected true or false, found 1"),
]


@pytest.mark.parametrize(("check", "value", "options", "match"), BAD_VALUES)
def test_values_out_of_domain_are_refused(check, value, options, match):
    with pytest.raises(ConfigError, match=match) as caught:
        getattr(CHECK, check)("k", value, **options)
    assert caught.value.key == "k"


@pytest.mark.parametrize(
    ("check", "value", "options", "expected"),
    [
        ("number", 3, {}, 3.0),
        ("number", math.inf, {"finite": False}, math.inf),
        ("number", 1, {"low": 0, "high": 1}, 1.0),
        ("integer", 8, {"low": 1, "high": 8}, 8),
        ("string", "a", {"choices": ("a",)}, "a"),
        ("boolean", False, {}, False),
    ],
)
def test_values_in_domain_are_returned(check, value, options, expected):
    result = getattr(CHECK, check)("k", value, **options)
    assert result == expected
    assert type(result) is type(expected)
