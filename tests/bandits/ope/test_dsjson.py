"""VW DSJSON reading, field by field on hand-written events, and the targets built on it."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import orjson
import pytest

from bandits.ope import ReplayInputError, TargetPolicyError
from bandits.ope.dsjson import load_dsjson, vw_distribution


def event(
    chosen: int, a: list[int], p: list[float], cost: float, shared: dict, n_actions: int, **extra
) -> dict:
    """One DSJSON line as VW's learning loop writes it."""
    multi = [{"Action": {"id": f"item{i}", "price": float(i)}} for i in range(1, n_actions + 1)]
    return {
        "_label_cost": cost,
        "_label_probability": p[a.index(chosen)],
        "_label_Action": chosen,
        "_labelIndex": chosen - 1,
        "o": [{"v": -cost, "EventId": extra.get("EventId", "x")}],
        "Timestamp": extra.get("Timestamp", "2024-05-01T10:00:00.0000000Z"),
        "Version": "1",
        "EventId": extra.get("EventId", "x"),
        "DeferredAction": False,
        "a": a,
        "c": {**shared, "_multi": multi},
        "p": p,
        "VWState": {"m": "model-1"},
    }


# Three events: the second chose action 3, which is not first in `a`; the third offers only 2 actions.
EVENTS = [
    event(
        2,
        [2, 1, 3],
        [0.8, 0.1, 0.1],
        -1.0,
        {"User": {"age": 30, "city": "Paris", "vip": True}, "hour": 7},
        3,
        EventId="e-1",
        Timestamp="2024-05-01T10:00:00Z",
    ),
    event(
        3,
        [1, 3, 2],
        [0.6, 0.3, 0.1],
        0.0,
        {"User": {"age": 41, "city": "Lyon"}, "_debug": "skip me"},
        3,
        EventId="e-2",
        Timestamp="2024-05-01T10:00:01Z",
    ),
    event(
        1,
        [1, 2],
        [0.5, 0.5],
        -0.5,
        {"User": {"age": 19, "vip": False}, "tags": [1.5, 2.0]},
        2,
        EventId="e-3",
        Timestamp="2024-05-01T10:00:02Z",
    ),
]


def write(path: Path, events: list[dict], *, blank_second_line: bool = True) -> Path:
    lines = [orjson.dumps(e) for e in events]
    if blank_second_line:
        lines.insert(1, b"   ")
    body = b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(body) if path.name.endswith(".gz") else body)
    return path


@pytest.mark.parametrize("name", ["log.dsjson", "log.dsjson.gz"])
def test_load_dsjson_reads_every_field(tmp_path: Path, name: str) -> None:
    log = load_dsjson(write(tmp_path / name, EVENTS))
    logged = log.logged
    np.testing.assert_array_equal(logged.action, [1, 2, 0])  # _label_Action - 1: the position in c._multi
    np.testing.assert_array_equal(logged.reward, [1.0, 0.0, 0.5])  # -_label_cost
    assert not np.signbit(logged.reward).any()  # a cost of 0 is a reward of +0
    np.testing.assert_array_equal(logged.pscore, [0.8, 0.3, 0.5])  # _label_probability
    assert logged.n_actions == 3
    np.testing.assert_array_equal(log.n_event_actions, [3, 3, 2])
    np.testing.assert_array_equal(log.line, [1, 3, 4])  # line 2 is blank
    assert log.event_id.tolist() == ["e-1", "e-2", "e-3"]
    assert log.timestamp.tolist() == ["2024-05-01T10:00:00Z", "2024-05-01T10:00:01Z", "2024-05-01T10:00:02Z"]
    # `p` follows `a`: column a[j] - 1 holds p[j]; an action an event lacks has probability 0.
    np.testing.assert_array_equal(log.logging_dist, [[0.1, 0.8, 0.1], [0.6, 0.1, 0.3], [0.5, 0.5, 0.0]])
    assert logged.context_names == (
        "User.age",
        "User.city=Lyon",
        "User.city=Paris",
        "User.vip",
        "hour",
        "tags[0]",
        "tags[1]",
    )
    np.testing.assert_array_equal(
        logged.context,
        [[30, 0, 1, 1, 7, 0, 0], [41, 1, 0, 0, 0, 0, 0], [19, 0, 0, 0, 0, 1.5, 2.0]],
    )


@pytest.mark.parametrize(
    ("reward", "expected"), [("one-minus-cost", [2.0, 1.0, 1.5]), ("cost", [-1.0, 0.0, -0.5])]
)
def test_load_dsjson_reward_from_cost(tmp_path: Path, reward: str, expected: list[float]) -> None:
    log = load_dsjson(write(tmp_path / "log.dsjson", EVENTS), reward=reward)
    np.testing.assert_array_equal(log.logged.reward, expected)


