"""The ``[experiments]`` table of the service config: A/B tests between designs on live traffic.

Each experiment covers some sections and splits users among its variants by a stable hash of the user id
and the experiment's name (`bandits.experiment_assign`: no seed, so a user stays in one variant across
workers and restarts). A variant may serve its sections with another ranker design, another knob policy,
or with the heuristics on or off; what it leaves out is the config's own (``[section_models]``, ``policy``,
``heuristics``)::

    [experiments.consolidate]
    sections = ["similar_items", "category_explore"]
    [experiments.consolidate.variants.A]          # base ranker + bandit knobs: the config as it is
    share = 0.5
    [experiments.consolidate.variants.B]
    share = 0.5
    design = "consolidated"                       # the consolidated model serves these sections
    # policy = "default"                          # optional: this variant's knob policy
    # heuristics = false                          # optional: the ranker's order, no knobs

A section is in at most one experiment; the variants' shares sum to 1. Each decision logs its variant as
``"EXPERIMENT/VARIANT"`` (``""`` outside any experiment) and `sectionrank experiment-report` compares them.
Errors name the key: ``experiments.consolidate.variants.B.design: expected one of ...``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from bandits.experiment_assign import NAME_PATTERN, SHARE_TOLERANCE, Experiment, Variant
from heuristics.config_reader import ConfigChecks
from service.errors import ServiceConfigError

_CHECK = ConfigChecks(ServiceConfigError, file_key="file")
_EXPERIMENT_KEYS = frozenset({"sections", "variants"})
_VARIANT_KEYS = frozenset({"share", "design", "policy", "heuristics"})


@dataclass(frozen=True)
class VariantConfig:
    """One variant: its share of users and what it changes for the experiment's sections.

    Attributes
    ----------
    name : str
    share : float
        In (0, 1].
    design : str or None
        The ranker design serving the experiment's sections; None: ``[section_models]``.
    policy : str or None
        The knob policy spec or directory; None: the config's ``policy``.
    heuristics : bool or None
        None: the config's ``heuristics``.
    """

    name: str
    share: float
    design: str | None = None
    policy: str | None = None
    heuristics: bool | None = None


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment of ``[experiments]``: its `name` (hashed with the user id), `sections`, `variants`."""

    name: str
    sections: tuple[str, ...]
    variants: tuple[VariantConfig, ...]

    @property
    def key(self) -> str:
        return f"experiments.{self.name}"

    def plan(self) -> Experiment:
        """The assignment of users to variants (`bandits.experiment_assign.Experiment`)."""
        return Experiment(self.name, self.sections, tuple(Variant(v.name, v.share) for v in self.variants))

    def public(self) -> dict[str, Any]:
        """The experiment as its config table (what a variant leaves out stays out), JSON-able."""
        variants = {}
        for v in self.variants:
            given = {"design": v.design, "policy": v.policy, "heuristics": v.heuristics}
            variants[v.name] = {"share": v.share, **{k: x for k, x in given.items() if x is not None}}
        return {"sections": list(self.sections), "variants": variants}


def parse_experiments(
    table: Any, *, designs: Collection[str], policy: Callable[[Any, str], str]
) -> tuple[ExperimentConfig, ...]:
    """``[experiments]``: name -> experiment, checked; `policy(value, key)` resolves a variant's policy."""
    if not isinstance(table, Mapping):
        raise ServiceConfigError("experiments", f"expected a table name -> experiment, found {table!r}")
    out: list[ExperimentConfig] = []
    owner: dict[str, str] = {}
    for name, body in table.items():
        key = f"experiments.{name}"
        if not NAME_PATTERN.match(str(name)):
            raise ServiceConfigError(key, "expected a name of 1 to 64 characters among A-Z a-z 0-9 _ . + -")
        body = _CHECK.keys(key, body, _EXPERIMENT_KEYS)
        for needed in ("sections", "variants"):
            if needed not in body:
                raise ServiceConfigError(f"{key}.{needed}", "missing")
        sections = _sections(f"{key}.sections", body["sections"])
        for section in sections:
            if section in owner:
                raise ServiceConfigError(
                    f"{key}.sections", f"section {section!r} is already in experiment {owner[section]!r}"
                )
            owner[section] = str(name)
        variants = _variants(f"{key}.variants", body["variants"], designs, policy)
        out.append(ExperimentConfig(str(name), sections, variants))
    return tuple(out)


def _sections(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(s, str) and s for s in value):
        raise ServiceConfigError(key, f"expected a non-empty list of section names, found {value!r}")
    if len(set(value)) != len(value):
        raise ServiceConfigError(key, f"expected distinct section names, found {value!r}")
    return tuple(value)


def _variants(
    key: str, table: Any, designs: Collection[str], policy: Callable[[Any, str], str]
) -> tuple[VariantConfig, ...]:
    if not isinstance(table, Mapping):
        raise ServiceConfigError(key, f"expected a table name -> variant, found {table!r}")
    if len(table) < 2:
        raise ServiceConfigError(key, f"expected at least 2 variants, found {len(table)}")
    out = []
    for name, body in table.items():
        vkey = f"{key}.{name}"
        if not NAME_PATTERN.match(str(name)):
            raise ServiceConfigError(vkey, "expected a name of 1 to 64 characters among A-Z a-z 0-9 _ . + -")
        body = _CHECK.keys(vkey, body, _VARIANT_KEYS)
        if "share" not in body:
            raise ServiceConfigError(f"{vkey}.share", "missing (a share of users in (0, 1])")
        share = _CHECK.number(f"{vkey}.share", body["share"], low=0.0, high=1.0, low_open=True)
        design = body.get("design")
        if design is not None:
            design = _CHECK.string(f"{vkey}.design", design, choices=designs)
        heuristics = body.get("heuristics")
        if heuristics is not None:
            heuristics = _CHECK.boolean(f"{vkey}.heuristics", heuristics)
        spec = policy(body["policy"], f"{vkey}.policy") if "policy" in body else None
        out.append(VariantConfig(str(name), share, design, spec, heuristics))
    total = math.fsum(v.share for v in out)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        listing = ", ".join(f"{v.name} {v.share:g}" for v in out)
        raise ServiceConfigError(key, f"shares sum to {total:.12g}, expected 1 ({listing})")
    return tuple(out)


def experiment_problems(
    experiments: tuple[ExperimentConfig, ...],
    sections: Collection[str],
    models: Collection[str],
) -> list[ServiceConfigError]:
    """What stops the experiments from serving: a section the sections config does not have, a variant's
    design without a model directory. Empty when nothing does."""
    problems = []
    known = ", ".join(sections)
    for experiment in experiments:
        for section in experiment.sections:
            if section not in sections:
                problems.append(
                    ServiceConfigError(
                        f"{experiment.key}.sections", f"unknown section {section!r} (configured: {known})"
                    )
                )
        for variant in experiment.variants:
            if variant.design is not None and variant.design not in models:
                problems.append(
                    ServiceConfigError(
                        f"{experiment.key}.variants.{variant.name}.design",
                        f"no model directory for design {variant.design!r} (add it under [models])",
                    )
                )
    return problems


def designs_of(experiments: tuple[ExperimentConfig, ...]) -> set[str]:
    """Every design a variant names."""
    return {v.design for e in experiments for v in e.variants if v.design is not None}
