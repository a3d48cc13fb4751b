"""The ranker pipeline's settings, read from TOML and validated once.

The shipped default is `ranker/ranker.toml`; docs/ranker.md documents every key. A file may set any subset of
the default's keys: the keys it leaves out keep the default values (tables merge key by key; the
``sections`` and ``designs`` tables, whose keys are names, are replaced whole when given). Every error names
the dotted key at fault and says what was expected: ``"lightgbm.num_leaves: expected an integer in [2,
131072], found 1"``.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ranker.errors import RankerError
from ranker.feature_defs import CONTEXT_KINDS, FEATURES, TASK_TYPE
from ranker.union import parse_union_spec

DEFAULT_CONFIG = Path(__file__).with_name("ranker.toml")
SCHEMA_VERSION = 1
DESIGNS = ("base", "consolidated", "independent")
POSITION_BIAS = ("unbiased", "truncate", "none")
#: The split windows, in time order.
WINDOWS = ("stats", "train", "validation", "test")
#: LightGBM's default ``label_gain`` has 31 entries, so grades are 0..30.
MAX_GRADE = 30

_TOP_KEYS = {"schema_version", "sections", "labels", "split", "stats", "designs", "lightgbm", "evaluation"}


class RankerConfigError(RankerError, ValueError):
    """A ranker config is invalid; the message starts with the dotted key at fault."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


# ------------------------------------------------------------------------------------------------ records


@dataclass(frozen=True)
class LabelRule:
    """How one section grades a shown item from its feedback.

    ``grade = conversion + floor(revenue / revenue_step)`` (capped at `max_grade`) for a converted item,
    `click` for an item clicked but not converted, 0 otherwise. Without a `revenue_step` (0) a converted item
    gets `conversion`.

    Attributes
    ----------
    click : int
    conversion : int
    revenue_step : float
        0 for no revenue term.
    max_grade : int
    """

    click: int = 1
    conversion: int = 2
    revenue_step: float = 0.0
    max_grade: int = 2

    def grades(self, clicked: np.ndarray, converted: np.ndarray, revenue: np.ndarray) -> np.ndarray:
        """Grades (R,) int64 of items given clicked and converted flags (R,) and their revenue (R,)."""
        extra = np.floor(revenue / self.revenue_step) if self.revenue_step > 0 else np.zeros(len(revenue))
        converted_grade = np.minimum(self.conversion + np.maximum(extra, 0.0), self.max_grade)
        return np.where(converted, converted_grade, np.where(clicked, self.click, 0)).astype(np.int64)


@dataclass(frozen=True)
class SectionSpec:
    """A section the rankers know: its request-context field and its label rule."""

    name: str
    context: str
    labels: LabelRule


@dataclass(frozen=True)
class LabelSettings:
    """How the log becomes labelled lists.

    Attributes
    ----------
    wait_seconds : float
        Feedback arriving later than this after its decision is not counted (``inf``: all feedback).
    position_bias : {"unbiased", "truncate", "none"}
        ``unbiased``: LightGBM's position-debiased lambdarank learns an examination factor per position
        jointly with the ranker; ``truncate``: only the first `max_position` positions are trained on (they
        are examined often enough); ``none``: no correction.
    max_position : int
        Training rows are the first `max_position` shown positions of each list (every mode).
    """

    wait_seconds: float = 3600.0
    position_bias: str = "truncate"
    max_position: int = 10


@dataclass(frozen=True)
class SplitSettings:
    """Shares of the log's decisions, by time, in the stats, train, validation and test windows."""

    stats: float = 0.25
    train: float = 0.45
    validation: float = 0.10
    test: float = 0.20

    @property
    def fractions(self) -> tuple[float, float, float, float]:
        return (self.stats, self.train, self.validation, self.test)


@dataclass(frozen=True)
class StatsSettings:
    """Smoothing of the item statistics (see `ranker.stats`)."""

    coec_prior_strength: float = 20.0
    cvr_prior_strength: float = 10.0


@dataclass(frozen=True)
class DesignSpec:
    """One design: the sections its artifact serves, its features in order, and its default union."""

    name: str
    sections: tuple[str, ...]
    features: tuple[str, ...]
    union: str = "traffic"


