"""Training: LightGBM lambdarank over labelled lists, for every design, into a model directory.

One query group per request (a logged decision's shown items). Early stopping watches NDCG at
``lightgbm.eval_at`` on the validation window's lists, which all come after every training list in time.

The design (`ranker.designs.DESIGNS`) says how its sections are grouped into models; the config says which
sections and features it has:

- a shared design (``base``, ``consolidated``) trains one model over the stratified union (`ranker.union`)
  of its sections' training lists: the base ranker over the relevance sections (discover, similar_items,
  category_explore, not ``search``) without task_type or section-context features, the consolidated model
  over every section with task_type and every section-context feature;
- ``independent`` trains one model per section, each on that section's training lists only.

Training rows are the first ``labels.max_position`` shown positions of lists that have at least one positive
label (a list without one has no pair to learn from). With ``labels.position_bias = "unbiased"`` their
positions go to LightGBM's position-debiased lambdarank. `train_design` returns a `TrainResult` whose
`save` writes the model directory: the text models, the contract, the metadata (training-data summary,
split, union, settings, held-out metrics), ``item_stats.parquet`` and ``metrics.json``.
"""

from __future__ import annotations

import json
import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import lightgbm as lgb
import numpy as np
import pandas as pd

from ranker.artifact import InferenceContract, library_versions, save_artifact
from ranker.base import EVERY_SECTION
from ranker.compiled import SMOKE_ROWS_FILE, smoke_rows_bytes, smoke_sample
from ranker.config import DesignSpec, LightGBMSettings, RankerConfig
from ranker.dataset import STATS, TEST, TRAIN, VALIDATION, PreparedLog
from ranker.designs import union_designs
from ranker.errors import NotFittedError, TrainingDataError, UnionSpecError
from ranker.evaluate import evaluate_scores, metric_records
from ranker.features import FeatureBuilder, FeatureTables
from ranker.labels import LabelledLists
from ranker.model import ITEM_STATS_FILE, METRICS_FILE, RankerModel
from ranker.stats import ItemStats, item_stats, position_ctr
from ranker.union import parse_union_spec, stratified_union

T = TypeVar("T")
Progress = Callable[[Iterable[T], str], Iterable[T]]


