"""What a decision log holds, per section: traffic, clicks by position, and how often each arm was chosen."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bandits.log import DecisionLog


@dataclass
class SectionSummary:
    """Totals of one section's decisions.

    Attributes
    ----------
    requests, impressions, clicks, conversions : int
        Impressions count the shown slots.
    revenue : float
    clicks_by_position : (P,) int64
        Clicks at each 0-based position of the shown list.
    arm_counts : dict arm id -> int
    """

    section: str
    requests: int = 0
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0
    revenue: float = 0.0
    clicks_by_position: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    arm_counts: dict[str, int] = field(default_factory=dict)

    @property
    def ctr(self) -> float:
        """Clicks per impression."""
        return self.clicks / self.impressions if self.impressions else float("nan")

    @property
    def clicks_per_request(self) -> float:
        return self.clicks / self.requests if self.requests else float("nan")

    def _add(self, frame: pd.DataFrame) -> None:
        self.requests += len(frame)
        self.impressions += int(sum(len(s) for s in frame["shown"]))
        clicks = [np.asarray(c, dtype=np.int64) for c in frame["clicks"]]
        flat = np.concatenate(clicks) if clicks else np.empty(0, dtype=np.int64)
        self.clicks += len(flat)
        self.conversions += int(sum(len(c) for c in frame["conversions"]))
        self.revenue += float(frame["revenue"].sum())
        if flat.size:
            counts = np.bincount(flat)
            size = max(len(counts), len(self.clicks_by_position))
            self.clicks_by_position = np.pad(
                self.clicks_by_position, (0, size - len(self.clicks_by_position))
            )
            self.clicks_by_position[: len(counts)] += counts
        for arm, count in frame["arm_id"].value_counts().items():
            self.arm_counts[str(arm)] = self.arm_counts.get(str(arm), 0) + int(count)


def summarize_log(
    log: DecisionLog,
    *,
    chunk_size: int = 50_000,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> dict[str, SectionSummary]:
    """Per-section totals of a decision log, read in chunks."""
    summaries: dict[str, SectionSummary] = {}
    chunks = log.iter_joined(chunk_size)
    for frame in progress(chunks) if progress else chunks:
        for section, rows in frame.groupby("section", sort=False):
            summaries.setdefault(str(section), SectionSummary(str(section)))._add(rows)
    return dict(sorted(summaries.items()))
