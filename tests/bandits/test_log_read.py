"""Reading the decision log: the join and its wait window against a naive join, filters against pandas,
chunked iteration, counts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from bandits.errors import InvalidArgumentError
from bandits.log import DecisionLog
from tests.bandits.log_factories import T0, make_decisions, make_feedback

# ---------------------------------------------------------------------------------------------------------
# The join and its wait window


def naive_join(decisions: pd.DataFrame, feedback: pd.DataFrame, wait: float | None) -> dict[str, object]:
    """event_id -> admitted feedback row (as a dict) or None, by a per-row loop."""
    by_event = {row["event_id"]: row for row in feedback.to_dict("records")}
    out = {}
    for row in decisions.to_dict("records"):
        fb = by_event.get(row["event_id"])
        if fb is not None and wait is not None and fb["time"] - row["time"] > wait:
            fb = None
        out[row["event_id"]] = fb
    return out


@pytest.mark.parametrize("wait", [None, 0.0, 10.0, 1e9])
def test_joined_matches_naive_join(log: DecisionLog, wait: float | None) -> None:
    decisions = make_decisions(60, seed=16)
    # Delays on both sides of 10 s, some exactly 10, some negative (clock skew); 20 decisions get no feedback.
    delay = np.tile([0.0, 5.0, 10.0, 10.001, 100.0, -1.0], 10)[:40]
    subset = dataclasses.replace(
        decisions,
        event_id=decisions.event_id[:40],
        time=decisions.time[:40],
    )
    feedback = make_feedback(subset, seed=17, delay=delay)
    feedback = dataclasses.replace(
        feedback, clicks=feedback.clicks[:40], conversions=feedback.conversions[:40]
    )
    log.append_decisions(decisions)
    log.append_feedback(feedback)

    joined = log.joined(wait_seconds=wait)
    reference = naive_join(log.decisions(), log.feedback(), wait)
    assert joined["event_id"].tolist() == decisions.event_id.tolist()
    for row in joined.to_dict("records"):
        fb = reference[row["event_id"]]
        assert row["has_feedback"] == (fb is not None)
        if fb is None:
            assert np.isnan(row["feedback_time"])
            assert np.isnan(row["reward"])
            assert row["clicks"].size == 0
            assert row["conversions"].size == 0
            assert row["revenue"] == 0.0
            assert not row["late"]
        else:
            assert row["feedback_time"] == fb["time"]
            assert row["clicks"].tolist() == fb["clicks"].tolist()
            assert row["conversions"].tolist() == fb["conversions"].tolist()
            assert row["revenue"] == fb["revenue"]
            np.testing.assert_array_equal(row["reward"], fb["reward"])
    # Feedback outside the window is left out of the join, never out of the table.
    assert log.count_feedback() == 40
    if wait == 10.0:
        assert joined["has_feedback"].sum() == np.sum(delay <= 10.0)


def test_joined_rejects_negative_wait(log: DecisionLog) -> None:
    with pytest.raises(InvalidArgumentError, match=r"Expected `wait_seconds` >= 0 or None, found -1"):
        log.joined(wait_seconds=-1)


@pytest.mark.parametrize(
    ("section", "since", "until"),
    [(None, None, None), ("discover", None, None), (None, T0 + 5, T0 + 20), ("similar_items", T0 + 3, None)],
)
def test_decisions_filters_match_pandas_reference(
    log: DecisionLog, section: str | None, since: float | None, until: float | None
) -> None:
    log.append_decisions(make_decisions(40, seed=18))
    everything = log.decisions()
    keep = np.ones(len(everything), bool)
    if section is not None:
        keep &= (everything["section"] == section).to_numpy()
    if since is not None:
        keep &= everything["time"].to_numpy() >= since
    if until is not None:
        keep &= everything["time"].to_numpy() < until
    got = log.decisions(section=section, since=since, until=until)
    assert got["event_id"].tolist() == everything["event_id"][keep].tolist()
    assert (
        log.joined(section=section, since=since, until=until)["event_id"].tolist() == got["event_id"].tolist()
    )
    if since is None and until is None:
        assert log.count(section) == int(keep.sum())


@pytest.mark.parametrize("chunk_size", [1, 7, 40, 1000])
def test_iter_decisions_chunks_concatenate_to_decisions(log: DecisionLog, chunk_size: int) -> None:
    log.append_decisions(make_decisions(40, seed=19))
    chunks = list(log.iter_decisions(chunk_size, section="discover"))
    assert all(len(c) <= chunk_size for c in chunks)
    whole = log.decisions(section="discover")
    assert pd.concat(chunks, ignore_index=True)["event_id"].tolist() == whole["event_id"].tolist()
    joined_chunks = list(log.iter_joined(chunk_size, wait_seconds=5.0))
    assert (
        pd.concat(joined_chunks, ignore_index=True)["event_id"].tolist() == log.joined()["event_id"].tolist()
    )


@pytest.mark.parametrize("chunk_size", [0, -3, 2.5, True])
def test_iter_decisions_rejects_bad_chunk_size(log: DecisionLog, chunk_size: object) -> None:
    with pytest.raises(InvalidArgumentError, match="Expected `chunk_size` to be an integer >= 1"):
        log.iter_decisions(chunk_size)  # type: ignore[arg-type]


def test_count_sections_has_event(log: DecisionLog) -> None:
    batch = make_decisions(9, seed=20, sections=("search", "discover", "category_explore"))
    log.append_decisions(batch)
    assert log.count() == 9
    assert log.count("search") == 3
    assert log.count("nowhere") == 0
    assert log.sections() == ["category_explore", "discover", "search"]
    assert log.has_event("ev-8")
    assert not log.has_event("ev-9")
