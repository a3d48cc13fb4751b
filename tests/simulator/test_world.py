"""The world: reproducible tables and requests, and the behaviour of its ground-truth click model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from ranker.requests import Requests
from ranker.rerank.items import ItemAttributes
from simulator import RequestBatch, SimulationInputError, World, WorldConfig

DAY = 86400.0


@pytest.fixture(scope="module")
def world() -> World:
    return World.build("default", seed=7)


@pytest.fixture(scope="module")
def requests(world: World) -> RequestBatch:
    return world.sample_requests(1500, np.random.default_rng(1))


def one_section(world: World, section: str, n: int = 400, seed: int = 2) -> RequestBatch:
    return world.sample_requests(n, np.random.default_rng(seed), section=section)


# --- reproducibility and observable tables -------------------------------------------------------------


def test_world_same_seed_gives_identical_tables(world: World):
    again = World.build("default", seed=7)
    pd.testing.assert_frame_equal(world.catalog(), again.catalog())
    pd.testing.assert_frame_equal(world.users(), again.users())


def test_world_different_seed_gives_different_tables(world: World):
    other = World.build("default", seed=8)
    assert not world.catalog()["emb_0"].equals(other.catalog()["emb_0"])


def test_world_same_seed_gives_identical_requests(world: World):
    first = world.sample_requests(300, np.random.default_rng(4))
    second = World.build("default", seed=7).sample_requests(300, np.random.default_rng(4))
    for field in dataclasses.fields(RequestBatch):
        np.testing.assert_array_equal(getattr(first, field.name), getattr(second, field.name), field.name)


def test_world_catalog_has_only_observable_columns(world: World):
    catalog = world.catalog()
    d = world.config.items.latent_dim
    expected = ["item_id", "category", "subcategory", "tags", *(f"emb_{j}" for j in range(d))]
    expected += ["publish_time", "price", "promoted", "popularity"]
    assert list(catalog.columns) == expected
    assert len(catalog) == world.config.items.count == world.n_items
    assert catalog["item_id"].dtype == np.int64
    assert catalog["publish_time"].is_monotonic_increasing
    tags = catalog["tags"].str.split(" ")
    assert (tags.str.len() == world.config.items.tags_per_item).all()
    assert set(tags.explode()) <= set(world.vocabulary.tolist())


def test_world_users_table_has_only_observable_columns(world: World):
    users = world.users()
    d = world.config.items.latent_dim
    assert list(users.columns) == ["user_id", "segment", "home_device", "signup_time"] + [
        f"u_emb_{j}" for j in range(d)
    ]
    assert len(users) == world.config.users.count
    assert set(users["segment"]) == set(world.segments)
    assert set(users["home_device"]) == set(world.devices)


def test_world_publishes_a_stream_of_new_items(world: World):
    times = world.catalog()["publish_time"].to_numpy()
    during = (times >= world.config.start_time) & (times < world.config.end_time)
    assert during.sum() == world.config.items.n_new
    # The new items arrive over the whole period, not in a burst: each third of it gets about a third.
    thirds = np.histogram(times[during], bins=3, range=(world.config.start_time, world.config.end_time))[0]
    assert (np.abs(thirds / during.sum() - 1 / 3) < 0.05).all()


def test_world_tables_are_copies(world: World):
    catalog = world.catalog()
    catalog.loc[0, "price"] = -1.0
    assert world.catalog().loc[0, "price"] > 0
    with pytest.raises(ValueError, match="read-only"):
        world.observed_items.price[0] = 0.0


# --- requests ----------------------------------------------------------------------------------------


def test_sample_requests_candidates_are_distinct_and_published(world: World, requests: RequestBatch):
    cand = requests.candidates
    assert cand.shape == (len(requests), world.config.candidates.count)
    ordered = np.sort(cand, axis=1)
    assert (ordered[:, 1:] != ordered[:, :-1]).all()
    published = world.catalog()["publish_time"].to_numpy()[cand]
    assert (published <= requests.time[:, None]).all()
    assert (cand != requests.source_item[:, None]).all()


def test_sample_requests_times_are_in_period_and_sorted(world: World, requests: RequestBatch):
    assert (np.diff(requests.time) >= 0).all()
    assert requests.time.min() >= world.config.start_time
    assert requests.time.max() < world.config.end_time
    np.testing.assert_array_equal(requests.hour, (requests.time // 3600) % 24)


def test_sample_requests_context_follows_section(world: World, requests: RequestBatch):
    section = requests.section
    np.testing.assert_array_equal(requests.source_item >= 0, section == "similar_items")
    np.testing.assert_array_equal(requests.category >= 0, section == "category_explore")
    np.testing.assert_array_equal(requests.query != "", section == "search")
    words = world.vocabulary
    for text, tokens in zip(requests.query, requests.query_tokens, strict=True):
        assert text == " ".join(words[tokens[tokens >= 0]])
    catalog = world.catalog()
    sources = requests.source_item[requests.source_item >= 0]
    assert (catalog["publish_time"].to_numpy()[sources] <= requests.time[requests.source_item >= 0]).all()


def test_sample_requests_follow_traffic_shares(world: World):
    n = 20000
    sample = world.sample_requests(n, np.random.default_rng(9))
    for name, section in world.config.sections.items():
        share = (sample.section == name).mean()
        se = np.sqrt(section.traffic * (1 - section.traffic) / n)
        assert abs(share - section.traffic) < 4 * se, name


def test_sample_requests_user_activity_is_heavy_tailed(world: World):
    sample = world.sample_requests(20000, np.random.default_rng(10))
    counts = np.bincount(sample.user_id, minlength=world.n_users)
    top = np.sort(counts)[::-1]
    # The most active 5% of users send far more than 5% of the requests.
    assert top[: world.n_users // 20].sum() / counts.sum() > 0.15


# --- the click model through the world ------------------------------------------------------------------


def test_world_examination_falls_with_position(world: World, requests: RequestBatch):
    exam = world.examination(requests, 20)
    np.testing.assert_allclose(exam[:, 0], 1.0)
    assert (np.diff(exam, axis=1) < 0).all()


def test_world_repeated_categories_lower_attractiveness(world: World):
    reqs = one_section(world, "discover", n=200)
    catalog = world.catalog()
    category = catalog["category"].to_numpy()
    subcategory = catalog["subcategory"].to_numpy()
    published = catalog["publish_time"].to_numpy()
    old = published < world.config.start_time  # published before every request
    target = np.flatnonzero(old & (category == 0))[0]
    same = np.flatnonzero(old & (category == 0) & (subcategory != subcategory[target]))[:4]
    # Four items of four other categories, so nothing repeats above the target.
    distinct = np.array([np.flatnonzero(old & (category == c))[0] for c in (1, 2, 3, 4)])
    repeated_slate = np.tile(np.append(same, target), (len(reqs), 1))
    distinct_slate = np.tile(np.append(distinct, target), (len(reqs), 1))
    repeated = world.attractiveness(reqs, repeated_slate)[:, -1]
    varied = world.attractiveness(reqs, distinct_slate)[:, -1]
    assert (repeated < varied).all()


def test_world_satiation_only_counts_slots_above(world: World, requests: RequestBatch):
    slates = requests.candidates[:, :10]
    reordered_below = slates.copy()
    reordered_below[:, 5:] = slates[:, 5:][:, ::-1]
    np.testing.assert_allclose(
        world.attractiveness(requests, slates)[:, :5], world.attractiveness(requests, reordered_below)[:, :5]
    )


def test_world_true_relevance_is_attractiveness_at_the_top_slot(world: World, requests: RequestBatch):
    relevance = world.true_relevance(requests)
    for j in (0, 7, 42):
        top = world.attractiveness(requests, requests.candidates[:, j : j + 1])[:, 0]
        np.testing.assert_allclose(relevance[:, j], top, rtol=1e-12)


def test_world_similar_items_favours_items_close_to_the_source(world: World):
    reqs = one_section(world, "similar_items")
    emb = world.observed_items.embedding
    # Swap every request's source item for another request's: the candidates closest to the original
    # source (by observable embedding) must lose attractiveness.
    swapped = dataclasses.replace(reqs, source_item=np.roll(reqs.source_item, 1))
    cosine = np.einsum("bnd,bd->bn", emb[reqs.candidates], emb[reqs.source_item])
    close = np.argsort(-cosine, axis=1)[:, :5]
    closest = np.take_along_axis(reqs.candidates, close, axis=1)
    with_source = world.true_relevance(reqs, closest)
    with_other = world.true_relevance(swapped, closest)
    assert with_source.mean() > 1.5 * with_other.mean()
    assert (with_source > with_other).mean() > 0.9


def test_world_search_favours_items_matching_the_query(world: World):
    reqs = one_section(world, "search")
    tags = world.observed_items.tags
    word = reqs.query_tokens[:, 0]
    matching = (tags[reqs.candidates] == word[:, None, None]).any(axis=2)
    rows = np.flatnonzero(matching.any(axis=1) & (~matching).any(axis=1))
    reqs = reqs.take(rows)
    matching = matching[rows]
    other_words = np.roll(reqs.query_tokens, 1, axis=0)
    swapped = dataclasses.replace(reqs, query_tokens=other_words)
    gain = world.true_relevance(reqs) - world.true_relevance(swapped)
    assert gain[matching].mean() > 0.05
    assert gain[matching].mean() > gain[~matching].mean() + 0.05


def test_world_category_explore_favours_the_explored_category(world: World):
    reqs = one_section(world, "category_explore")
    category = world.observed_items.category[reqs.candidates]
    in_category = category == reqs.category[:, None]
    as_discover = dataclasses.replace(reqs, section=np.full(len(reqs), "discover"))
    explore = world.true_relevance(reqs)
    discover = world.true_relevance(as_discover)
    # Relative to the discover section, the explored category's items gain more than the others.
    lift = np.log(explore / discover)
    assert lift[in_category].mean() > lift[~in_category].mean() + 1.0


@pytest.mark.parametrize("segment", ["heavy", "casual"])
def test_world_fresher_slate_gets_more_expected_clicks(world: World, segment: str):
    assert world.config.users.freshness.segment[segment] > 0  # users who value freshness
    reqs = one_section(world, "discover", n=1200)
    reqs = reqs.take(np.flatnonzero(reqs.segment == segment))
    slates = reqs.candidates[:, :20]
    # The same items with their publish times moved 20 days later are, at the request time, 20 days
    # younger: equivalently, the same slate shown 20 days earlier than `aged` (ages never go below 0).
    aged = dataclasses.replace(reqs, time=reqs.time + 20 * DAY)
    fresher = world.expected_outcomes(reqs, slates).clicks
    older = world.expected_outcomes(aged, slates).clicks
    assert (fresher > older).all()


def test_world_new_users_prefer_established_items(world: World):
    assert world.config.users.freshness.segment["new"] < 0
    reqs = one_section(world, "discover", n=1200)
    reqs = reqs.take(np.flatnonzero(reqs.segment == "new"))
    slates = reqs.candidates[:, :20]
    aged = dataclasses.replace(reqs, time=reqs.time + 20 * DAY)
    assert (world.expected_outcomes(reqs, slates).clicks < world.expected_outcomes(aged, slates).clicks).all()


def naive_expected_outcomes(world: World, requests: RequestBatch, slates: np.ndarray) -> np.ndarray:
    """Slot by slot: each slot's attractiveness from the slate cut just below it, times its examination."""
    price = world.catalog()["price"].to_numpy()
    out = np.zeros((len(requests), 3))
    for b in range(len(requests)):
        one = requests.take([b])
        for p in range(slates.shape[1]):
            prefix = slates[b : b + 1, : p + 1]
            attract = world.attractiveness(one, prefix)[0, p]
            exam = world.examination(one, p + 1)[0, p]
            conversion = world.conversion_probability(one, prefix)[0, p]
            out[b] += exam * attract * np.array([1.0, conversion, conversion * price[slates[b, p]]])
    return out