class LambdaRanker:
    """LightGBM lambdarank with early stopping (scikit-learn style: `fit` returns self, state ends in _).

    Parameters
    ----------
    settings : LightGBMSettings
    feature_names : sequence of str
    categorical : sequence of int
        Column indices of categorical features (integer codes; negative means missing).
    position_bias : {"unbiased", "truncate", "none"}
        With ``"unbiased"``, the positions passed to `fit` go to ``lightgbm.Dataset(position=...)``.

    Attributes
    ----------
    booster_ : lightgbm.Booster
        The model cut at its best iteration.
    best_iteration_ : int
    best_score_ : float
        Validation NDCG at the best iteration (NaN without validation lists).
    history_ : list of float
        Validation NDCG after every iteration.
    used_positions_ : bool
        Whether the positions went to LightGBM's position-debiased lambdarank.
    """

    def __init__(
        self,
        settings: LightGBMSettings,
        *,
        feature_names: Sequence[str],
        categorical: Sequence[int] = (),
        position_bias: str = "unbiased",
    ) -> None:
        self.settings = settings
        self.feature_names = feature_names
        self.categorical = categorical
        self.position_bias = position_bias

    def _dataset(
        self, x: np.ndarray, y: np.ndarray, groups: np.ndarray, what: str, **kwargs: Any
    ) -> lgb.Dataset:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y)
        groups = np.asarray(groups, dtype=np.int64)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise TrainingDataError(
                f"{what}: expected features of shape (R, {len(self.feature_names)}), found {x.shape}"
            )
        if y.shape != (x.shape[0],) or (y.size and (y.min() < 0 or not np.all(np.equal(np.mod(y, 1), 0)))):
            raise TrainingDataError(f"{what}: expected integer labels >= 0, one per row ({x.shape[0]})")
        if groups.ndim != 1 or int(groups.sum()) != x.shape[0] or (groups < 1).any():
            raise TrainingDataError(f"{what}: expected group sizes >= 1 summing to {x.shape[0]}")
        return lgb.Dataset(
            x,
            label=y,
            group=groups,
            feature_name=list(self.feature_names),
            categorical_feature=list(self.categorical),
            params={"max_bin": self.settings.max_bin, "verbosity": -1},
            free_raw_data=False,
            **kwargs,
        )

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        group_sizes: np.ndarray,
        *,
        positions: np.ndarray | None = None,
        valid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        progress: Progress | None = None,
        description: str = "training",
    ) -> LambdaRanker:
        """Boost until the validation NDCG has not improved for ``early_stopping_rounds`` iterations, once
        per candidate ``num_leaves``, and keep the run with the best validation NDCG (`num_leaves_`).

        Parameters
        ----------
        x : (R, F) float
        y : (R,) int
            Graded labels >= 0.
        group_sizes : (G,) int
            Rows per list, lists consecutive.
        positions : (R,) int, optional
            0-based shown positions (used with ``position_bias="unbiased"``).
        valid : (x, y, group_sizes), optional
            Validation lists for early stopping and the choice of ``num_leaves``; without them every
            iteration is kept and the first candidate ``num_leaves`` is used.
        progress : callable, optional
            ``progress(iterations, description)`` wraps the boosting iterations (a progress bar).
        """
        position = None
        if self.position_bias == "unbiased" and positions is not None:
            position = np.asarray(positions, dtype=np.int32)
            if position.shape != (np.asarray(x).shape[0],):
                raise TrainingDataError(
                    f"training: expected one position per row, found shape {position.shape}"
                )
        train_set = self._dataset(x, y, group_sizes, "training", position=position)
        valid_set = None if valid is None else self._dataset(*valid, "validation", reference=train_set)
        # Without validation lists there is nothing to choose by: the first (smallest) tree size is used.
        choices = self.settings.num_leaves if valid_set is not None else self.settings.num_leaves[:1]
        self.scores_by_num_leaves_: dict[int, float] = {}
        chosen = None
        for leaves in choices:
            label = description if len(choices) == 1 else f"{description} (num_leaves={leaves})"
            fitted = self._boost(self.settings.params(leaves), train_set, valid_set, progress, label)
            self.scores_by_num_leaves_[leaves] = fitted[2]
            if chosen is None or fitted[2] > chosen[1][2]:  # ascending sizes: a tie keeps the smaller
                chosen = (leaves, fitted)
        assert chosen is not None  # `choices` is never empty
        self.num_leaves_, (booster, best_iteration, best, history) = chosen
        self.booster_ = lgb.Booster(model_str=booster.model_to_string(num_iteration=max(best_iteration, 1)))
        self.best_iteration_ = best_iteration
        self.best_score_ = best
        self.history_ = history
        self.used_positions_ = position is not None
        return self

    def _boost(
        self,
        params: dict[str, Any],
        train_set: lgb.Dataset,
        valid_set: lgb.Dataset | None,
        progress: Progress | None,
        description: str,
    ) -> tuple[lgb.Booster, int, float, list[float]]:
        """One boosting run: (booster, best iteration, best validation NDCG or NaN, validation history)."""
        booster = lgb.Booster(params=params, train_set=train_set)
        if valid_set is not None:
            booster.add_valid(valid_set, "validation")
        rounds = range(self.settings.num_boost_round)
        history: list[float] = []
        best, best_iteration = -math.inf, 0
        for iteration in progress(rounds, description) if progress is not None else rounds:
            finished = booster.update()
            if valid_set is None:
                best_iteration = iteration + 1
            else:
                score = float(booster.eval_valid()[0][2])
                history.append(score)
                if score > best:
                    best, best_iteration = score, iteration + 1
                elif iteration + 1 - best_iteration >= self.settings.early_stopping_rounds:
                    break
            if finished:
                break
        return booster, best_iteration, (best if valid_set is not None else math.nan), history

    def predict(self, x: np.ndarray, *, num_threads: int | None = None) -> np.ndarray:
        """Scores (R,) of feature rows (R, F)."""
        if not hasattr(self, "booster_"):
            raise NotFittedError("LambdaRanker: call fit before predict")
        kwargs = {} if num_threads is None else {"num_threads": num_threads}
        return self.booster_.predict(np.asarray(x, dtype=np.float64), **kwargs)


