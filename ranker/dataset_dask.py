"""A dataset of decision logs labelled on a Dask cluster, whose training window never reaches the client.

`prepare_log_on_cluster` has each partition of the dataset (consecutive shipped chunks of one host, a time
run of the log) read, joined and labelled by a worker (`ranker.dataset.labelled_partition`), and keeps each
labelled partition on that worker as a future. The client gathers only a few numbers per list (`ListMeta`:
its decision time, section, feedback time, event id, rows and revenue, and whether it survives the training
cut), from which it makes the time split and the windows by the same code as one process
(`ranker.dataset.cut_windows`). The result, a `DistributedLog`, stands in for a `PreparedLog` in
`ranker.train.train_design`:

- the stats, validation and test windows' lists are taken on the workers and gathered (`lists_in`): the
  client computes the item statistics from the first, early stopping from the second and the held-out
  metrics from the third, exactly as one process does;
- the training window is never gathered (`DistributedTraining`): the client draws the stratified union from
  the lists' metadata (one row per list, `ranker.train.union_draw`: the same lists as one process draws) and
  sends each partition the indices of its chosen lists; the worker takes them, applies the training cut,
  shuffles the rows within each list (its own seed per partition and piece, from the config's seed, so ties
  are broken in another order than one process's) and builds the features with the feature builder
  scattered to every worker. Each partition's chosen lists are dealt in turn to one piece per worker; the
  training rows of every piece but the one that stays move, worker to worker, to their worker, which builds
  their features: every worker holds an equal share of every partition. The rows, labels and group sizes
  stay on their worker as Dask arrays that `ranker.train_dask.DaskLambdaRanker.fit_partitions` boosts on.

Partitions are time runs of the log, so each holds lists of every section in the log's proportions, and each
worker an equal share of each: LightGBM builds each feature's bins on one worker from that worker's rows
(issue #5798), and a worker whose rows lacked one section's lists would give that section's features a single
bin, or one with few rows (the small partition at a window's edge) coarse bins (docs/scaling.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

import ranker.dataset as _dataset
from bandits.dataset_read import LogDataset
from ranker.config import DesignSpec, RankerConfig
from ranker.dataset import TRAIN, TimeSplit, cut_windows, held_out, labelled_partition, window_summary
from ranker.errors import TrainingDataError
from ranker.features import FeatureBuilder
from ranker.labels import LabelledLists, concat_lists
from ranker.train import (
    GroupRows,
    LambdaRanker,
    Progress,
    TrainingWindow,
    _training_lists,
    union_draw,
)
from ranker.train_dask import DaskLambdaRanker

#: What a worker keeps of one partition: (labelled lists, decisions per section, decisions).
Labelled = tuple[LabelledLists, dict[str, int], int]


@dataclass(frozen=True)
class ListMeta:
    """What the client holds of every labelled list, in log order (B lists).

    Attributes
    ----------
    partition : (B,) int64
        The partition (index into `DistributedLog.parts`) holding the list.
    index : (B,) int64
        The list's index within its partition.
    time, feedback_time : (B,) float64
        Decision time; feedback arrival time (NaN without admitted feedback).
    section, event_id : (B,) object
    rows : (B,) int64
        Labelled (shown) rows.
    revenue : (B,) float64
        The list's item revenue summed (for the ``business`` union).
    trainable : (B,) bool
        The list keeps a positive label within the first ``labels.max_position`` positions (the training cut).
    training_rows : (B,) int64
        Rows the training cut keeps.
    """

    partition: np.ndarray
    index: np.ndarray
    time: np.ndarray
    feedback_time: np.ndarray
    section: np.ndarray
    event_id: np.ndarray
    rows: np.ndarray
    revenue: np.ndarray
    trainable: np.ndarray
    training_rows: np.ndarray


def _labelled_task(shared: dict[str, Any], files: Sequence[Any]) -> Labelled:
    return labelled_partition(shared["dataset"], files, shared["config"])


def _meta_task(
    labelled: Labelled, max_position: int
) -> tuple[dict[str, int], int, int, dict[str, np.ndarray]]:
    """(decisions per section, decisions, ignored feedback positions, per-list columns) of a partition."""
    lists, counts, n_decisions = labelled
    cut = lists.keep_rows(lists.position < max_position)
    columns = {
        "time": lists.requests.time,
        "feedback_time": lists.feedback_time,
        "section": lists.requests.section,
        "event_id": lists.event_id,
        "rows": lists.sizes,
        "revenue": np.bincount(lists.request_of_row, weights=lists.item_revenue, minlength=lists.n_requests),
        "trainable": cut.has_positive,
        "training_rows": cut.sizes,
    }
    return counts, n_decisions, lists.ignored_positions, columns


def _take_task(labelled: Labelled, index: np.ndarray) -> LabelledLists:
    return labelled[0].take(index)


def _training_task(
    labelled: Labelled, index: np.ndarray, max_position: int, seed: Sequence[int]
) -> LabelledLists:
    """A partition's chosen training lists (in union order), cut and shuffled within each list."""
    return _training_lists(labelled[0].take(index), max_position).shuffled(np.random.default_rng(list(seed)))