def test_world_expected_outcomes_match_naive_per_slot_loop(world: World, requests: RequestBatch):
    reqs = requests.take(np.arange(0, len(requests), 60))
    slates = reqs.candidates[:, :12]
    fast = world.expected_outcomes(reqs, slates)
    slow = naive_expected_outcomes(world, reqs, slates)
    np.testing.assert_allclose(np.stack(fast, axis=1), slow, rtol=1e-10)


def test_world_expected_outcomes_blocks_large_batches(world: World, requests: RequestBatch):
    # More rows than one internal block: the blocked result equals the per-part results.
    big = requests.take(np.tile(np.arange(len(requests)), 12))
    slates = big.candidates[:, :30]
    whole = world.expected_outcomes(big, slates).revenue
    part = world.expected_outcomes(big.take(np.arange(100)), slates[:100]).revenue
    np.testing.assert_allclose(whole[:100], part)
    np.testing.assert_allclose(whole[: len(requests)], whole[len(requests) : 2 * len(requests)])


def test_world_expected_clicks_agree_with_sampled_mean(world: World, requests: RequestBatch):
    # 300 requests shown 20 items each, sampled 400 times: the mean total over draws lies within
    # 4 standard errors of the exact expected total.
    reqs = requests.take(np.arange(300))
    slates = reqs.candidates[:, :20]
    exact = world.expected_outcomes(reqs, slates)
    draws = 400
    tiled = reqs.take(np.tile(np.arange(300), draws))
    sampled = world.sample_clicks(tiled, np.tile(slates, (draws, 1)), np.random.default_rng(12))
    per_draw = {
        "clicks": sampled.clicks.sum(axis=1).reshape(draws, 300).sum(axis=1),
        "conversions": sampled.conversions.sum(axis=1).reshape(draws, 300).sum(axis=1),
        "revenue": sampled.revenue.reshape(draws, 300).sum(axis=1),
    }
    for name, totals in per_draw.items():
        se = totals.std(ddof=1) / np.sqrt(draws)
        assert abs(totals.mean() - getattr(exact, name).sum()) < 4 * se, name


