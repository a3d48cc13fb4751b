"""The feature check (question 7): does a feature added for one section make the consolidated model worse in
the sections that never see it?

For each checked section-context feature F (`CompareSettings.feature_check`) and each seed, `train_without`
retrains, on the same prepared log with the same LightGBM seed and union, the consolidated model and the
independent model of every section carrying F (its context kind) with F removed from their feature lists;
`evaluate_without` serves them through the rerank pipeline on the seed's evaluation requests (the very
requests of the main evaluation, so the differences to ``consolidated`` and ``independent`` are paired). The
sections split into those that carry F and those that only ever see its default value.

The injected bug (`CompareSettings.feature_leak`): the model trained with F is served through a feature
function that computes F in every section whose request carries F's context field
(`ranker.features.FeatureBuilder.computing_everywhere`), and the requests of the default-only sections carry
the field: each gets the context value (source item, category or query) of a request of the carrying section
drawn by the world at the same time. The world's truth ignores the field outside the carrying section, so
only what the model sees changes: the model learned F at its default there, and now receives real values.
`simulator.feature_check_stats` turns the per-seed means into the answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from heuristics import SectionsConfig
from ranker.config import RankerConfig
from ranker.dataset import PreparedLog
from ranker.feature_defs import FEATURES
from ranker.model import RankerModel
from ranker.rerank.batch import RerankBatch
from ranker.rerank.items import ItemAttributes
from simulator.compare_record import record_run
from simulator.compare_seed import MetricMean
from simulator.compare_train import TrainedDesigns, TrainedModel, Trainer
from simulator.errors import CompareInputError
from simulator.records import RequestBatch
from simulator.strategies import EvalSet, Strategy, StrategyRunner
from simulator.world import World

#: The designs whose models the check retrains without a feature.
CHECKED_DESIGNS = ("consolidated", "independent")


def without_strategy(design: str, feature: str) -> str:
    """The strategy name of a design's model(s) trained without `feature`."""
    return f"{design}-without-{feature}"


def leak_strategy(feature: str) -> str:
    """The strategy name of the consolidated model served with `feature` computed in every section."""
    return f"consolidated-leaking-{feature}"


def strategy_descriptions(features: Sequence[str], *, leak: bool) -> dict[str, str]:
    """What each strategy of the feature check serves (results.json's ``strategies``)."""
    out = {}
    for f in features:
        out[without_strategy("consolidated", f)] = f"the consolidated model retrained without `{f}`"
        out[without_strategy("independent", f)] = (
            f"the independent models of the sections that carry `{f}`, retrained without it"
        )
        if leak:
            out[leak_strategy(f)] = (
                f"the consolidated model served computing `{f}` in every section whose request carries its "
                "context field, every section's requests carrying it (the injected pipeline bug)"
            )
    return out


@dataclass(frozen=True)
class FeatureSplit:
    """A feature and the sections that carry it (their context kind is the feature's) or only default it."""

    feature: str
    context: str
    carrying: tuple[str, ...]
    default_only: tuple[str, ...]


def split_sections(feature: str, sections: Sequence[str], ranker_config: RankerConfig) -> FeatureSplit:
    """Which of `sections` carry `feature`, by the ranker config's context kind of each section.

    Raises
    ------
    CompareInputError
        A feature that is not a section-context feature of both checked designs, or that no section or every
        section carries (nothing to compare).
    """
    spec = FEATURES.get(feature)
    if spec is None or spec.context is None:
        raise CompareInputError(f"Expected a section-context feature to check, found {feature!r}")
    for design in CHECKED_DESIGNS:
        if feature not in ranker_config.design(design).features:
            raise CompareInputError(
                f"feature check: {feature!r} is not among designs.{design}.features of {ranker_config.source}"
            )
    contexts = ranker_config.section_contexts
    carrying = tuple(s for s in sections if contexts.get(s) == spec.context)
    default_only = tuple(s for s in sections if s not in carrying)
    if not carrying or not default_only:
        which = "no section" if not carrying else "every section"
        raise CompareInputError(
            f"feature check: {which} of {', '.join(sections)} carries {feature!r} (context "
            f"{spec.context!r}); the check needs sections that carry it and sections that do not"
        )
    return FeatureSplit(feature, spec.context, carrying, default_only)


