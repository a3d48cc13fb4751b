"""Sections, their re-ranking pipelines and knob values, read from TOML and validated once.

A section's *arms* are the product of its knobs' allowed values, or an explicit list; each arm carries every
knob of every step of the pipeline (unlisted knobs take the heuristic's default) and a stable id derived from
the section name and those values, so that ids do not change when the config file is reordered.

The file format is documented in docs/sections-config.md; the shipped default is `heuristics/sections.toml`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from heuristics.base import OrderHeuristic
from heuristics.config_reader import ConfigChecks
from heuristics.errors import ConfigError
from heuristics.normalize import METHODS
from heuristics.registry import CONTEXT_FIELDS, HEURISTICS, NEEDS_CONTEXT

DEFAULT_CONFIG = Path(__file__).with_name("sections.toml")
_CHECK = ConfigChecks(ConfigError)
SCHEMA_VERSION = 1

_TOP_KEYS = {"schema_version", "sections"}
_SECTION_KEYS = {
    "description",
    "required_context",
    "normalize",
    "pipeline",
    "params",
    "knobs",
    "arms",
    "default_arm",
    "serving",
}


@dataclass(frozen=True)
class ServingSettings:
    """How the service serves a section: its own serving environment."""

    default_k: int = 20
    max_candidates: int = 1000
    latency_budget_ms: float = 50.0
    cache_size: int = 0

    _LIMITS = MappingProxyType(
        {
            "default_k": (1, 1000),
            "max_candidates": (1, 10000),
            "latency_budget_ms": (0.1, 60000.0),
            "cache_size": (0, 1_000_000),
        }
    )


@dataclass(frozen=True)
class Arm:
    """One combination of knob values of a section.

    Attributes
    ----------
    id : str
        Stable id: ``<section>-<10 hex digits>`` of a hash of the section and knob values.
    index : int
        Position in the section's arm list (stable while the config is unchanged).
    knobs : Mapping[str, float]
        ``"heuristic.knob" -> value`` for every knob of the section's pipeline.
    """

    id: str
    index: int
    knobs: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "index": self.index, "knobs": dict(self.knobs)}


@dataclass(frozen=True)
class SectionConfig:
    """A validated section: its pipeline, params, knob grid, arms and serving settings."""

    name: str
    description: str
    required_context: tuple[str, ...]
    normalize: str
    pipeline: tuple[str, ...]
    params: Mapping[str, Mapping[str, str]]
    knob_values: Mapping[str, tuple[float, ...]]
    arms: tuple[Arm, ...]
    default_arm: Arm
    serving: ServingSettings = field(default_factory=ServingSettings)

    def arm(self, ref: str | int) -> Arm:
        """An arm by id, or by index (negative counts from the end)."""
        if isinstance(ref, int):
            if not -len(self.arms) <= ref < len(self.arms):
                raise ConfigError(
                    f"sections.{self.name}.arms",
                    f"no arm at index {ref}; the section has {len(self.arms)} arms",
                )
            return self.arms[ref]
        for arm in self.arms:
            if arm.id == ref:
                return arm
        raise ConfigError(f"sections.{self.name}.arms", f"no arm with id {ref!r}")

    @property
    def knob_names(self) -> tuple[str, ...]:
        """Every knob of the pipeline, as ``heuristic.knob``, in pipeline order."""
        return tuple(self.arms[0].knobs)


@dataclass(frozen=True)
class SectionsConfig:
    """Every configured section, by name."""

    sections: Mapping[str, SectionConfig]
    source: str

    def __getitem__(self, name: str) -> SectionConfig:
        if name not in self.sections:
            known = ", ".join(self.sections)
            raise ConfigError("section", f"unknown section {name!r}; configured: {known}")
        return self.sections[name]

    def __iter__(self) -> Iterator[SectionConfig]:
        return iter(self.sections.values())

    @classmethod
    def load(cls, path: str | Path | None = None) -> SectionsConfig:
        """Read and validate a sections config; the shipped default when `path` is None."""
        path = DEFAULT_CONFIG if path is None else Path(path)
        data = _CHECK.read_toml(path)
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> SectionsConfig:
        _CHECK.keys("config", data, _TOP_KEYS)
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ConfigError("schema_version", f"expected {SCHEMA_VERSION}, found {version!r}")
        sections = data.get("sections")
        if not isinstance(sections, Mapping) or not sections:
            raise ConfigError("sections", "expected at least one [sections.<name>] table")
        parsed = {name: _parse_section(name, body) for name, body in sections.items()}
        return cls(sections=MappingProxyType(parsed), source=source)


def _parse_section(name: str, body: Any) -> SectionConfig:
    where = f"sections.{name}"
    _CHECK.keys(where, body, _SECTION_KEYS)

    pipeline = body.get("pipeline")
    if not isinstance(pipeline, list) or not pipeline:
        raise ConfigError(f"{where}.pipeline", "expected a non-empty list of heuristic names")
    for step in pipeline:
        if not isinstance(step, str) or step not in HEURISTICS:
            raise ConfigError(
                f"{where}.pipeline",
                f"unknown heuristic {step!r} (known: {', '.join(HEURISTICS)})",
            )
    if len(set(pipeline)) != len(pipeline):
        raise ConfigError(f"{where}.pipeline", "a heuristic appears twice")
    _check_step_order(where, pipeline)

    required = body.get("required_context", [])
    if not isinstance(required, list) or any(f not in CONTEXT_FIELDS for f in required):
        raise ConfigError(
            f"{where}.required_context",
            f"expected a list drawn from {', '.join(CONTEXT_FIELDS)}, found {required!r}",
        )
    for step in pipeline:
        needed = NEEDS_CONTEXT.get(step)
        if needed is not None and needed not in required:
            raise ConfigError(
                f"{where}.required_context",
                f"heuristic {step!r} reads context {needed!r}; list it in required_context",
            )

    normalize = body.get("normalize", "minmax")
    if normalize not in METHODS:
        raise ConfigError(f"{where}.normalize", f"expected one of {', '.join(METHODS)}, found {normalize!r}")

    params = _parse_params(where, body.get("params", {}), pipeline)
    if "knobs" in body and "arms" in body:
        raise ConfigError(f"{where}.arms", "give either knobs (their product) or arms, not both")
    if "arms" in body:
        arm_tables = body["arms"]
        if not isinstance(arm_tables, list) or not arm_tables:
            raise ConfigError(f"{where}.arms", "expected a non-empty list of [[arms]] tables")
        combos = [_resolve_knobs(f"{where}.arms[{i}]", table, pipeline) for i, table in enumerate(arm_tables)]
        knob_values = {key: tuple(sorted({c[key] for c in combos})) for key in (combos[0] if combos else {})}
    else:
        knob_values = _parse_knob_grid(where, body.get("knobs", {}), pipeline)
        names = list(knob_values)
        combos = [
            dict(zip(names, values, strict=True)) for values in itertools.product(*knob_values.values())
        ]

    arms = _build_arms(where, name, combos)
    if "default_arm" in body:
        wanted = _resolve_knobs(f"{where}.default_arm", body["default_arm"], pipeline)
        matches = [arm for arm in arms if dict(arm.knobs) == wanted]
        if not matches:
            raise ConfigError(f"{where}.default_arm", "these knob values are not one of the arms")
        default_arm = matches[0]
    else:
        default_arm = arms[0]

    return SectionConfig(
        name=name,
        description=str(body.get("description", "")),
        required_context=tuple(required),
        normalize=normalize,
        pipeline=tuple(pipeline),
        params=MappingProxyType(params),
        knob_values=MappingProxyType(knob_values),
        arms=tuple(arms),
        default_arm=default_arm,
        serving=_parse_serving(where, body.get("serving", {})),
    )


def _check_step_order(where: str, pipeline: list[str]) -> None:
    """Score steps come before order steps; a step that ranks by score must be the first order step."""
    seen_order_step = None
    for step in pipeline:
        cls = HEURISTICS[step]
        if issubclass(cls, OrderHeuristic):
            if cls.USES_SCORES and seen_order_step is not None:
                raise ConfigError(
                    f"{where}.pipeline",
                    f"{step!r} ranks by score, so it must come before {seen_order_step!r}",
                )
            seen_order_step = seen_order_step or step
        elif seen_order_step is not None:
            raise ConfigError(
                f"{where}.pipeline",
                f"score step {step!r} must come before the order step {seen_order_step!r}",
            )


def _parse_params(where: str, table: Any, pipeline: list[str]) -> dict[str, dict[str, str]]:
    _CHECK.keys(f"{where}.params", table, set(pipeline))
    params: dict[str, dict[str, str]] = {}
    for step in pipeline:
        specs = HEURISTICS[step].PARAMS
        given = table.get(step, {})
        _CHECK.keys(f"{where}.params.{step}", given, set(specs))
        values = {}
        for pname, spec in specs.items():
            value = given.get(pname, spec.default)
            problem = spec.problem(value)
            if problem is not None:
                raise ConfigError(f"{where}.params.{step}.{pname}", problem)
            values[pname] = value
        params[step] = values
    return params


def _check_value(key: str, step: str, knob: str, value: Any) -> float:
    spec = HEURISTICS[step].KNOBS[knob]
    problem = spec.problem(value)
    if problem is not None:
        raise ConfigError(key, problem)
    # Adding 0.0 turns -0.0 into 0.0, so that both spellings give the same arm id.
    return int(value) if spec.integer else float(value) + 0.0


def _parse_knob_grid(where: str, table: Any, pipeline: list[str]) -> dict[str, tuple[float, ...]]:
    _CHECK.keys(f"{where}.knobs", table, set(pipeline))
    grid: dict[str, tuple[float, ...]] = {}
    for step in pipeline:
        specs = HEURISTICS[step].KNOBS
        given = table.get(step, {})
        _CHECK.keys(f"{where}.knobs.{step}", given, set(specs))
        for knob, spec in specs.items():
            key = f"{where}.knobs.{step}.{knob}"
            values = given.get(knob, [spec.default])
            if not isinstance(values, list):
                values = [values]
            if not values:
                raise ConfigError(key, "expected at least one value, found an empty list")
            checked = tuple(_check_value(key, step, knob, v) for v in values)
            if len(set(checked)) != len(checked):
                raise ConfigError(key, f"duplicate values in {list(values)!r}")
            grid[f"{step}.{knob}"] = checked
    return grid


def _resolve_knobs(key: str, table: Any, pipeline: list[str]) -> dict[str, float]:
    """Every knob of the pipeline from a nested ``{heuristic: {knob: value}}`` table, defaults filled."""
    _CHECK.keys(key, table, set(pipeline))
    resolved: dict[str, float] = {}
    for step in pipeline:
        specs = HEURISTICS[step].KNOBS
        given = table.get(step, {})
        _CHECK.keys(f"{key}.{step}", given, set(specs))
        for knob, spec in specs.items():
            value = given.get(knob, spec.default)
            resolved[f"{step}.{knob}"] = _check_value(f"{key}.{step}.{knob}", step, knob, value)
    return resolved


def arm_id(section: str, knobs: Mapping[str, float]) -> str:
    """The stable id of an arm: a hash of the section name and its knob values."""
    canonical = json.dumps({"section": section, "knobs": dict(knobs)}, sort_keys=True)
    return f"{section}-{hashlib.sha1(canonical.encode()).hexdigest()[:10]}"


def _build_arms(where: str, section: str, combos: list[dict[str, float]]) -> list[Arm]:
    arms: list[Arm] = []
    seen: dict[str, int] = {}
    for index, knobs in enumerate(combos):
        ident = arm_id(section, knobs)
        if ident in seen:
            raise ConfigError(f"{where}.arms[{index}]", f"duplicate of arm {seen[ident]} (same knob values)")
        seen[ident] = index
        arms.append(Arm(id=ident, index=index, knobs=MappingProxyType(dict(knobs))))
    return arms


def _parse_serving(where: str, table: Any) -> ServingSettings:
    limits = ServingSettings._LIMITS
    _CHECK.keys(f"{where}.serving", table, set(limits))
    values: dict[str, Any] = {}
    for key, (low, high) in limits.items():
        if key not in table:
            continue
        value = table[key]
        integer = key != "latency_budget_ms"
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type or not low <= value <= high:
            kind = "an integer" if integer else "a number"
            raise ConfigError(
                f"{where}.serving.{key}", f"expected {kind} in [{low:g}, {high:g}], found {value!r}"
            )
        values[key] = value
    return ServingSettings(**values)