def test_world_revenue_ranks_items_differently_from_clicks(world: World, requests: RequestBatch):
    ids = requests.candidates
    click_value = world.true_relevance(requests)
    # Conversion does not depend on the slot, so the candidates can be passed as one long slate.
    revenue_value = (
        click_value * world.conversion_probability(requests, ids) * world.observed_items.price[ids]
    )
    same_best = np.argmax(click_value, axis=1) == np.argmax(revenue_value, axis=1)
    assert same_best.mean() < 0.8


# --- invalid inputs ------------------------------------------------------------------------------------

# (what is wrong, call, message fragment)
INVALID = [
    ("slate ids out of range", lambda w, r: w.expected_outcomes(r, r.candidates + 10**7), "slates"),
    ("negative slate ids", lambda w, r: w.attractiveness(r, -r.candidates), "slates"),
    ("slates of another batch", lambda w, r: w.expected_outcomes(r, r.candidates[:3]), "one row per request"),
    ("1-d slates", lambda w, r: w.sample_clicks(r, r.candidates[0], np.random.default_rng(0)), "shape"),
    ("float slates", lambda w, r: w.true_relevance(r, r.candidates * 1.0), "integer item ids"),
    (
        "unknown section",
        lambda w, r: w.expected_outcomes(
            dataclasses.replace(r, section=np.full(len(r), "feed")), r.candidates
        ),
        "section",
    ),
    (
        "unknown device",
        lambda w, r: w.examination(dataclasses.replace(r, device=np.full(len(r), "watch")), 3),
        "device",
    ),
    (
        "user out of range",
        lambda w, r: w.examination(dataclasses.replace(r, user_id=r.user_id + 10**7), 3),
        "user_id",
    ),
    ("negative request count", lambda w, r: w.sample_requests(-1, np.random.default_rng(0)), "`n`"),
    (
        "times outside the period",
        lambda w, r: w.sample_requests(2, np.random.default_rng(0), times=np.zeros(2)),
        "period",
    ),
    (
        "unknown section asked",
        lambda w, r: w.sample_requests(2, np.random.default_rng(0), section="feed"),
        "section",
    ),
    ("time of the wrong shape", lambda w, r: w.item_batch(r.candidates, r.time[:2]), "time"),
]


