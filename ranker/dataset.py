"""The log, labelled and cut by time into the stats, train, validation and test windows.

`prepare_log` reads a decision log (`bandits.log.DecisionLog`, or a Parquet dataset of logs,
`bandits.dataset.LogDataset`), joins each decision with the feedback that
arrived within ``labels.wait_seconds``, labels the shown items of every configured section
(`ranker.labels`), and assigns each decision to a window by its decision time:

    stats:       time <  c1          item statistics (`ranker.stats`)
    train:       c1 <= time < c2     training lists
    validation:  c2 <= time < c3     early stopping
    test:        c3 <= time <= end   held out for evaluation

The cut-offs are the decision times at the cumulative shares of ``[split]`` (ranker.toml), so every
decision of a window is strictly earlier than every decision of the next one. A decision of the stats,
train or validation window whose feedback arrived at or after its window's end is dropped from that
window: its label was not known when the window closed. The split (cut-offs, end, and a fingerprint of the
held-out decisions) is recorded in the model's metadata, and `evaluate` re-uses it to find exactly the same
held-out lists in the same log.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bandits.dataset_read import PARTITION_ROWS, DataFile, LogDataset, open_log
from ranker.config import WINDOWS, RankerConfig, SplitSettings
from ranker.errors import TrainingDataError
from ranker.labels import LOG_COLUMNS, LabelledLists, label_lists

STATS, TRAIN, VALIDATION, TEST = range(4)
#: Window code of a decision dropped because its feedback arrived after its window closed.
DROPPED = -1


@dataclass(frozen=True)
class TimeSplit:
    """Cut-offs of the four windows.

    Attributes
    ----------
    cutoffs : tuple of float
        ``(c1, c2, c3)``: the first decision times of the train, validation and test windows.
    start, end : float
        The first and last decision time of the log when the split was made.
    """

    cutoffs: tuple[float, float, float]
    start: float
    end: float

    def window_of(self, times: np.ndarray) -> np.ndarray:
        """(B,) int8 window code (0 stats .. 3 test) of decision times (B,); -1 after `end`."""
        times = np.asarray(times, dtype=np.float64)
        window = np.searchsorted(np.asarray(self.cutoffs), times, side="right").astype(np.int8)
        window[times > self.end] = DROPPED
        return window

    def bounds(self, window: int) -> tuple[float, float]:
        """``(start, end)`` of a window: decisions with ``start <= time < end`` (the test window's end is
        inclusive)."""
        edges = (self.start, *self.cutoffs, self.end)
        return edges[window], edges[window + 1]

    def to_dict(self) -> dict[str, Any]:
        return {"cutoffs": list(self.cutoffs), "start": self.start, "end": self.end}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TimeSplit:
        c1, c2, c3 = (float(c) for c in data["cutoffs"])
        return cls(cutoffs=(c1, c2, c3), start=float(data["start"]), end=float(data["end"]))


def time_split(times: np.ndarray, settings: SplitSettings) -> TimeSplit:
    """Cut-offs at the cumulative shares of `settings` over the decision times (B,).

    Raises
    ------
    TrainingDataError
        A window would be empty (too few decisions, or too few distinct times).
    """
    times = np.sort(np.asarray(times, dtype=np.float64))
    n = times.size
    shares = np.cumsum(settings.fractions)[:-1]
    positions = np.minimum(np.ceil(shares * n - 1e-9).astype(np.int64), max(n - 1, 0))
    if n < len(WINDOWS):
        raise TrainingDataError(
            f"log: {n} decisions of the configured sections; the time split needs at least 4"
        )
    cutoffs = tuple(float(t) for t in times[positions])
    split = TimeSplit(cutoffs=cutoffs, start=float(times[0]), end=float(times[-1]))  # type: ignore[arg-type]
    counts = np.bincount(split.window_of(times), minlength=len(WINDOWS))
    empty = [WINDOWS[w] for w in range(len(WINDOWS)) if counts[w] == 0]
    if empty:
        raise TrainingDataError(
            f"log: {n} decisions leave the {', '.join(empty)} window(s) empty after the time split "
            f"({', '.join(f'{w} {f:g}' for w, f in zip(WINDOWS, settings.fractions, strict=True))})"
        )
    return split


def fingerprint(event_ids: np.ndarray) -> str:
    """SHA-256 of the sorted event ids: identifies a set of decisions."""
    digest = hashlib.sha256()
    for event in sorted(map(str, event_ids)):
        digest.update(event.encode())
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class PreparedLog:
    """A labelled log cut into windows.

    Attributes
    ----------
    lists : LabelledLists
        Every decision of a configured section, every shown position, in log order.
    split : TimeSplit
    window : (B,) int8
        Window code of each list (`STATS`, `TRAIN`, `VALIDATION`, `TEST`, or `DROPPED`).
    source : dict
        The log's path, decision count, sections and what was left out.
    """

    lists: LabelledLists
    split: TimeSplit
    window: np.ndarray
    source: dict[str, Any]

    def lists_in(self, window: int, sections: tuple[str, ...] | None = None) -> LabelledLists:
        """The lists of one window (and of the given sections), in log order."""
        mask = self.window == window
        if sections is not None:
            mask &= np.isin(self.lists.requests.section, np.asarray(sections, dtype=object))
        return self.lists.take(np.flatnonzero(mask))

    def window_summary(self) -> dict[str, dict[str, Any]]:
        """Per window: its time bounds and its number of decisions."""
        return window_summary(self.split, self.window)

    def held_out(self) -> dict[str, Any]:
        """The test window's decision count and fingerprint, recorded with a model."""
        return held_out(self.lists.event_id, self.window)


