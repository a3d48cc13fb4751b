"""Label prep: from the decision log and its feedback, labelled lists of shown items, per section.

One *list* is one logged decision: the items it showed, best first, each with its position, whether it was
clicked or converted, and a graded label from its section's `LabelRule` (ranker.toml): for example a click is
grade 1 and a conversion grade 2, and in search a conversion gains one more grade per 30 of revenue. Every
section keeps its own request context (source item, category, query) in the list's `Requests` row.

Only shown items are labelled: the candidates the user never saw carry no feedback. The log records revenue
per decision; it is split equally among the decision's converted items. A click or conversion position
outside the shown list is ignored (and counted in `LabelledLists.ignored_positions`); a conversion counts as
a click.

Position bias (the chosen treatment is `labels.position_bias` in ranker.toml; docs/ranker.md):

- every mode trains on the first ``labels.max_position`` positions only;
- ``unbiased`` passes each training row's position to LightGBM (``Dataset(position=...)``), whose
  position-debiased lambdarank learns one examination factor per position jointly with the ranker and
  divides each pair's gradient by them (Unbiased LambdaMART);
- ``truncate`` relies on the truncation alone, ``none`` does nothing.

Evaluation lists are always the full shown lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import pandas as pd

from ranker.config import SectionSpec
from ranker.errors import TrainingDataError
from ranker.requests import Requests

#: Columns of a joined decision-log frame (`bandits.log.DecisionLog.joined`) that label prep reads.
LOG_COLUMNS = (
    "event_id",
    "time",
    "section",
    "user_id",
    "context",
    "shown",
    "clicks",
    "conversions",
    "revenue",
)


@dataclass(frozen=True)
class LabelledLists:
    """B labelled lists (one per logged decision), R rows in all; list b owns rows offsets[b]:offsets[b+1].

    Attributes
    ----------
    requests : Requests
        (B,) the request of each list: section, user, time and context.
    event_id : (B,) object
    feedback_time : (B,) float64
        NaN when the decision has no (admitted) feedback.
    revenue : (B,) float64
        The decision's logged revenue.
    offsets : (B + 1,) int64
    item_id : (R,) int64 or object
    position : (R,) int64
        0-based position in the shown list.
    clicked, converted : (R,) bool
    item_revenue : (R,) float64
        The decision's revenue split equally among its converted items (0 elsewhere).
    label : (R,) int64
        The graded label of the list's section rule.
    ignored_positions : int
        Feedback positions outside their shown list, ignored.
    """

    requests: Requests
    event_id: np.ndarray
    feedback_time: np.ndarray
    revenue: np.ndarray
    offsets: np.ndarray
    item_id: np.ndarray
    position: np.ndarray
    clicked: np.ndarray
    converted: np.ndarray
    item_revenue: np.ndarray
    label: np.ndarray
    ignored_positions: int = 0

    @property
    def n_requests(self) -> int:
        return len(self.requests)

    @property
    def n_rows(self) -> int:
        return len(self.item_id)

    @property
    def sizes(self) -> np.ndarray:
        """(B,) rows per list."""
        return np.diff(self.offsets)

    @property
    def request_of_row(self) -> np.ndarray:
        """(R,) int64 the list of each row."""
        return np.repeat(np.arange(self.n_requests, dtype=np.int64), self.sizes)

    @property
    def section_of_row(self) -> np.ndarray:
        """(R,) the section of each row."""
        return np.repeat(self.requests.section, self.sizes)

    @property
    def has_positive(self) -> np.ndarray:
        """(B,) bool: the list has a row with label > 0."""
        positive = np.add.reduceat(self.label > 0, self.offsets[:-1]) if self.n_rows else np.zeros(0)
        out = np.zeros(self.n_requests, dtype=bool)
        nonempty = self.sizes > 0
        out[nonempty] = np.asarray(positive)[nonempty] > 0
        return out

    def take(self, lists: np.ndarray) -> LabelledLists:
        """The lists at `lists` (indices, repeats allowed, or a boolean mask), in that order, rows whole."""
        index = np.arange(self.n_requests)[lists]
        sizes = self.sizes[index]
        offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        starts = self.offsets[index]
        rows = np.repeat(starts - offsets[:-1], sizes) + np.arange(int(offsets[-1]), dtype=np.int64)
        return LabelledLists(
            requests=self.requests.take(index),
            event_id=self.event_id[index],
            feedback_time=self.feedback_time[index],
            revenue=self.revenue[index],
            offsets=offsets,
            item_id=self.item_id[rows],
            position=self.position[rows],
            clicked=self.clicked[rows],
            converted=self.converted[rows],
            item_revenue=self.item_revenue[rows],
            label=self.label[rows],
            ignored_positions=self.ignored_positions,
        )

    def shuffled(self, seed: int | np.random.Generator) -> LabelledLists:
        """The same lists with the rows of each list in a random order (lists stay in place).

        Used before training and evaluation: a model that gives tied scores must not inherit the logged order,
        which LightGBM's metric and stable sorts would otherwise read as a ranking.
        """
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        order = np.lexsort((rng.random(self.n_rows), self.request_of_row))
        return replace(
            self,
            item_id=self.item_id[order],
            position=self.position[order],
            clicked=self.clicked[order],
            converted=self.converted[order],
            item_revenue=self.item_revenue[order],
            label=self.label[order],
        )

    def keep_rows(self, mask: np.ndarray) -> LabelledLists:
        """The same lists with only the rows where `mask` (R,) is True (a list may become empty)."""
        mask = np.asarray(mask, dtype=bool)
        kept = np.add.reduceat(mask.astype(np.int64), self.offsets[:-1]) if self.n_rows else np.zeros(0)
        sizes = np.where(self.sizes > 0, np.asarray(kept, dtype=np.int64), 0)
        offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        return replace(
            self,
            offsets=offsets,
            item_id=self.item_id[mask],
            position=self.position[mask],
            clicked=self.clicked[mask],
            converted=self.converted[mask],
            item_revenue=self.item_revenue[mask],
            label=self.label[mask],
        )

    def union_frame(self) -> pd.DataFrame:
        """One row per labelled row: ``section``, ``list_id`` (the list's index), ``revenue`` (the item's)."""
        return pd.DataFrame(
            {
                "section": self.section_of_row,
                "list_id": self.request_of_row,
                "revenue": self.item_revenue,
            }
        )

    def summary(self) -> dict[str, dict[str, int]]:
        """Per section: lists, rows, lists with a positive label, clicks and conversions."""
        out: dict[str, dict[str, int]] = {}
        sections = self.requests.section
        section_of_row = self.section_of_row
        positive = self.has_positive
        for name in pd.unique(sections):
            rows = section_of_row == name
            out[str(name)] = {
                "lists": int((sections == name).sum()),
                "rows": int(rows.sum()),
                "lists_with_positive": int(positive[sections == name].sum()),
                "clicks": int(self.clicked[rows].sum()),
                "conversions": int(self.converted[rows].sum()),
            }
        return out


def concat_lists(parts: Sequence[LabelledLists]) -> LabelledLists:
    """The lists of `parts` one after the other (e.g. labelled partition by partition), as `label_lists` of
    the concatenated frames gives them; parts without a list are skipped (their empty arrays carry no
    dtype of the data)."""
    parts = [part for part in parts if part.n_requests]
    if not parts:
        raise TrainingDataError("expected at least one labelled list to concatenate, found none")
    if len(parts) == 1:
        return parts[0]
    sizes = np.concatenate([part.sizes for part in parts])
    names = [
        f.name for f in fields(LabelledLists) if f.name not in ("requests", "offsets", "ignored_positions")
    ]
    joined = {name: np.concatenate([getattr(part, name) for part in parts]) for name in names}
    requests = Requests(
        **{f.name: np.concatenate([getattr(p.requests, f.name) for p in parts]) for f in fields(Requests)}
    )
    return LabelledLists(
        requests=requests,
        offsets=np.concatenate(([0], np.cumsum(sizes))).astype(np.int64),
        ignored_positions=sum(part.ignored_positions for part in parts),
        **joined,
    )


def _concat(arrays: list[np.ndarray], dtype: type | None = None) -> np.ndarray:
    if not arrays:
        return np.zeros(0, dtype=dtype or np.int64)
    out = np.concatenate(arrays)
    return out if dtype is None else out.astype(dtype)


def _flag_positions(
    column: list[np.ndarray], offsets: np.ndarray, sizes: np.ndarray, n_rows: int
) -> tuple[np.ndarray, int]:
    """(R,) bool flags of the positions listed per request, and how many positions fell outside their list."""
    counts = np.fromiter(map(len, column), np.int64, count=len(column))
    positions = _concat(column, np.int64)
    owner = np.repeat(np.arange(len(column), dtype=np.int64), counts)
    inside = (positions >= 0) & (positions < sizes[owner])
    flags = np.zeros(n_rows, dtype=bool)
    flags[offsets[owner[inside]] + positions[inside]] = True
    return flags, int((~inside).sum())


def label_lists(frame: pd.DataFrame, sections: Mapping[str, SectionSpec]) -> LabelledLists:
    """Labelled lists of the shown items of every decision in `frame` whose section is configured.

    Parameters
    ----------
    frame : pd.DataFrame
        A joined decision-log frame (`bandits.log.DecisionLog.joined`), one row per decision; decisions of
        sections not in `sections` are left out.
    sections : Mapping[str, SectionSpec]
        The configured sections with their label rules.

    Returns
    -------
    LabelledLists
        Lists in the frame's order.
    """
    missing = [c for c in LOG_COLUMNS if c not in frame.columns]
    if missing:
        raise TrainingDataError(f"log frame: missing columns {missing}; found {list(frame.columns)}")
    frame = frame[frame["section"].isin(list(sections))]
    b = len(frame)
    shown = frame["shown"].tolist()
    sizes = np.fromiter(map(len, shown), np.int64, count=b)
    offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    n_rows = int(offsets[-1])
    item_id = _concat(shown)
    if item_id.dtype.kind not in "iu":
        item_id = item_id.astype(object)
    clicked, ignored_clicks = _flag_positions(frame["clicks"].tolist(), offsets, sizes, n_rows)
    converted, ignored_conversions = _flag_positions(frame["conversions"].tolist(), offsets, sizes, n_rows)
    clicked |= converted
    revenue = frame["revenue"].to_numpy(np.float64)
    owner = np.repeat(np.arange(b, dtype=np.int64), sizes)
    n_converted = np.bincount(owner, weights=converted, minlength=b)
    share = np.divide(revenue, n_converted, out=np.zeros(b), where=n_converted > 0)
    item_revenue = np.where(converted, share[owner], 0.0)

    section = frame["section"].to_numpy(dtype=object)
    label = np.zeros(n_rows, dtype=np.int64)
    section_of_row = np.repeat(section, sizes)
    for name, spec in sections.items():
        rows = np.flatnonzero(section_of_row == name)
        if rows.size:
            label[rows] = spec.labels.grades(clicked[rows], converted[rows], item_revenue[rows])

    requests = Requests.from_contexts(
        section, frame["user_id"].to_numpy(), frame["time"].to_numpy(np.float64), frame["context"].tolist()
    )
    feedback_time = (
        frame["feedback_time"].to_numpy(np.float64)
        if "feedback_time" in frame.columns
        else np.full(b, np.nan)
    )
    return LabelledLists(
        requests=requests,
        event_id=frame["event_id"].to_numpy(dtype=object),
        feedback_time=feedback_time,
        revenue=revenue,
        offsets=offsets,
        item_id=item_id,
        position=np.arange(n_rows, dtype=np.int64) - np.repeat(offsets[:-1], sizes),
        clicked=clicked,
        converted=converted,
        item_revenue=item_revenue,
        label=label,
        ignored_positions=ignored_clicks + ignored_conversions,
    )