@pytest.mark.parametrize(("what", "call", "match"), INVALID, ids=[row[0] for row in INVALID])
def test_world_refuses_invalid_inputs(world: World, what: str, call, match: str):
    reqs = world.sample_requests(5, np.random.default_rng(0))
    with pytest.raises(SimulationInputError, match=match):
        call(world, reqs)


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_world_refuses_bad_seed(seed):
    with pytest.raises(SimulationInputError, match="seed"):
        World(WorldConfig.load("default"), seed)


def test_request_batch_refuses_ragged_fields(requests: RequestBatch):
    with pytest.raises(SimulationInputError, match="user_id"):
        dataclasses.replace(requests, user_id=requests.user_id[:3])


# --- heuristics' inputs ------------------------------------------------------------------------------


def test_world_item_and_context_batches_hold_observable_attributes(world: World, requests: RequestBatch):
    items = world.item_batch(requests.candidates, requests.time)
    catalog = world.catalog()
    ids = requests.candidates
    np.testing.assert_array_equal(items.category, catalog["category"].to_numpy()[ids])
    np.testing.assert_array_equal(items.promoted, catalog["promoted"].to_numpy()[ids])
    np.testing.assert_allclose(
        items.age_days, (requests.time[:, None] - catalog["publish_time"].to_numpy()[ids]) / DAY
    )
    assert (items.age_days >= 0).all()
    emb_cols = [f"emb_{j}" for j in range(world.config.items.latent_dim)]
    np.testing.assert_allclose(items.embedding, catalog[emb_cols].to_numpy()[ids])
    context = world.context_batch(requests)
    has_source = requests.source_item >= 0
    np.testing.assert_allclose(
        context.source_embedding[has_source], catalog[emb_cols].to_numpy()[requests.source_item[has_source]]
    )
    assert (context.source_embedding[~has_source] == 0).all()
    np.testing.assert_array_equal(context.category, requests.category)


