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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from heuristics.config_reader import ConfigChecks
from ranker.base import Design
from ranker.designs import DESIGNS
from ranker.errors import RankerConfigError, RankerError
from ranker.feature_defs import CONTEXT_KINDS, FEATURES
from ranker.union import parse_union_spec

DEFAULT_CONFIG = Path(__file__).with_name("ranker.toml")
SCHEMA_VERSION = 1
POSITION_BIAS = ("unbiased", "truncate", "none")
#: The split windows, in time order.
WINDOWS = ("stats", "train", "validation", "test")
#: LightGBM's default ``label_gain`` has 31 entries, so grades are 0..30.
MAX_GRADE = 30

_TOP_KEYS = {"schema_version", "sections", "labels", "split", "stats", "designs", "lightgbm", "evaluation"}
_CHECK = ConfigChecks(RankerConfigError)
#: A value check of one key: (dotted key, value) -> the checked value, or `RankerConfigError`.
Check = Callable[[str, Any], Any]


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
    """One design as configured: the sections its artifact serves, its features in order, and its default
    union; `kind` is the design (`ranker.designs.DESIGNS`) whose rules these obey."""

    name: str
    sections: tuple[str, ...]
    features: tuple[str, ...]
    union: str = "traffic"

    @property
    def kind(self) -> Design:
        return DESIGNS[self.name]

    @property
    def models(self) -> dict[str, tuple[str, ...]]:
        """Model key -> the sections that model serves (`ranker.base.Design.models`)."""
        return self.kind.models(self.sections)


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
        data = _CHECK.read_toml(path)
        if path == DEFAULT_CONFIG:
            return cls._parse(data, str(path))
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> RankerConfig:
        """Validate config data; keys it leaves out keep the shipped default's values."""
        _CHECK.keys("config", data, _TOP_KEYS)
        merged = _merge(_CHECK.read_toml(DEFAULT_CONFIG), data)
        return cls._parse(merged, source)

    @classmethod
    def _parse(cls, data: Mapping[str, Any], source: str) -> RankerConfig:
        _CHECK.keys("config", data, _TOP_KEYS)
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise RankerConfigError("schema_version", f"expected {SCHEMA_VERSION}, found {version!r}")
        sections = _parse_sections(data.get("sections"))
        labels = _parse_labels(data.get("labels", {}))
        split = _parse_split(data.get("split", {}))
        stats = _parse_table("stats", data.get("stats", {}), StatsSettings, _STATS_CHECKS)
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


# -------------------------------------------------------------------------------------------------- merging


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


def _number_in(low: float, high: float, *, low_open: bool = False) -> Check:
    return lambda key, value: _CHECK.number(key, value, low=low, high=high, low_open=low_open)


def _integer_in(low: int, high: int) -> Check:
    return lambda key, value: _CHECK.integer(key, value, low=low, high=high)


def _positive(key: str, value: Any) -> float:
    return _CHECK.number(key, value, low=0.0, low_open=True)


def _share(key: str, value: Any) -> float:
    """A number in (0, 1): `alpha`."""
    number = _CHECK.number(key, value, low=0.0, high=1.0, low_open=True)
    if number >= 1.0:
        raise RankerConfigError(key, f"expected a number in (0, 1), found {value!r}")
    return number


def _int_choices(key: str, value: Any, low: int, high: int) -> tuple[int, ...]:
    """An integer or a non-empty list of distinct integers in [low, high], as an ascending tuple."""
    if not isinstance(value, list):
        return (_CHECK.integer(key, value, low=low, high=high),)
    if not value:
        raise RankerConfigError(key, "expected an integer or a non-empty list of integers, found []")
    values = [_CHECK.integer(f"{key}[{i}]", v, low=low, high=high) for i, v in enumerate(value)]
    if len(set(values)) != len(values):
        raise RankerConfigError(key, f"expected distinct values, found {value!r}")
    return tuple(sorted(values))


_LIGHTGBM_CHECKS: dict[str, Check] = {
    "learning_rate": _number_in(0.0, 1.0, low_open=True),
    "num_leaves": lambda key, value: _int_choices(key, value, 2, 131072),
    "min_data_in_leaf": _integer_in(1, 1_000_000),
    "feature_fraction": _number_in(0.0, 1.0, low_open=True),
    "lambda_l2": _number_in(0.0, 1e6),
    "max_bin": _integer_in(2, 65535),
    "num_boost_round": _integer_in(1, 100_000),
    "early_stopping_rounds": _integer_in(1, 100_000),
    "eval_at": _integer_in(1, 10_000),
    "truncation_level": _integer_in(1, 10_000),
    "position_bias_regularization": _number_in(0.0, 1e6),
    "num_threads": _integer_in(1, 256),
    "seed": _integer_in(0, 2**31 - 1),
}
_STATS_CHECKS: dict[str, Check] = {"coec_prior_strength": _positive, "cvr_prior_strength": _positive}
_EVAL_CHECKS: dict[str, Check] = {
    "k": _integer_in(1, 10_000),
    "n_bootstrap": _integer_in(1, 1_000_000),
    "alpha": _share,
    "seed": _integer_in(0, 2**31 - 1),
}


