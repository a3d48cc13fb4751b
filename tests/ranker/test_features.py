"""The feature function: train/serve parity, defaults outside a section, unknown ids, and naive references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bandits.log import DecisionLog
from ranker.dataset import STATS
from ranker.errors import FeatureInputError, FeatureTableError, RequestError
from ranker.features import FEATURES, FeatureBuilder, FeatureTables
from ranker.ids import IdIndex
from ranker.requests import Requests
from ranker.stats import item_stats

ALL = tuple(FEATURES)


@pytest.fixture(scope="module")
def stats(prepared):
    return item_stats(
        prepared.lists_in(STATS), coec_prior_strength=20.0, cvr_prior_strength=10.0, window=(0, 1)
    )


@pytest.fixture(scope="module")
def builder(tables, stats, ranker_config):
    catalog, users = tables
    return FeatureBuilder(
        FeatureTables(catalog, users, stats), features=ALL, sections=ranker_config.section_contexts
    )


@pytest.fixture(scope="module")
def log_frame(sim_dir):
    with DecisionLog.open(sim_dir / "log.db") as log:
        return log.joined().iloc[:600].reset_index(drop=True)


def column(builder: FeatureBuilder, matrix: np.ndarray, name: str) -> np.ndarray:
    return matrix[:, builder.features.index(name)]


@pytest.mark.parametrize("items", ["shown", "candidates"])
def test_features_offline_equal_online_for_every_logged_request(builder, log_frame, items):
    offline, request_of_row = builder.from_log(log_frame, column=items)
    requests = zip(
        log_frame["section"],
        log_frame["user_id"],
        log_frame["context"],
        log_frame["time"],
        log_frame[items],
        strict=True,
    )
    for i, (section, user, context, when, ids) in enumerate(requests):
        online = builder.one(section, user, {**context, "time": when}, ids.tolist())
        np.testing.assert_array_equal(online, offline[request_of_row == i])


def test_features_offline_chunks_do_not_change_values(builder, prepared):
    lists = prepared.lists_in(STATS)
    whole = builder.transform(lists.requests, lists.item_id, lists.request_of_row)
    chunked = builder.transform(lists.requests, lists.item_id, lists.request_of_row, chunk_rows=97)
    np.testing.assert_array_equal(whole, chunked)


def test_features_section_context_features_take_their_default_outside_their_section(builder, log_frame):
    matrix, request_of_row = builder.from_log(log_frame)
    section = log_frame["section"].to_numpy()[request_of_row]
    owner = {
        "source_similarity": "similar_items",
        "category_match": "category_explore",
        "query_match": "search",
    }
    owner["query_similarity"] = "search"
    for name, home in owner.items():
        values = column(builder, matrix, name)
        default = FEATURES[name].default
        assert np.all(values[section != home] == default), name
        inside = values[section == home]
        assert inside.size, name
        assert np.all(inside != default), name
        low, high = (0.0, 1.0) if name in ("category_match", "query_match") else (-1.0, 1.0)
        assert inside.min() >= low - 1e-12, name
        assert inside.max() <= high + 1e-12, name


def test_features_unknown_items_and_users_get_defaults(builder):
    out = builder.one("discover", 10**9, {"device": "fridge", "time": 1.7e9}, [10**9, -5])
    expected = {spec.name: spec.default for spec in builder.specs}
    for j, name in enumerate(builder.features):
        np.testing.assert_array_equal(out[:, j], expected[name] if name != "task_type" else 0.0, err_msg=name)


def test_features_unknown_source_item_takes_the_default(builder, tables):
    catalog, _ = tables
    items = catalog["item_id"].to_numpy()[:5]
    known = builder.one("similar_items", 1, {"source_item": int(items[0]), "time": 1.7e9}, items)
    unknown = builder.one("similar_items", 1, {"source_item": 10**9, "time": 1.7e9}, items)
    j = builder.features.index("source_similarity")
    assert known[0, j] == pytest.approx(1.0)
    np.testing.assert_array_equal(unknown[:, j], FEATURES["source_similarity"].default)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_features_match_a_naive_reference(builder, tables, stats):
    catalog, users = tables
    rng = np.random.default_rng(5)
    items = catalog.sample(12, random_state=1)
    user = users.iloc[int(rng.integers(len(users)))]
    source = catalog.iloc[3]
    tags = str(items.iloc[0]["tags"]).split()
    query = f"{tags[0]} nosuchword"
    when = float(catalog["publish_time"].max()) + 86400.0 * 3
    emb = [c for c in catalog.columns if c.startswith("emb_")]
    uemb = [c for c in users.columns if c.startswith("u_emb_")]
    stats_row = dict(zip(stats.item_id.tolist(), range(len(stats)), strict=True))
    for section, context in [
        ("discover", {"device": "mobile"}),
        ("similar_items", {"device": "desktop", "source_item": int(source["item_id"])}),
        ("category_explore", {"device": "tablet", "category": int(items.iloc[1]["category"])}),
        ("search", {"query": query}),
    ]:
        got = builder.one(section, int(user["user_id"]), {**context, "time": when}, items["item_id"].tolist())
        for r, item in enumerate(items.itertuples()):
            vector = unit(catalog.loc[item.Index, emb].to_numpy(float))
            s = stats_row.get(item.item_id)
            clicks = stats.clicks[s] if s is not None else 0
            conversions = stats.conversions[s] if s is not None else 0
            expected = {
                "task_type": builder.sections.index(section),
                "affinity": unit(user[uemb].to_numpy(float)) @ vector,
                "popularity_log": np.log1p(item.popularity),
                "item_coec": (clicks + 20.0) / ((stats.expected_clicks[s] if s is not None else 0) + 20.0),
                "item_cvr": (conversions + 10.0 * stats.cvr_prior) / (clicks + 10.0),
                "item_impressions_log": np.log1p(stats.impressions[s] if s is not None else 0),
                "age_days": (when - item.publish_time) / 86400.0,
                "price_log": np.log1p(item.price),
                "promoted": float(item.promoted),
                "segment": builder.segments.index(user["segment"]),
                "device": builder.devices.index(context["device"]) if "device" in context else -1,
                "source_similarity": unit(catalog.loc[source.name, emb].to_numpy(float)) @ vector
                if section == "similar_items"
                else -2.0,
                "category_match": float(item.category == context["category"])
                if section == "category_explore"
                else -1.0,
                "query_match": (tags[0] in str(item.tags).split()) / 2 if section == "search" else -1.0,
            }
            for name, value in expected.items():
                assert got[r, builder.features.index(name)] == pytest.approx(value, abs=1e-12), (
                    section,
                    name,
                )


def test_features_query_similarity_is_the_cosine_with_the_words_item_mean(builder, tables):
    catalog, _ = tables
    emb = [c for c in catalog.columns if c.startswith("emb_")]
    vectors = catalog[emb].to_numpy(float)
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    words = str(catalog.iloc[0]["tags"]).split()[:2]
    tagged = [catalog["tags"].str.split().apply(lambda t, w=w: w in t).to_numpy() for w in words]
    total = sum(unit(vectors[mask].sum(axis=0)) for mask in tagged)
    query = unit(total)
    got = builder.one("search", 0, {"query": " ".join(words), "time": 1.7e9}, catalog["item_id"].iloc[:20])
    np.testing.assert_allclose(
        got[:, builder.features.index("query_similarity")], vectors[:20] @ query, atol=1e-12
    )


def test_features_specs_record_defaults_and_categories(builder, stats, ranker_config):
    specs = {s.name: s for s in builder.specs}
    assert specs["task_type"].categories == ranker_config.section_names
    assert specs["segment"].categories == ("casual", "heavy", "new")
    assert specs["device"].categories == ("desktop", "mobile", "tablet")
    assert specs["item_cvr"].default == stats.cvr_prior
    assert specs["source_similarity"].default == -2.0
    assert builder.categorical == tuple(builder.features.index(n) for n in ("task_type", "segment", "device"))


def test_features_one_unknown_section_refused(builder):
    with pytest.raises(FeatureInputError, match="unknown section 'checkout'"):
        builder.one("checkout", 1, {}, [1, 2])


@pytest.mark.parametrize(
    ("context", "match"),
    # Context fields of the wrong type, named.
    [
        ({"query": 5}, "context `query` to be a string"),
        ({"source_item": 1.5}, "`source_item` to be an int or str id"),
        ({"device": 3}, "`device` to be a string"),
        ({"time": float("nan")}, "context `time` to be finite"),
    ],
)
def test_features_one_bad_context_refused(builder, context, match):
    with pytest.raises(RequestError, match=match):
        builder.one("search", 1, context, [1])


def test_requests_single_takes_time_from_context_or_now():
    assert Requests.single("discover", 1, {"time": 5.0}, now=9.0).time[0] == 5.0
    assert Requests.single("discover", 1, {}, now=9.0).time[0] == 9.0


@pytest.mark.parametrize(
    ("change", "match"),
    # Catalog and user tables the feature function cannot use.
    [
        (lambda c, u: (c.drop(columns="price"), u), r"catalog: missing columns \['price'\]"),
        (
            lambda c, u: (c.drop(columns=[x for x in c.columns if x.startswith("emb_")]), u),
            r"emb_0 \.\. emb_",
        ),
        (lambda c, u: (pd.concat([c, c.iloc[:1]]), u), "catalog.item_id: id .* appears more than once"),
        (lambda c, u: (c.assign(price=np.nan), u), "column 'price' needs finite numbers"),
        (lambda c, u: (c, u.drop(columns="segment")), r"users: missing columns \['segment'\]"),
        (
            lambda c, u: (c, u.drop(columns=[x for x in u.columns if x.startswith("u_emb_")][1:])),
            "affinity needs",
        ),
    ],
)
def test_features_bad_tables_refused(tables, stats, ranker_config, change, match):
    catalog, users = change(*tables)
    with pytest.raises(FeatureTableError, match=match):
        FeatureBuilder(
            FeatureTables(catalog, users, stats), features=ALL, sections=ranker_config.section_contexts
        )


def test_features_unknown_feature_name_refused(tables, stats, ranker_config):
    with pytest.raises(FeatureInputError, match=r"unknown features \['colour'\]"):
        FeatureBuilder(
            FeatureTables(*tables, stats), features=("colour",), sections=ranker_config.section_contexts
        )


# --- computing a section-context feature everywhere (the pipeline bug the comparison's feature check injects)

# The context field a discover request (context kind none) carries in each case; queries are built from tags.
CARRIED = {"source_similarity": {"source_item": 7}, "category_match": {"category": 2}}
#: The section whose kind each feature belongs to.
HOME = {
    "source_similarity": "similar_items",
    "category_match": "category_explore",
    "query_match": "search",
    "query_similarity": "search",
}


@pytest.mark.parametrize("name", sorted(HOME))
def test_features_computing_everywhere_gives_the_carrying_sections_value_elsewhere(builder, tables, name):
    catalog, _ = tables
    if name.startswith("query"):  # a query of two words some items are tagged with
        words = sorted({w for tags in catalog["tags"] for w in str(tags).split()})
        context = {"query": f"{words[0]} {words[1]}"}
    else:
        context = CARRIED[name]
    candidates = catalog["item_id"].to_numpy()[:40]
    leaky = builder.computing_everywhere([name])
    at_home = column(builder, builder.one(HOME[name], 5, {**context, "time": 1e9}, candidates), name)
    elsewhere = column(leaky, leaky.one("discover", 5, {**context, "time": 1e9}, candidates), name)
    correct = column(builder, builder.one("discover", 5, {**context, "time": 1e9}, candidates), name)
    assert np.all(correct == FEATURES[name].default)  # the shipped builder defaults it outside its section
    np.testing.assert_array_equal(elsewhere, at_home)  # the bug: the carrying section's values
    assert np.unique(elsewhere).size > 1
    # Without the field a request still gets the default; every other column is unchanged.
    bare = leaky.one("discover", 5, {"time": 1e9}, candidates)
    assert np.all(column(leaky, bare, name) == FEATURES[name].default)
    others = [j for j, f in enumerate(builder.features) if f != name]
    np.testing.assert_array_equal(
        leaky.one("discover", 5, {**context, "time": 1e9}, candidates)[:, others],
        builder.one("discover", 5, {**context, "time": 1e9}, candidates)[:, others],
    )


def test_features_computing_everywhere_leaves_the_builder_unchanged(builder, log_frame):
    before, _ = builder.from_log(log_frame)
    leaky = builder.computing_everywhere(["source_similarity", "query_match"])
    after, _ = builder.from_log(log_frame)
    np.testing.assert_array_equal(before, after)
    assert builder.everywhere == frozenset()
    assert leaky.everywhere == {"source_similarity", "query_match"}
    # The logged requests carry only their own section's field: nothing leaks from them.
    np.testing.assert_array_equal(leaky.from_log(log_frame)[0], before)


@pytest.mark.parametrize("names", [["affinity"], ["nope"], ["task_type", "query_match"]])
def test_features_computing_everywhere_refuses_other_features(builder, names):
    with pytest.raises(FeatureInputError, match="section-context features"):
        builder.computing_everywhere(names)


# String ids that numpy's fixed-width strings would merge: each differs from another only by trailing NULs.
NUL_CATALOG = ["a", "a\x00", "\x00", "\x00\x00", "b\x00c", "b\x00c\x00", "ü\x00"]


def test_id_index_string_ids_match_byte_for_byte_like_a_dict():
    ids = np.empty(len(NUL_CATALOG), dtype=object)
    ids[:] = NUL_CATALOG
    index = IdIndex(ids, "catalog.item_id")
    wanted = [*NUL_CATALOG[::-1], "", "a\x00\x00", "b", "ü", "\x00\x00\x00", 7]
    query = np.empty(len(wanted), dtype=object)
    query[:] = wanted
    reference = {item: row for row, item in enumerate(NUL_CATALOG)}
    expected = [reference.get(item, len(NUL_CATALOG)) for item in wanted]
    np.testing.assert_array_equal(index.rows(query), expected)


def test_id_index_refuses_ids_repeated_byte_for_byte_only():
    with pytest.raises(FeatureTableError, match=r"catalog.item_id: id 'a\\x00' appears more than once"):
        IdIndex(np.array(["a", "a\x00", "a\x00"], dtype=object), "catalog.item_id")


def test_features_of_an_id_with_a_trailing_nul_are_its_own_item(tables, stats, ranker_config):
    catalog, users = tables
    # Item 0 is "x", item 1 is "x\x00": each candidate gets its own item's features, "x\x00\x00" none.
    named = catalog.head(3).assign(item_id=["x", "x\x00", "y"])
    plain = catalog.head(3).assign(item_id=["p0", "p1", "p2"])
    sections = ranker_config.section_contexts
    nul = FeatureBuilder(FeatureTables(named, users, stats), features=ALL, sections=sections)
    ref = FeatureBuilder(FeatureTables(plain, users, stats), features=ALL, sections=sections)
    context = {"device": "mobile", "time": 1.7e9}
    user = int(users["user_id"].iloc[0])
    got = nul.one("discover", user, context, np.array(["x\x00", "x", "x\x00\x00"], dtype=object))
    expected = ref.one("discover", user, context, np.array(["p1", "p0", "unknown"], dtype=object))
    np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(got[0], got[1])
