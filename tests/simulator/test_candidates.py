"""Candidate generation helpers against naive references and their sampling distributions."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import World, WorldConfig
from simulator.candidates import Buckets, first_distinct, sample_rows


def naive_first_distinct(draws: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    out = np.full((len(draws), n), -1, dtype=np.int64)
    found = np.zeros(len(draws), dtype=np.int64)
    for b, row in enumerate(draws):
        seen: list[int] = []
        for value in row.tolist():
            if value >= 0 and value not in seen and len(seen) < n:
                seen.append(value)
        out[b, : len(seen)] = seen
        found[b] = len(seen)
    return out, found


@pytest.mark.parametrize(("high", "n"), [(8, 5), (40, 10), (1000, 20)])
def test_first_distinct_matches_naive_scan(high: int, n: int):
    draws = np.random.default_rng(high).integers(-1, high, (60, 25))
    got_ids, got_found = first_distinct(draws, n)
    want_ids, want_found = naive_first_distinct(draws, n)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_array_equal(got_found, want_found)


def test_sample_rows_follows_row_weights():
    # Each row's draw frequencies lie within 4 binomial standard errors of its normalised weights.
    weights = np.array([[1.0, 0.0, 3.0, 6.0], [0.0, 0.0, 0.0, 2.0], [5.0, 5.0, 0.0, 0.0]])
    m = 20000
    draws = sample_rows(weights, m, np.random.default_rng(3))
    for row, w in zip(draws, weights, strict=True):
        p = w / w.sum()
        freq = np.bincount(row, minlength=len(w)) / m
        assert (np.abs(freq - p) <= 4 * np.sqrt(p * (1 - p) / m)).all()


def test_sample_rows_draws_uniformly_when_all_weights_are_zero():
    draws = sample_rows(np.zeros((1, 4)), 8000, np.random.default_rng(4))
    freq = np.bincount(draws[0], minlength=4) / 8000
    assert (np.abs(freq - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 8000)).all()


def test_buckets_sample_only_available_members():
    bucket = np.array([0, 1, 0, 2, 0, 1, 0])
    item = np.arange(7)
    buckets = Buckets(bucket, item, n_buckets=4, n_items=7)
    rng = np.random.default_rng(5)
    asked = np.array([[0] * 50, [1] * 50, [3] * 50, [0] * 50])
    available = np.array([[5], [1], [7], [1]])
    got = buckets.sample(asked, available, rng)
    assert set(got[0].tolist()) == {0, 2, 4}  # bucket 0 items with id < 5
    assert (got[1] == -1).all()  # bucket 1's first item (id 1) is not available yet
    assert (got[2] == -1).all()  # bucket 3 is empty
    assert (got[3] == 0).all()


def small_world(**candidates) -> World:
    config = WorldConfig.load("default").with_overrides(
        {"users": {"count": 2000}, "candidates": {"count": 20, **candidates}}
    )
    return World.build(config, seed=3)


def test_retriever_context_source_matches_the_section_context():
    world = small_world(mix={"popular": 0.0, "affinity": 0.0, "context": 1.0, "random": 0.0})
    rng = np.random.default_rng(6)
    tags = world.observed_items.tags
    search = world.sample_requests(300, rng, section="search")
    tagged = (tags[search.candidates][:, :, :, None] == search.query_tokens[:, None, None, :]).any(
        axis=(2, 3)
    )
    assert tagged.mean() > 0.8  # the rest are the uniform fill of rows with too few tagged items
    explore = world.sample_requests(300, rng, section="category_explore")
    in_category = world.observed_items.category[explore.candidates] == explore.category[:, None]
    assert in_category.mean() > 0.95
    discover = world.sample_requests(300, rng, section="discover")
    age_days = (discover.time[:, None] - world.observed_items.publish_time[discover.candidates]) / 86400
    assert (age_days <= world.config.candidates.fresh_window_days).mean() > 0.95


def test_retriever_popular_source_draws_popular_items():
    popular = small_world(mix={"popular": 1.0, "affinity": 0.0, "context": 0.0, "random": 0.0})
    uniform = small_world(mix={"popular": 0.0, "affinity": 0.0, "context": 0.0, "random": 1.0})
    rng = np.random.default_rng(7)
    pop_counts = popular.observed_items.popularity
    from_popular = pop_counts[popular.sample_requests(200, rng, section="discover").candidates].mean()
    from_uniform = pop_counts[uniform.sample_requests(200, rng, section="discover").candidates].mean()
    assert from_popular > 2 * from_uniform
