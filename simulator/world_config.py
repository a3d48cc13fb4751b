"""The world file: the sizes, tastes and click model of a simulated world, read from TOML and validated once.

A world file may set any subset of the keys of the default world (`simulator/worlds/default.toml`); the keys
it leaves out keep the default values. Tables with a fixed set of keys are merged key by key; maps whose keys
are names (segment shares, device multipliers, the mix of candidate sources) are replaced whole; a section
named in the file is merged over the default section of that name, and a new section must give every key.

Every key, its range and its meaning: docs/simulator.md. A bad file raises `WorldConfigError` whose message
starts with the dotted key at fault, e.g. ``items.count: expected an integer in [1, 10000000], found -5``.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from heuristics.config_reader import ConfigChecks
from simulator.errors import WorldConfigError

#: Reads world files and checks their tables; every failure is a `WorldConfigError` naming the dotted key.
_CHECK = ConfigChecks(WorldConfigError, file_key="world")
WORLDS_DIR = Path(__file__).with_name("worlds")
SCHEMA_VERSION = 1
#: The context kinds a section can have, and the request field each one fills.
CONTEXT_KINDS = ("none", "source_item", "category", "query")
_SHARE_TOLERANCE = 1e-6


# --- value specs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    """A number in ``[low, high]`` (``low`` excluded when `open_low`)."""

    low: float
    high: float
    integer: bool = False
    open_low: bool = False

    def parse(self, key: str, value: Any) -> float | int:
        kind = "an integer" if self.integer else "a number"
        bracket = "(" if self.open_low else "["
        expected = f"expected {kind} in {bracket}{self.low:g}, {self.high:g}]"
        ok_type = isinstance(value, int) if self.integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type:
            raise WorldConfigError(key, f"{expected}, found {value!r}")
        if not math.isfinite(value):
            raise WorldConfigError(key, f"{expected}, found {value!r}")
        low_ok = value > self.low if self.open_low else value >= self.low
        if not low_ok or value > self.high:
            raise WorldConfigError(key, f"{expected}, found {value!r}")
        return int(value) if self.integer else float(value)

    def describe(self) -> str:
        bracket = "(" if self.open_low else "["
        kind = "integer" if self.integer else "number"
        return f"{kind} in {bracket}{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of strings."""

    choices: tuple[str, ...]

    def parse(self, key: str, value: Any) -> str:
        if value not in self.choices:
            raise WorldConfigError(key, f"expected one of {', '.join(self.choices)}, found {value!r}")
        return str(value)

    def describe(self) -> str:
        return "one of " + ", ".join(f'"{c}"' for c in self.choices)