def window_summary(split: TimeSplit, window: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per window: its time bounds and its number of decisions, given each list's window code (B,)."""
    return {
        name: {
            "start": split.bounds(w)[0],
            "end": split.bounds(w)[1],
            "decisions": int((window == w).sum()),
        }
        for w, name in enumerate(WINDOWS)
    }


def held_out(event_id: np.ndarray, window: np.ndarray) -> dict[str, Any]:
    """The test window's decision count and fingerprint, given each list's event id and window code (B,)."""
    events = event_id[window == TEST]
    return {"decisions": int(events.size), "fingerprint": fingerprint(events)}


def check_log(path: str | os.PathLike) -> None:
    """Open and close the decision log (or dataset): raises `bandits.errors.LogError` (one line) when it is
    not usable."""
    with open_log(path):
        pass


def read_log(path: str | os.PathLike, wait_seconds: float) -> Any:
    """The joined decision-log frame (decisions with their feedback admitted within `wait_seconds`)."""
    with open_log(path) as log:
        return log.joined(wait_seconds=None if np.isinf(wait_seconds) else wait_seconds)


def cut_windows(
    path: str | os.PathLike,
    times: np.ndarray,
    feedback_time: np.ndarray,
    config: RankerConfig,
    *,
    split: TimeSplit | None,
    all_sections: dict[str, int],
    n_decisions: int,
    ignored_positions: int,
) -> tuple[TimeSplit, np.ndarray, dict[str, Any]]:
    """(split, window code per list, source summary) of labelled lists given by their decision times and
    feedback times (B,): the time split (or `split`) and the late-feedback rule, for `prepare_log` and for a
    log labelled on a cluster (`ranker.dataset_dask`) alike.

    Raises
    ------
    TrainingDataError
        No list (no decision of a configured section), or a window is empty.
    """
    if len(times) == 0:
        raise TrainingDataError(
            f"{path}: no decisions of the configured sections ({', '.join(config.section_names)}); "
            f"the log holds {sorted(all_sections) or 'none'}"
        )
    if split is None:
        split = time_split(times, config.split)
    window = split.window_of(times)
    closes = np.asarray((*split.cutoffs, np.inf))
    late = (window >= 0) & (window < TEST) & (feedback_time >= closes[np.maximum(window, 0)])
    window[late] = DROPPED
    source = {
        "path": os.fspath(path) if "://" in os.fspath(path) else str(Path(path)),
        "decisions": n_decisions,
        "sections": {str(k): int(v) for k, v in sorted(all_sections.items())},
        "left_out_sections": sorted(str(s) for s in all_sections if s not in config.sections),
        "dropped_late_feedback": int(late.sum()),
        "ignored_feedback_positions": ignored_positions,
    }
    return split, window, source


def prepare_log(
    path: str | os.PathLike, config: RankerConfig, *, split: TimeSplit | None = None
) -> PreparedLog:
    """Read, label and split a decision log.

    On a Dask cluster, `ranker.dataset_dask.prepare_log_on_cluster` labels a dataset on the workers and keeps
    the lists there.

    Parameters
    ----------
    path : the decision log (SQLite), or a dataset of logs (a directory, glob or URL; `bandits.dataset`)
    config : RankerConfig
    split : TimeSplit, optional
        The cut-offs to use (e.g. a model's recorded split); default: computed from this log.

    Raises
    ------
    bandits.errors.LogError
        The log cannot be opened.
    TrainingDataError
        No decision of a configured section, or a window is empty.
    """
    frame = read_log(path, config.labels.wait_seconds)
    all_sections = frame["section"].value_counts().to_dict() if len(frame) else {}
    lists, n_decisions = label_lists(frame, config.sections), len(frame)
    split, window, source = cut_windows(
        path,
        lists.requests.time,
        lists.feedback_time,
        config,
        split=split,
        all_sections=all_sections,
        n_decisions=n_decisions,
        ignored_positions=lists.ignored_positions,
    )
    return PreparedLog(lists=lists, split=split, window=window, source=source)


#: Decisions per partition labelled by one task on a cluster (`bandits.dataset_read.LogDataset.partitions`).
LABEL_PARTITION_ROWS = PARTITION_ROWS


def labelled_partition(
    dataset: LogDataset, files: Sequence[DataFile], config: RankerConfig
) -> tuple[LabelledLists, dict[str, int], int]:
    """(labelled lists, decisions per section, decisions) of one partition of a dataset (`label_lists` of
    its joined frame, only the columns label prep reads decoded): what a worker returns."""
    wait = config.labels.wait_seconds
    frame = dataset.joined_chunk(
        files, wait_seconds=None if np.isinf(wait) else wait, columns=[*LOG_COLUMNS, "feedback_time"]
    )
    counts = {str(k): int(v) for k, v in frame["section"].value_counts().items()}
    return label_lists(frame, config.sections), counts, len(frame)
