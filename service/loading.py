"""Building a pipeline from a service config: every artifact loaded, each contract and slot design checked,
a smoke prediction in every section. `build_pipeline` is run by a reload's validating process
(`service.reload_check`) and then by the worker itself (`service.state.ServiceState`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from bandits.base import KnobPolicy
from bandits.errors import BanditsError
from bandits.policies import ExploringPolicy
from bandits.replay import parse_policy
from heuristics import HeuristicsError, SectionsConfig
from ranker.errors import PipelineConfigError, RankerError
from ranker.model import RankerModel
from ranker.rerank.batch import RerankBatch
from ranker.rerank.items import ItemAttributes
from ranker.rerank.pipeline import RerankPipeline
from service.config import ServiceConfig
from service.errors import LoadError, ServiceConfigError, ServiceError
from service.follow import policy_source
from service.store import ServiceStore

#: The errors a bad config, store, artifact or policy raises while loading.
LOAD_ERRORS = (RankerError, BanditsError, HeuristicsError, ServiceError, OSError, ValueError)


@dataclass
class Loaded:
    """A built pipeline and what it was built from; its caches go with it (a reload starts them empty)."""

    config: ServiceConfig
    pipeline: RerankPipeline
    models: dict[str, RankerModel]
    loaded_at: float
    caches: dict[str, OrderedDict] = field(default_factory=dict)
    #: The shipped version the policy is (``DIR/current`` of a followed policy directory), or None.
    policy_version: str | None = None
    #: The policy spec loaded: the config's, a pinned ``DIR/versions/<id>``, or the fallback.
    policy_spec: str = ""

    @property
    def sections(self) -> SectionsConfig:
        return self.pipeline.sections


def _load_step(key: str, step, *args, **kwargs):
    try:
        return step(*args, **kwargs)
    except LoadError:
        raise
    except PipelineConfigError as exc:
        # The pipeline was put together wrongly: the config's section -> design mapping is at fault.
        raise LoadError("section_models", exc.problem) from None
    except LOAD_ERRORS as exc:
        raise LoadError(key, str(exc)) from None


def build_pipeline(config: ServiceConfig, on_step: Callable[[str], None] | None = None) -> Loaded:
    """Load everything `config` names and smoke-test it; raises `LoadError` naming the key at fault.

    `on_step` is told each config key before its step runs (a validating child process reports it, so that
    a crash or a hang inside a loader still names the key).
    """

    def step(key: str, func, *args, **kwargs):
        if on_step is not None:
            on_step(key)
        return _load_step(key, func, *args, **kwargs)

    sections = step("sections_config", SectionsConfig.load, config.sections_config)
    store = ServiceStore(config.store)
    catalog, users = step("store", store.tables)
    problems = config.serving_problems(sections.sections)
    if problems:
        raise LoadError(problems[0].key, problems[0].problem)
    designs = {section.name: config.section_models[section.name] for section in sections}
    models = {}
    for design in sorted(set(designs.values())):
        model = step(
            f"models.{design}",
            RankerModel.load,
            config.models[design],
            catalog=catalog,
            users=users,
            compiled=True,
        )
        if model.design != design:
            raise LoadError(
                f"models.{design}",
                f"{config.models[design]} holds a {model.design} model; this slot takes a {design} model",
            )
        models[design] = model
    spec, version = step("policy", policy_source, config)
    policy = step("policy", parse_policy, spec, sections)
    if not isinstance(policy, KnobPolicy):
        raise LoadError("policy", f"{config.policy!r} is not a policy the service can serve")
    if config.policy_explore > 0:
        policy = ExploringPolicy(policy, config.policy_explore)
    rankers = {section: models[design] for section, design in designs.items()}
    try:
        items = step("store", ItemAttributes, catalog, users)
        pipeline = step(
            "section_models",
            RerankPipeline,
            sections,
            rankers,
            items,
            policy,
            heuristics=config.heuristics,
            seed=config.seed,
            num_threads=1,
        )
        step("models", smoke_test, pipeline, catalog, users)
    except LoadError:
        close = getattr(policy, "close", None)  # a refused VW workspace must not leak
        if callable(close):
            close()
        raise
    return Loaded(config, pipeline, models, time.time(), policy_version=version, policy_spec=spec)


def check_section_names(config: ServiceConfig, named: Mapping[str, str]) -> None:
    """Refuse a reload's ``section_models`` key that names no section of the sections config."""
    if not named:
        return
    sections = _load_step("sections_config", SectionsConfig.load, config.sections_config)
    for name in named:
        if name not in sections.sections:
            known = ", ".join(sections.sections)
            raise ServiceConfigError(
                f"section_models.{name}", f"unknown section {name!r} (configured: {known})"
            )


def smoke_test(pipeline: RerankPipeline, catalog, users, n_items: int = 5) -> None:
    """Score and re-rank a few catalog items in every section; raises the stage's own error."""
    ids = catalog["item_id"].to_numpy()[:n_items]
    first = catalog.iloc[0]
    tags = str(first.get("tags") or "").split()
    context = {
        "source_item": first["item_id"],
        "category": first["category"],
        "query": tags[0] if tags else "x",
    }
    context = {k: v.item() if isinstance(v, np.generic) else v for k, v in context.items()}
    user = np.asarray(users["user_id"].to_numpy()[:1])
    now = np.array([time.time()])
    rng = np.random.default_rng(0)
    for section in pipeline.sections:
        batch = RerankBatch.from_contexts([section.name], user, now, [context], ids[None, :])
        result = pipeline.rerank_batch(batch, rng, k=min(3, len(ids)))
        if not np.isfinite(result.base_scores).all():
            raise LoadError(
                "models", f"section {section.name!r}: the smoke prediction gave non-finite scores"
            )