@dataclass(frozen=True)
class Text:
    """A non-empty string."""

    def parse(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise WorldConfigError(key, f"expected a non-empty string, found {value!r}")
        return value

    def describe(self) -> str:
        return "string"


@dataclass(frozen=True)
class Timestamp:
    """A TOML date or date-time (UTC when it carries no offset), or Unix seconds; parsed to Unix seconds."""

    def parse(self, key: str, value: Any) -> int:
        if isinstance(value, dt.datetime):
            moment = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
            return int(moment.timestamp())
        if isinstance(value, dt.date):
            return int(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp())
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**40:
            return value
        raise WorldConfigError(key, f"expected a TOML date-time or Unix seconds >= 0, found {value!r}")

    def describe(self) -> str:
        return "TOML date-time or Unix seconds"


@dataclass(frozen=True)
class NameMap:
    """A table ``name -> number``; with `shares`, numbers in [0, 1] summing to 1.

    With `keys`, exactly those names; otherwise any non-empty set of names. Replaced whole when merged.
    """

    value: Num
    shares: bool = False
    keys: tuple[str, ...] | None = None

    def parse(self, key: str, value: Any) -> Mapping[str, float]:
        if not isinstance(value, Mapping) or not value:
            raise WorldConfigError(key, f"expected a non-empty table of name = number, found {value!r}")
        if self.keys is not None and set(value) != set(self.keys):
            raise WorldConfigError(
                key, f"expected the keys {', '.join(self.keys)}, found {', '.join(sorted(value))}"
            )
        parsed = {str(name): float(self.value.parse(f"{key}.{name}", v)) for name, v in value.items()}
        if self.shares:
            total = math.fsum(parsed.values())
            if abs(total - 1.0) > _SHARE_TOLERANCE:
                listed = ", ".join(f"{n} {v:g}" for n, v in parsed.items())
                raise WorldConfigError(key, f"shares sum to {total:g}, expected 1 ({listed})")
        return MappingProxyType(parsed)

    def describe(self) -> str:
        what = "shares summing to 1" if self.shares else self.value.describe()
        return f"table name = {what}"


def _spec(spec: Any, doc: str) -> Any:
    """A dataclass field carrying the spec of its world-file key and a one-line meaning."""
    return field(metadata={"spec": spec, "doc": doc})


_SIZE = Num(1, 2_000_000, integer=True)
_WEIGHT = Num(-20.0, 20.0)
_NONNEG = Num(0.0, 20.0)
_SHARE = Num(0.0, 1.0)
_MULTIPLIER = Num(0.0, 100.0)


# --- typed config ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodConfig:
    start: int = _spec(Timestamp(), "start of the simulated period (Unix seconds once parsed)")
    days: float = _spec(Num(0.0, 3650.0, open_low=True), "length of the simulated period in days")


@dataclass(frozen=True)
class ItemsConfig:
    count: int = _spec(_SIZE, "number of items")
    categories: int = _spec(Num(1, 10_000, integer=True), "number of categories")
    subcategories_per_category: int = _spec(Num(1, 1000, integer=True), "subcategories in each category")
    category_skew: float = _spec(Num(0.0, 5.0), "Zipf exponent of category sizes")
    latent_dim: int = _spec(Num(2, 256, integer=True), "dimension of latent vectors and embeddings")
    subcategory_spread: float = _spec(Num(0.0, 10.0), "distance of a subcategory centre from its category's")
    item_spread: float = _spec(Num(0.0, 10.0), "distance of an item from its subcategory centre")
    embedding_noise: float = _spec(Num(0.0, 10.0), "noise of the observable item embedding")
    new_share: float = _spec(Num(0.0, 1.0, open_low=False), "share of items published during the period")
    catalog_age_days: float = _spec(Num(0.0, 36500.0, open_low=True), "mean age at start of older items")
    popularity_rate: float = _spec(Num(0.0, 1e6), "interactions per day of exposure at quality 0")
    price_median: float = _spec(Num(0.0, 1e9, open_low=True), "median price")
    price_sigma: float = _spec(Num(0.0, 5.0), "log-normal spread of prices within a category")
    category_price_sigma: float = _spec(Num(0.0, 5.0), "log-normal spread of category price levels")
    promoted_share: float = _spec(_SHARE, "share of promoted items")
    promoted_price_tilt: float = _spec(Num(-10.0, 10.0), "promoted items drawn with weight price ** tilt")
    tags_per_item: int = _spec(Num(1, 100, integer=True), "tag words per item")
    vocabulary: int = _spec(Num(1, 100_000, integer=True), "number of distinct tag words")
    tag_temperature: float = _spec(Num(0.0, 100.0, open_low=True), "softmax temperature of tag choice")

    @property
    def n_new(self) -> int:
        """Items published during the period (the rest are published before it)."""
        return round(self.new_share * self.count)


@dataclass(frozen=True)
class SensitivityConfig:
    segment: Mapping[str, float] = _spec(NameMap(_WEIGHT), "multiplier per user segment (may be negative)")
    device: Mapping[str, float] = _spec(NameMap(_MULTIPLIER), "multiplier per request device")
    spread: float = _spec(Num(0.0, 5.0), "sd of the per-user log-normal factor")


@dataclass(frozen=True)
class UsersConfig:
    count: int = _spec(_SIZE, "number of users")
    segments: Mapping[str, float] = _spec(NameMap(_SHARE, shares=True), "share of users per segment")
    devices: Mapping[str, float] = _spec(NameMap(_SHARE, shares=True), "share of users per home device")
    activity_tail: float = _spec(Num(0.1, 100.0), "Pareto shape of per-user activity")
    segment_activity: Mapping[str, float] = _spec(NameMap(_MULTIPLIER), "activity multiplier per segment")
    tastes: int = _spec(Num(1, 100, integer=True), "subcategories a user's taste is centred on")
    taste_spread: float = _spec(Num(0.0, 10.0), "noise around the taste centres")
    embedding_noise: float = _spec(Num(0.0, 10.0), "noise of the observable user embedding")
    new_user_days: float = _spec(Num(0.0, 3650.0, open_low=True), "signup window of new users")
    freshness: SensitivityConfig = field(
        metadata={"table": SensitivityConfig, "doc": "sensitivity to item freshness"}
    )
    satiation: SensitivityConfig = field(
        metadata={"table": SensitivityConfig, "doc": "sensitivity to repeated categories"}
    )
    price_sensitivity: SensitivityConfig = field(
        metadata={"table": SensitivityConfig, "doc": "price elasticity of conversion"}
    )


@dataclass(frozen=True)
class RequestsConfig:
    device_stickiness: float = _spec(_SHARE, "probability of the home device")
    context_from_affinity: float = _spec(_SHARE, "share of contexts drawn from the user's taste")
    two_word_queries: float = _spec(_SHARE, "share of two-word queries")
    feedback_delay_s: float = _spec(Num(0.0, 1e7), "feedback time minus decision time")


@dataclass(frozen=True)
class ConversionConfig:
    intercept: float = _spec(_WEIGHT, "conversion logit intercept")
    quality: float = _spec(_WEIGHT, "weight of item quality")
    affinity: float = _spec(_WEIGHT, "weight of user-item affinity")
    segment: Mapping[str, float] = _spec(NameMap(_WEIGHT), "logit offset per segment")


@dataclass(frozen=True)
class ClickModelConfig:
    quality: float = _spec(_WEIGHT, "weight of item quality in attractiveness")
    freshness_half_life_days: float = _spec(Num(0.0, 3650.0, open_low=True), "half-life of freshness")
    segment_bias: Mapping[str, float] = _spec(NameMap(_WEIGHT), "attractiveness logit offset per segment")
    device_examination: Mapping[str, float] = _spec(NameMap(_MULTIPLIER), "examination decay multiplier")
    conversion: ConversionConfig = field(metadata={"table": ConversionConfig, "doc": "conversion of a click"})


@dataclass(frozen=True)
class SectionWorldConfig:
    context: str = _spec(Choice(CONTEXT_KINDS), "the request context the section carries")
    traffic: float = _spec(_SHARE, "share of requests")
    examination_decay: float = _spec(Num(0.0, 10.0), "exponent of the examination curve")
    bias: float = _spec(_WEIGHT, "attractiveness logit intercept")
    affinity: float = _spec(_WEIGHT, "weight of user-item affinity")
    freshness: float = _spec(_NONNEG, "multiplier of the user's freshness sensitivity")
    novelty: float = _spec(_WEIGHT, "weight of item novelty (low prior popularity)")
    source_similarity: float = _spec(_NONNEG, "weight of closeness to the source item")
    category_match: float = _spec(_NONNEG, "weight of being in the explored category")
    query_match: float = _spec(_NONNEG, "weight of match to the query")
    category_satiation: float = _spec(_NONNEG, "satiation per repeated category above")
    subcategory_satiation: float = _spec(_NONNEG, "satiation per repeated subcategory above")

    name: str = ""


@dataclass(frozen=True)
class CandidatesConfig:
    count: int = _spec(Num(1, 1000, integer=True), "candidates per request")
    mix: Mapping[str, float] = _spec(
        NameMap(_SHARE, shares=True, keys=("popular", "affinity", "context", "random")),
        "shares of the candidate sources",
    )
    oversample: float = _spec(Num(1.0, 10.0), "draws per candidate before removing duplicates")
    fresh_window_days: float = _spec(Num(0.0, 3650.0, open_low=True), "discover's fresh-items window")
    affinity_temperature: float = _spec(Num(0.0, 100.0, open_low=True), "cell softmax temperature (user)")
    context_temperature: float = _spec(Num(0.0, 100.0, open_low=True), "cell softmax temperature (source)")


_TOP_LEVEL: dict[str, Any] = {
    "schema_version": Num(SCHEMA_VERSION, SCHEMA_VERSION, integer=True),
    "name": Text(),
}
_TOP_TABLES: dict[str, type] = {
    "period": PeriodConfig,
    "items": ItemsConfig,
    "users": UsersConfig,
    "requests": RequestsConfig,
    "click_model": ClickModelConfig,
    "candidates": CandidatesConfig,
}


@dataclass(frozen=True)
class WorldConfig:
    """A validated world: every table of the world file, typed.

    Attributes
    ----------
    name : str
        The world's name (key ``name``).
    sections : Mapping[str, SectionWorldConfig]
        The sections of the world, in file order.
    source : str
        Where the config came from (a path, or ``<dict>``).
    raw : Mapping
        The merged TOML data, for `to_dict` and `with_overrides`.
    """

    name: str
    period: PeriodConfig
    items: ItemsConfig
    users: UsersConfig
    requests: RequestsConfig
    click_model: ClickModelConfig
    sections: Mapping[str, SectionWorldConfig]
    candidates: CandidatesConfig
    source: str = "<dict>"
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path_or_name: str | Path = "default") -> WorldConfig:
        """Read a world file (a path) or a shipped world (a name such as ``"default"``), validated."""
        path = _resolve(path_or_name)
        data = _CHECK.read_toml(path)
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> WorldConfig:
        """Validate world-file data given as a dict; keys it leaves out keep the default world's values."""
        base = _default_raw()
        merged = _merge_top(base, data)
        return _parse(merged, source)

    def with_overrides(self, overrides: Mapping[str, Any]) -> WorldConfig:
        """A new validated config: this one with some keys replaced (same merge rules as a world file)."""
        return _parse(_merge_top(self.to_dict(), overrides), f"{self.source} + overrides")

    def to_dict(self) -> dict[str, Any]:
        """The merged world-file data (TOML types: a `datetime` for ``period.start``)."""
        return copy.deepcopy(dict(self.raw))

    @property
    def start_time(self) -> int:
        """Start of the simulated period, in Unix seconds."""
        return self.period.start

    @property
    def end_time(self) -> int:
        """End of the simulated period (exclusive), in Unix seconds."""
        return self.period.start + round(self.period.days * 86400)

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.users.segments)

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(self.users.devices)