@dataclass(frozen=True)
class LightGBMSettings:
    """LightGBM lambdarank settings; `params` gives the parameter dict for ``lightgbm``.

    `num_leaves` is a tuple of candidate tree sizes: each model is boosted once per value and keeps the one
    with the best validation NDCG (the smallest on a tie), so a model trained on few lists gets small trees
    and one trained on many gets larger ones, by the same rule for every design.
    """

    learning_rate: float = 0.1
    num_leaves: tuple[int, ...] = (7, 15, 31)
    min_data_in_leaf: int = 50
    feature_fraction: float = 1.0
    lambda_l2: float = 1.0
    max_bin: int = 255
    num_boost_round: int = 300
    early_stopping_rounds: int = 30
    eval_at: int = 10
    truncation_level: int = 20
    position_bias_regularization: float = 0.0
    num_threads: int = 2
    seed: int = 0

    def params(self, num_leaves: int | None = None) -> dict[str, Any]:
        """LightGBM parameters: lambdarank, deterministic, `num_threads` fixed, with `num_leaves` (default:
        the first candidate)."""
        return {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [self.eval_at],
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves[0] if num_leaves is None else num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "lambda_l2": self.lambda_l2,
            "max_bin": self.max_bin,
            "lambdarank_truncation_level": self.truncation_level,
            "lambdarank_position_bias_regularization": self.position_bias_regularization,
            "num_threads": self.num_threads,
            "seed": self.seed,
            "deterministic": True,
            "force_col_wise": True,
            "verbosity": -1,
        }


@dataclass(frozen=True)
class EvaluationSettings:
    """Cutoff and bootstrap of the evaluation (`ranker.metrics.evaluate_lists`)."""

    k: int = 10
    n_bootstrap: int = 1000
    alpha: float = 0.05
    seed: int = 0


@dataclass(frozen=True)
class RankerConfig:
    """A validated ranker config. Load one with `RankerConfig.load`."""

    sections: Mapping[str, SectionSpec]
    labels: LabelSettings
    split: SplitSettings
    stats: StatsSettings
    designs: Mapping[str, DesignSpec]
    lightgbm: LightGBMSettings
    evaluation: EvaluationSettings
    source: str = "<dict>"
    raw: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def section_names(self) -> tuple[str, ...]:
        """The configured sections in file order: the ``task_type`` categories."""
        return tuple(self.sections)

    @property
    def section_contexts(self) -> dict[str, str]:
        """Section name -> its context kind."""
        return {name: s.context for name, s in self.sections.items()}

    def design(self, name: str) -> DesignSpec:
        if name not in self.designs:
            raise RankerConfigError("design", f"expected one of {', '.join(self.designs)}, found {name!r}")
        return self.designs[name]

    def to_dict(self) -> dict[str, Any]:
        """The merged TOML data (recorded in model metadata)."""
        return copy.deepcopy(dict(self.raw))

    @classmethod
    def load(cls, path: str | Path | None = None) -> RankerConfig:
        """Read and validate a ranker config; the shipped default when `path` is None."""
        path = DEFAULT_CONFIG if path is None else Path(path)
        data = _read_toml(path)
        if path == DEFAULT_CONFIG:
            return cls._parse(data, str(path))
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> RankerConfig:
        """Validate config data; keys it leaves out keep the shipped default's values."""
        if not isinstance(data, Mapping):
            raise RankerConfigError("config", f"expected a table, found {type(data).__name__}")
        merged = _merge(_read_toml(DEFAULT_CONFIG), data)
        return cls._parse(merged, source)

    @classmethod
    def _parse(cls, data: Mapping[str, Any], source: str) -> RankerConfig:
        _check_keys("config", data, _TOP_KEYS)
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise RankerConfigError("schema_version", f"expected {SCHEMA_VERSION}, found {version!r}")
        sections = _parse_sections(data.get("sections"))
        labels = _parse_labels(data.get("labels", {}))
        split = _parse_split(data.get("split", {}))
        stats = _parse_table(
            "stats",
            data.get("stats", {}),
            StatsSettings,
            _STATS_CHECKS,
        )
        lightgbm = _parse_table("lightgbm", data.get("lightgbm", {}), LightGBMSettings, _LIGHTGBM_CHECKS)
        evaluation = _parse_table("evaluation", data.get("evaluation", {}), EvaluationSettings, _EVAL_CHECKS)
        designs = _parse_designs(data.get("designs"), sections)
        return cls(
            sections=MappingProxyType(sections),
            labels=labels,
            split=split,
            stats=stats,
            designs=MappingProxyType(designs),
            lightgbm=lightgbm,
            evaluation=evaluation,
            source=source,
            raw=MappingProxyType(copy.deepcopy(dict(data))),
        )


