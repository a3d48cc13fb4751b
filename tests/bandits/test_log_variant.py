"""The A/B variant of each decision in the decision log: stored and read back, upgraded from version-1 logs,
carried into Parquet exports and datasets (old dataset files without the column read as no variant)."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from bandits.dataset import ship_log
from bandits.dataset_read import LogDataset
from bandits.errors import InvalidBatchError
from bandits.log import DecisionLog, decision_batch_from_frame
from bandits.log_export import export_parquet
from bandits.log_schema import SCHEMA_VERSION
from bandits.records import DecisionBatch
from tests.bandits.log_factories import assert_batches_equal, make_decisions, make_feedback

LABELS = np.array(["", "consolidate/A", "consolidate/B"], dtype=object)


def with_variants(batch: DecisionBatch, seed: int) -> DecisionBatch:
    rng = np.random.default_rng(seed)
    return dataclasses.replace(batch, variant=LABELS[rng.integers(len(LABELS), size=len(batch))])


def downgrade_to_version_1(path: Path) -> None:
    """Make a current log look as version 1 wrote it: no ``variant`` column, version stamps 1."""
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE decisions DROP COLUMN variant")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


def test_log_variant_round_trip(log: DecisionLog) -> None:
    batch = with_variants(make_decisions(40, seed=1), seed=2)
    log.append_decisions(batch)
    frame = log.decisions()
    assert frame["variant"].tolist() == batch.variant.tolist()
    assert_batches_equal(batch, decision_batch_from_frame(frame))


def test_log_variant_none_reads_back_as_none(log: DecisionLog) -> None:
    log.append_decisions(make_decisions(5, seed=3))
    assert (log.decisions()["variant"] == "").all()
    assert decision_batch_from_frame(log.decisions()).variant is None


def test_log_variant_joined_and_sql(log: DecisionLog) -> None:
    batch = with_variants(make_decisions(30, seed=4), seed=5)
    log.append_decisions(batch)
    log.append_feedback(make_feedback(batch, seed=6))
    assert log.joined()["variant"].tolist() == batch.variant.tolist()
    counts = dict(log.db.execute("SELECT variant, COUNT(*) FROM decisions GROUP BY variant").fetchall())
    expected = pd.Series(batch.variant).value_counts().to_dict()
    assert counts == expected


# Invalid variant columns: (value, message).
BAD_VARIANTS = [
    (np.array([1, 2, 3]), r"Expected `variant` of str"),
    (np.array(["a", "b"]), r"Expected `variant` of shape \(3,\)"),
]


@pytest.mark.parametrize(("variant", "message"), BAD_VARIANTS)
def test_log_variant_invalid_refused(log: DecisionLog, variant, message) -> None:
    batch = dataclasses.replace(make_decisions(3, seed=7), variant=variant)
    with pytest.raises(InvalidBatchError, match=message):
        log.append_decisions(batch)
    assert log.count() == 0


def test_concat_fills_missing_variants_with_blank() -> None:
    a = make_decisions(2, seed=8)
    b = dataclasses.replace(make_decisions(3, seed=9, start=2), variant=np.array(["e/A", "e/B", "e/A"]))
    assert DecisionBatch.concat([a, a]).variant is None
    assert DecisionBatch.concat([a, b]).variant.tolist() == ["", "", "e/A", "e/B", "e/A"]


def test_version_1_log_is_upgraded_on_open(log_path: Path) -> None:
    old = make_decisions(20, seed=10)
    with DecisionLog.open(log_path, create=True) as log:
        log.append_decisions(old)
        log.append_feedback(make_feedback(old, seed=11))
        expected = log.joined().drop(columns="variant")
    downgrade_to_version_1(log_path)
    new = with_variants(make_decisions(5, seed=12, start=100), seed=13)
    with DecisionLog.open(log_path) as log:
        assert log.schema_version == SCHEMA_VERSION == 2
        meta = dict(log.db.execute("SELECT key, value FROM meta").fetchall())
        assert meta["schema_version"] == "2"
        joined = log.joined()
        pd.testing.assert_frame_equal(joined.drop(columns="variant"), expected)
        assert (joined["variant"] == "").all()
        log.append_decisions(new)
        assert log.decisions()["variant"].tolist()[-5:] == new.variant.tolist()
    with DecisionLog.open(log_path) as log:  # opening an upgraded log changes nothing more
        assert log.count() == 25


def test_version_1_log_upgrade_is_idempotent_across_connections(log_path: Path) -> None:
    DecisionLog.open(log_path, create=True).close()
    downgrade_to_version_1(log_path)
    first = DecisionLog.open(log_path)
    second = DecisionLog.open(log_path)  # sees version 2 already: no second ALTER
    assert first.schema_version == second.schema_version == SCHEMA_VERSION
    first.close()
    second.close()


def test_export_carries_the_variant(log: DecisionLog, tmp_path: Path) -> None:
    batch = with_variants(make_decisions(25, seed=14), seed=15)
    log.append_decisions(batch)
    export_parquet(log, tmp_path / "out.parquet")
    assert pq.read_table(tmp_path / "out.parquet")["variant"].to_pylist() == batch.variant.tolist()


def test_dataset_carries_the_variant_and_reads_old_files_as_blank(log: DecisionLog, tmp_path: Path) -> None:
    batch = with_variants(make_decisions(60, seed=16), seed=17)
    log.append_decisions(batch)
    log.append_feedback(make_feedback(batch, seed=18))
    ship_log(log, tmp_path / "ds", host="web-1", chunk_size=25)
    expected = log.joined()
    pd.testing.assert_frame_equal(LogDataset.open(tmp_path / "ds").joined(), expected)
    files = sorted((tmp_path / "ds" / "decisions").rglob("*.parquet"))
    assert len(files) == 3
    # The first file as shipped before decisions logged a variant: no such column.
    pq.write_table(pq.read_table(files[0]).drop_columns(["variant"]), files[0])
    old = LogDataset.open(tmp_path / "ds").joined()
    assert (old["variant"][:25] == "").all()
    assert old["variant"][25:].tolist() == expected["variant"][25:].tolist()
    pd.testing.assert_frame_equal(old.drop(columns="variant"), expected.drop(columns="variant"))
