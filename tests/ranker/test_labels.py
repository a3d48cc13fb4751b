"""Label prep: per-section label rules against a naive reference, feedback positions, and list operations."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest

from ranker.config import LabelRule, SectionSpec
from ranker.errors import TrainingDataError
from ranker.labels import LabelledLists, concat_lists, label_lists

SECTIONS = {
    "feed": SectionSpec("feed", "none", LabelRule(click=1, conversion=2)),
    "shop": SectionSpec("shop", "query", LabelRule(click=1, conversion=2, revenue_step=10.0, max_grade=5)),
}


def joined_frame(seed: int = 0, n: int = 60) -> pd.DataFrame:
    """A joined log frame with random shown lists, clicks, conversions and revenue."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        size = int(rng.integers(1, 8))
        shown = rng.choice(1000, size=size, replace=False)
        clicks = np.flatnonzero(rng.random(size) < 0.3)
        conversions = clicks[rng.random(clicks.size) < 0.5]
        rows.append(
            {
                "event_id": f"e{i}",
                "time": 1000.0 + i,
                "section": ["feed", "shop", "other"][i % 3],
                "user_id": int(rng.integers(50)),
                "context": {"device": "mobile", "query": "red shoe"} if i % 3 == 1 else {"device": "desktop"},
                "shown": shown.astype(np.int64),
                "clicks": clicks.astype(np.int64),
                "conversions": conversions.astype(np.int64),
                "revenue": float(rng.integers(0, 60)) if conversions.size else 0.0,
                "feedback_time": 1030.0 + i,
            }
        )
    return pd.DataFrame(rows)


def naive_labels(frame: pd.DataFrame) -> list[tuple[str, int, int, int]]:
    """(event, item, position, grade) of every shown item, by the rules of SECTIONS, row by row."""
    out = []
    for row in frame.itertuples():
        if row.section not in SECTIONS:
            continue
        rule = SECTIONS[row.section].labels
        share = row.revenue / len(row.conversions) if len(row.conversions) else 0.0
        for p, item in enumerate(row.shown):
            if p in set(row.conversions.tolist()):
                extra = int(share // rule.revenue_step) if rule.revenue_step else 0
                grade = min(rule.conversion + extra, rule.max_grade)
            elif p in set(row.clicks.tolist()):
                grade = rule.click
            else:
                grade = 0
            out.append((row.event_id, int(item), p, grade))
    return out


def flat(lists: LabelledLists) -> list[tuple[str, int, int, int]]:
    events = np.repeat(lists.event_id, lists.sizes)
    return list(
        zip(
            events.tolist(),
            lists.item_id.tolist(),
            lists.position.tolist(),
            lists.label.tolist(),
            strict=True,
        )
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_lists_match_naive_rules_per_section(seed):
    frame = joined_frame(seed)
    lists = label_lists(frame, SECTIONS)
    assert flat(lists) == naive_labels(frame)
    assert set(lists.requests.section) == {"feed", "shop"}
    np.testing.assert_array_equal(lists.requests.query[lists.requests.section == "shop"], "red shoe")


def test_label_lists_conversion_counts_as_click_and_revenue_splits_equally():
    frame = joined_frame().iloc[:1].copy()
    frame.at[0, "shown"] = np.array([5, 6, 7], dtype=np.int64)
    frame.at[0, "clicks"] = np.array([], dtype=np.int64)
    frame.at[0, "conversions"] = np.array([0, 2], dtype=np.int64)
    frame.at[0, "revenue"] = 30.0
    lists = label_lists(frame, SECTIONS)
    np.testing.assert_array_equal(lists.clicked, [True, False, True])
    np.testing.assert_array_equal(lists.item_revenue, [15.0, 0.0, 15.0])
    np.testing.assert_array_equal(lists.label, [2, 0, 2])


def test_label_lists_ignore_feedback_positions_outside_the_shown_list():
    frame = joined_frame().iloc[:1].copy()
    frame.at[0, "shown"] = np.array([5, 6], dtype=np.int64)
    frame.at[0, "clicks"] = np.array([1, 2, -1], dtype=np.int64)
    frame.at[0, "conversions"] = np.array([], dtype=np.int64)
    lists = label_lists(frame, SECTIONS)
    np.testing.assert_array_equal(lists.label, [0, 1])
    assert lists.ignored_positions == 2


def test_label_lists_missing_column_refused():
    with pytest.raises(TrainingDataError, match=r"missing columns \['clicks'\]"):
        label_lists(joined_frame().drop(columns="clicks"), SECTIONS)


def test_lists_take_keeps_whole_lists_in_the_given_order_with_repeats():
    lists = label_lists(joined_frame(), SECTIONS)
    picked = np.array([3, 0, 3])
    taken = lists.take(picked)
    assert taken.n_requests == 3
    expected = [row for i in picked for row in flat(lists.take(np.array([i])))]
    assert flat(taken) == expected
    np.testing.assert_array_equal(taken.sizes, lists.sizes[picked])


def test_lists_keep_rows_and_shuffled_preserve_list_membership():
    lists = label_lists(joined_frame(), SECTIONS)
    kept = lists.keep_rows(lists.position < 2)
    assert kept.n_requests == lists.n_requests
    np.testing.assert_array_equal(kept.sizes, np.minimum(lists.sizes, 2))
    shuffled = lists.shuffled(7)
    for b in range(lists.n_requests):
        before = sorted(flat(lists.take(np.array([b]))))
        after = sorted(flat(shuffled.take(np.array([b]))))
        assert before == after
    assert flat(lists.shuffled(7)) == flat(shuffled)
    assert flat(shuffled) != flat(lists)


def test_lists_has_positive_matches_labels():
    lists = label_lists(joined_frame(), SECTIONS)
    expected = [
        bool((lists.label[a:b] > 0).any()) for a, b in zip(lists.offsets[:-1], lists.offsets[1:], strict=True)
    ]
    np.testing.assert_array_equal(lists.has_positive, expected)


@pytest.mark.parametrize("cuts", [[], [0], [17], [5, 6, 40], [59]])
def test_labels_concat_of_parts_equals_the_labels_of_the_whole(cuts):
    frame = joined_frame(seed=3)
    whole = label_lists(frame, SECTIONS)
    edges = [0, *cuts, len(frame)]
    parts = [label_lists(frame.iloc[a:b], SECTIONS) for a, b in itertools.pairwise(edges)]
    got = concat_lists(parts)
    for f in dataclasses.fields(LabelledLists):
        if f.name == "requests":
            for r in dataclasses.fields(got.requests):
                np.testing.assert_array_equal(getattr(got.requests, r.name), getattr(whole.requests, r.name))
        else:
            np.testing.assert_array_equal(getattr(got, f.name), getattr(whole, f.name), err_msg=f.name)


def test_labels_concat_of_nothing_is_refused():
    with pytest.raises(TrainingDataError, match="at least one labelled list"):
        concat_lists([label_lists(joined_frame().iloc[:0], SECTIONS)])
