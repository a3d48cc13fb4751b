"""Training the ranker designs of a comparison seed, as deployed: each model is saved and loaded back.

`train_designs` trains one independent model per section, the consolidated model with each union strategy
and the base ranker; `train_curve` retrains the consolidated and independent designs with the curve section's
lists subsampled (`subsample_section`); `strategy_costs` says what each strategy's models cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ranker.config import RankerConfig
from ranker.dataset import DROPPED, STATS, TRAIN, VALIDATION, PreparedLog
from ranker.model import RankerModel
from ranker.train import train_design
from simulator.compare_seed import CurveLists, StrategyCost
from simulator.compare_settings import BASE_PAIR_SECTION, CompareSettings, union_strategy
from simulator.errors import CompareInputError


@dataclass(frozen=True)
class TrainedModel:
    """A trained and reloaded ranker with what it cost.

    Attributes
    ----------
    model : RankerModel
    seconds : float
        Training time, evaluation excluded.
    boosters : int
    artifact_bytes : int
        Size of the saved model directory.
    lists : mapping section -> int
        The training lists it learned from.
    """

    model: RankerModel
    seconds: float
    boosters: int
    artifact_bytes: int
    lists: Mapping[str, int]


def design_config(
    base: RankerConfig, *, threads: int, independent_section: str | None = None
) -> RankerConfig:
    """`base` with LightGBM on `threads` threads and, when given, the independent design on one section."""
    data = base.to_dict()
    data["lightgbm"] = {**data.get("lightgbm", {}), "num_threads": threads}
    if independent_section is not None:
        data["designs"]["independent"] = {**data["designs"]["independent"], "sections": [independent_section]}
    return RankerConfig.from_dict(data, source=f"{base.source} (compare)")


def _directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Trainer:
    """Trains designs on a prepared log, saves each into its own directory under `root` and loads it back."""

    def __init__(
        self, root: Path, catalog: pd.DataFrame, users: pd.DataFrame, config: RankerConfig, threads: int
    ) -> None:
        self.root = root
        self.catalog = catalog
        self.users = users
        self.config = config
        self.threads = threads
        self._count = 0

    def train(
        self, design: str, prepared: PreparedLog, *, union: str | None = None, section: str | None = None
    ) -> TrainedModel:
        """Train `design` (the independent design on `section` alone when given), save it and load it back."""
        config = design_config(self.config, threads=self.threads, independent_section=section)
        result = train_design(design, prepared, self.catalog, self.users, config, union=union)
        seconds = result.timings["total_seconds"] - result.timings["evaluate_seconds"]
        self._count += 1
        directory = result.save(self.root / f"{self._count:03d}-{design}")
        model = RankerModel.load(directory, catalog=self.catalog, users=self.users, config=config)
        lists = {
            name: int(summary["lists"])
            for part in result.metadata["training"].values()
            for name, summary in part["lists_by_section"].items()
        }
        return TrainedModel(
            model=model,
            seconds=float(seconds),
            boosters=len(result.model.boosters),
            artifact_bytes=_directory_bytes(directory),
            lists=lists,
        )


@dataclass(frozen=True)
class TrainedDesigns:
    """The rankers of a seed's strategies.

    Attributes
    ----------
    independent : mapping section -> TrainedModel
        One model per section, trained on that section's lists only.
    consolidated : mapping union -> TrainedModel
        The consolidated model with each union strategy (``traffic`` is the one every question uses).
    base : TrainedModel
        The shared base ranker; it does not serve `BASE_PAIR_SECTION`.
    """

    independent: Mapping[str, TrainedModel]
    consolidated: Mapping[str, TrainedModel]
    base: TrainedModel

    def base_rankers(self) -> dict[str, RankerModel]:
        """The base ranker on its sections; the independent model of each other section serves that one."""
        served = self.base.model.sections
        return {s: self.base.model if s in served else t.model for s, t in self.independent.items()}

    def training_lists(self) -> dict[str, dict[str, int]]:
        """Ranker strategy -> section -> the training lists its model(s) learned from."""
        out = {
            "independent": {s: t.lists.get(s, 0) for s, t in self.independent.items()},
            "base": dict(self.base.lists),
        }
        for union, trained in self.consolidated.items():
            out[union_strategy(union)] = dict(trained.lists)
        return out


def train_designs(
    trainer: Trainer, prepared: PreparedLog, sections: Sequence[str], unions: Sequence[str]
) -> TrainedDesigns:
    """Train every design of the strategies; refuse a section neither the base ranker nor its pair serves."""
    independent = {s: trainer.train("independent", prepared, section=s) for s in sections}
    consolidated = {u: trainer.train("consolidated", prepared, union=u) for u in unions}
    base = trainer.train("base", prepared)
    for s in sections:
        if s not in base.model.sections and s != BASE_PAIR_SECTION:
            raise CompareInputError(
                f"The base ranker does not serve section {s!r}, nor is it {BASE_PAIR_SECTION!r}"
            )
    return TrainedDesigns(independent=independent, consolidated=consolidated, base=base)


def subsample_section(
    prepared: PreparedLog,
    section: str,
    share: float,
    rng: np.random.Generator,
    *,
    min_positive: int,
    max_position: int,
) -> PreparedLog:
    """The prepared log with only `share` of `section`'s lists in the stats, train and validation windows.

    The other sections keep all their lists; the test window is unchanged. The train and validation windows
    keep at least `min_positive` of the section's lists with a positive label in the first `max_position`
    positions (when it has that many), so that a model can still be trained.
    """
    lists = prepared.lists
    window = prepared.window.copy()
    in_section = np.asarray(lists.requests.section == section, dtype=bool)
    positive = lists.keep_rows(lists.position < max_position).has_positive
    for w in (STATS, TRAIN, VALIDATION):
        rows = rng.permutation(np.flatnonzero(in_section & (prepared.window == w)))
        n_keep = max(round(share * len(rows)), 1) if len(rows) else 0
        keep = np.zeros(len(rows), dtype=bool)
        keep[:n_keep] = True
        if w != STATS:
            short = min_positive - int(positive[rows[keep]].sum())
            if short > 0:
                extra = np.flatnonzero(~keep & positive[rows])[:short]
                keep[extra] = True
        window[rows[~keep]] = DROPPED
    return replace(prepared, window=window)


@dataclass(frozen=True)
class CurveModels:
    """The cross-learning curve's models: share -> design (``consolidated``, ``independent``) -> model.

    At share 1 they are the main consolidated model and the curve section's independent model.
    """

    section: str
    models: Mapping[float, Mapping[str, TrainedModel]]

    def lists(self) -> tuple[CurveLists, ...]:
        """The curve section's training lists of every curve model, by share then design."""
        return tuple(
            CurveLists(share=share, design=design, lists=trained.lists.get(self.section, 0))
            for share, pair in sorted(self.models.items())
            for design, trained in pair.items()
        )


