"""Item statistics: counts against a naive reference, smoothing formulas, no leakage, Parquet round trip."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from ranker.dataset import STATS, TRAIN
from ranker.errors import ItemStatsError
from ranker.stats import ItemStats, item_stats, position_ctr


def naive_stats(lists) -> dict[int, list[float]]:
    """item -> [impressions, clicks, conversions, expected clicks], row by row."""
    shown = defaultdict(float)
    clicked = defaultdict(float)
    for section, position, click in zip(
        lists.section_of_row, lists.position.tolist(), lists.clicked.tolist(), strict=True
    ):
        shown[(section, position)] += 1
        clicked[(section, position)] += click
    out: dict[int, list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])
    for item, section, position, click, conv in zip(
        lists.item_id.tolist(),
        lists.section_of_row,
        lists.position.tolist(),
        lists.clicked.tolist(),
        lists.converted.tolist(),
        strict=True,
    ):
        entry = out[item]
        entry[0] += 1
        entry[1] += click or conv
        entry[2] += conv
        entry[3] += clicked[(section, position)] / shown[(section, position)]
    return out


@pytest.fixture(scope="module")
def stats_lists(prepared):
    return prepared.lists_in(STATS)


def test_item_stats_match_naive_counts(stats_lists):
    stats = item_stats(stats_lists, coec_prior_strength=5.0, cvr_prior_strength=2.0, window=(0.0, 1.0))
    naive = naive_stats(stats_lists)
    assert stats.item_id.tolist() == sorted(naive)
    for i, item in enumerate(stats.item_id.tolist()):
        impressions, clicks, conversions, expected = naive[item]
        assert (stats.impressions[i], stats.clicks[i], stats.conversions[i]) == (
            impressions,
            clicks,
            conversions,
        )
        assert stats.expected_clicks[i] == pytest.approx(expected)
    assert stats.cvr_prior == pytest.approx(stats.conversions.sum() / stats.clicks.sum())
    assert stats.expected_clicks.sum() == pytest.approx(stats_lists.clicked.sum())


def test_item_stats_smoothing_closed_form():
    stats = ItemStats(
        item_id=np.array([1, 2]),
        impressions=np.array([10, 0]),
        clicks=np.array([4, 0]),
        conversions=np.array([1, 0]),
        expected_clicks=np.array([2.0, 0.0]),
        coec_prior_strength=2.0,
        cvr_prior_strength=4.0,
        cvr_prior=0.25,
        window=(0.0, 1.0),
        n_requests=3,
    )
    np.testing.assert_allclose(stats.coec(), [(4 + 2) / (2 + 2), 1.0])
    np.testing.assert_allclose(stats.cvr(), [(1 + 4 * 0.25) / (4 + 4), 0.25])
    np.testing.assert_allclose(stats.impressions_log(), [np.log1p(10), 0.0])
    assert stats.defaults() == {"item_coec": 1.0, "item_cvr": 0.25, "item_impressions_log": 0.0}


def test_position_ctr_decreases_down_the_list(stats_lists):
    for section, ctr in position_ctr(stats_lists).items():
        assert ctr[0] > ctr[-1], section


def test_item_stats_window_ends_before_the_first_training_list(trained, prepared):
    stats = trained["consolidated"].item_stats
    assert stats.window[1] <= prepared.lists_in(TRAIN).requests.time.min()
    assert stats.n_requests == prepared.lists_in(STATS).n_requests


def test_item_stats_parquet_round_trip(tmp_path, stats_lists):
    stats = item_stats(stats_lists, coec_prior_strength=5.0, cvr_prior_strength=2.0, window=(3.0, 4.0))
    path = tmp_path / "stats.parquet"
    path.write_bytes(stats.to_parquet_bytes())
    again = ItemStats.read(path)
    for name in ("item_id", "impressions", "clicks", "conversions", "expected_clicks"):
        np.testing.assert_array_equal(getattr(again, name), getattr(stats, name))
    assert again.metadata() == stats.metadata()


def test_item_stats_read_refuses_other_files(tmp_path):
    path = tmp_path / "other.parquet"
    import pandas as pd

    pd.DataFrame({"x": [1]}).to_parquet(path)
    with pytest.raises(ItemStatsError, match="not an item statistics table"):
        ItemStats.read(path)
    with pytest.raises(ItemStatsError, match="cannot read"):
        ItemStats.read(tmp_path / "missing.parquet")
