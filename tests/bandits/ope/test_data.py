"""The generic logged bandit format: loading CSV / Parquet, validation messages, target policy checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bandits.ope import (
    LoggedBandit,
    ReplayInputError,
    TargetPolicyError,
    evaluate,
    from_frame,
    load_logged_bandit,
    prepare,
)
from bandits.ope.data import byte_order

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "replay-example.csv"


def good_frame(n: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "section": np.where(np.arange(n) % 2 == 0, "discover", "search"),
            "hour": rng.integers(0, 24, size=n),
            "score": rng.normal(size=n),
            "action": rng.integers(0, 3, size=n),
            "reward": rng.integers(0, 2, size=n).astype(float),
            "pscore": np.full(n, 1 / 3),
            "target": rng.uniform(size=n),
        }
    )


def test_load_logged_bandit_reads_the_documented_example() -> None:
    logged = load_logged_bandit(EXAMPLE, group="section", target_pscore="target_pscore", n_actions=4)
    raw = pd.read_csv(EXAMPLE)
    assert len(logged) == len(raw)
    assert logged.context_names == ("device_mobile", "hour", "user_tenure_days")
    assert np.array_equal(logged.context, raw[["device_mobile", "hour", "user_tenure_days"]].to_numpy(float))
    assert np.array_equal(logged.action, raw["action"].to_numpy())
    assert logged.action.dtype == np.int64
    assert set(logged.group) == {"discover", "similar_items"}
    assert np.array_equal(logged.target_pscore, raw["target_pscore"].to_numpy())
    table = evaluate(logged, estimators=("ips", "snips", "replay"), n_bootstrap=50)
    assert set(table["group"]) == {"overall", "discover", "similar_items"}
    assert table["value"].notna().all()


def test_load_logged_bandit_parquet_equals_csv(tmp_path: Path) -> None:
    frame = good_frame()
    frame.to_csv(tmp_path / "log.csv", index=False)
    frame.to_parquet(tmp_path / "log.parquet")
    a = load_logged_bandit(tmp_path / "log.csv", group="section", target_pscore="target")
    b = load_logged_bandit(tmp_path / "log.parquet", group="section", target_pscore="target")
    for name in ("action", "reward", "pscore", "context", "target_pscore"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert list(a.group) == list(b.group)
    assert a.context_names == ("hour", "score")


def test_from_frame_one_hot_encodes_text_context_columns() -> None:
    frame = good_frame(6)
    frame["device"] = ["ios", "web", "android", "web", "ios", "web"]
    logged = from_frame(frame, context=["device", "hour"])
    assert logged.context_names == ("device=android", "device=ios", "device=web", "hour")
    assert np.array_equal(logged.context[:, :3].sum(axis=1), np.ones(6))
    assert np.array_equal(logged.context[:, 1], (frame["device"] == "ios").to_numpy(float))


def test_from_frame_empty_context_list_means_no_context() -> None:
    assert from_frame(good_frame(), context=[]).context is None


def _set(column: str, row: int, value: object):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        if isinstance(value, str) or value is None:
            frame[column] = frame[column].astype(object)
        elif isinstance(value, float):
            frame[column] = frame[column].astype(float)
        frame.loc[row, column] = value
        return frame

    return change


def _drop(column: str):
    return lambda frame: frame.drop(columns=[column])


# Malformed files: (change to a good 20-row frame, loader options, expected message).
MALFORMED = [
    (_set("pscore", 17, 0.0), {}, r"Expected `pscore` in \(0, 1\], found 0 at row 17"),
    (_set("pscore", 3, 1.5), {}, r"Expected `pscore` in \(0, 1\], found 1.5 at row 3"),
    (_set("pscore", 4, np.nan), {}, r"Expected `pscore` in \(0, 1\], found nan at row 4"),
    (_drop("pscore"), {}, r"Column `pscore` not found in .*log.csv; found columns: section, hour"),
    (_drop("reward"), {}, r"Column `reward` not found"),
    (lambda f: f, {"context": ["hour", "missing"]}, r"Column `missing` not found"),
    (_set("reward", 5, np.nan), {}, r"Expected a finite `reward`, found nan at row 5"),
    (_set("reward", 6, "lots"), {}, r"Expected numeric `reward` \(a reward\), found 'lots' at row 6"),
    (_set("action", 4, 1.5), {}, r"Expected integer `action`, found 1.5 at row 4"),
    (_set("action", 2, "b"), {}, r"Expected numeric `action` \(an integer arm index\), found 'b' at row 2"),
    (_set("action", 8, -1), {}, r"Expected `action` >= 0, found -1 at row 8"),
    (
        _set("action", 9, 7),
        {"n_actions": 3},
        r"Expected `action` in \[0, 3\) \(n_actions=3\), found 7 at row 9",
    ),
    (
        _set("target", 5, 1.2),
        {"target_pscore": "target"},
        r"Expected `target` in \[0, 1\], found 1.2 at row 5",
    ),
    (
        _set("target", 0, -0.1),
        {"target_pscore": "target"},
        r"Expected `target` in \[0, 1\], found -0.1 at row 0",
    ),
    (
        _set("section", 3, None),
        {"group": "section"},
        r"Expected a `section` value at every row, found .* at row 3",
    ),
    (_set("score", 11, np.inf), {}, r"Expected finite context column `score`, found inf at row 11"),
    (lambda f: f, {"reward": "pscore"}, r"Column `pscore` is given as both `reward` and `pscore`"),
    (lambda f: f, {"context": ["action"]}, r"Column `action` is given as both `action` and `context`"),
    (lambda f: f, {"n_actions": 0}, r"Expected `n_actions` >= 1, found 0"),
]


@pytest.mark.parametrize(("change", "options", "match"), MALFORMED)
def test_load_logged_bandit_rejects_malformed_files(
    tmp_path: Path, change, options: dict, match: str
) -> None:
    path = tmp_path / "log.csv"
    change(good_frame()).to_csv(path, index=False)
    with pytest.raises(ReplayInputError, match=match):
        load_logged_bandit(path, **options)


def test_load_logged_bandit_reports_more_bad_rows(tmp_path: Path) -> None:
    frame = good_frame()
    frame.loc[[2, 5, 9], "pscore"] = 0.0
    frame.to_csv(tmp_path / "log.csv", index=False)
    with pytest.raises(ReplayInputError, match=r"found 0 at row 2 \(and 2 more rows\)"):
        load_logged_bandit(tmp_path / "log.csv")


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("missing.csv", r"'.*missing.csv' does not exist"),
        ("log.json", r"Expected a table file \(.csv.gz, .csv, .*\) or a known `format`, found .log.json."),
    ],
)
def test_load_logged_bandit_rejects_missing_or_unknown_files(tmp_path: Path, name: str, match: str) -> None:
    (tmp_path / "log.json").write_text("{}")
    with pytest.raises(ReplayInputError, match=match):
        load_logged_bandit(tmp_path / name)


# Malformed records built directly: (fields, expected message).
BAD_RECORDS = [
    ({"reward": np.zeros(2)}, r"Expected `reward` of length 3 \(the length of `action`\), found 2"),
    ({"pscore": np.array([0.5, 0.0, 0.5])}, r"Expected `pscore` in \(0, 1\], found 0 at row 1"),
    ({"action": np.zeros((3, 1), dtype=int)}, r"Expected `action` of shape \(B,\), found shape \(3, 1\)"),
    ({"context": np.zeros((2, 2))}, r"Expected `context` of shape \(3, d\), found shape \(2, 2\)"),
    ({"context": np.array([[0.0], [np.nan], [1.0]])}, r"Expected finite context column `context\[:, 0\]`"),
    ({"target_pscore": np.array([0.1, 2.0, 0.1])}, r"Expected `target_pscore` in \[0, 1\], found 2 at row 1"),
    ({"n_actions": 2}, r"Expected `action` in \[0, 2\) \(n_actions=2\), found 2 at row 2"),
    ({"n_actions": 2.5}, r"Expected `n_actions` to be a positive integer, found 2.5"),
]


@pytest.mark.parametrize(("fields", "match"), BAD_RECORDS)
def test_logged_bandit_rejects_malformed_fields(fields: dict, match: str) -> None:
    base = {"action": np.array([0, 1, 2]), "reward": np.ones(3), "pscore": np.full(3, 0.5)}
    with pytest.raises(ReplayInputError, match=match):
        LoggedBandit(**{**base, **fields})


def _log() -> LoggedBandit:
    return LoggedBandit(action=np.array([0, 1, 2]), reward=np.ones(3), pscore=np.full(3, 0.5), n_actions=3)


# Target policies that do not fit the log: (keyword arguments, error, expected message).
BAD_TARGETS = [
    ({"action_dist": np.full((3, 2), 0.5)}, ReplayInputError, r"`action_dist` with 3 columns .*, found 2"),
    (
        {"action_dist": np.full((2, 3), 1 / 3)},
        ReplayInputError,
        r"`action_dist` of shape \(3, A\), found .*\(2, 3\)",
    ),
    (
        {"action_dist": np.full((3, 3), 0.5)},
        ReplayInputError,
        r"each row of `action_dist` to sum to 1, found 1.5 at row 0",
    ),
    (
        {"action_dist": np.array([[1.5, -0.5, 0.0]] * 3)},
        ReplayInputError,
        r"`action_dist` in \[0, 1\], found 1.5 at row 0, column 0",
    ),
    (
        {"action_dist": np.full((3, 3), np.nan)},
        ReplayInputError,
        r"Expected finite `action_dist`, found nan at row 0",
    ),
    ({"target_pscore": np.array([0.1, 0.2])}, ReplayInputError, r"`target_pscore` of length 3 .*, found 2"),
    (
        {"target_pscore": np.array([0.1, 0.2, 1.1])},
        ReplayInputError,
        r"`target_pscore` in \[0, 1\], found 1.1 at row 2",
    ),
    (
        {"action_dist": np.full((3, 3), 1 / 3), "target_pscore": np.ones(3)},
        TargetPolicyError,
        r"as `action_dist` or as `target_pscore`, not both",
    ),
    ({}, TargetPolicyError, r"No target policy"),
    (
        {"action_dist": np.full((3, 3), 1 / 3), "qhat": np.zeros((3, 4))},
        ReplayInputError,
        r"Expected `qhat` with 3 columns",
    ),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_TARGETS)
def test_prepare_rejects_target_policies_that_do_not_fit(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        prepare(_log(), **kwargs)


def test_prepare_uses_the_logs_target_pscore_and_computes_weights() -> None:
    logged = LoggedBandit(
        action=np.array([0, 1]),
        reward=np.ones(2),
        pscore=np.array([0.5, 0.25]),
        target_pscore=np.array([1.0, 0.5]),
    )
    data = prepare(logged)
    assert np.array_equal(data.weight, np.array([2.0, 2.0]))
    dist = np.array([[0.2, 0.8], [0.6, 0.4]])
    assert np.array_equal(prepare(logged, dist).target_pscore, np.array([0.2, 0.4]))


def test_replay_doc_example_runs_and_prints_the_documented_table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = (EXAMPLE.parents[1] / "replay.md").read_text()
    code = doc.split("```python\n", 1)[1].split("```", 1)[0]
    printed = doc.split("```python\n", 1)[1].split("```", 1)[1].split("```\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(EXAMPLE.parents[2])
    exec(compile(code, "docs/replay.md", "exec"), {})
    assert capsys.readouterr().out == printed


@pytest.mark.parametrize("seed", range(40))
def test_byte_order_matches_a_stable_sort_of_row_bytes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 80)), int(rng.integers(1, 8))
    # Few distinct values (many ties, whole-row duplicates), signed zeros, and words of every width.
    keys = rng.integers(-2, 3, size=(n, k)) * rng.choice([1.0, 0.5, 1e300, -0.0, 3.25e-7], size=(n, k))
    rows = np.ascontiguousarray(keys).view(np.dtype((np.void, 8 * k))).reshape(n)
    expected = np.argsort(rows, kind="stable")
    split = int(rng.integers(0, k + 1))
    np.testing.assert_array_equal(byte_order([keys[:, :split], keys[:, split:]]), expected)