def _parse_table(where: str, table: Any, cls: type, checks: Mapping[str, Check]) -> Any:
    _CHECK.keys(where, table, checks)
    return cls(**{key: checks[key](f"{where}.{key}", value) for key, value in table.items()})


def _parse_labels(table: Any) -> LabelSettings:
    _CHECK.keys("labels", table, ("wait_seconds", "position_bias", "max_position"))
    values: dict[str, Any] = {}
    if "wait_seconds" in table:
        # inf admits all feedback, however late.
        values["wait_seconds"] = _CHECK.number(
            "labels.wait_seconds", table["wait_seconds"], low=0.0, low_open=True, finite=False
        )
    if "position_bias" in table:
        values["position_bias"] = _CHECK.string(
            "labels.position_bias", table["position_bias"], choices=POSITION_BIAS
        )
    if "max_position" in table:
        values["max_position"] = _CHECK.integer(
            "labels.max_position", table["max_position"], low=1, high=10_000
        )
    return LabelSettings(**values)


def _parse_split(table: Any) -> SplitSettings:
    _CHECK.keys("split", table, WINDOWS)
    share = _number_in(0.0, 1.0, low_open=True)
    split = SplitSettings(**{key: share(f"split.{key}", v) for key, v in table.items()})
    total = math.fsum(split.fractions)
    if not math.isclose(total, 1.0, abs_tol=1e-9):
        shares = ", ".join(f"{w} {f:g}" for w, f in zip(WINDOWS, split.fractions, strict=True))
        raise RankerConfigError("split", f"shares sum to {total:g}, expected 1 ({shares})")
    return split


def _parse_label_rule(where: str, table: Any) -> LabelRule:
    _CHECK.keys(where, table, ("click", "conversion", "revenue_step", "max_grade"))
    click = _CHECK.integer(f"{where}.click", table.get("click", 1), low=0, high=MAX_GRADE)
    conversion = _CHECK.integer(f"{where}.conversion", table.get("conversion", 2), low=1, high=MAX_GRADE)
    if conversion < click:
        raise RankerConfigError(
            f"{where}.conversion", f"expected a grade >= click ({click}), found {conversion}"
        )
    step = _CHECK.number(f"{where}.revenue_step", table.get("revenue_step", 0.0), low=0.0)
    max_grade = _CHECK.integer(
        f"{where}.max_grade", table.get("max_grade", conversion), low=conversion, high=MAX_GRADE
    )
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
        _CHECK.keys(where, body, ("context", "labels"))
        context = _CHECK.string(f"{where}.context", body.get("context", "none"), choices=CONTEXT_KINDS)
        sections[name] = SectionSpec(
            name, context, _parse_label_rule(f"{where}.labels", body.get("labels", {}))
        )
    return sections


def _names(key: str, value: Any, known: Mapping[str, Any], what: str, known_as: str) -> tuple[str, ...]:
    """A non-empty list of distinct names of `known` (sections or features), as a tuple."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise RankerConfigError(key, f"expected a non-empty list of {what} names, found {value!r}")
    unknown = [v for v in value if v not in known]
    if unknown:
        raise RankerConfigError(key, f"unknown {what}s {unknown}; {known_as}: {', '.join(known)}")
    if len(set(value)) != len(value):
        raise RankerConfigError(key, f"a {what} appears twice in {value}")
    return tuple(value)


def _parse_designs(table: Any, sections: Mapping[str, SectionSpec]) -> dict[str, DesignSpec]:
    _CHECK.keys("designs", table, DESIGNS)
    missing = [d for d in DESIGNS if d not in table]
    if missing:
        raise RankerConfigError("designs", f"missing design tables {missing}")
    designs = {}
    for name, design in DESIGNS.items():
        where = f"designs.{name}"
        body = _CHECK.keys(where, table[name], ("sections", "features", "union"))
        names = _names(f"{where}.sections", body.get("sections"), sections, "section", "configured")
        features = _names(f"{where}.features", body.get("features"), FEATURES, "feature", "known")
        design.validate(where, sections=names, features=features)
        union = body.get("union", "traffic")
        if not isinstance(union, str):
            raise RankerConfigError(f"{where}.union", f"expected a strategy name or numbers, found {union!r}")
        try:
            parse_union_spec(union, names)
        except RankerError as exc:
            raise RankerConfigError(f"{where}.union", str(exc)) from None
        designs[name] = DesignSpec(name, names, features, union)
    return designs