def test_load_dsjson_keeps_the_named_shared_features(tmp_path: Path) -> None:
    path = write(tmp_path / "log.dsjson", EVENTS)
    chosen = load_dsjson(path, context=["hour", "User.age"]).logged
    assert chosen.context_names == ("hour", "User.age")
    np.testing.assert_array_equal(chosen.context, [[7, 30], [0, 41], [0, 19]])
    assert load_dsjson(path, context=[]).logged.context is None


def test_dsjson_targets_uniform_and_fixed_respect_each_events_actions(tmp_path: Path) -> None:
    log = load_dsjson(write(tmp_path / "log.dsjson", EVENTS))
    np.testing.assert_allclose(log.uniform(), [[1 / 3] * 3, [1 / 3] * 3, [0.5, 0.5, 0.0]])
    np.testing.assert_array_equal(log.fixed(1), [[0, 1, 0]] * 3)
    with pytest.raises(ReplayInputError, match=r"offer action 2 .* found 2 actions at line 4"):
        log.fixed(2)


def good() -> dict:
    return event(1, [1, 2], [0.7, 0.3], -1.0, {"x": 1}, 2)


# Malformed events: (how the event is spoiled, expected message naming line 1).
INVALID = [
    (lambda e: "not json", r"Expected a JSON object at line 1"),
    (lambda e: [1, 2], r"Expected a JSON object at line 1, found list"),
    (lambda e: {**e, "c": {"x": 1}}, r"non-empty `c._multi` list of actions at line 1"),
    (lambda e: {**e, "_label_Action": 0}, r"`_label_Action` in \[1, 2\] .* at line 1, found 0"),
    (lambda e: {**e, "_label_Action": 3}, r"`_label_Action` in \[1, 2\] .* at line 1, found 3"),
    (lambda e: {**e, "_labelIndex": 1}, r"`_labelIndex` = `_label_Action` - 1 = 0 at line 1, found 1"),
    (
        lambda e: {k: v for k, v in e.items() if k != "_label_cost"},
        r"number `_label_cost` at line 1, found None",
    ),
    (lambda e: {**e, "_label_probability": "0.5"}, r"number `_label_probability` at line 1, found '0.5'"),
    (lambda e: {**e, "p": [1.0]}, r"lists `a` and `p` of the same length at line 1"),
    (lambda e: {**e, "a": [1, 5]}, r"`a` in \[1, 2\] at line 1"),
    (lambda e: {**e, "_label_probability": 0.0}, r"Expected `pscore` in \(0, 1\], found 0 at row 0"),
]


@pytest.mark.parametrize(("spoil", "match"), INVALID)
def test_load_dsjson_rejects_malformed_events(tmp_path: Path, spoil, match: str) -> None:
    spoiled = spoil(good())
    path = tmp_path / "bad.dsjson"
    path.write_bytes(spoiled.encode() if isinstance(spoiled, str) else orjson.dumps(spoiled))
    with pytest.raises(ReplayInputError, match=match):
        load_dsjson(path)


def test_load_dsjson_rejects_unknown_reward_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReplayInputError, match=r"Expected `reward` in neg-cost, one-minus-cost, cost"):
        load_dsjson(write(tmp_path / "log.dsjson", EVENTS), reward="minus")
    with pytest.raises(ReplayInputError, match=r"DSJSON file .*none.dsjson' does not exist"):
        load_dsjson(tmp_path / "none.dsjson")


def test_vw_distribution_follows_a_model_trained_on_the_log(tmp_path: Path) -> None:
    vowpalwabbit = pytest.importorskip("vowpalwabbit")
    rng = np.random.default_rng(0)
    events = []
    for i in range(400):  # action 2 of 3 always pays when hot, action 1 otherwise
        hot = bool(rng.integers(0, 2))
        chosen = int(rng.integers(1, 4))
        best = 2 if hot else 1
        order = [chosen, *[a for a in (1, 2, 3) if a != chosen]]
        cost = -1.0 if chosen == best else 0.0
        events.append(event(chosen, order, [1 / 3] * 3, cost, {"U": {"hot": hot}}, 3, EventId=f"e{i}"))
    path = write(tmp_path / "log.dsjson", events, blank_second_line=False)
    model = tmp_path / "model.vw"
    workspace = vowpalwabbit.Workspace(f"--cb_explore_adf --dsjson -q UA --epsilon 0.1 --quiet -f {model}")
    for _ in range(3):
        for line in path.read_text().splitlines():
            examples = workspace.parse(line)
            workspace.learn(examples)
            workspace.finish_example(examples)
    workspace.finish()
    log = load_dsjson(path)
    dist = vw_distribution(path, model, log)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, rtol=1e-12)
    hot = log.logged.context[:, log.logged.context_names.index("U.hot")] == 1
    assert (dist[hot].argmax(axis=1) == 1).mean() > 0.9
    assert (dist[~hot].argmax(axis=1) == 0).mean() > 0.9
    with pytest.raises(TargetPolicyError, match=r"VW model file .*missing.vw' does not exist"):
        vw_distribution(path, tmp_path / "missing.vw", log)
