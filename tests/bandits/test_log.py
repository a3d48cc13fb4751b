"""Tests of the decision log (bandits.log), its codec, its Parquet export and the `export` command."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from types import MappingProxyType

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bandits.errors import (
    BanditsError,
    DuplicateEventError,
    InvalidArgumentError,
    InvalidBatchError,
    LogError,
    LogLockedError,
    LogNotFoundError,
    LogSchemaError,
    UnknownEventError,
    UnknownSectionError,
)
from bandits.log import DecisionLog, decision_batch_from_frame, feedback_batch_from_frame
from bandits.log_codec import decode_id_lists, decode_number_lists
from bandits.log_export import export_parquet
from bandits.log_schema import APPLICATION_ID, INDEXES, SCHEMA_VERSION
from bandits.records import DecisionBatch, FeedbackBatch
from sectionrank.commands.export import export_command

T0 = 1_700_000_000.0


# ---------------------------------------------------------------------------------------------------------
# Builders and a field-by-field reference comparison


def make_decisions(
    n: int,
    *,
    seed: int,
    start: int = 0,
    str_ids: bool = False,
    with_scores: bool = True,
    sections: tuple[str, ...] = ("discover", "similar_items"),
) -> DecisionBatch:
    """n decisions with ragged candidate lists (some empty) and ragged arm distributions."""
    rng = np.random.default_rng(seed)
    n_cand = rng.integers(0, 12, size=n)
    n_shown = np.minimum(n_cand, rng.integers(0, 6, size=n))
    n_arms = rng.integers(1, 6, size=n)
    candidates = [rng.choice(10**6, size=k, replace=False) - 500_000 for k in n_cand]
    if str_ids:
        candidates = [np.array([f"item-{x}" for x in c], dtype=str) for c in candidates]
    arm_probs = [rng.dirichlet(np.ones(a)) for a in n_arms]
    arm_index = np.array([rng.integers(a) for a in n_arms], dtype=np.int64)
    user_id = rng.integers(-(2**62), 2**62, size=n)
    return DecisionBatch(
        event_id=np.array([f"ev-{start + i}" for i in range(n)]),
        time=T0 + start + np.cumsum(rng.random(n)),
        section=np.array([sections[i % len(sections)] for i in range(n)]),
        user_id=np.array([f"user-{u}" for u in user_id]) if str_ids else user_id,
        context=[
            {
                "device": ["ios", "android"][i % 2],
                "hour": int(rng.integers(24)),
                "segment": None,
                "embedding": rng.normal(size=2).tolist(),
                "query": 'café "ñ" \\ | :',
            }
            for i in range(n)
        ],
        candidates=candidates,
        shown=[c[:k] for c, k in zip(candidates, n_shown, strict=True)],
        arm_id=np.array([f"arm-{a}" for a in arm_index]),
        arm_index=arm_index,
        knobs=[{"freshness.half_life": 0.1 + 0.2, "mmr.lambda": float(rng.random())} for _ in range(n)],
        propensity=np.array([p[a] for p, a in zip(arm_probs, arm_index, strict=True)]),
        arm_probs=arm_probs,
        model_versions=[{"ranker": "r-7", "policy": f"p-{i % 3}"} for i in range(n)],
        shown_scores=[rng.normal(size=k) for k in n_shown] if with_scores else None,
    )


def make_feedback(decisions: DecisionBatch, *, seed: int, delay: np.ndarray | None = None) -> FeedbackBatch:
    rng = np.random.default_rng(seed)
    n = len(decisions)
    clicks = [np.flatnonzero(rng.random(len(s)) < 0.4) for s in decisions.shown]
    reward = rng.random(n)
    reward[::3] = np.nan
    return FeedbackBatch(
        event_id=decisions.event_id.copy(),
        time=decisions.time + (rng.exponential(30.0, size=n) if delay is None else delay),
        clicks=clicks,
        conversions=[c[: len(c) // 2] for c in clicks],
        revenue=np.round(rng.random(n) * 10, 2),
        reward=reward,
    )


def assert_values_equal(expected: object, actual: object, where: str) -> None:
    """Exact equality, element type included; an array compares with an array of the same kind of values."""
    if isinstance(expected, np.ndarray):
        assert isinstance(actual, np.ndarray), where
        assert actual.shape == expected.shape, where
        if expected.size:
            assert (actual.dtype.kind in "iu") == (expected.dtype.kind in "iu"), where
            assert actual.dtype.kind != "O" or expected.dtype.kind == "O", where
        exp_list, act_list = expected.tolist(), actual.tolist()
        if expected.dtype.kind == "f":
            np.testing.assert_array_equal(actual, expected, err_msg=where)
        else:
            assert act_list == exp_list, where
            assert [type(v) for v in act_list] == [type(v) for v in exp_list], where
    else:
        assert actual == expected, where


def assert_batches_equal(expected: object, actual: object) -> None:
    """Every field of two DecisionBatch or FeedbackBatch records, row by row."""
    assert type(actual) is type(expected)
    for field in dataclasses.fields(expected):
        exp, act = getattr(expected, field.name), getattr(actual, field.name)
        if exp is None:
            assert act is None, field.name
        elif isinstance(exp, np.ndarray):
            assert_values_equal(exp, np.asarray(act), field.name)
        else:
            assert len(act) == len(exp), field.name
            for row, (e, a) in enumerate(zip(exp, act, strict=True)):
                assert_values_equal(e, a, f"{field.name}[{row}]")


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "log.db"


@pytest.fixture
def log(log_path: Path):
    with DecisionLog.open(log_path, create=True) as opened:
        yield opened


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
    assert list(log.decisions().columns) == list(log.joined().columns)[:14]
    assert log.id_types() == {"user_id": "none", "candidates": "none", "shown": "none"}


# ---------------------------------------------------------------------------------------------------------
# The codec's fast decoding against the general JSON parser


def test_decode_number_lists_matches_json_reference() -> None:
    rng = np.random.default_rng(8)
    int_rows = [rng.integers(-(2**62), 2**62, size=k) for k in rng.integers(0, 9, size=200)]
    float_rows = [
        rng.normal(scale=10.0 ** rng.integers(-300, 300), size=k) for k in rng.integers(0, 9, size=200)
    ]
    float_rows.append(np.array([5e-324, 1.7976931348623157e308, -0.0, 0.1 + 0.2]))
    for rows, dtype in ((int_rows, np.int64), (float_rows, np.float64)):
        texts = [json.dumps(r.tolist(), separators=(",", ":")) for r in rows]
        decoded = decode_number_lists(texts, dtype)
        reference = [np.asarray(json.loads(t), dtype=dtype) for t in texts]
        assert len(decoded) == len(reference)
        for got, want in zip(decoded, reference, strict=True):
            assert got.dtype == dtype
            assert got.tobytes() == want.tobytes()


# Texts another tool may have written: spaces, floats in an int column, JSON5 tokens. The general parser reads
# them (or refuses them) exactly as json.loads does.
@pytest.mark.parametrize(
    ("texts", "dtype", "expected"),
    [
        (["[1, 2]", "[3]"], np.int64, [[1, 2], [3]]),
        (["[ ]", "[4]"], np.int64, [[], [4]]),
        (["[1.5,2]"], np.float64, [[1.5, 2.0]]),
        (["[NaN,1]"], np.float64, [[np.nan, 1.0]]),
        (["[1,-2]", "[]", "[30]"], np.int64, [[1, -2], [], [30]]),
    ],
)
def test_decode_number_lists_falls_back_on_foreign_text(texts, dtype, expected) -> None:
    decoded = decode_number_lists(texts, dtype)
    assert len(decoded) == len(expected)
    for got, want in zip(decoded, expected, strict=True):
        np.testing.assert_array_equal(got, np.asarray(want, dtype=dtype))


def test_decode_id_lists_keeps_each_rows_id_type() -> None:
    texts = ['["a","b"]', "[1,2]", "[]", '["x"]', "[-7]"]
    decoded = decode_id_lists(texts)
    assert [d.tolist() for d in decoded] == [["a", "b"], [1, 2], [], ["x"], [-7]]
    assert [d.dtype.kind for d in decoded] == ["U", "i", "i", "U", "i"]


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
# The join and its wait window


def naive_join(decisions: pd.DataFrame, feedback: pd.DataFrame, wait: float | None) -> dict[str, object]:
    """event_id -> admitted feedback row (as a dict) or None, by a per-row loop."""
    by_event = {row["event_id"]: row for row in feedback.to_dict("records")}
    out = {}
    for row in decisions.to_dict("records"):
        fb = by_event.get(row["event_id"])
        if fb is not None and wait is not None and fb["time"] - row["time"] > wait:
            fb = None
        out[row["event_id"]] = fb
    return out


@pytest.mark.parametrize("wait", [None, 0.0, 10.0, 1e9])
def test_joined_matches_naive_join(log: DecisionLog, wait: float | None) -> None:
    decisions = make_decisions(60, seed=16)
    # Delays on both sides of 10 s, some exactly 10, some negative (clock skew); 20 decisions get no feedback.
    delay = np.tile([0.0, 5.0, 10.0, 10.001, 100.0, -1.0], 10)[:40]
    subset = dataclasses.replace(
        decisions,
        event_id=decisions.event_id[:40],
        time=decisions.time[:40],
    )
    feedback = make_feedback(subset, seed=17, delay=delay)
    feedback = dataclasses.replace(
        feedback, clicks=feedback.clicks[:40], conversions=feedback.conversions[:40]
    )
    log.append_decisions(decisions)
    log.append_feedback(feedback)

    joined = log.joined(wait_seconds=wait)
    reference = naive_join(log.decisions(), log.feedback(), wait)
    assert joined["event_id"].tolist() == decisions.event_id.tolist()
    for row in joined.to_dict("records"):
        fb = reference[row["event_id"]]
        assert row["has_feedback"] == (fb is not None)
        if fb is None:
            assert np.isnan(row["feedback_time"])
            assert np.isnan(row["reward"])
            assert row["clicks"].size == 0
            assert row["conversions"].size == 0
            assert row["revenue"] == 0.0
            assert not row["late"]
        else:
            assert row["feedback_time"] == fb["time"]
            assert row["clicks"].tolist() == fb["clicks"].tolist()
            assert row["conversions"].tolist() == fb["conversions"].tolist()
            assert row["revenue"] == fb["revenue"]
            np.testing.assert_array_equal(row["reward"], fb["reward"])
    # Feedback outside the window is left out of the join, never out of the table.
    assert log.count_feedback() == 40
    if wait == 10.0:
        assert joined["has_feedback"].sum() == np.sum(delay <= 10.0)


def test_joined_rejects_negative_wait(log: DecisionLog) -> None:
    with pytest.raises(InvalidArgumentError, match=r"Expected `wait_seconds` >= 0 or None, found -1"):
        log.joined(wait_seconds=-1)


@pytest.mark.parametrize(
    ("section", "since", "until"),
    [(None, None, None), ("discover", None, None), (None, T0 + 5, T0 + 20), ("similar_items", T0 + 3, None)],
)
def test_decisions_filters_match_pandas_reference(
    log: DecisionLog, section: str | None, since: float | None, until: float | None
) -> None:
    log.append_decisions(make_decisions(40, seed=18))
    everything = log.decisions()
    keep = np.ones(len(everything), bool)
    if section is not None:
        keep &= (everything["section"] == section).to_numpy()
    if since is not None:
        keep &= everything["time"].to_numpy() >= since
    if until is not None:
        keep &= everything["time"].to_numpy() < until
    got = log.decisions(section=section, since=since, until=until)
    assert got["event_id"].tolist() == everything["event_id"][keep].tolist()
    assert (
        log.joined(section=section, since=since, until=until)["event_id"].tolist() == got["event_id"].tolist()
    )
    if since is None and until is None:
        assert log.count(section) == int(keep.sum())


@pytest.mark.parametrize("chunk_size", [1, 7, 40, 1000])
def test_iter_decisions_chunks_concatenate_to_decisions(log: DecisionLog, chunk_size: int) -> None:
    log.append_decisions(make_decisions(40, seed=19))
    chunks = list(log.iter_decisions(chunk_size, section="discover"))
    assert all(len(c) <= chunk_size for c in chunks)
    whole = log.decisions(section="discover")
    assert pd.concat(chunks, ignore_index=True)["event_id"].tolist() == whole["event_id"].tolist()
    joined_chunks = list(log.iter_joined(chunk_size, wait_seconds=5.0))
    assert (
        pd.concat(joined_chunks, ignore_index=True)["event_id"].tolist() == log.joined()["event_id"].tolist()
    )


@pytest.mark.parametrize("chunk_size", [0, -3, 2.5, True])
def test_iter_decisions_rejects_bad_chunk_size(log: DecisionLog, chunk_size: object) -> None:
    with pytest.raises(InvalidArgumentError, match="Expected `chunk_size` to be an integer >= 1"):
        log.iter_decisions(chunk_size)  # type: ignore[arg-type]


def test_count_sections_has_event(log: DecisionLog) -> None:
    batch = make_decisions(9, seed=20, sections=("search", "discover", "category_explore"))
    log.append_decisions(batch)
    assert log.count() == 9
    assert log.count("search") == 3
    assert log.count("nowhere") == 0
    assert log.sections() == ["category_explore", "discover", "search"]
    assert log.has_event("ev-8")
    assert not log.has_event("ev-9")


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


# ---------------------------------------------------------------------------------------------------------
# Opening: missing, foreign, other versions, locked


def test_open_missing_file_raises_and_creates_nothing(log_path: Path) -> None:
    with pytest.raises(LogNotFoundError, match=r"log\.db: no such decision log \(create=True creates one\)"):
        DecisionLog.open(log_path)
    assert not log_path.exists()


def test_open_create_in_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(LogNotFoundError, match=r"directory '.*nowhere' does not exist"):
        DecisionLog.open(tmp_path / "nowhere" / "log.db", create=True)


def test_open_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(LogError, match=r"is a directory, not a decision log file"):
        DecisionLog.open(tmp_path, create=True)


def test_open_creates_versioned_schema_with_indexes(log: DecisionLog, log_path: Path) -> None:
    conn = sqlite3.connect(log_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        conn.close()
    assert meta["format"] == "sectionrank-decision-log"
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert set(INDEXES) <= indexes
    assert log.schema_version == SCHEMA_VERSION


def test_open_existing_log_keeps_its_rows(log_path: Path) -> None:
    batch = make_decisions(5, seed=26)
    with DecisionLog.open(log_path, create=True) as log:
        log.append_decisions(batch)
    with DecisionLog.open(log_path, create=True) as log:
        assert_batches_equal(batch, decision_batch_from_frame(log.decisions()))


def test_wal_mode_and_synchronous(log: DecisionLog, log_path: Path) -> None:
    conn = sqlite3.connect(log_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert log.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    with DecisionLog.open(log_path, synchronous="FULL") as full:
        assert full.db.execute("PRAGMA synchronous").fetchone()[0] == 2


@pytest.mark.parametrize("version", [0, 2, 3])
def test_open_other_schema_version_raises(log_path: Path, version: int) -> None:
    DecisionLog.open(log_path, create=True).close()
    conn = sqlite3.connect(log_path)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.close()
    digest = file_digest(log_path)
    with pytest.raises(
        LogSchemaError, match=rf"log\.db: schema version {version}, expected {SCHEMA_VERSION}"
    ):
        DecisionLog.open(log_path, create=True)
    assert file_digest(log_path) == digest


def test_open_log_missing_a_column_raises(log_path: Path) -> None:
    DecisionLog.open(log_path, create=True).close()
    conn = sqlite3.connect(log_path)
    conn.execute("ALTER TABLE feedback DROP COLUMN late")
    conn.close()
    with pytest.raises(LogSchemaError, match=r"log\.db: table 'feedback' lacks column\(s\) 'late'"):
        DecisionLog.open(log_path)


def test_open_foreign_sqlite_file_refused_unchanged(log_path: Path) -> None:
    conn = sqlite3.connect(log_path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    digest, mtime = file_digest(log_path), log_path.stat().st_mtime_ns
    with pytest.raises(LogSchemaError, match=r"log\.db: not a sectionrank decision log .*tables: users"):
        DecisionLog.open(log_path, create=True)
    assert file_digest(log_path) == digest
    assert log_path.stat().st_mtime_ns == mtime


def test_open_non_sqlite_file_refused_unchanged(log_path: Path) -> None:
    log_path.write_text("event_id,time\nabc,1\n" * 200)
    digest = file_digest(log_path)
    with pytest.raises(LogSchemaError, match=r"log\.db: not an SQLite database"):
        DecisionLog.open(log_path, create=True)
    assert file_digest(log_path) == digest


def test_open_empty_file_needs_create(log_path: Path) -> None:
    log_path.touch()
    with pytest.raises(LogSchemaError, match=r"log\.db: empty database, not a sectionrank decision log"):
        DecisionLog.open(log_path)
    assert log_path.stat().st_size == 0
    with DecisionLog.open(log_path, create=True) as log:
        assert log.count() == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"busy_timeout": -1}, r"`busy_timeout` >= 0 seconds, found -1"),
        ({"busy_timeout": float("nan")}, r"`busy_timeout` >= 0 seconds, found nan"),
        ({"synchronous": "OFF"}, r"`synchronous` 'NORMAL' or 'FULL', found 'OFF'"),
    ],
)
def test_open_rejects_bad_options(log_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        DecisionLog.open(log_path, create=True, **kwargs)
    assert not log_path.exists()


def test_locked_log_write_raises_after_busy_timeout(log_path: Path) -> None:
    batch = make_decisions(5, seed=27)
    with DecisionLog.open(log_path, create=True, busy_timeout=0.2) as log:
        log.append_decisions(batch)
        other = sqlite3.connect(log_path, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            started = time.perf_counter()
            with pytest.raises(
                LogLockedError, match=r"log\.db: database is locked: .*busy timeout \(0\.2 s\)"
            ):
                log.append_decisions(make_decisions(3, seed=28, start=50))
            assert time.perf_counter() - started >= 0.15
            with pytest.raises(LogLockedError):
                log.append_feedback(make_feedback(batch, seed=29))
            # WAL: readers do not wait for the writer.
            assert log.count() == 5
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert log.append_decisions(make_decisions(3, seed=28, start=50)) == 3
        assert log.count() == 8


def test_open_locked_rollback_journal_file_raises_locked(log_path: Path) -> None:
    DecisionLog.open(log_path, create=True).close()
    other = sqlite3.connect(log_path, isolation_level=None)
    try:
        other.execute("PRAGMA journal_mode = DELETE")
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(LogLockedError, match=r"log\.db: database is locked"):
            DecisionLog.open(log_path, busy_timeout=0.05)
        other.execute("ROLLBACK")
    finally:
        other.close()
    with DecisionLog.open(log_path) as log:  # back in WAL mode
        assert log.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_closed_or_forked_log_refuses_use(log_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = DecisionLog.open(log_path, create=True)
    monkeypatch.setattr(log, "_pid", -1)
    with pytest.raises(LogError, match=r"used in process \d+: open the log again after fork"):
        log.count()
    log.close()
    log.close()
    with pytest.raises(LogError, match=r"log\.db: the decision log is closed"):
        log.count()


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


# ---------------------------------------------------------------------------------------------------------
# Parquet export and the `export` command


def filled_log(path: Path, *, str_ids: bool = False) -> DecisionLog:
    log = DecisionLog.open(path, create=True)
    decisions = make_decisions(30, seed=30, str_ids=str_ids)
    log.append_decisions(decisions)
    log.append_decisions(make_decisions(10, seed=31, start=500, with_scores=False))
    feedback = make_feedback(decisions, seed=32)
    log.append_feedback(
        dataclasses.replace(
            feedback,
            event_id=feedback.event_id[:20],
            time=feedback.time[:20],
            clicks=feedback.clicks[:20],
            conversions=feedback.conversions[:20],
            revenue=feedback.revenue[:20],
            reward=feedback.reward[:20],
        )
    )
    return log


def assert_export_matches(exported: pd.DataFrame, joined: pd.DataFrame, id_to_text: bool) -> None:
    assert list(exported.columns) == list(joined.columns)
    assert len(exported) == len(joined)
    for column in joined.columns:
        for row, (got, want) in enumerate(zip(exported[column], joined[column], strict=True)):
            where = f"{column}[{row}]"
            if column in ("context", "knobs", "model_versions"):
                assert json.loads(got) == want, where
            elif want is None:
                assert got is None, where
            elif isinstance(want, np.ndarray):
                expected = want.astype(str) if id_to_text and column in ("candidates", "shown") else want
                np.testing.assert_array_equal(np.asarray(got), expected, err_msg=where)
            elif column == "user_id" and id_to_text:
                assert got == str(want), where
            elif isinstance(want, float) and np.isnan(want):
                assert np.isnan(got), where
            else:
                assert got == want, where


@pytest.mark.parametrize("wait", [None, 20.0])
def test_export_parquet_round_trips(tmp_path: Path, wait: float | None) -> None:
    with filled_log(tmp_path / "log.db") as log:
        summary = export_parquet(log, tmp_path / "out.parquet", wait_seconds=wait, chunk_size=7)
        joined = log.joined(wait_seconds=wait)
    exported = pd.read_parquet(tmp_path / "out.parquet")
    assert summary.rows == 40
    assert summary.with_feedback == int(joined["has_feedback"].sum())
    assert_export_matches(exported, joined, id_to_text=False)
    assert not list(tmp_path.glob(".*.tmp"))


def test_export_parquet_mixed_ids_become_text(tmp_path: Path) -> None:
    with filled_log(tmp_path / "log.db", str_ids=True) as log:
        export_parquet(log, tmp_path / "out.parquet", section="discover")
        joined = log.joined(section="discover")
    exported = pd.read_parquet(tmp_path / "out.parquet")
    assert_export_matches(exported, joined, id_to_text=True)


def test_export_parquet_empty_log_writes_schema(tmp_path: Path) -> None:
    with DecisionLog.open(tmp_path / "log.db", create=True) as log:
        summary = export_parquet(log, tmp_path / "out.parquet")
        columns = list(log.joined().columns)
    exported = pd.read_parquet(tmp_path / "out.parquet")
    assert summary.rows == 0
    assert exported.empty
    assert list(exported.columns) == columns


def test_export_parquet_unknown_section_raises(tmp_path: Path) -> None:
    with (
        filled_log(tmp_path / "log.db") as log,
        pytest.raises(
            UnknownSectionError,
            match=r"log\.db: no decisions of section 'discovr' \(sections in the log: 'discover'",
        ),
    ):
        export_parquet(log, tmp_path / "out.parquet", section="discovr")
    assert not (tmp_path / "out.parquet").exists()


class _OneLineErrors(click.Group):
    """As the `sectionrank` group does: the errors a user can cause become one line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BanditsError as exc:
            raise click.ClickException(str(exc)) from None