# -------------------------------------------------------------------------------------------------- reading


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise RankerConfigError("config", f"file not found: {path}") from None
    except OSError as exc:
        raise RankerConfigError("config", f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise RankerConfigError("config", f"{path} is not UTF-8 text ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise RankerConfigError("config", f"{path} is not valid TOML: {exc}") from None


#: Tables whose keys are names: a file that gives one replaces the default's whole.
_NAMED_TABLES = ("sections", "designs")


def _merge(base: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in data.items():
        if key in _NAMED_TABLES or not isinstance(value, Mapping) or not isinstance(merged.get(key), dict):
            merged[key] = copy.deepcopy(value)
        else:
            merged[key] = {**merged[key], **copy.deepcopy(dict(value))}
    return merged


# ----------------------------------------------------------------------------------------------- validation


def _check_keys(where: str, table: Any, allowed: set[str] | tuple[str, ...]) -> None:
    if not isinstance(table, Mapping):
        raise RankerConfigError(where, f"expected a table, found {type(table).__name__}")
    for key in table:
        if key not in allowed:
            raise RankerConfigError(f"{where}.{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise RankerConfigError(key, f"expected a number, found {value!r}")
    return float(value)


def _integer(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RankerConfigError(key, f"expected an integer in [{low}, {high}], found {value!r}")
    return int(value)


def _positive(key: str, value: Any) -> float:
    number = _number(key, value)
    if not (math.isfinite(number) and number > 0):
        raise RankerConfigError(key, f"expected a finite number > 0, found {value!r}")
    return number


def _in_range(low: float, high: float, *, low_open: bool = False):
    def check(key: str, value: Any) -> float:
        number = _number(key, value)
        ok = (low < number if low_open else low <= number) and number <= high
        if not ok:
            left = "(" if low_open else "["
            raise RankerConfigError(key, f"expected a number in {left}{low:g}, {high:g}], found {value!r}")
        return number

    return check


def _int_range(low: int, high: int):
    return lambda key, value: _integer(key, value, low, high)


def _int_choices(key: str, value: Any, low: int, high: int) -> tuple[int, ...]:
    """An integer or a non-empty list of distinct integers in [low, high], as an ascending tuple."""
    if not isinstance(value, list):
        return (_integer(key, value, low, high),)
    if not value:
        raise RankerConfigError(key, "expected an integer or a non-empty list of integers, found []")
    values = [_integer(f"{key}[{i}]", v, low, high) for i, v in enumerate(value)]
    if len(set(values)) != len(values):
        raise RankerConfigError(key, f"expected distinct values, found {value!r}")
    return tuple(sorted(values))


_LIGHTGBM_CHECKS = {
    "learning_rate": _in_range(0.0, 1.0, low_open=True),
    "num_leaves": lambda key, value: _int_choices(key, value, 2, 131072),
    "min_data_in_leaf": _int_range(1, 1_000_000),
    "feature_fraction": _in_range(0.0, 1.0, low_open=True),
    "lambda_l2": _in_range(0.0, 1e6),
    "max_bin": _int_range(2, 65535),
    "num_boost_round": _int_range(1, 100_000),
    "early_stopping_rounds": _int_range(1, 100_000),
    "eval_at": _int_range(1, 10_000),
    "truncation_level": _int_range(1, 10_000),
    "position_bias_regularization": _in_range(0.0, 1e6),
    "num_threads": _int_range(1, 256),
    "seed": _int_range(0, 2**31 - 1),
}
_STATS_CHECKS = {"coec_prior_strength": _positive, "cvr_prior_strength": _positive}
_EVAL_CHECKS = {
    "k": _int_range(1, 10_000),
    "n_bootstrap": _int_range(1, 1_000_000),
    "alpha": _in_range(0.0, 1.0, low_open=True),
    "seed": _int_range(0, 2**31 - 1),
}


def _parse_table(where: str, table: Any, cls: type, checks: Mapping[str, Any]) -> Any:
    _check_keys(where, table, tuple(checks))
    values = {key: checks[key](f"{where}.{key}", value) for key, value in table.items()}
    if where == "evaluation" and values.get("alpha", 0.05) >= 1.0:
        raise RankerConfigError("evaluation.alpha", f"expected a number in (0, 1), found {values['alpha']!r}")
    return cls(**values)


def _parse_labels(table: Any) -> LabelSettings:
    _check_keys("labels", table, ("wait_seconds", "position_bias", "max_position"))
    values: dict[str, Any] = {}
    if "wait_seconds" in table:
        wait = _number("labels.wait_seconds", table["wait_seconds"])
        if wait <= 0:
            raise RankerConfigError("labels.wait_seconds", f"expected a number > 0 or inf, found {wait!r}")
        values["wait_seconds"] = wait
    if "position_bias" in table:
        mode = table["position_bias"]
        if mode not in POSITION_BIAS:
            raise RankerConfigError(
                "labels.position_bias", f"expected one of {', '.join(POSITION_BIAS)}, found {mode!r}"
            )
        values["position_bias"] = mode
    if "max_position" in table:
        values["max_position"] = _integer("labels.max_position", table["max_position"], 1, 10_000)
    return LabelSettings(**values)


def _parse_split(table: Any) -> SplitSettings:
    _check_keys("split", table, WINDOWS)
    values = {key: _in_range(0.0, 1.0, low_open=True)(f"split.{key}", v) for key, v in table.items()}
    split = SplitSettings(**values)
    total = math.fsum(split.fractions)
    if not math.isclose(total, 1.0, abs_tol=1e-9):
        shares = ", ".join(f"{w} {f:g}" for w, f in zip(WINDOWS, split.fractions, strict=True))
        raise RankerConfigError("split", f"shares sum to {total:g}, expected 1 ({shares})")
    return split


def _parse_label_rule(where: str, table: Any) -> LabelRule:
    _check_keys(where, table, ("click", "conversion", "revenue_step", "max_grade"))
    click = _integer(f"{where}.click", table.get("click", 1), 0, MAX_GRADE)
    conversion = _integer(f"{where}.conversion", table.get("conversion", 2), 1, MAX_GRADE)
    if conversion < click:
        raise RankerConfigError(
            f"{where}.conversion", f"expected a grade >= click ({click}), found {conversion}"
        )
    step = _number(f"{where}.revenue_step", table.get("revenue_step", 0.0))
    if not math.isfinite(step) or step < 0:
        raise RankerConfigError(f"{where}.revenue_step", f"expected a finite number >= 0, found {step!r}")
    max_grade = _integer(f"{where}.max_grade", table.get("max_grade", conversion), conversion, MAX_GRADE)
    if step == 0 and max_grade != conversion:
        raise RankerConfigError(
            f"{where}.max_grade", f"needs a revenue_step > 0 (without one the top grade is {conversion})"
        )
    return LabelRule(click=click, conversion=conversion, revenue_step=step, max_grade=max_grade)


def _parse_sections(table: Any) -> dict[str, SectionSpec]:
    if not isinstance(table, Mapping) or not table:
        raise RankerConfigError("sections", "expected at least one [sections.<name>] table")
    sections = {}
    for name, body in table.items():
        where = f"sections.{name}"
        _check_keys(where, body, ("context", "labels"))
        context = body.get("context", "none")
        if context not in CONTEXT_KINDS:
            raise RankerConfigError(
                f"{where}.context", f"expected one of {', '.join(CONTEXT_KINDS)}, found {context!r}"
            )
        sections[name] = SectionSpec(
            name, context, _parse_label_rule(f"{where}.labels", body.get("labels", {}))
        )
    return sections


def _parse_designs(table: Any, sections: Mapping[str, SectionSpec]) -> dict[str, DesignSpec]:
    _check_keys("designs", table, DESIGNS)
    missing = [d for d in DESIGNS if d not in table]
    if missing:
        raise RankerConfigError("designs", f"missing design tables {missing}")
    designs = {}
    for name in DESIGNS:
        where = f"designs.{name}"
        body = table[name]
        _check_keys(where, body, ("sections", "features", "union"))
        names = body.get("sections")
        if not isinstance(names, list) or not names or not all(isinstance(s, str) for s in names):
            raise RankerConfigError(
                f"{where}.sections", f"expected a non-empty list of names, found {names!r}"
            )
        unknown = [s for s in names if s not in sections]
        if unknown:
            raise RankerConfigError(
                f"{where}.sections", f"unknown sections {unknown}; configured: {', '.join(sections)}"
            )
        if len(set(names)) != len(names):
            raise RankerConfigError(f"{where}.sections", f"a section appears twice in {names}")
        features = body.get("features")
        if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
            raise RankerConfigError(
                f"{where}.features", f"expected a non-empty list of feature names, found {features!r}"
            )
        unknown = [f for f in features if f not in FEATURES]
        if unknown:
            raise RankerConfigError(
                f"{where}.features", f"unknown features {unknown}; known: {', '.join(FEATURES)}"
            )
        if len(set(features)) != len(features):
            raise RankerConfigError(f"{where}.features", f"a feature appears twice in {features}")
        context_features = [f for f in features if FEATURES[f].context is not None]
        if name == "base" and (TASK_TYPE in features or context_features):
            bad = [f for f in features if f == TASK_TYPE or f in context_features]
            raise RankerConfigError(
                f"{where}.features",
                f"the base ranker uses no task_type or section-context features, found {bad}",
            )
        if name == "consolidated" and TASK_TYPE not in features:
            raise RankerConfigError(f"{where}.features", "the consolidated model needs task_type")
        if name == "independent" and TASK_TYPE in features:
            raise RankerConfigError(
                f"{where}.features", "independent models serve one section each: task_type is constant"
            )
        union = body.get("union", "traffic")
        if not isinstance(union, str):
            raise RankerConfigError(f"{where}.union", f"expected a strategy name or numbers, found {union!r}")
        try:
            parse_union_spec(union, names)
        except RankerError as exc:
            raise RankerConfigError(f"{where}.union", str(exc)) from None
        designs[name] = DesignSpec(name, tuple(names), tuple(features), union)
    return designs