def without_feature(config: RankerConfig, feature: str) -> RankerConfig:
    """`config` with `feature` removed from the feature lists of the checked designs (nothing else changes:
    the same sections, union, LightGBM settings and seed)."""
    data = config.to_dict()
    for design in CHECKED_DESIGNS:
        table = data["designs"][design]
        data["designs"][design] = {**table, "features": [f for f in table["features"] if f != feature]}
    return RankerConfig.from_dict(data, source=f"{config.source} (without {feature})")


@dataclass(frozen=True)
class ModelsWithout:
    """The models of one feature's check, trained without it."""

    split: FeatureSplit
    consolidated: TrainedModel
    independent: Mapping[str, TrainedModel]


def train_without(
    root: Path,
    prepared: PreparedLog,
    catalog: pd.DataFrame,
    users: pd.DataFrame,
    ranker_config: RankerConfig,
    threads: int,
    split: FeatureSplit,
) -> ModelsWithout:
    """Retrain the consolidated model (traffic union) and each carrying section's independent model without
    the feature, each saved under `root` and loaded back as the service would."""
    trainer = Trainer(root, catalog, users, without_feature(ranker_config, split.feature), threads)
    return ModelsWithout(
        split=split,
        consolidated=trainer.train("consolidated", prepared, union="traffic"),
        independent={s: trainer.train("independent", prepared, section=s) for s in split.carrying},
    )


def leaking(model: RankerModel, feature: str) -> RankerModel:
    """The same boosters and contract, served through a feature function that computes `feature` wherever a
    request carries its context field (`FeatureBuilder.computing_everywhere`): the injected bug."""
    return RankerModel(
        model.contract,
        model.boosters,
        model.builder.computing_everywhere([feature]),
        metadata=model.metadata,
        version=f"{model.version}+leaking-{feature}",
        path=model.path,
    )


def leaked_batch(
    world: World, requests: RequestBatch, batch: RerankBatch, split: FeatureSplit, rng: np.random.Generator
) -> RerankBatch:
    """`batch` whose default-only requests carry the feature's context field: the value of a request of the
    (first) carrying section that the world draws at the same time. The carrying requests are unchanged."""
    rows = np.flatnonzero(np.isin(requests.section, split.default_only))
    donors = world.sample_requests(len(rows), rng, times=requests.time[rows], section=split.carrying[0])
    field = split.context  # "source_item", "category" or "query": a column of `Requests`
    column = getattr(batch.requests, field).copy()
    column[rows] = getattr(donors.to_rerank_batch().requests, field)
    return RerankBatch(replace(batch.requests, **{field: column}), batch.candidates)


def check_strategies(designs: TrainedDesigns, models: ModelsWithout) -> list[Strategy]:
    """The consolidated model without the feature on every section, and the carrying sections' independent
    models without it (the other sections keep theirs; only the carrying sections are evaluated)."""
    feature = models.split.feature
    without = models.consolidated.model
    independent = {s: t.model for s, t in designs.independent.items()}
    return [
        Strategy(without_strategy("consolidated", feature), rankers=dict.fromkeys(independent, without)),
        Strategy(
            without_strategy("independent", feature),
            rankers={**independent, **{s: t.model for s, t in models.independent.items()}},
            sections=models.split.carrying,
        ),
    ]


def evaluate_without(
    world: World,
    requests: RequestBatch,
    sections: SectionsConfig,
    items: ItemAttributes,
    designs: TrainedDesigns,
    checks: Sequence[ModelsWithout],
    *,
    leak: bool,
    seed: int,
) -> tuple[MetricMean, ...]:
    """Per-seed means of every check strategy on the evaluation `requests` (those of the main evaluation),
    and with `leak` the consolidated model with each feature served leaking (`leak_strategy`)."""
    eval_set = EvalSet.build(world, requests, sections)
    runner = StrategyRunner(eval_set, sections, items, seed)
    rows: list[MetricMean] = []
    for models in checks:
        for strategy in check_strategies(designs, models):
            rows += record_run(world, eval_set, runner.run(strategy)).metrics
    if leak:
        consolidated = designs.consolidated["traffic"].model
        every = list(designs.independent)  # every section: the pipeline needs a ranker for each
        for i, models in enumerate(checks):
            split = models.split
            rng = np.random.default_rng([seed, 19, i])
            leaked = replace(eval_set, batch=leaked_batch(world, requests, eval_set.batch, split, rng))
            model = leaking(consolidated, split.feature)
            strategy = Strategy(leak_strategy(split.feature), rankers=dict.fromkeys(every, model))
            rows += record_run(
                world, leaked, StrategyRunner(leaked, sections, items, seed).run(strategy)
            ).metrics
    return tuple(rows)