def make_cli(cls: type[click.Group] = click.Group) -> click.Group:
    @click.group(cls=cls)
    def cli() -> None:
        """A local group carrying the command under test."""

    cli.add_command(export_command)
    return cli


def test_export_command_writes_parquet(tmp_path: Path) -> None:
    filled_log(tmp_path / "log.db").close()
    out = tmp_path / "out.parquet"
    args = ["export", "--log", str(tmp_path / "log.db"), "--out", str(out), "--section", "similar_items"]
    result = CliRunner().invoke(make_cli(), [*args, "--wait-seconds", "20"])
    assert result.exit_code == 0, result.output
    with DecisionLog.open(tmp_path / "log.db") as log:
        joined = log.joined(wait_seconds=20, section="similar_items")
    assert (
        f"Wrote {len(joined)} decisions ({int(joined['has_feedback'].sum())} with feedback)" in result.output
    )
    assert_export_matches(pd.read_parquet(out), joined, id_to_text=False)


def test_export_command_missing_log_raises_named_error(tmp_path: Path) -> None:
    args = ["export", "--log", str(tmp_path / "log.db"), "--out", str(tmp_path / "out.parquet")]
    result = CliRunner().invoke(make_cli(), args)
    assert isinstance(result.exception, LogNotFoundError)
    assert not (tmp_path / "log.db").exists()
    one_line = CliRunner().invoke(make_cli(_OneLineErrors), args)
    assert one_line.exit_code == 1
    assert one_line.output.strip().splitlines() == [
        f"Error: {tmp_path / 'log.db'}: no such decision log (create=True creates one)"
    ]


def test_export_command_wrong_schema_raises_named_error(tmp_path: Path) -> None:
    (tmp_path / "log.db").write_text("not a database")
    args = ["export", "--log", str(tmp_path / "log.db"), "--out", str(tmp_path / "out.parquet")]
    result = CliRunner().invoke(make_cli(), args)
    assert isinstance(result.exception, LogSchemaError)


def test_export_command_help_has_example() -> None:
    result = CliRunner().invoke(make_cli(), ["export", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert "sectionrank export --log decisions.db --out decisions.parquet" in result.output
