"""Shipping decision logs into a Parquet dataset, and reading it back as the logs read themselves."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bandits.dataset import DatasetWriter, read_watermark, ship_log
from bandits.dataset_read import LogDataset, is_dataset, open_log
from bandits.errors import DatasetError, InvalidArgumentError
from bandits.log import DecisionLog
from tests.bandits.log_factories import make_decisions, make_feedback

DAY = 86_400.0


def write_log(path: Path, batches: list[tuple[int, int]], *, str_ids: bool = False, spread_days: float = 3):
    """A log of (start, n) decision batches spread over a few days, with feedback on about half of them
    (some of it late), into `path`."""
    with DecisionLog.open(path, create=True) as log:
        for start, n in batches:
            decisions = make_decisions(n, seed=start, start=start, str_ids=str_ids)
            decisions = type(decisions)(
                **{**vars(decisions), "time": decisions.time + np.linspace(0, spread_days * DAY, n)}
            )
            feedback = make_feedback(decisions, seed=start + 1)
            keep = np.random.default_rng(start).random(n) < 0.5
            log.append_decisions(decisions)
            log.append_feedback(type(feedback)(**{k: _take(v, keep) for k, v in vars(feedback).items()}))
    return path


def _take(value, keep):
    if isinstance(value, np.ndarray):
        return value[keep]
    if isinstance(value, list):
        return [v for v, k in zip(value, keep, strict=True) if k]
    return value


def parquet_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.parquet")}


@pytest.mark.parametrize("wait_seconds", [None, 3600.0, 0.5])
@pytest.mark.parametrize("str_ids", [False, True])
def test_dataset_joined_equals_the_sqlite_log(tmp_path, wait_seconds, str_ids):
    log_path = write_log(tmp_path / "log.db", [(0, 300)], str_ids=str_ids)
    with DecisionLog.open(log_path) as log:
        ship_log(log, tmp_path / "ds", host="web-1", chunk_size=70)
        expected = log.joined(wait_seconds)
    dataset = LogDataset.open(tmp_path / "ds")
    pd.testing.assert_frame_equal(dataset.joined(wait_seconds), expected)
    streamed = pd.concat(list(dataset.iter_joined(wait_seconds=wait_seconds)), ignore_index=True)
    pd.testing.assert_frame_equal(streamed, expected)


def test_dataset_filters_like_the_log(tmp_path):
    log_path = write_log(tmp_path / "log.db", [(0, 200)])
    with DecisionLog.open(log_path) as log:
        ship_log(log, tmp_path / "ds", host="a")
        times = log.decisions()["time"].to_numpy()
        since, until = float(np.quantile(times, 0.2)), float(np.quantile(times, 0.7))
        expected = log.joined(60.0, section="discover", since=since, until=until)
        counts = (log.count(), log.count("discover"), log.sections())
    dataset = LogDataset.open(tmp_path / "ds")
    got = dataset.joined(60.0, section="discover", since=since, until=until)
    pd.testing.assert_frame_equal(got, expected)
    assert (dataset.count(), dataset.count("discover"), dataset.sections()) == counts


def test_dataset_export_twice_ships_nothing_the_second_time(tmp_path):
    log_path = write_log(tmp_path / "log.db", [(0, 250)])
    with DecisionLog.open(log_path) as log:
        first = ship_log(log, tmp_path / "ds", host="a", chunk_size=100)
        files = parquet_files(tmp_path / "ds")
        second = ship_log(log, tmp_path / "ds", host="a", chunk_size=100)
        n_feedback = log.count_feedback()
    assert (first.decisions, first.feedback) == (250, n_feedback)
    assert (second.decisions, second.feedback, second.files) == (0, 0, 0)
    assert parquet_files(tmp_path / "ds") == files
    assert read_watermark(tmp_path / "ds", "a").decisions == 250


def test_dataset_ships_only_what_is_new_and_reads_the_whole_log(tmp_path):
    log_path = write_log(tmp_path / "log.db", [(0, 120)])
    with DecisionLog.open(log_path) as log:
        ship_log(log, tmp_path / "ds", host="a", chunk_size=50)
    write_log(log_path, [(1000, 80)])  # the same log grows
    with DecisionLog.open(log_path) as log:
        again = ship_log(log, tmp_path / "ds", host="a", chunk_size=50)
        expected = log.joined(3600.0)
    assert again.decisions == 80
    pd.testing.assert_frame_equal(LogDataset.open(tmp_path / "ds").joined(3600.0), expected)


def test_dataset_run_that_died_before_its_watermark_ships_nothing_twice(tmp_path):
    log_path = write_log(tmp_path / "log.db", [(0, 150)])
    with DecisionLog.open(log_path) as log:
        ship_log(log, tmp_path / "ds", host="a", chunk_size=100)
        expected = log.joined()
    # A run that wrote the second chunk's files and died before advancing the watermark: set it back.
    mark = tmp_path / "ds" / "_shipped" / "a.json"
    mark.write_text(mark.read_text().replace('"decisions_seq": 150', '"decisions_seq": 100'))
    with DecisionLog.open(log_path) as log:
        redo = ship_log(log, tmp_path / "ds", host="a", chunk_size=30)  # other chunk boundaries
    assert redo.decisions == 50
    pd.testing.assert_frame_equal(LogDataset.open(tmp_path / "ds").joined(), expected)


def test_dataset_two_hosts_are_both_read(tmp_path):
    expected = []
    for host, start in (("web-1", 0), ("web-2", 5000)):
        log_path = write_log(tmp_path / f"{host}.db", [(start, 90)])
        with DecisionLog.open(log_path) as log:
            ship_log(log, tmp_path / "ds", host=host, chunk_size=40)
            expected.append(log.joined())
    dataset = LogDataset.open(tmp_path / "ds")
    assert dataset.hosts == ["web-1", "web-2"]
    union = pd.concat(expected, ignore_index=True)
    pd.testing.assert_frame_equal(dataset.joined(), union)
    pd.testing.assert_frame_equal(pd.concat(list(dataset.iter_joined()), ignore_index=True), union)
    hive = {p.parts[-2] for p in (tmp_path / "ds" / "decisions").rglob("*.parquet")}
    assert hive == {"host=web-1", "host=web-2"}


def test_dataset_glob_of_roots_reads_their_union(tmp_path):
    frames = []
    for region, start in (("eu", 0), ("us", 700)):
        log_path = write_log(tmp_path / f"{region}.db", [(start, 40)])
        with DecisionLog.open(log_path) as log:
            ship_log(log, tmp_path / "logs" / region, host="h")
            frames.append(log.joined())
    dataset = open_log(str(tmp_path / "logs" / "*"))
    assert isinstance(dataset, LogDataset)
    assert dataset.count() == 80
    assert set(dataset.joined()["event_id"]) == set(pd.concat(frames)["event_id"])


def test_dataset_partitions_by_utc_date_of_each_row(tmp_path):
    log_path = write_log(tmp_path / "log.db", [(0, 100)], spread_days=4)
    with DecisionLog.open(log_path) as log:
        ship_log(log, tmp_path / "ds", host="a")
    for path in (tmp_path / "ds" / "decisions").rglob("*.parquet"):
        date = path.parts[-3].removeprefix("date=")
        times = pd.read_parquet(path, columns=["time"])["time"]
        assert set(pd.to_datetime(times, unit="s").dt.strftime("%Y-%m-%d")) == {date}


def test_dataset_writer_equals_a_log_written_with_the_same_batches(tmp_path):
    decisions = make_decisions(60, seed=4)
    feedback = make_feedback(decisions, seed=5)
    with DecisionLog.open(tmp_path / "log.db", create=True) as log:
        log.append(decisions, feedback)
        expected = log.joined()
    with DatasetWriter(tmp_path / "ds", "sim") as writer:
        writer.append(decisions, feedback)
    pd.testing.assert_frame_equal(LogDataset.open(tmp_path / "ds").joined(), expected)


@pytest.mark.parametrize("rows_per_file", [1, 25, 40, 1000])
def test_dataset_writer_buffers_batches_into_chunks_of_rows_per_file(tmp_path, rows_per_file):
    batches = [make_decisions(20, seed=s, start=100 * s) for s in range(4)]
    with DecisionLog.open(tmp_path / "log.db", create=True) as log:
        for i, decisions in enumerate(batches):
            log.append(decisions, make_feedback(decisions, seed=10 + i))
        expected = log.joined()
    with DatasetWriter(tmp_path / "ds", "sim", rows_per_file=rows_per_file) as writer:
        for i, decisions in enumerate(batches):
            writer.append(decisions, make_feedback(decisions, seed=10 + i))
    dataset = LogDataset.open(tmp_path / "ds")
    pd.testing.assert_frame_equal(dataset.joined(), expected)
    # A chunk is written once at least rows_per_file decisions are buffered (whole batches of 20), and
    # the rest at close.
    per_chunk = 20 * -(-rows_per_file // 20)
    assert len(dataset.chunks()) == -(-80 // per_chunk)
    assert read_watermark(tmp_path / "ds", "sim").decisions == 80


def test_dataset_writer_writes_nothing_before_a_chunk_is_full(tmp_path):
    decisions = make_decisions(20, seed=1)
    writer = DatasetWriter(tmp_path / "ds", "sim", rows_per_file=50)
    writer.append(decisions, make_feedback(decisions, seed=2))
    assert not list((tmp_path / "ds").rglob("*.parquet"))
    assert read_watermark(tmp_path / "ds", "sim").decisions == 0
    writer.close()
    assert LogDataset.open(tmp_path / "ds").count() == 20
    assert read_watermark(tmp_path / "ds", "sim").decisions == 20


# The refusals: what is wrong, and the message naming it.
REFUSALS = [
    ("another log under the same host", "was shipped from another log"),
    ("a host written directly", "was written directly"),
]


@pytest.mark.parametrize(("case", "match"), REFUSALS)
def test_dataset_ship_refuses_a_host_of_other_data(tmp_path, case, match):
    if case == "a host written directly":
        decisions = make_decisions(5, seed=1)
        with DatasetWriter(tmp_path / "ds", "a") as writer:
            writer.append(decisions, make_feedback(decisions, seed=2))
    else:
        with DecisionLog.open(write_log(tmp_path / "one.db", [(0, 10)])) as log:
            ship_log(log, tmp_path / "ds", host="a")
        meta = tmp_path / "ds" / "_shipped" / "a.json"
        meta.write_text(meta.read_text().replace('"log_created_at": "', '"log_created_at": "x'))
    with (
        DecisionLog.open(write_log(tmp_path / "two.db", [(50, 10)])) as log,
        pytest.raises(DatasetError, match=match),
    ):
        ship_log(log, tmp_path / "ds", host="a")


@pytest.mark.parametrize("host", ["", "a/b", "-a", "x" * 64, "a b"])
def test_dataset_ship_refuses_a_bad_host_name(tmp_path, host):
    with (
        DecisionLog.open(write_log(tmp_path / "log.db", [(0, 3)])) as log,
        pytest.raises(InvalidArgumentError, match="Expected `host`"),
    ):
        ship_log(log, tmp_path / "ds", host=host)


def test_dataset_open_refuses_what_is_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset"):
        LogDataset.open(tmp_path / "missing")
    (tmp_path / "other").mkdir()
    with pytest.raises(DatasetError, match="not a decision-log dataset"):
        LogDataset.open(tmp_path / "other")


def test_dataset_open_log_tells_a_dataset_from_a_sqlite_file(tmp_path):
    log_path = write_log(tmp_path / "log.db", [(0, 3)])
    assert not is_dataset(log_path)
    assert is_dataset(tmp_path)
    assert is_dataset("s3://bucket/logs")
    assert is_dataset(str(tmp_path / "*"))
    with open_log(log_path) as log:
        assert isinstance(log, DecisionLog)


def test_dataset_reads_through_an_fsspec_url(tmp_path):
    log_path = write_log(tmp_path / "log.db", [(0, 30)])
    with DecisionLog.open(log_path) as log:
        ship_log(log, tmp_path / "ds", host="a")
        expected = log.joined()
    shutil.copytree(tmp_path / "ds", tmp_path / "copy")
    pd.testing.assert_frame_equal(LogDataset.open(f"file://{tmp_path / 'copy'}").joined(), expected)


@pytest.mark.parametrize("rows", [1, 70, 100, 140, 200, 10_000])
def test_dataset_partitions_group_whole_chunks_of_one_host_in_log_order(tmp_path, rows):
    for host, start in (("a", 0), ("b", 1000)):
        with DecisionLog.open(write_log(tmp_path / f"{host}.db", [(start, 300)])) as log:
            ship_log(log, tmp_path / "ds", host=host, chunk_size=70)
    dataset = LogDataset.open(tmp_path / "ds")
    partitions = dataset.partitions(rows)
    # Naive reference: per host, chunks of 70, 70, 70, 70, 20 rows, closed once they hold >= rows.
    expected_sizes = []
    for _host in ("a", "b"):
        held = 0
        for size in (70, 70, 70, 70, 20):
            if held == 0 or held >= rows:
                expected_sizes.append(0)
                held = 0
            expected_sizes[-1] += size
            held += size
    sizes = [sum(len(pd.read_parquet(f.path, columns=["seq"])) for f in files) for files in partitions]
    assert sizes == expected_sizes
    assert all(len({f.host for f in files}) == 1 for files in partitions)
    flat = [f for files in partitions for f in files]
    assert flat == [f for files in dataset.chunks() for f in files]


@pytest.mark.parametrize("wait_seconds", [None, 3600.0])
def test_dataset_joined_chunk_columns_equal_the_full_frames(tmp_path, wait_seconds):
    with DecisionLog.open(write_log(tmp_path / "log.db", [(0, 300)])) as log:
        ship_log(log, tmp_path / "ds", host="a", chunk_size=70)
    dataset = LogDataset.open(tmp_path / "ds")
    columns = ["section", "context", "arm_probs", "clicks", "reward", "has_feedback"]
    for files in dataset.partitions(150):
        full = dataset.joined_chunk(files, wait_seconds=wait_seconds)
        lean = dataset.joined_chunk(files, wait_seconds=wait_seconds, columns=columns)
        assert list(lean.columns) == [c for c in full.columns if c in {"event_id", "time", *columns}]
        pd.testing.assert_frame_equal(lean, full[lean.columns])


# Bad `columns` and `rows`: what is wrong, and the message naming it.
BAD_READS = [
    ("joined_chunk", {"columns": ["nope"]}, "Expected `columns` among"),
    ("joined_chunk", {"columns": "section"}, "Expected `columns` among"),
    ("partitions", {"rows": 0}, "Expected `rows` to be an integer >= 1"),
    ("joined_slices", {"slice_rows": 0}, "Expected `slice_rows` to be an integer >= 1"),
]


@pytest.mark.parametrize(("method", "kwargs", "match"), BAD_READS)
def test_dataset_reads_refuse_bad_arguments(tmp_path, method, kwargs, match):
    with DecisionLog.open(write_log(tmp_path / "log.db", [(0, 10)])) as log:
        ship_log(log, tmp_path / "ds", host="a")
    dataset = LogDataset.open(tmp_path / "ds")
    call = getattr(dataset, method)
    args = () if method == "partitions" else (dataset.chunks()[0],)
    with pytest.raises(InvalidArgumentError, match=match):
        next(iter(call(*args, **kwargs))) if method == "joined_slices" else call(*args, **kwargs)


@pytest.mark.parametrize("slice_rows", [1, 33, 70, 1000])
def test_dataset_joined_slices_are_the_joined_chunk_in_pieces(tmp_path, slice_rows):
    with DecisionLog.open(write_log(tmp_path / "log.db", [(0, 300)])) as log:
        ship_log(log, tmp_path / "ds", host="a", chunk_size=140)
    dataset = LogDataset.open(tmp_path / "ds")
    columns = ["section", "context", "clicks", "reward"]
    for files in dataset.partitions(200):
        whole = dataset.joined_chunk(files, wait_seconds=3600.0, columns=columns)
        pieces = list(
            dataset.joined_slices(files, slice_rows=slice_rows, wait_seconds=3600.0, columns=columns)
        )
        assert [len(p) for p in pieces[:-1]] == [slice_rows] * (len(pieces) - 1)
        pd.testing.assert_frame_equal(pd.concat(pieces, ignore_index=True), whole)