# --- the rerank pipeline's view: typed batch and attribute source ------------------------------------------


def test_request_batch_to_rerank_batch_matches_a_per_row_reference(requests: RequestBatch):
    batch = requests.to_rerank_batch()
    # Naive reference: each request's context dict, parsed one at a time.
    reference = Requests.from_contexts(
        requests.section.tolist(), requests.user_id, requests.time, requests.context_dicts()
    )
    for name in ("section", "user_id", "time", "device", "source_item", "category", "query"):
        fast, slow = getattr(batch.requests, name), getattr(reference, name)
        assert fast.dtype == slow.dtype, name
        assert fast.tolist() == slow.tolist(), name
        assert [type(v) for v in fast.tolist()] == [type(v) for v in slow.tolist()], name
    np.testing.assert_array_equal(batch.candidates, requests.candidates)
    assert len(batch.take(np.array([4, 2]))) == 2


def test_world_request_context_is_its_context_batch(world: World, requests: RequestBatch):
    typed = world.request_context(requests.to_rerank_batch().requests)
    direct = world.context_batch(requests)
    np.testing.assert_array_equal(typed.source_embedding, direct.source_embedding)
    np.testing.assert_array_equal(typed.category, direct.category)


def test_world_segment_is_the_profile_segment(world: World, requests: RequestBatch):
    np.testing.assert_array_equal(world.segment(requests.user_id), requests.segment)
    profiles = world.users().set_index("user_id")["segment"]
    assert world.segment(np.array([0, 5])).tolist() == profiles.loc[[0, 5]].tolist()


def test_world_and_catalog_attributes_agree_up_to_category_codes(world: World, requests: RequestBatch):
    # The service's attribute source reads the catalog table; the world reads its own arrays. They agree on
    # every heuristic input; categories differ only in their codes (first appearance vs world ids).
    from_catalog = ItemAttributes(world.catalog(), world.users())
    a = world.item_batch(requests.candidates, requests.time)
    b = from_catalog.item_batch(requests.candidates, requests.time)
    np.testing.assert_array_equal(a.age_days, b.age_days)
    np.testing.assert_array_equal(a.promoted, b.promoted)
    np.testing.assert_array_equal(a.embedding, b.embedding)
    for mine, theirs in ((a.category, b.category), (a.subcategory, b.subcategory)):
        pairs = np.unique(np.stack([mine.ravel(), theirs.ravel()], axis=1), axis=0)
        assert len(np.unique(pairs[:, 0])) == len(np.unique(pairs[:, 1])) == len(pairs)  # a bijection
    np.testing.assert_array_equal(from_catalog.segment(requests.user_id), world.segment(requests.user_id))


# Inputs the world's attribute-source methods refuse: (what, call, message fragment)
INVALID_ATTRIBUTES = [
    ("user out of range", lambda w: w.segment(np.array([w.n_users])), "user_ids"),
    ("float user ids", lambda w: w.segment(np.array([1.5])), "user_ids"),
    (
        "source item not an id",
        lambda w: w.request_context(
            dataclasses.replace(
                w.sample_requests(2, np.random.default_rng(0)).to_rerank_batch().requests,
                source_item=np.array(["a", None], dtype=object),
            )
        ),
        "source_item",
    ),
]


@pytest.mark.parametrize(
    ("what", "call", "match"), INVALID_ATTRIBUTES, ids=[r[0] for r in INVALID_ATTRIBUTES]
)
def test_world_attribute_source_refuses_invalid_inputs(world: World, what: str, call, match: str):
    with pytest.raises(SimulationInputError, match=match):
        call(world)
