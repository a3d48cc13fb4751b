"""Benchmark: ranking metrics over many lists, bootstrap intervals, and the stratified union.

`run(quick)` returns a markdown section for docs/BENCHMARKS.md. The full run scores 100,000 lists of 20 rows
and builds a union from 1,000,000 rows; ``quick`` uses a tenth of both.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from ranker.metrics import RankedLists, auc, evaluate_lists, map_at_k, ndcg_at_k, recall_at_k
from ranker.union import stratified_union


def _best_of(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of `repeats` wall-clock timings of `fn`, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _lists(n_lists: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels, scores, shuffled list ids and per-row sections of `n_lists` lists of `size` rows."""
    rng = np.random.default_rng(seed)
    n = n_lists * size
    ids = rng.permutation(np.repeat(np.arange(n_lists), size))
    labels = rng.choice([0, 0, 0, 0, 1, 2], size=n).astype(np.float64)
    scores = labels * 0.5 + rng.normal(size=n)
    sections = np.array(["home", "similar_items", "search", "category_explore"])[ids % 4]
    return labels, scores, ids, sections


def _union_frame(n_rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 36, size=n_rows // 10)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n_rows) + 1]
    rows = int(sizes.sum())
    sections = rng.choice(
        ["home", "similar_items", "search", "category_explore"], p=[0.55, 0.25, 0.15, 0.05], size=sizes.size
    )
    frame = pd.DataFrame(
        {
            "list_id": np.repeat(np.arange(sizes.size), sizes),
            "section": np.repeat(sections, sizes),
            "label": rng.integers(0, 3, size=rows),
            "f0": rng.normal(size=rows),
            "f1": rng.normal(size=rows),
        }
    )
    return frame.iloc[:n_rows]


def run(quick: bool) -> str:
    """Time the metrics and the union; return a markdown section."""
    n_lists = 10_000 if quick else 100_000
    size = 20
    n_union_rows = 100_000 if quick else 1_000_000
    repeats = 2 if quick else 3
    labels, scores, ids, sections = _lists(n_lists, size, seed=0)
    group_sizes = np.full(n_lists, size)
    ordered = np.argsort(ids, kind="stable")
    y_sorted, s_sorted = labels[ordered], scores[ordered]

    rows: list[tuple[str, float]] = []
    rows.append(
        (
            "sort into lists (`RankedLists.build`, list ids)",
            _best_of(lambda: RankedLists.build(labels, scores, ids), repeats),
        )
    )
    lists = RankedLists.build(labels, scores, ids)
    rows.append(
        (
            "NDCG@10 on a built `RankedLists` (its sorts cached)",
            _best_of(lambda: ndcg_at_k(lists, k=10), repeats),
        )
    )
    rows.append(
        (
            "MAP@10 on a built `RankedLists` (its sorts cached)",
            _best_of(lambda: map_at_k(lists, k=10), repeats),
        )
    )
    rows.append(
        (
            "recall@10 on a built `RankedLists` (its sorts cached)",
            _best_of(lambda: recall_at_k(lists, k=10), repeats),
        )
    )
    rows.append(("AUC on a built `RankedLists` (its sorts cached)", _best_of(lambda: auc(lists), repeats)))
    rows.append(
        ("NDCG@10 from raw arrays, list ids", _best_of(lambda: ndcg_at_k(labels, scores, ids, k=10), repeats))
    )
    rows.append(
        (
            "NDCG@10 from raw arrays, group sizes",
            _best_of(lambda: ndcg_at_k(y_sorted, s_sorted, group_sizes=group_sizes, k=10), repeats),
        )
    )
    rows.append(
        (
            "`evaluate_lists`: 4 metrics x (overall + 4 sections), 1,000 bootstrap replicates",
            _best_of(lambda: evaluate_lists(labels, scores, ids, sections, k=10, n_bootstrap=1000), 1),
        )
    )

    frame = _union_frame(n_union_rows, seed=1)
    union_rows: list[tuple[str, float]] = []
    for spec in ("traffic", "equal", "0.4,0.3,0.2,0.1"):
        union_rows.append(
            (
                f"`stratified_union(spec={spec!r})`",
                _best_of(
                    lambda spec=spec: stratified_union(
                        frame, spec, sections=["home", "similar_items", "search", "category_explore"], seed=0
                    ),
                    repeats,
                ),
            )
        )

    lines = [
        "## Ranking metrics and the stratified union",
        "",
        f"Metrics over {n_lists:,} lists of {size} rows ({n_lists * size:,} rows, list ids shuffled); "
        f"best of {repeats} runs (1 for `evaluate_lists`).",
        "",
        "| step | seconds |",
        "| --- | ---: |",
        *[f"| {name} | {seconds:.3f} |" for name, seconds in rows],
        "",
        f"Union of {len(frame):,} rows ({frame['list_id'].nunique():,} lists in 4 sections, 5 columns); "
        f"best of {repeats} runs.",
        "",
        "| step | seconds |",
        "| --- | ---: |",
        *[f"| {name} | {seconds:.3f} |" for name, seconds in union_rows],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(run(quick="--quick" in sys.argv))
