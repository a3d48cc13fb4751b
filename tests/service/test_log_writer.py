"""The background decision writer: nothing acknowledged is lost, off the request thread."""

import threading
import time

import numpy as np
import pytest

from bandits.log import DecisionLog
from bandits.records import DecisionBatch
from service.log_writer import DecisionWriter


def decision(event_id: str) -> DecisionBatch:
    return DecisionBatch(
        event_id=np.array([event_id]),
        time=np.array([1.7e9]),
        section=np.array(["discover"]),
        user_id=np.array([7]),
        context=[{"device": "mobile"}],
        candidates=[np.array([1, 2, 3])],
        shown=[np.array([3, 1])],
        arm_id=np.array(["discover-0"]),
        arm_index=np.array([0]),
        knobs=[{"mmr.lambda": 1.0}],
        propensity=np.array([0.5]),
        arm_probs=[np.array([0.5, 0.5])],
        model_versions=[{"ranker": "r1", "policy": "p1"}],
        shown_scores=[np.array([0.9, 0.1])],
    )


def test_concat_keeps_every_row_in_order():
    merged = DecisionBatch.concat([decision("a"), decision("b"), decision("c")])
    assert list(merged.event_id) == ["a", "b", "c"]
    assert len(merged.candidates) == 3
    assert len(merged.shown_scores) == 3


def test_writer_drains_everything_on_close(tmp_path):
    path = tmp_path / "log.db"
    writer = DecisionWriter(path, max_batch=64)
    threads = [
        threading.Thread(target=lambda t=t: [writer.submit(decision(f"{t}-{i}")) for i in range(250)])
        for t in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    with DecisionLog.open(path) as log:
        assert log.count() == 1000
        ids = set(log.decisions()["event_id"])
    assert ids == {f"{t}-{i}" for t in range(4) for i in range(250)}
    assert writer.written == 1000
    assert writer.queued() == 0


def test_writer_pending_until_written(tmp_path):
    writer = DecisionWriter(tmp_path / "log.db")
    writer.submit(decision("x"))
    assert writer.flush(5.0)
    assert not writer.is_pending("x")
    assert writer.log.has_event("x")
    writer.close()


def test_writer_duplicate_does_not_lose_the_others(tmp_path):
    path = tmp_path / "log.db"
    writer = DecisionWriter(path)
    writer.submit(decision("dup"))
    writer.flush(5.0)
    for event in ("a", "dup", "b"):
        writer.submit(decision(event))
    writer.close()
    with DecisionLog.open(path) as log:
        assert sorted(log.decisions()["event_id"]) == ["a", "b", "dup"]
    assert writer.failed == 1


def test_writer_batches_decisions_that_arrive_within_the_linger(tmp_path, monkeypatch):
    writer = DecisionWriter(tmp_path / "log.db", linger=0.5)
    sizes: list[int] = []
    append = writer.log.append_decisions
    monkeypatch.setattr(
        writer.log, "append_decisions", lambda batch: (sizes.append(len(batch)), append(batch))
    )
    for event in ("a", "b", "c"):
        writer.submit(decision(event))
    assert writer.flush(5.0)
    writer.close()
    assert sizes == [3]  # one transaction for the three


def test_writer_close_does_not_wait_out_the_linger(tmp_path):
    writer = DecisionWriter(tmp_path / "log.db", linger=30.0)
    writer.submit(decision("a"))
    started = time.monotonic()
    writer.close()
    assert time.monotonic() - started < 10.0
    with DecisionLog.open(tmp_path / "log.db") as log:
        assert log.has_event("a")


def test_writer_refuses_a_negative_linger(tmp_path):
    with pytest.raises(ValueError, match="linger must be >= 0"):
        DecisionWriter(tmp_path / "log.db", linger=-1.0)
