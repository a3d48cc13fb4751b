"""Writing the decision log: every field round-trips, feedback is idempotent, an invalid or failing batch
writes nothing, concurrent writers lose nothing."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest

from bandits.errors import BanditsError, DuplicateEventError, InvalidBatchError, UnknownEventError
from bandits.log import DecisionLog, decision_batch_from_frame, feedback_batch_from_frame
from bandits.records import FeedbackBatch
from tests.bandits.log_factories import T0, assert_batches_equal, make_decisions, make_feedback

# ---------------------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("str_ids", [False, True])
@pytest.mark.parametrize("with_scores", [False, True])
def test_log_decisions_round_trip_every_field(log: DecisionLog, str_ids: bool, with_scores: bool) -> None:
    batch = make_decisions(40, seed=1, str_ids=str_ids, with_scores=with_scores)
    assert log.append_decisions(batch) == 40
    frame = log.decisions()
    assert len(frame) == 40
    assert_batches_equal(batch, decision_batch_from_frame(frame))


def test_log_feedback_round_trip_with_nan_reward_and_late_flags(log: DecisionLog) -> None:
    decisions = make_decisions(30, seed=2)
    feedback = make_feedback(decisions, seed=3)
    late = np.arange(30) % 4 == 0
    log.append_decisions(decisions)
    assert log.append_feedback(feedback, late=late) == 30
    frame = log.feedback()
    assert np.isnan(frame["reward"].to_numpy()).sum() == 10
    assert_batches_equal(feedback, feedback_batch_from_frame(frame))
    np.testing.assert_array_equal(frame["late"].to_numpy(), late)


def test_log_feedback_defaults_conversions_revenue_reward(log: DecisionLog) -> None:
    decisions = make_decisions(3, seed=4)
    log.append_decisions(decisions)
    log.append_feedback(
        FeedbackBatch(event_id=decisions.event_id, time=decisions.time + 1, clicks=[[0], [], [1, 2]])
    )
    frame = log.feedback()
    assert [c.tolist() for c in frame["clicks"]] == [[0], [], [1, 2]]
    assert [c.tolist() for c in frame["conversions"]] == [[], [], []]
    assert frame["revenue"].tolist() == [0.0, 0.0, 0.0]
    assert np.isnan(frame["reward"].to_numpy()).all()
    assert not frame["late"].any()


def test_log_keeps_int_and_str_ids_of_different_batches(log: DecisionLog) -> None:
    ints = make_decisions(5, seed=5)
    strs = make_decisions(5, seed=6, start=100, str_ids=True)
    log.append_decisions(ints)
    log.append_decisions(strs)
    frame = log.decisions()
    assert [type(u) for u in frame["user_id"]] == [int] * 5 + [str] * 5
    assert log.id_types() == {"user_id": "mixed", "candidates": "mixed", "shown": "mixed"}
    back = decision_batch_from_frame(frame.iloc[5:].reset_index(drop=True))
    assert_batches_equal(strs, back)


def test_log_accepts_python_lists_and_object_arrays(log: DecisionLog) -> None:
    batch = make_decisions(4, seed=33, str_ids=True)
    loose = dataclasses.replace(
        batch,
        user_id=np.array([7, 8, 9, 10], dtype=object),
        candidates=[c.tolist() for c in batch.candidates],
        shown=[np.array(s.tolist(), dtype=object) for s in batch.shown],
        arm_probs=[p.tolist() for p in batch.arm_probs],
        knobs=[MappingProxyType(k) for k in batch.knobs],
    )
    log.append_decisions(loose)
    back = decision_batch_from_frame(log.decisions())
    assert back.user_id.tolist() == [7, 8, 9, 10]
    assert back.user_id.dtype == np.int64
    assert_batches_equal(batch, dataclasses.replace(back, user_id=batch.user_id))


def test_log_empty_batches_write_nothing(log: DecisionLog) -> None:
    empty = make_decisions(0, seed=7)
    assert log.append_decisions(empty) == 0
    assert log.append_feedback(FeedbackBatch(np.array([], str), np.array([]), [])) == 0
    assert log.count() == 0
    assert log.decisions().empty
    assert list(log.decisions().columns) == list(log.joined().columns)[:15]
    assert log.id_types() == {"user_id": "none", "candidates": "none", "shown": "none"}


# ---------------------------------------------------------------------------------------------------------
# append: a chunk of decisions, then their feedback (the sink of `simulate(..., sink=log.append)`)


def test_append_stores_decisions_then_their_feedback(log: DecisionLog) -> None:
    first = make_decisions(12, seed=40)
    second = make_decisions(8, seed=41, start=100)
    first_feedback, second_feedback = make_feedback(first, seed=42), make_feedback(second, seed=43)
    log.append(first, first_feedback)
    log.append(second, second_feedback)
    stored = log.decisions()
    assert stored["event_id"].tolist() == [*first.event_id, *second.event_id]
    assert_batches_equal(first, decision_batch_from_frame(stored.iloc[:12].reset_index(drop=True)))
    feedback = log.feedback()
    assert feedback["event_id"].tolist() == [*first.event_id, *second.event_id]
    assert_batches_equal(
        second_feedback, feedback_batch_from_frame(feedback.iloc[12:].reset_index(drop=True))
    )
    assert log.joined()["has_feedback"].all()
    assert not feedback["late"].any()


def test_append_empty_chunk_writes_nothing(log: DecisionLog) -> None:
    log.append(make_decisions(0, seed=44), FeedbackBatch(np.array([], str), np.array([]), []))
    assert log.count() == log.count_feedback() == 0


def test_append_feedback_on_an_unknown_event_keeps_the_chunks_decisions(log: DecisionLog) -> None:
    # Decisions and feedback are two transactions: the decisions are stored before the feedback is refused.
    decisions = make_decisions(5, seed=45)
    feedback = FeedbackBatch(np.array([*decisions.event_id[:4], "elsewhere"]), decisions.time + 1, [[]] * 5)
    with pytest.raises(UnknownEventError, match=r"no decision with event_id 'elsewhere'"):
        log.append(decisions, feedback)
    assert log.count() == 5
    assert log.count_feedback() == 0


# ---------------------------------------------------------------------------------------------------------
# Feedback: idempotence, unknown events


def test_append_feedback_repeat_changes_nothing(log: DecisionLog) -> None:
    decisions = make_decisions(10, seed=9)
    first = make_feedback(decisions, seed=10)
    log.append_decisions(decisions)
    assert log.append_feedback(first) == 10
    stored = log.feedback()
    repeat = dataclasses.replace(
        make_feedback(decisions, seed=11),
        clicks=[np.array([0, 1, 2])] * 10,
    )
    assert log.append_feedback(repeat, late=True) == 0
    after = log.feedback()
    assert_batches_equal(feedback_batch_from_frame(stored), feedback_batch_from_frame(after))
    assert not after["late"].any()
    assert log.count_feedback() == 10


def test_append_feedback_repeat_within_batch_keeps_first(log: DecisionLog) -> None:
    decisions = make_decisions(2, seed=12)
    log.append_decisions(decisions)
    ids = np.array([decisions.event_id[0], decisions.event_id[1], decisions.event_id[0]])
    batch = FeedbackBatch(ids, T0 + np.array([10.0, 11.0, 12.0]), [[0], [1], [2]])
    assert log.append_feedback(batch) == 2
    frame = log.feedback()
    assert frame["event_id"].tolist() == ids[:2].tolist()
    assert [c.tolist() for c in frame["clicks"]] == [[0], [1]]


def test_append_feedback_unknown_event_rolls_back_whole_batch(log: DecisionLog) -> None:
    decisions = make_decisions(5, seed=13)
    log.append_decisions(decisions)
    ids = np.array([*decisions.event_id[:3], "nope", "nope-2"])
    batch = FeedbackBatch(ids, np.full(5, T0 + 100), [[]] * 5)
    with pytest.raises(UnknownEventError, match=r"log\.db: no decision with event_id 'nope' \(and 1 more\)"):
        log.append_feedback(batch)
    assert log.count_feedback() == 0
    assert log.append_feedback(batch, require_known=False) == 5
    assert log.joined()["has_feedback"].sum() == 3


def test_append_feedback_before_its_decision_joins_once_decision_arrives(log: DecisionLog) -> None:
    decisions = make_decisions(4, seed=14)
    feedback = make_feedback(decisions, seed=15)
    log.append_feedback(feedback, require_known=False)
    assert not log.has_event(str(decisions.event_id[0]))
    assert log.joined().empty
    log.append_decisions(decisions)
    joined = log.joined()
    assert joined["has_feedback"].all()
    np.testing.assert_array_equal(joined["feedback_time"].to_numpy(), feedback.time)


# ---------------------------------------------------------------------------------------------------------
# Invalid batches: nothing is written, and the message names the field and row

# (field -> replacement, given the valid batch), expected message
INVALID_DECISIONS = [
    (
        lambda b: {"propensity": np.where(np.arange(6) == 2, 0.0, b.propensity)},
        r"`propensity` in \(0, 1\], found 0 at row 2",
    ),
    (
        lambda b: {"event_id": np.array(["a", "b", "c", "d", "b", "f"])},
        r"unique `event_id`, found 'b' again at row 4",
    ),
    (
        lambda b: {"event_id": np.array(["a", "b", "", "d", "e", "f"])},
        r"non-empty `event_id`, found '' at row 2",
    ),
    (lambda b: {"event_id": np.arange(6)}, r"`event_id` of str, found dtype int64"),
    (lambda b: {"section": b.section[:5]}, r"`section` of shape \(6,\), found shape \(5,\)"),
    (lambda b: {"time": np.where(np.arange(6) == 3, np.nan, b.time)}, r"finite `time`, found nan at row 3"),
    (lambda b: {"user_id": np.linspace(0, 1, 6)}, r"`user_id` of int or str ids, found dtype float64"),
    (
        lambda b: {"user_id": np.array(["a", 1, 2, 3, 4, 5], dtype=object)},
        r"`user_id` of int or str ids, found dtype object",
    ),
    (
        lambda b: {"candidates": [np.array([0.5, 1.5])] * 6},
        r"`candidates` rows of int or str ids .* float64 .* row 0",
    ),
    (lambda b: {"shown": [np.arange(20)] * 6}, r"`shown` no longer than `candidates`, found 20 shown of"),
    (lambda b: {"arm_index": b.arm_index + 10}, r"`arm_index` in \[0, \d+\) .* at row 0"),
    (
        lambda b: {"arm_probs": [p * 0.5 for p in b.arm_probs]},
        r"`arm_probs` summing to 1, found 0\.5 at row 0",
    ),
    (lambda b: {"propensity": b.propensity * 0.99}, r"`propensity` equal to arm_probs\[arm_index\]"),
    (
        lambda b: {"shown_scores": [np.zeros(len(s) + 1) for s in b.shown]},
        r"`shown_scores` of the length of `shown`",
    ),
    (
        lambda b: {"context": [{}, {"tags": {1, 2}}, {}, {}, {}, {}]},
        r"`context` at row 1 is not JSON-serialisable",
    ),
    (
        lambda b: {"knobs": [{}, {}, {"x": float("inf")}, {}, {}, {}]},
        r"`knobs` at row 2 is not JSON-serialisable",
    ),
    (
        lambda b: {"model_versions": [{}, {}, {}, "v1", {}, {}]},
        r"`model_versions` rows of dicts, found str at row 3",
    ),
    (lambda b: {"context": [{}] * 5}, r"`context` to be a list of 6 rows, found 5"),
]


@pytest.mark.parametrize(("change", "match"), INVALID_DECISIONS)
def test_append_decisions_refuses_invalid_batch(log: DecisionLog, change, match: str) -> None:
    batch = make_decisions(6, seed=21)
    with pytest.raises(InvalidBatchError, match=match):
        log.append_decisions(dataclasses.replace(batch, **change(batch)))
    assert log.count() == 0


# (field -> replacement, given the valid batch), extra keyword arguments, expected message
INVALID_FEEDBACK = [
    (lambda b: {"clicks": [[0], [-1], [2]]}, {}, r"`clicks` positions >= 0, found -1 at row 1"),
    (lambda b: {"clicks": [[0], [1.5], [2]]}, {}, r"`clicks` rows of integer positions .* row 1"),
    (lambda b: {"reward": np.array([0.0, np.inf, 1.0])}, {}, r"finite or NaN `reward`, found inf at row 1"),
    (lambda b: {"revenue": np.array([0.0, 1.0, np.nan])}, {}, r"finite `revenue`, found nan at row 2"),
    (lambda b: {"conversions": [[0], [1]]}, {}, r"`conversions` to be a list of 3 rows, found 2"),
    (lambda b: {}, {"late": np.array([True, False])}, r"`late` to be a bool or a \(3,\) bool array"),
]


@pytest.mark.parametrize(("change", "kwargs", "match"), INVALID_FEEDBACK)
def test_append_feedback_refuses_invalid_batch(log: DecisionLog, change, kwargs, match: str) -> None:
    decisions = make_decisions(3, seed=22)
    log.append_decisions(decisions)
    batch = FeedbackBatch(decisions.event_id, decisions.time + 1, [[0], [1], [2]])
    with pytest.raises(InvalidBatchError, match=match):
        log.append_feedback(dataclasses.replace(batch, **change(batch)), **kwargs)
    assert log.count_feedback() == 0


def test_failed_batch_rolls_back_only_itself(log: DecisionLog) -> None:
    first = make_decisions(20, seed=23)
    log.append_decisions(first)
    # New events, except one already logged near the end: the insert fails mid-batch.
    second = make_decisions(10, seed=24, start=15)
    second = dataclasses.replace(second, event_id=np.array([f"new-{i}" for i in range(9)] + ["ev-3"]))
    with pytest.raises(DuplicateEventError, match=r"log\.db: decision event_id 'ev-3' is already in the log"):
        log.append_decisions(second)
    assert log.count() == 20
    assert_batches_equal(first, decision_batch_from_frame(log.decisions()))
    assert not log.has_event("new-0")
    # The log is still writable after the failure.
    assert log.append_decisions(make_decisions(5, seed=25, start=100)) == 5


def test_append_decisions_skip_existing_replays_idempotently(log: DecisionLog) -> None:
    first = make_decisions(20, seed=26)
    assert log.append_decisions(first) == 20
    # A replay of the same decisions plus five new ones stores only the new ones; the first rows stay.
    replayed = make_decisions(25, seed=27)
    assert log.append_decisions(replayed, skip_existing=True) == 5
    assert log.count() == 25
    stored = decision_batch_from_frame(log.decisions())
    assert_batches_equal(first, decision_batch_from_frame(log.decisions().head(20)))
    assert list(stored.event_id[20:]) == list(replayed.event_id[20:])


def test_concurrent_writers_lose_nothing(log_path: Path) -> None:
    shared = DecisionLog.open(log_path, create=True)
    second = DecisionLog.open(log_path)
    errors: list[BaseException] = []

    def write(target: DecisionLog, worker: int) -> None:
        try:
            for j in range(5):
                target.append_decisions(
                    make_decisions(10, seed=worker * 10 + j, start=1000 * worker + 10 * j)
                )
        except BanditsError as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(shared if w < 3 else second, w)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert shared.count() == second.count() == 200
    shared.close()
    second.close()
