"""The pipeline's typed batch: column-wise requests, their candidates, and the attributes read for them."""

import numpy as np
import pandas as pd
import pytest

from ranker.errors import RequestError
from ranker.requests import Requests
from ranker.rerank.batch import RerankBatch
from ranker.rerank.items import ItemAttributes

CONTEXTS = [
    {"device": "mobile"},
    {"device": "desktop", "source_item": 3},
    {"category": "shoes"},
    {"device": "tablet", "query": "red shoes"},
    {"source_item": "x-9", "category": 7},
    None,
]


def column_requests() -> Requests:
    return Requests.from_columns(
        section=np.array(["discover", "similar_items", "category_explore", "search", "discover", "search"]),
        user_id=np.arange(6),
        time=np.linspace(1.7e9, 1.7e9 + 500, 6),
        device=np.array(["mobile", "desktop", "", "tablet", "", ""]),
        source_item=np.array([None, 3, None, None, "x-9", None], dtype=object),
        category=np.array([None, None, "shoes", None, 7, None], dtype=object),
        query=np.array(["", "", "", "red shoes", "", ""]),
    )


def test_requests_from_columns_equal_requests_from_context_dicts():
    by_columns = column_requests()
    by_dicts = Requests.from_contexts(
        list(by_columns.section), np.arange(6), by_columns.time.tolist(), CONTEXTS
    )
    for name in ("section", "user_id", "time", "device", "source_item", "category", "query"):
        left, right = getattr(by_columns, name), getattr(by_dicts, name)
        assert left.dtype == right.dtype, name
        assert left.tolist() == right.tolist(), name
        assert [type(v) for v in left.tolist()] == [type(v) for v in right.tolist()], name


# Columns `Requests.from_columns` refuses: (the column replaced, its value, the message)
BAD_COLUMNS = [
    ("time", np.arange(5.0), r"`time` of shape \(6,\)"),
    ("time", np.array([1.0, np.nan, 1, 1, 1, 1]), r"finite request `time`, found nan at request 1"),
    ("time", np.array(["now"] * 6), r"`time` as Unix seconds"),
    ("device", np.zeros(6), r"`device` as strings"),
    ("source_item", np.arange(6), r"`source_item` as an object array of ids"),
    ("category", np.full(6, -1), r"`category` as an object array of ids"),
]


@pytest.mark.parametrize(
    ("name", "value", "match"), BAD_COLUMNS, ids=[f"{n}-{m[:20]}" for n, _, m in BAD_COLUMNS]
)
def test_requests_from_columns_refuses_bad_columns(name, value, match):
    good = column_requests()
    columns = {
        f: getattr(good, f) for f in ("section", "user_id", "time", "device", "source_item", "category")
    }
    columns["query"] = good.query
    columns[name] = value
    with pytest.raises(RequestError, match=match):
        Requests.from_columns(**columns)


def test_rerank_batch_takes_rows_and_groups_sections():
    batch = RerankBatch(column_requests(), np.arange(18).reshape(6, 3))
    assert len(batch) == 6
    assert batch.n_candidates == 3
    part = batch.take(np.array([3, 0]))
    assert part.requests.section.tolist() == ["search", "discover"]
    np.testing.assert_array_equal(part.candidates, [[9, 10, 11], [0, 1, 2]])
    groups = dict(batch.by_section())
    assert list(groups) == ["category_explore", "discover", "search", "similar_items"]
    np.testing.assert_array_equal(groups["discover"], [0, 4])
    np.testing.assert_array_equal(groups["search"], [3, 5])


@pytest.mark.parametrize(
    ("candidates", "match"),
    # Candidate arrays that do not fit the requests
    [(np.arange(6), r"shape \(6, n\)"), (np.zeros((5, 3)), r"found \(5, 3\)")],
)
def test_rerank_batch_refuses_candidates_of_another_shape(candidates, match):
    with pytest.raises(RequestError, match=match):
        RerankBatch(column_requests(), candidates)


def test_item_attributes_request_context_matches_context_batch_per_row():
    catalog = pd.DataFrame(
        {
            "item_id": [3, 5, 8, 13],
            "category": ["shoes", "hats", "shoes", "bags"],
            "emb_0": [1.0, 0.0, 0.5, 0.2],
            "emb_1": [0.0, 1.0, 0.5, 0.9],
        }
    )
    items = ItemAttributes(catalog)
    requests = Requests.from_columns(
        section=np.full(6, "s"),
        user_id=np.arange(6),
        time=np.zeros(6),
        device=np.full(6, ""),
        source_item=np.array([None, 3, 99, 13, None, 8], dtype=object),
        category=np.array(["shoes", None, "socks", "bags", 7, None], dtype=object),
        query=np.full(6, ""),
    )
    fast = items.request_context(requests)
    reference = items.context_batch(list(requests.source_item), list(requests.category))
    np.testing.assert_array_equal(fast.category, reference.category)
    np.testing.assert_array_equal(fast.source_embedding, reference.source_embedding)
    # None: -1, unknown category: -2, unknown source item: the zero embedding.
    assert fast.category.tolist() == [0, -1, -2, 2, -2, -1]
    assert not fast.source_embedding[2].any()


def test_item_attributes_request_context_without_categories_in_the_catalog():
    items = ItemAttributes(pd.DataFrame({"item_id": [1, 2]}))
    requests = Requests.from_columns(
        section=np.full(2, "s"),
        user_id=np.arange(2),
        time=np.zeros(2),
        device=np.full(2, ""),
        source_item=np.array([1, None], dtype=object),
        category=np.array(["shoes", None], dtype=object),
        query=np.full(2, ""),
    )
    assert items.request_context(requests).category.tolist() == [-2, -1]
