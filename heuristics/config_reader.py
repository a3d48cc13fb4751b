"""The one reader of TOML config files: every package's config (sections, ranker, service, world, comparison)
reads its file and checks its values through these helpers, raising its own error class.

A package passes its config-error class, any class built as ``Error(key, problem)`` whose message starts with
the dotted key at fault (`heuristics.errors.ConfigError`, `ranker.errors.RankerConfigError`, ...):

    check = ConfigChecks(ConfigError)
    data = check.read_toml(path)
    check.keys("sections.discover", table, {"pipeline", "params"})
    k = check.integer("sections.discover.serving.default_k", value, low=1)

It lives in the bottom package of the graph so that every package can use it.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

ErrorFactory = Callable[[str, str], Exception]


class ConfigChecks:
    """Reads a TOML file and checks config values; every failure raises ``error(key, problem)``.

    Parameters
    ----------
    error : callable (key, problem) -> Exception
        The package's config-error class.
    file_key : str
        The key named by errors about the file itself (not found, unreadable, not TOML).
    """

    def __init__(self, error: ErrorFactory, *, file_key: str = "config") -> None:
        self.error = error
        self.file_key = file_key

    # -- the file ----------------------------------------------------------------------------------------
    def read_toml(self, path: str | Path) -> dict[str, Any]:
        """The parsed file; a missing, unreadable, non-UTF-8 or invalid file raises the package's error."""
        path = Path(path)
        try:
            with open(path, "rb") as handle:
                return tomllib.load(handle)
        except FileNotFoundError:
            raise self.error(self.file_key, f"file not found: {path}") from None
        except IsADirectoryError:
            raise self.error(self.file_key, f"{path} is a directory, not a TOML file") from None
        except OSError as exc:
            raise self.error(self.file_key, f"cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise self.error(self.file_key, f"{path} is not UTF-8 text ({exc.reason})") from None
        except tomllib.TOMLDecodeError as exc:
            raise self.error(self.file_key, f"{path} is not valid TOML: {exc}") from None

    def parse_toml(self, text: str, source: str) -> dict[str, Any]:
        """TOML text (e.g. from an environment variable) parsed; `source` names it in the error."""
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise self.error(self.file_key, f"{source} is not valid TOML: {exc}") from None

    # -- tables ------------------------------------------------------------------------------------------
    def keys(self, where: str, table: Any, allowed: Collection[str]) -> Mapping[str, Any]:
        """`table` itself, after checking that it is a table whose keys are all in `allowed`.

        `where` is the table's dotted key ("" for the top level of the file).
        """
        if not isinstance(table, Mapping):
            raise self.error(where or self.file_key, f"expected a table, found {type(table).__name__}")
        for key in table:
            if key not in allowed:
                raise self.error(
                    f"{where}.{key}" if where else str(key),
                    f"unknown key (allowed: {', '.join(sorted(allowed))})",
                )
        return table

    # -- values ------------------------------------------------------------------------------------------
    def number(
        self,
        key: str,
        value: Any,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        finite: bool = True,
    ) -> float:
        """A real number (not a bool, not NaN) in the range given, as float.

        ``finite=False`` admits +-inf where the range does.
        """
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise self.error(key, f"expected a number, found {value!r}")
        number = float(value)
        if finite and not math.isfinite(number):
            expected = f"a finite number{_range_text(low, high, low_open)}"
            raise self.error(key, f"expected {expected}, found {value!r}")
        below = low is not None and (number <= low if low_open else number < low)
        above = high is not None and number > high
        if below or above:
            raise self.error(key, f"expected a number{_range_text(low, high, low_open)}, found {value!r}")
        return number

    def integer(self, key: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
        """An integer (not a bool) in [low, high]."""
        bad = isinstance(value, bool) or not isinstance(value, int)
        if bad or (low is not None and value < low) or (high is not None and value > high):
            raise self.error(key, f"expected an integer{_range_text(low, high, False)}, found {value!r}")
        return int(value)

    def string(self, key: str, value: Any, *, choices: Collection[str] | None = None) -> str:
        """A string, one of `choices` when given."""
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, found {value!r}")
        if choices is not None and value not in choices:
            raise self.error(key, f"expected one of {', '.join(choices)}, found {value!r}")
        return value

    def boolean(self, key: str, value: Any) -> bool:
        """true or false (not 0 or 1)."""
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, found {value!r}")
        return value


def _range_text(low: float | None, high: float | None, low_open: bool) -> str:
    lo, hi = _bound(low), _bound(high)
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{lo}, {hi}]"
    if low is not None:
        return f" {'>' if low_open else '>='} {lo}"
    if high is not None:
        return f" <= {hi}"
    return ""


def _bound(value: float | None) -> str:
    """An integer bound in full (2147483647, not 2.14748e+09); other numbers in their shortest form."""
    if value is None:
        return ""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 2**53):
        return str(int(value))
    return f"{value:g}"
