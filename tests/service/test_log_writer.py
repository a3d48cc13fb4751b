"""The background log writer: nothing acknowledged is lost, off the request thread; a log that cannot be
written sends records to the spill journal, replayed idempotently once it can."""

import threading
import time

import numpy as np
import pytest

from bandits.log import DecisionLog
from bandits.records import DecisionBatch, FeedbackBatch
from service.log_writer import Group, LogWriter
from service.spill import SpillJournal, read_groups
from tests.service.faults import locked, wait_for


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
    writer = LogWriter(path, max_batch=64)

    threads = [
        threading.Thread(
            target=lambda t=t: [writer.submit_decisions(decision(f"{t}-{i}")) for i in range(250)]
        )
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
    writer = LogWriter(tmp_path / "log.db")
    writer.submit_decisions(decision("x"))
    assert writer.flush(5.0)
    assert writer.log.has_event("x")
    writer.close()


def test_writer_duplicate_is_written_once_and_does_not_lose_the_others(tmp_path):
    path = tmp_path / "log.db"
    writer = LogWriter(path)
    writer.submit_decisions(decision("dup"))
    writer.flush(5.0)
    for event in ("a", "dup", "b"):
        writer.submit_decisions(decision(event))
    writer.close()
    with DecisionLog.open(path) as log:
        assert sorted(log.decisions()["event_id"]) == ["a", "b", "dup"]
    assert writer.failed == 0


def test_writer_batches_decisions_that_arrive_within_the_linger(tmp_path, monkeypatch):
    writer = LogWriter(tmp_path / "log.db", linger=0.5)
    sizes: list[int] = []
    append = writer.log.append_decisions
    monkeypatch.setattr(
        writer.log, "append_decisions", lambda batch, **kw: (sizes.append(len(batch)), append(batch, **kw))
    )
    for event in ("a", "b", "c"):
        writer.submit_decisions(decision(event))
    assert writer.flush(5.0)
    writer.close()
    assert sizes == [3]  # one transaction for the three


def test_writer_close_does_not_wait_out_the_linger(tmp_path):
    writer = LogWriter(tmp_path / "log.db", linger=30.0)
    writer.submit_decisions(decision("a"))
    started = time.monotonic()
    writer.close()
    assert time.monotonic() - started < 10.0
    with DecisionLog.open(tmp_path / "log.db") as log:
        assert log.has_event("a")


def test_writer_refuses_a_negative_linger(tmp_path):
    with pytest.raises(ValueError, match="linger must be >= 0"):
        LogWriter(tmp_path / "log.db", linger=-1.0)


def feedback(event_id: str) -> FeedbackBatch:
    return FeedbackBatch(
        event_id=np.array([event_id]),
        time=np.array([1.7e9 + 1]),
        clicks=[np.array([0])],
        conversions=[np.array([], dtype=np.int64)],
        revenue=np.array([0.0]),
        reward=np.array([1.0]),
    )


def logged_events(path) -> tuple[set[str], set[str]]:
    with DecisionLog.open(path) as log:
        return set(log.decisions()["event_id"]), set(log.feedback()["event_id"])


def test_writer_spills_while_the_log_is_locked_and_replays_once_released(tmp_path):
    path = tmp_path / "log.db"
    writer = LogWriter(path, busy_timeout=0.05, retry_seconds=0.1)
    events = [f"e{i}" for i in range(40)]
    with locked(path):
        for event in events:
            assert writer.submit_decisions(decision(event)) is True
        assert writer.submit_feedback(feedback("e0"), late=False) is True
        assert writer.flush(5.0)
        assert writer.spill_bytes() > 0
        assert not writer.degraded
    assert wait_for(lambda: writer.spill_bytes() == 0)
    writer.close()
    decisions, feedbacks = logged_events(path)
    assert decisions == set(events)
    assert feedbacks == {"e0"}


def test_writer_degrades_when_neither_log_nor_journal_can_be_written_and_recovers(tmp_path):
    path = tmp_path / "log.db"
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    writer = LogWriter(path, spill_dir=not_a_dir / "spill", busy_timeout=0.05, retry_seconds=0.1)
    with locked(path):
        writer.submit_decisions(decision("before"))
        assert wait_for(lambda: writer.degraded)
        assert writer.submit_decisions(decision("during")) is False
        assert wait_for(lambda: writer.held() == 2)
    assert wait_for(lambda: not writer.degraded and writer.queued() == 0)
    writer.close()
    assert logged_events(path)[0] == {"before", "during"}
    assert writer.dropped == 0


def test_writer_replays_the_spill_file_of_an_exited_writer(tmp_path):
    path = tmp_path / "log.db"
    orphan = SpillJournal(tmp_path / "log.db.spill")
    orphan.append(Group(decisions=(decision("orphan-0"), decision("orphan-1"))))
    orphan.append(Group(decisions=(decision("orphan-0"),)))  # replayed twice: stored once
    orphan.close(remove_if_empty=False)
    writer = LogWriter(path)
    writer.close()
    assert logged_events(path)[0] == {"orphan-0", "orphan-1"}
    assert not orphan.path.exists()


def test_spill_reading_stops_at_a_torn_record(tmp_path):
    journal = SpillJournal(tmp_path)
    journal.append(Group(decisions=(decision("a"),)))
    journal.append(Group(decisions=(decision("b"),)))
    journal.close(remove_if_empty=False)
    data = journal.path.read_bytes()
    journal.path.write_bytes(data[:-3])
    groups = list(read_groups(journal.path))
    assert [list(g.decisions[0].event_id) for g in groups] == [["a"]]
