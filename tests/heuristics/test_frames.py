"""Reading a candidate table: the columns become an ItemBatch, and bad cells are refused by row."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from heuristics import InputError
from heuristics.frames import embedding_columns, items_from_frame


def table(**overrides: list) -> pd.DataFrame:
    columns = {
        "id": ["a", "b", "c"],
        "score": [0.5, -1.0, 2.0],
        "category": [3, 1, 3],
        "age_days": [1.5, 0.0, 40.0],
        "promoted": [True, False, False],
        "subcategory": [30, 11, 32],
        "emb_1": [0.0, 1.0, 0.5],
        "emb_0": [1.0, 0.0, 0.5],
        "emb_x": ["not", "an", "embedding"],
    }
    columns.update(overrides)
    return pd.DataFrame(columns)


def test_items_from_frame_reads_every_column():
    ids, scores, items = items_from_frame(table())
    assert ids.tolist() == ["a", "b", "c"]
    assert scores.tolist() == [0.5, -1.0, 2.0]
    assert items.shape == (1, 3)
    assert items.category.tolist() == [[3, 1, 3]]
    assert items.subcategory.tolist() == [[30, 11, 32]]
    assert items.age_days.tolist() == [[1.5, 0.0, 40.0]]
    assert items.promoted.tolist() == [[True, False, False]]
    # emb_0 first, then emb_1; emb_x is not an embedding column
    np.testing.assert_array_equal(items.embedding[0], [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])


def test_items_from_frame_without_optional_columns():
    frame = table().drop(columns=["subcategory", "emb_0", "emb_1"])
    _, _, items = items_from_frame(frame)
    assert items.subcategory is None
    assert items.embedding is None


def test_items_from_frame_reads_an_empty_table():
    ids, scores, items = items_from_frame(table().iloc[:0])
    assert ids.shape == (0,)
    assert scores.shape == (0,)
    assert items.shape == (1, 0)
    assert items.embedding.shape == (1, 0, 2)


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        ("True,False,true", [True, False, True]),
        ("yes,no,YES", [True, False, True]),
        ("1,0,1", [True, False, True]),
        ("1.0,0.0,0", [True, False, False]),
    ],
)
def test_items_from_frame_reads_promoted_flags_from_csv(cells, expected):
    csv = "id,score,category,age_days,promoted\n" + "\n".join(
        f"x{i},0.1,1,2.0,{cell}" for i, cell in enumerate(cells.split(","))
    )
    _, _, items = items_from_frame(pd.read_csv(io.StringIO(csv)))
    assert items.promoted.tolist() == [expected]


def test_embedding_columns_sorts_by_number():
    frame = pd.DataFrame(columns=["emb_10", "emb_2", "emb_0", "embx", "emb_", "id"])
    assert embedding_columns(frame) == ["emb_0", "emb_2", "emb_10"]


# Tables the reader refuses, naming the column, the bad value and its row.
BAD_TABLES = [
    (table().drop(columns=["age_days"]), r"candidates: missing column 'age_days'"),
    (table(score=[0.5, "high", 1.0]), r"column 'score' needs finite numbers, found 'high' at row 1"),
    (table(score=[0.5, None, 1.0]), r"column 'score' needs finite numbers, found nan at row 1"),
    (table(score=[0.5, 1.0, np.inf]), r"column 'score' needs finite numbers, found inf at row 2"),
    (table(age_days=[0.5, 1.0, np.nan]), r"column 'age_days' needs finite numbers, found nan at row 2"),
    (table(category=[1, 2.5, 3]), r"column 'category' needs integers, found 2\.5 at row 1"),
    (table(subcategory=["x", 1, 2]), r"column 'subcategory' needs integers, found 'x' at row 0"),
    (table(emb_1=[0.0, "?", 1.0]), r"column 'emb_1' needs finite numbers, found '\?' at row 1"),
    (
        table(promoted=[True, "maybe", False]),
        r"column 'promoted' needs true/false, yes/no or 1/0, found 'maybe' at row 1",
    ),
    (table(promoted=[1, 2, 0]), r"column 'promoted' needs true/false, yes/no or 1/0, found 2 at row 1"),
    # A missing flag is an error, not "true".
    (
        table(promoted=[1.0, np.nan, 0.0]),
        r"column 'promoted' needs true/false, yes/no or 1/0, found nan at row 1",
    ),
    (
        table(promoted=[True, None, False]),
        r"column 'promoted' needs true/false, yes/no or 1/0, found None at row 1",
    ),
]


@pytest.mark.parametrize(("frame", "match"), BAD_TABLES)
def test_items_from_frame_refuses_bad_cells(frame, match):
    with pytest.raises(InputError, match=match):
        items_from_frame(frame)