def train_curve(
    trainer: Trainer,
    prepared: PreparedLog,
    designs: TrainedDesigns,
    section: str,
    settings: CompareSettings,
    *,
    seed: int,
    max_position: int,
) -> CurveModels:
    """Retrain both designs with each share below 1 of `section`'s own lists (`subsample_section`)."""
    models: dict[float, Mapping[str, TrainedModel]] = {
        1.0: {"consolidated": designs.consolidated["traffic"], "independent": designs.independent[section]}
    }
    for i, share in enumerate(s for s in settings.curve_shares if s < 1.0):
        sub = subsample_section(
            prepared,
            section,
            share,
            np.random.default_rng([seed, 7, i]),
            min_positive=settings.min_curve_lists,
            max_position=max_position,
        )
        models[share] = {
            "consolidated": trainer.train("consolidated", sub),
            "independent": trainer.train("independent", sub, section=section),
        }
    return CurveModels(section=section, models=models)


def _total(parts: Sequence[TrainedModel]) -> StrategyCost:
    return StrategyCost(
        models=sum(p.boosters for p in parts),
        artifacts=len(parts),
        train_seconds=sum(p.seconds for p in parts),
        artifact_bytes=sum(p.artifact_bytes for p in parts),
    )


def _plus_policy(cost: StrategyCost, seconds: float, artifact_bytes: int) -> StrategyCost:
    return StrategyCost(
        models=cost.models + 1,
        artifacts=cost.artifacts + 1,
        train_seconds=cost.train_seconds + seconds,
        artifact_bytes=cost.artifact_bytes + artifact_bytes,
    )


def strategy_costs(
    designs: TrainedDesigns, *, learn_seconds: float, tune_seconds: float, policy_bytes: int
) -> dict[str, StrategyCost]:
    """Models trained, artifacts deployed, training seconds and artifact bytes of each strategy.

    The base strategies pay for the base ranker and the independent models of the sections it does not
    serve; the best fixed arm adds its tuning time, the bandit its learning time and policy files.
    """
    served = designs.base.model.sections
    pair = [designs.base] + [t for s, t in designs.independent.items() if s not in served]
    base = _total(pair)
    consolidated = _total([designs.consolidated["traffic"]])
    return {
        "independent": _total(list(designs.independent.values())),
        "consolidated": consolidated,
        "base": base,
        "base+default": base,
        "base+best_fixed": replace(base, train_seconds=base.train_seconds + tune_seconds),
        "base+bandit": _plus_policy(base, learn_seconds, policy_bytes),
        "consolidated+bandit": _plus_policy(consolidated, learn_seconds, policy_bytes),
    }
