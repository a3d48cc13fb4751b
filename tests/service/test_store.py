"""The service store and the load-catalog / load-users commands."""

from __future__ import annotations

import re
import threading

import pandas as pd
import pytest
from click.testing import CliRunner

from sectionrank.cli import main
from service.errors import StoreError
from service.store import ServiceStore


def test_store_round_trip_keeps_values_and_dtypes(tables, tmp_path):
    catalog, users = tables
    store = ServiceStore(tmp_path / "store.db")
    assert store.load("catalog", catalog) == len(catalog)
    assert store.load("users", users) == len(users)
    read_catalog, read_users = store.tables()
    pd.testing.assert_frame_equal(read_catalog, catalog, check_dtype=False)
    assert read_catalog["promoted"].dtype == bool
    assert read_catalog["item_id"].dtype == catalog["item_id"].dtype
    pd.testing.assert_frame_equal(read_users, users, check_dtype=False)


def test_store_load_replaces_the_whole_table(tables, tmp_path):
    catalog, _ = tables
    store = ServiceStore(tmp_path / "store.db")
    store.load("catalog", catalog)
    store.load("catalog", catalog.head(7))
    assert len(store.read("catalog")) == 7
    assert store.info()["catalog"]["rows"] == 7


def test_store_refused_load_keeps_the_old_table(tables, tmp_path):
    catalog, _ = tables
    store = ServiceStore(tmp_path / "store.db")
    store.load("catalog", catalog)
    with pytest.raises(StoreError, match=r"catalog: missing columns \['price'\]"):
        store.load("catalog", catalog.drop(columns="price"))
    assert len(store.read("catalog")) == len(catalog)


def test_store_readers_see_old_or_new_never_a_mix(tables, tmp_path):
    catalog, _ = tables
    store = ServiceStore(tmp_path / "store.db")
    store.load("catalog", catalog)
    sizes = set()
    stop = threading.Event()

    def read():
        while not stop.is_set():
            sizes.add(len(store.read("catalog")))

    reader = threading.Thread(target=read)
    reader.start()
    for n in (50, len(catalog), 50, len(catalog)):
        store.load("catalog", catalog.head(n))
    stop.set()
    reader.join(10)
    assert sizes <= {50, len(catalog)}


# Each row: the table, a change to a valid frame, and the message the load must fail with.
INVALID = [
    ("catalog", lambda f: f.drop(columns=["item_id", "tags"]), r"missing columns \['item_id', 'tags'\]"),
    ("catalog", lambda f: f.drop(columns=[c for c in f if c.startswith("emb_")]), r"emb_0 \.\. emb_<d-1>"),
    ("catalog", lambda f: pd.concat([f, f.head(1)]), r"column 'item_id' repeats id 0 at row 600"),
    ("catalog", lambda f: f.head(0), r"catalog: no rows"),
    ("users", lambda f: f.drop(columns="segment"), r"users: missing columns \['segment'\]"),
    ("users", lambda f: f.assign(user_id=[None] * len(f)), r"missing id at row 0"),
]


@pytest.mark.parametrize(("table", "change", "match"), INVALID)
def test_store_refuses_invalid_tables(tables, tmp_path, table, change, match):
    frame = tables[0] if table == "catalog" else tables[1]
    with pytest.raises(StoreError, match=match):
        ServiceStore(tmp_path / "store.db").load(table, change(frame))


def test_store_read_of_a_missing_store_or_table(tmp_path, tables):
    with pytest.raises(StoreError, match="no such store"):
        ServiceStore(tmp_path / "none.db").read("catalog")
    store = ServiceStore(tmp_path / "store.db")
    store.load("catalog", tables[0])
    with pytest.raises(StoreError, match="no users table"):
        store.read("users")
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match=r"junk\.db"):
        ServiceStore(tmp_path / "junk.db").read("catalog")


def test_load_catalog_command_reads_parquet_and_csv(sim_dir, tmp_path, tables):
    runner = CliRunner()
    store = tmp_path / "store.db"
    result = runner.invoke(main, ["load-catalog", "--store", str(store), str(sim_dir / "catalog.parquet")])
    assert result.exit_code == 0, result.output
    assert f"Loaded {len(tables[0]):,} rows into the catalog table" in result.output
    csv = tmp_path / "users.csv"
    tables[1].head(10).to_csv(csv, index=False)
    result = runner.invoke(main, ["load-users", "--store", str(store), str(csv)])
    assert result.exit_code == 0, result.output
    assert len(ServiceStore(store).read("users")) == 10


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        (
            "users.csv",
            "user_id,segment\n1,a\n",
            r"Error: users: missing columns \['u_emb_0 \.\. u_emb_<d-1>'\]",
        ),
        ("users.txt", "x", r"Error: .*users.txt: expected a \.parquet or \.csv file"),
        ("users.parquet", "not parquet", r"Error: .*users.parquet: cannot read"),
        ("users.csv", "", r"Error: .*users.csv: cannot read"),
    ],
)
def test_load_users_command_errors_are_one_line(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_text(content)
    result = CliRunner().invoke(main, ["load-users", "--store", str(tmp_path / "store.db"), str(path)])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert re.match(match, result.output.strip()), result.output


def test_load_command_missing_file_is_one_line(tmp_path):
    result = CliRunner().invoke(
        main, ["load-catalog", "--store", str(tmp_path / "s.db"), str(tmp_path / "none.parquet")]
    )
    assert result.exit_code == 1
    assert "no such file" in result.output
    assert not (tmp_path / "s.db").exists()