@dataclass
class TrainResult:
    """A trained design, ready to save.

    Attributes
    ----------
    model : RankerModel
    item_stats : ItemStats
    metadata : dict
        Everything recorded in ``metadata.json``.
    metrics : pd.DataFrame
        Held-out metrics per section (`ranker.metrics.evaluate_lists` rows).
    timings : dict
        Seconds per step and training rows per second (not saved: the artifact's content hash depends only
        on its data and settings).
    """

    model: RankerModel
    item_stats: ItemStats
    metadata: dict[str, Any]
    metrics: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    smoke_rows: np.ndarray | None = None
    """Held-out feature rows (R, F) saved as ``smoke_rows.npy``: a compiled model must score them as
    LightGBM does before it serves (`ranker.compiled`)."""

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the model directory (see `ranker.artifact`) and return its path."""
        metrics = {
            "design": self.model.design,
            "sections": list(self.model.sections),
            "rows": metric_records(self.metrics),
        }
        extra_files = {
            ITEM_STATS_FILE: self.item_stats.to_parquet_bytes(),
            METRICS_FILE: (json.dumps(metrics, indent=2) + "\n").encode(),
        }
        if self.smoke_rows is not None and len(self.smoke_rows):
            extra_files[SMOKE_ROWS_FILE] = smoke_rows_bytes(self.smoke_rows)
        return save_artifact(
            directory, self.model.contract, self.model.boosters, self.metadata, extra_files=extra_files
        )


def union_draw(
    list_section: np.ndarray,
    list_rows: np.ndarray,
    design: DesignSpec,
    union: str,
    seed: int,
    *,
    section_revenue: Callable[[], Mapping[str, float]],
) -> tuple[np.ndarray, dict[str, Any]]:
    """The stratified union's choice among lists given one row per list: (indices of the chosen lists in
    union order, its summary).

    The draw reads only each list's section and, for ``business``, each section's revenue: a frame of one
    row per list (``section``, ``list_id``) with the revenue passed to `stratified_union` draws exactly the
    lists a frame of one row per labelled row draws (same seed), in far less memory. A list without rows
    has no row in that row-level frame, so it is not drawn here either.

    Parameters
    ----------
    list_section : (B,) str
        The section of each list (the design's sections only).
    list_rows : (B,) int
        Labelled rows of each list.
    design : DesignSpec
    union : str
        The union spec (`ranker.union.parse_union_spec`).
    seed : int
    section_revenue : callable
        Returns section -> revenue of the lists' rows; called for ``business`` only.
    """
    spec = parse_union_spec(union, design.sections)
    nonempty = np.flatnonzero(np.asarray(list_rows) > 0)
    frame = pd.DataFrame({"section": np.asarray(list_section, dtype=object)[nonempty], "list_id": nonempty})
    revenue = None
    if spec.strategy == "business":
        sums = section_revenue()
        revenue = {s: float(sums.get(s, 0.0)) for s in spec.sections}
    result = stratified_union(frame, spec, seed=seed, revenue=revenue)
    summary = {
        "spec": union,
        "strategy": result.summary.strategy,
        "lists": result.summary.n_lists,
        "sections": [asdict(share) for share in result.summary.sections],
    }
    return result.frame["list_id"].to_numpy(np.int64), summary


def _union_lists(
    lists: LabelledLists, design: DesignSpec, union: str, seed: int
) -> tuple[LabelledLists, dict[str, Any]]:
    """The stratified union's lists (whole, in union order) and its summary."""

    def section_revenue() -> Mapping[str, float]:
        # Summed row by row, as `stratified_union` sums a row-level frame's revenue column (same bits).
        codes, names = pd.factorize(lists.requests.section)
        sums = pd.Series(lists.item_revenue).groupby(np.repeat(codes, lists.sizes), sort=False).sum()
        return {str(names[code]): float(total) for code, total in sums.items()}

    chosen, summary = union_draw(
        lists.requests.section, lists.sizes, design, union, seed, section_revenue=section_revenue
    )
    return lists.take(chosen), summary


def _training_lists(lists: LabelledLists, max_position: int) -> LabelledLists:
    """The first `max_position` positions of the lists that keep a positive label."""
    lists = lists.keep_rows(lists.position < max_position)
    return lists.take(np.flatnonzero(lists.has_positive))


def _require(present: Collection[str], sections: Sequence[str], window: str) -> None:
    missing = [s for s in sections if s not in present]
    if missing:
        raise TrainingDataError(
            f"the {window} window has no list with a positive label in section(s) {missing} "
            "(too few requests logged for the split, or a union share of 0)"
        )


@dataclass
class GroupRows:
    """The training rows of one model group (the sections one model serves).

    Attributes
    ----------
    x : (R, F) float64, y : (R,) int64, group_sizes : (G,) int64
        numpy arrays in memory; Dask arrays whose partitions stay on the workers with a cluster.
    positions : (R,) int64 or None
        0-based shown positions (for ``position_bias = "unbiased"``); None on a cluster.
    n_lists, n_rows : int
    lists_by_section : dict
        `LabelledLists.summary` of the rows.
    """

    x: Any
    y: Any
    group_sizes: Any
    positions: np.ndarray | None
    n_lists: int
    n_rows: int
    lists_by_section: dict[str, dict[str, int]]


class TrainingWindow(ABC):
    """A design's training lists after the union, the training cut and the shuffle: where their rows live,
    how a model group's features are built and how a model is fitted on them. `train_design` runs the same
    steps over `InMemoryTraining` (one process) and `ranker.dataset_dask`'s window on a cluster.

    Attributes
    ----------
    union_summary : dict or None
        The union's summary (None for a design without a union).
    """

    union_summary: dict[str, Any] | None = None

    @abstractmethod
    def sections(self) -> set[str]:
        """The sections with at least one training list."""

    @abstractmethod
    def group(self, sections: Sequence[str], builder: FeatureBuilder, progress: Progress | None) -> GroupRows:
        """The rows and features of the training lists of `sections`."""

    def ranker_factory(self) -> Callable[..., LambdaRanker]:
        """The ranker used when `train_design` is given none."""
        return LambdaRanker

    def fit(self, ranker: LambdaRanker, rows: GroupRows, **kwargs: Any) -> LambdaRanker:
        """`ranker` fitted on `rows` (`kwargs`: `LambdaRanker.fit`'s ``valid``, ``progress``, ...)."""
        return ranker.fit(rows.x, rows.y, rows.group_sizes, positions=rows.positions, **kwargs)


class InMemoryTraining(TrainingWindow):
    """The training window of a `PreparedLog`, in this process."""

    def __init__(self, prepared: PreparedLog, design: DesignSpec, union: str, config: RankerConfig) -> None:
        train_all = prepared.lists_in(TRAIN, design.sections)
        seed = config.lightgbm.seed
        if design.kind.shared:
            train_all, self.union_summary = _union_lists(train_all, design, union, seed)
        self.lists = _training_lists(train_all, config.labels.max_position).shuffled(seed)

    def sections(self) -> set[str]:
        return set(pd.unique(self.lists.requests.section))

    def group(self, sections: Sequence[str], builder: FeatureBuilder, progress: Progress | None) -> GroupRows:
        lists = self.lists
        part = lists.take(np.flatnonzero(np.isin(lists.requests.section, np.asarray(sections, dtype=object))))
        x = builder.transform(part.requests, part.item_id, part.request_of_row, progress=progress)
        return GroupRows(
            x, part.label, part.sizes, part.position, part.n_requests, part.n_rows, part.summary()
        )


def train_design(
    design: str,
    prepared: PreparedLog | Any,
    catalog: pd.DataFrame,
    users: pd.DataFrame,
    config: RankerConfig,
    *,
    union: str | None = None,
    progress: Progress | None = None,
    clock: Callable[[], float] | None = None,
    ranker_factory: Callable[..., LambdaRanker] | None = None,
) -> TrainResult:
    """Train one design on a prepared log and evaluate it on the held-out window.

    Parameters
    ----------
    design : str
        A name of `ranker.designs.DESIGNS` ("base", "consolidated", "independent").
    prepared : PreparedLog or ranker.dataset_dask.DistributedLog
        A log labelled in this process, or on a cluster whose workers keep the training window's rows
        (then the union's draw, the features and the boosting run over its partitions).
    catalog, users : pd.DataFrame
        The item catalog and user profiles (`FeatureTables`).
    config : RankerConfig
    union : str, optional
        Union spec (``traffic``, ``equal``, ``business`` or ``a,b,c`` in the design's section order);
        default: the design's ``union`` in the config. Only for a shared design (not ``independent``).
    progress : callable, optional
        ``progress(iterable, description)``: wraps feature chunks and boosting iterations.
    clock : callable, optional
        Returns seconds (default `time.perf_counter`), for the timings.
    ranker_factory : callable, optional
        Builds each model's ranker from `LambdaRanker`'s arguments (default `LambdaRanker`, or a
        `ranker.train_dask.DaskLambdaRanker` on the cluster of a `DistributedLog`); e.g. a
        `DaskLambdaRanker` bound to a Dask client.

    Raises
    ------
    TrainingDataError, UnionError, UnionSpecError, FeatureTableError
    """
    clock = clock or time.perf_counter
    started = clock()
    spec = config.design(design)
    seed = config.lightgbm.seed
    if union is not None and not spec.kind.shared:
        raise UnionSpecError(
            f"a union spec applies to the designs whose one model serves several sections "
            f"({', '.join(union_designs())}), not {design}"
        )
    split = prepared.split
    stats_lists = prepared.lists_in(STATS)
    stats = item_stats(
        stats_lists,
        coec_prior_strength=config.stats.coec_prior_strength,
        cvr_prior_strength=config.stats.cvr_prior_strength,
        window=split.bounds(STATS),
    )
    builder = FeatureBuilder(
        FeatureTables(catalog, users, stats), features=spec.features, sections=config.section_contexts
    )

    union = union or spec.union
    if isinstance(prepared, PreparedLog):
        window: TrainingWindow = InMemoryTraining(prepared, spec, union, config)
    else:  # a log labelled on a cluster (`ranker.dataset_dask.DistributedLog`): its rows stay there
        window = prepared.training_window(spec, union, config, builder)
    valid = _training_lists(
        prepared.lists_in(VALIDATION, spec.sections), config.labels.max_position
    ).shuffled(seed)
    _require(window.sections(), spec.sections, "train")
    _require(set(pd.unique(valid.requests.section)), spec.sections, "validation")
    prepared_at = clock()

    groups = spec.models
    boosters: dict[str, lgb.Booster] = {}
    training: dict[str, Any] = {}
    feature_seconds = fit_seconds = 0.0
    rows_trained = 0
    for key, sections in groups.items():
        t0 = clock()
        part = window.group(sections, builder, progress)
        vpart = valid.take(
            np.flatnonzero(np.isin(valid.requests.section, np.asarray(sections, dtype=object)))
        )
        xv = builder.transform(vpart.requests, vpart.item_id, vpart.request_of_row)
        t1 = clock()
        ranker = (ranker_factory or window.ranker_factory())(
            config.lightgbm,
            feature_names=builder.features,
            categorical=builder.categorical,
            position_bias=config.labels.position_bias,
        )
        ranker = window.fit(
            ranker,
            part,
            valid=(xv, vpart.label, vpart.sizes),
            progress=progress,
            description=f"training {design}" + ("" if key == EVERY_SECTION else f" [{key}]"),
        )
        t2 = clock()
        feature_seconds += t1 - t0
        fit_seconds += t2 - t1
        rows_trained += part.n_rows
        boosters[key] = ranker.booster_
        training[key] = {
            "lists": part.n_lists,
            "rows": part.n_rows,
            "validation_lists": vpart.n_requests,
            "num_leaves": ranker.num_leaves_,
            f"validation_ndcg@{config.lightgbm.eval_at}_by_num_leaves": {
                str(k): v for k, v in ranker.scores_by_num_leaves_.items()
            },
            "best_iteration": ranker.best_iteration_,
            "iterations": len(ranker.history_),
            f"validation_ndcg@{config.lightgbm.eval_at}": ranker.best_score_,
            "lists_by_section": part.lists_by_section,
        }

    contract = InferenceContract(
        design=design,
        features=builder.specs,
        sections=spec.sections,
        task_types=builder.task_types,
        library_versions=library_versions(),
    )
    model = RankerModel(contract, boosters, builder)
    test = prepared.lists_in(TEST, spec.sections)
    t3 = clock()
    test_features = model.builder.transform(test.requests, test.item_id, test.request_of_row)
    metrics = evaluate_scores(test, model.score_lists(test, features=test_features), config.evaluation)
    finished = clock()
    metadata = {
        "design": design,
        "sections": list(spec.sections),
        "features": list(spec.features),
        "serves_search": "search" in spec.sections,
        "log": prepared.source,
        "split": split.to_dict(),
        "windows": prepared.window_summary(),
        "held_out": prepared.held_out(),
        "labels": {
            **asdict(config.labels),
            "rules": {name: asdict(config.sections[name].labels) for name in spec.sections},
        },
        "union": window.union_summary,
        "training": training,
        "item_stats": {
            **stats.metadata(),
            "position_ctr": {
                k: [round(float(v), 6) for v in r] for k, r in position_ctr(stats_lists).items()
            },
        },
        "lightgbm": {**config.lightgbm.params(), "num_leaves": list(config.lightgbm.num_leaves)},
        "evaluation": asdict(config.evaluation),
        "metrics": metric_records(metrics),
        "tables": {"items": len(catalog), "users": len(users)},
        "config": config.to_dict(),
    }
    timings = {
        "prepare_seconds": prepared_at - started,
        "feature_seconds": feature_seconds,
        "fit_seconds": fit_seconds,
        "evaluate_seconds": finished - t3,
        "total_seconds": finished - started,
        "rows": float(rows_trained),
        "rows_per_second": rows_trained / fit_seconds if fit_seconds > 0 else math.inf,
    }
    return TrainResult(
        model=model,
        item_stats=stats,
        metadata=metadata,
        metrics=metrics,
        timings=timings,
        smoke_rows=smoke_sample(test_features, seed=seed),
    )