def _features_task(
    lists: LabelledLists, sections: Sequence[str], builder: FeatureBuilder
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, dict[str, int]]]:
    """(features (R, F), labels (R,), group sizes (G,), summary) of a partition's lists of `sections`."""
    part = lists.take(np.flatnonzero(np.isin(lists.requests.section, np.asarray(sections, dtype=object))))
    x = builder.transform(part.requests, part.item_id, part.request_of_row)
    return x, part.label, part.sizes, part.summary()


def _item(value: tuple[Any, ...], i: int) -> Any:
    return value[i]


class DistributedLog:
    """A labelled log cut into windows whose lists stay on the cluster's workers (`prepare_log_on_cluster`).

    Offers what `ranker.train.train_design` reads of a `PreparedLog`: `split`, `window`, `source`,
    `lists_in` (gathered; never the training window), `window_summary`, `held_out`, and
    `training_window` (the training window on the workers).

    Attributes
    ----------
    client : distributed.Client
    parts : list of Future
        Each partition's labelled lists (`Labelled`), on the worker that labelled it, in log order.
    meta : ListMeta
    split : TimeSplit
    window : (B,) int8
        Window code of each list.
    source : dict
    max_position : int
        The training cut `meta` was computed with.
    """

    def __init__(
        self,
        client: Any,
        parts: list[Any],
        meta: ListMeta,
        split: TimeSplit,
        window: np.ndarray,
        source: dict[str, Any],
        max_position: int,
    ) -> None:
        self.client = client
        self.parts = parts
        self.meta = meta
        self.split = split
        self.window = window
        self.source = source
        self.max_position = max_position

    def _by_partition(self, lists: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(partition, indices within it) of the lists `lists` (indices into `meta`, order kept)."""
        partition = self.meta.partition[lists]
        return [(int(p), self.meta.index[lists[partition == p]]) for p in np.unique(partition)]

    def lists_in(self, window: int, sections: Sequence[str] | None = None) -> LabelledLists:
        """The lists of one window (and of the given sections), in log order, taken on the workers and
        gathered. The training window is refused: its rows stay on the workers (`training_window`)."""
        if window == TRAIN:
            raise TrainingDataError("the training window's lists stay on the workers; use training_window")
        mask = self.window == window
        if sections is not None:
            mask &= np.isin(self.meta.section, np.asarray(sections, dtype=object))
        pieces = self._by_partition(np.flatnonzero(mask)) or [(0, np.zeros(0, dtype=np.int64))]
        futures = [self.client.submit(_take_task, self.parts[p], index, pure=False) for p, index in pieces]
        got = self.client.gather(futures)
        return concat_lists(got) if any(lists.n_requests for lists in got) else got[0]

    def window_summary(self) -> dict[str, dict[str, Any]]:
        """Per window: its time bounds and its number of decisions."""
        return window_summary(self.split, self.window)

    def held_out(self) -> dict[str, Any]:
        """The test window's decision count and fingerprint, recorded with a model."""
        return held_out(self.meta.event_id, self.window)

    def union(self, design: DesignSpec, union: str, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        """The stratified union of the design's training-window lists, drawn in the client from their
        metadata: (indices into `meta` in union order, the union's summary); the same lists as
        `ranker.train` draws from the gathered lists."""
        eligible = np.flatnonzero(
            (self.window == TRAIN) & np.isin(self.meta.section, np.asarray(design.sections, dtype=object))
        )
        section = self.meta.section[eligible]

        def section_revenue() -> dict[str, float]:
            sums = pd.Series(self.meta.revenue[eligible]).groupby(section, sort=False).sum()
            return {str(k): float(v) for k, v in sums.items()}

        chosen, summary = union_draw(
            section, self.meta.rows[eligible], design, union, seed, section_revenue=section_revenue
        )
        return eligible[chosen], summary

    def training_window(
        self, design: DesignSpec, union: str, config: RankerConfig, builder: FeatureBuilder
    ) -> DistributedTraining:
        """The design's training lists on the workers (`ranker.train.TrainingWindow`)."""
        return DistributedTraining(self, design, union, config, builder)


class DistributedTraining(TrainingWindow):
    """The training window of a `DistributedLog`: chosen, cut and shuffled on the workers, partition by
    partition and piece by piece (one piece of each partition per worker, the rows shuffled with the seed
    ``(config seed, partition, piece)``); each model group's features built there and boosted by
    `DaskLambdaRanker.fit_partitions`.

    Attributes
    ----------
    chosen : (L,) int64
        The chosen lists (indices into the log's `ListMeta`) that keep a positive label after the training
        cut, in union order.
    union_summary : dict or None
    """

    def __init__(
        self,
        log: DistributedLog,
        design: DesignSpec,
        union: str,
        config: RankerConfig,
        builder: FeatureBuilder,
    ) -> None:
        if config.labels.max_position != log.max_position:
            raise TrainingDataError(
                f"labels.max_position: the log was prepared with {log.max_position}, found "
                f"{config.labels.max_position}; prepare it with the same config"
            )
        self.log = log
        seed = config.lightgbm.seed
        if design.kind.shared:
            chosen, self.union_summary = log.union(design, union, seed)
        else:
            chosen = np.flatnonzero(
                (log.window == TRAIN) & np.isin(log.meta.section, np.asarray(design.sections, dtype=object))
            )
        self.chosen = chosen[log.meta.trainable[chosen]]
        client = log.client
        self._builder = builder
        self._shared_builder = client.scatter(builder, broadcast=True, hash=False)
        # Partitions without a chosen list get no task. Each other partition's chosen lists are dealt in
        # turn to one piece per worker: the piece that stays where the partition was labelled, and one for
        # every other worker, whose training rows move there, worker to worker. Every worker then holds an
        # equal share of every partition, hence of every section, wherever Dask placed the partitions.
        meta, max_position = log.meta, log.max_position
        partitions = [int(p) for p in np.unique(meta.partition[self.chosen])]
        workers = sorted(client.nthreads())
        owners = client.who_has([log.parts[p] for p in partitions]) if len(workers) > 1 else {}
        self._pieces: list[tuple[np.ndarray, Any, list[str] | None]] = []
        for p in partitions:
            mine = self.chosen[meta.partition[self.chosen] == p]
            pieces = min(len(workers), mine.size)
            owner = owners.get(log.parts[p].key, ())
            others = [w for w in workers if w not in owner]
            others = others[p % len(others) :] + others[: p % len(others)] if others else []
            for j in range(pieces):
                piece = mine[j::pieces]
                where = [others[(j - 1) % len(others)]] if j and others else None
                lists = client.submit(
                    _training_task, log.parts[p], meta.index[piece], max_position, (seed, p, j), pure=False
                )
                self._pieces.append((piece, lists, where))

    def sections(self) -> set[str]:
        return {str(s) for s in pd.unique(self.log.meta.section[self.chosen])}

    def group(self, sections: Sequence[str], builder: FeatureBuilder, progress: Progress | None) -> GroupRows:
        """Features of `sections`' training lists, built on the workers and kept there as Dask arrays; only
        their per-section counts come back (`progress` is not shown: the features are built remotely)."""
        import dask.array as da

        if builder is not self._builder:
            raise TrainingDataError("expected the feature builder the training window was made with")
        meta, client = self.log.meta, self.log.client
        wanted = np.isin(meta.section, np.asarray(sections, dtype=object))
        xs, ys, sizes, summaries = [], [], [], []
        n_features = len(builder.features)
        for piece, lists, where in self._pieces:
            mine = piece[wanted[piece]]
            if mine.size == 0:
                continue
            rows = int(meta.training_rows[mine].sum())
            done = client.submit(
                _features_task, lists, tuple(sections), self._shared_builder, workers=where, pure=False
            )
            for out, i, shape, dtype in (
                (xs, 0, (rows, n_features), np.float64),
                (ys, 1, (rows,), np.int64),
                (sizes, 2, (mine.size,), np.int64),
            ):
                out.append(
                    da.from_delayed(client.submit(_item, done, i, pure=False), shape=shape, dtype=dtype)
                )
            summaries.append(client.submit(_item, done, 3, pure=False))
        if not xs:
            raise TrainingDataError(f"the train window has no list with a positive label in {list(sections)}")
        merged = _merge_summaries(client.gather(summaries), sections)
        n_rows = sum(s["rows"] for s in merged.values())
        if n_rows != sum(x.shape[0] for x in xs):
            raise TrainingDataError(
                f"the workers built {n_rows} training rows, the lists' metadata says otherwise"
            )
        return GroupRows(
            x=da.concatenate(xs, axis=0),
            y=da.concatenate(ys, axis=0),
            group_sizes=da.concatenate(sizes, axis=0),
            positions=None,
            n_lists=sum(s["lists"] for s in merged.values()),
            n_rows=n_rows,
            lists_by_section=merged,
        )

    def ranker_factory(self) -> Callable[..., LambdaRanker]:
        return partial(DaskLambdaRanker, client=self.log.client)

    def fit(self, ranker: LambdaRanker, rows: GroupRows, **kwargs: Any) -> LambdaRanker:
        if not isinstance(ranker, DaskLambdaRanker):
            raise TrainingDataError(
                f"a log labelled on a cluster trains with DaskLambdaRanker, found {type(ranker).__name__}"
            )
        return ranker.fit_partitions((rows.x, rows.y, rows.group_sizes), valid=kwargs.get("valid"))


def _merge_summaries(
    parts: Sequence[dict[str, dict[str, int]]], sections: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Per-section `LabelledLists.summary` counts added over partitions, sections in `sections`' order."""
    out: dict[str, dict[str, int]] = {}
    for name in sections:
        counts = [part[name] for part in parts if name in part]
        if counts:
            out[name] = {key: sum(c[key] for c in counts) for key in counts[0]}
    return out


def prepare_log_on_cluster(
    path: str | os.PathLike,
    config: RankerConfig,
    client: Any,
    *,
    split: TimeSplit | None = None,
    partition_rows: int | None = None,
) -> DistributedLog:
    """Label a dataset's partitions on the cluster and split it, keeping the labelled lists on the workers.

    Parameters
    ----------
    path : a dataset of decision logs (a directory, glob or URL; `bandits.dataset`)
    config : RankerConfig
    client : distributed.Client
    split : TimeSplit, optional
        The cut-offs to use; default: computed from the log, as `ranker.dataset.prepare_log` does.
    partition_rows : int, optional
        Decisions per partition (default `ranker.dataset.LABEL_PARTITION_ROWS`).

    Raises
    ------
    bandits.errors.LogError
        The dataset cannot be opened.
    TrainingDataError
        No decision of a configured section, or a window is empty.
    """
    dataset = LogDataset.open(path)
    rows = _dataset.LABEL_PARTITION_ROWS if partition_rows is None else partition_rows
    shared = client.scatter({"dataset": dataset, "config": config}, broadcast=True, hash=False)
    parts = [client.submit(_labelled_task, shared, files, pure=False) for files in dataset.partitions(rows)]
    max_position = config.labels.max_position
    metas = client.gather([client.submit(_meta_task, part, max_position, pure=False) for part in parts])
    counts: dict[str, int] = {}
    for part_counts, _, _, _ in metas:
        for section, n in part_counts.items():
            counts[section] = counts.get(section, 0) + n
    n_lists = [len(columns["time"]) for _, _, _, columns in metas]
    per_list = [f.name for f in fields(ListMeta) if f.name not in ("partition", "index")]
    columns = {
        name: np.concatenate([c[name] for _, _, _, c in metas]) if metas else np.zeros(0) for name in per_list
    }
    meta = ListMeta(
        partition=np.repeat(np.arange(len(parts), dtype=np.int64), n_lists),
        index=np.concatenate([np.arange(n, dtype=np.int64) for n in n_lists])
        if n_lists
        else np.zeros(0, np.int64),
        **columns,
    )
    split, window, source = cut_windows(
        path,
        meta.time,
        meta.feedback_time,
        config,
        split=split,
        all_sections=counts,
        n_decisions=sum(n for _, n, _, _ in metas),
        ignored_positions=sum(ignored for _, _, ignored, _ in metas),
    )
    return DistributedLog(client, parts, meta, split, window, source, max_position)