def schema_keys() -> list[tuple[str, str, str]]:
    """Every key of a world file as ``(dotted key, accepted values, meaning)``, for the docs and tests."""
    rows: list[tuple[str, str, str]] = [
        ("schema_version", "integer 1", "version of the world-file format"),
        ("name", "string", "the world's name"),
    ]

    def walk(prefix: str, cls: type) -> None:
        for f in fields(cls):
            if "table" in f.metadata:
                walk(f"{prefix}.{f.name}", f.metadata["table"])
            elif "spec" in f.metadata:
                rows.append((f"{prefix}.{f.name}", f.metadata["spec"].describe(), f.metadata["doc"]))

    for name, cls in _TOP_TABLES.items():
        walk(name, cls)
    walk("sections.<name>", SectionWorldConfig)
    return rows


# --- reading and merging -----------------------------------------------------------------------------------


def _resolve(path_or_name: str | Path) -> Path:
    if isinstance(path_or_name, str) and "/" not in path_or_name and not path_or_name.endswith(".toml"):
        shipped = WORLDS_DIR / f"{path_or_name}.toml"
        if not shipped.is_file():
            known = ", ".join(sorted(p.stem for p in WORLDS_DIR.glob("*.toml")))
            raise WorldConfigError("world", f"no shipped world named {path_or_name!r} (shipped: {known})")
        return shipped
    return Path(path_or_name)


