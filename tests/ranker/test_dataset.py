"""The time split: windows in time order without leakage, late feedback dropped, too small logs refused."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ranker.config import SplitSettings
from ranker.dataset import DROPPED, STATS, TEST, TRAIN, VALIDATION, TimeSplit, prepare_log, time_split
from ranker.errors import TrainingDataError


def test_time_split_windows_are_in_time_order_without_overlap(prepared):
    times = prepared.lists.requests.time
    window = prepared.window
    bounds = [times[window == w] for w in (STATS, TRAIN, VALIDATION, TEST)]
    assert all(part.size for part in bounds)
    for earlier, later in itertools.pairwise(bounds):
        assert earlier.max() < later.min()


def test_time_split_shares_follow_the_config(prepared, ranker_config):
    counts = np.bincount(prepared.split.window_of(prepared.lists.requests.time), minlength=4)
    shares = counts / counts.sum()
    np.testing.assert_allclose(shares, ranker_config.split.fractions, atol=0.01)


def test_time_split_feedback_of_a_window_arrives_before_it_closes(prepared):
    closes = prepared.split.cutoffs
    for w in (STATS, TRAIN, VALIDATION):
        feedback = prepared.lists.feedback_time[prepared.window == w]
        assert np.nanmax(feedback) < closes[w]


def test_time_split_drops_decisions_whose_feedback_arrives_after_the_cut():
    split = TimeSplit(cutoffs=(10.0, 20.0, 30.0), start=0.0, end=40.0)
    np.testing.assert_array_equal(
        split.window_of([0, 9.5, 10, 19, 20, 30, 40, 41]), [0, 0, 1, 1, 2, 3, 3, DROPPED]
    )
    assert split.bounds(TRAIN) == (10.0, 20.0)


def test_time_split_from_recorded_cutoffs_gives_the_same_windows(sim_dir, prepared, ranker_config):
    again = prepare_log(
        sim_dir / "log.db", ranker_config, split=TimeSplit.from_dict(prepared.split.to_dict())
    )
    np.testing.assert_array_equal(again.window, prepared.window)
    assert again.held_out() == prepared.held_out()


def test_time_split_cutoffs_at_the_cumulative_shares():
    times = np.arange(100, dtype=np.float64)[::-1]
    split = time_split(times, SplitSettings(0.25, 0.45, 0.1, 0.2))
    assert split.cutoffs == (25.0, 70.0, 80.0)
    assert (split.start, split.end) == (0.0, 99.0)


@pytest.mark.parametrize(
    ("times", "match"),
    # Too few decisions, or too few distinct times, for four windows.
    [
        (np.arange(3.0), "needs at least 4"),
        (np.zeros(50), r"leave the stats, train, validation window\(s\) empty"),
    ],
)
def test_time_split_too_small_log_refused(times, match):
    with pytest.raises(TrainingDataError, match=match):
        time_split(times, SplitSettings())


def test_prepare_log_unknown_sections_only_refused(sim_dir, ranker_config):
    config = ranker_config.from_dict(
        {
            "sections": {"elsewhere": {"context": "none"}},
            "designs": {
                d: {
                    "sections": ["elsewhere"],
                    "features": ["affinity"] if d != "consolidated" else ["task_type"],
                }
                for d in ("base", "consolidated", "independent")
            },
        }
    )
    with pytest.raises(TrainingDataError, match="no decisions of the configured sections"):
        prepare_log(sim_dir / "log.db", config)