def _default_raw() -> dict[str, Any]:
    return _CHECK.read_toml(WORLDS_DIR / "default.toml")


def _table_keys(cls: type) -> list[str]:
    return [f.name for f in fields(cls) if "spec" in f.metadata or "table" in f.metadata]


def _merge_table(key: str, base: Mapping[str, Any], override: Any, cls: type) -> dict[str, Any]:
    """Merge `override` over `base` for a fixed-key table of dataclass `cls`."""
    _CHECK.keys(key, override, _table_keys(cls))
    merged = dict(base)
    for f in fields(cls):
        if f.name not in override:
            continue
        if "table" in f.metadata:
            merged[f.name] = _merge_table(
                f"{key}.{f.name}", base.get(f.name, {}), override[f.name], f.metadata["table"]
            )
        else:
            merged[f.name] = override[f.name]
    return merged


def _merge_top(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(override, Mapping):
        raise WorldConfigError("world", f"expected a table of world-file keys, found {override!r}")
    _CHECK.keys("", override, [*_TOP_LEVEL, *_TOP_TABLES, "sections"])
    merged = copy.deepcopy(dict(base))
    for name in _TOP_LEVEL:
        if name in override:
            merged[name] = override[name]
    for name, cls in _TOP_TABLES.items():
        if name in override:
            merged[name] = _merge_table(name, merged.get(name, {}), override[name], cls)
    if "sections" in override:
        sections = override["sections"]
        if not isinstance(sections, Mapping):
            raise WorldConfigError(
                "sections", f"expected a table of [sections.<name>] tables, found {sections!r}"
            )
        merged_sections = dict(merged.get("sections", {}))
        for sname, body in sections.items():
            merged_sections[sname] = _merge_table(
                f"sections.{sname}", merged_sections.get(sname, {}), body, SectionWorldConfig
            )
        merged["sections"] = merged_sections
    return merged


# --- parsing and cross-checks ------------------------------------------------------------------------------


def _parse_table(key: str, raw: Any, cls: type, extra: Mapping[str, Any] | None = None) -> Any:
    table = _CHECK.keys(key, raw, _table_keys(cls))
    values: dict[str, Any] = dict(extra or {})
    for f in fields(cls):
        if "spec" not in f.metadata and "table" not in f.metadata:
            continue
        if f.name not in table:
            raise WorldConfigError(f"{key}.{f.name}", "missing; every section and table needs this key")
        if "table" in f.metadata:
            values[f.name] = _parse_table(f"{key}.{f.name}", table[f.name], f.metadata["table"])
        else:
            values[f.name] = f.metadata["spec"].parse(f"{key}.{f.name}", table[f.name])
    return cls(**values)


def _parse(raw: Mapping[str, Any], source: str) -> WorldConfig:
    top = {name: spec.parse(name, raw.get(name)) for name, spec in _TOP_LEVEL.items()}
    tables = {name: _parse_table(name, raw.get(name), cls) for name, cls in _TOP_TABLES.items()}
    sections_raw = raw.get("sections")
    if not isinstance(sections_raw, Mapping) or not sections_raw:
        raise WorldConfigError("sections", "expected at least one [sections.<name>] table")
    sections = {
        str(sname): _parse_table(f"sections.{sname}", body, SectionWorldConfig, {"name": str(sname)})
        for sname, body in sections_raw.items()
    }
    config = WorldConfig(
        name=top["name"],
        sections=MappingProxyType(sections),
        source=source,
        raw=MappingProxyType(copy.deepcopy(dict(raw))),
        **tables,
    )
    _cross_check(config)
    return config


def _check_names(key: str, given: Mapping[str, float], expected: tuple[str, ...], what: str) -> None:
    if set(given) != set(expected):
        raise WorldConfigError(
            key,
            f"expected the keys {', '.join(sorted(expected))} (the {what}), found {', '.join(sorted(given))}",
        )


def _cross_check(config: WorldConfig) -> None:
    users, items = config.users, config.items
    segments, devices = config.segments, config.devices
    _check_names("users.segment_activity", users.segment_activity, segments, "segments of users.segments")
    for name in ("freshness", "satiation", "price_sensitivity"):
        sens: SensitivityConfig = getattr(users, name)
        _check_names(f"users.{name}.segment", sens.segment, segments, "segments of users.segments")
        _check_names(f"users.{name}.device", sens.device, devices, "devices of users.devices")
    _check_names("click_model.segment_bias", config.click_model.segment_bias, segments, "segments")
    _check_names(
        "click_model.conversion.segment", config.click_model.conversion.segment, segments, "segments"
    )
    _check_names("click_model.device_examination", config.click_model.device_examination, devices, "devices")

    traffic = {name: s.traffic for name, s in config.sections.items()}
    total = math.fsum(traffic.values())
    if abs(total - 1.0) > _SHARE_TOLERANCE:
        listed = ", ".join(f"{n} {v:g}" for n, v in traffic.items())
        raise WorldConfigError(
            "sections.<name>.traffic", f"the sections' traffic shares sum to {total:g}, expected 1 ({listed})"
        )
    intents = {"source_similarity": "source_item", "category_match": "category", "query_match": "query"}
    for name, section in config.sections.items():
        for weight, context in intents.items():
            if getattr(section, weight) != 0 and section.context != context:
                raise WorldConfigError(
                    f"sections.{name}.{weight}",
                    f"a non-zero weight needs context = {context!r}, found context = {section.context!r}",
                )

    if items.tags_per_item > items.vocabulary:
        raise WorldConfigError(
            "items.tags_per_item",
            f"expected at most items.vocabulary = {items.vocabulary}, found {items.tags_per_item}",
        )
    available = items.count - items.n_new
    if config.candidates.count > available:
        raise WorldConfigError(
            "candidates.count",
            f"expected at most the {available} items published before the period "
            f"(items.count x (1 - items.new_share)), found {config.candidates.count}",
        )
