"""The VW text builder: escaping, labels, and examples that survive hostile strings."""

import numpy as np
import pandas as pd
import pytest
import vowpalwabbit

from bandits import vw_format as vf

HOSTILE = ["a|b", "x:1", "two words", "line\nbreak", "tab\there", "100%", "|A evil:9", "\r\n", ""]


def test_escape_removes_every_separator():
    for token in HOSTILE:
        escaped = vf.escape(token)
        for char in "|: \t\n\r":
            assert char not in escaped


def test_escape_is_injective():
    tokens = [*HOSTILE, "a%7Cb", "%", "%25", "a b", "a%20b"]
    escaped = [vf.escape(t) for t in tokens]
    assert len(set(escaped)) == len(set(tokens))


def test_escape_series_matches_escape():
    series = pd.Series(HOSTILE)
    assert list(vf.escape_series(series)) == [vf.escape(t) for t in HOSTILE]


def test_cost_is_negative_reward():
    label = vf.CBLabel.from_reward(2.5, 0.25)
    assert label.cost == -2.5
    assert label.render() == "0:-2.5:0.25"
    np.testing.assert_array_equal(vf.cost_of(np.array([1.0, 0.0, -3.0])), [-1.0, -0.0, 3.0])


@pytest.mark.parametrize(
    ("probability", "cost"),
    # Invalid labels: probability outside (0, 1], non-finite cost.
    [(0.0, 1.0), (1.5, 1.0), (-0.1, 1.0), (0.5, float("nan")), (0.5, float("inf"))],
)
def test_label_invalid_refused(probability, cost):
    with pytest.raises(ValueError, match="Expected"):
        vf.CBLabel(cost=cost, probability=probability)


def test_adf_example_labels_exactly_one_action():
    actions = [vf.action_line([vf.Feature("arm", str(i))]) for i in range(3)]
    shared = vf.shared_line([vf.Feature("user", "u1")])
    lines = vf.adf_example(shared, actions, chosen=1, label=vf.CBLabel.from_reward(1.0, 0.5))
    assert lines[0] == shared
    assert [line.startswith("0:") for line in lines[1:]] == [False, True, False]
    assert vf.adf_example(shared, actions) == [shared, *actions]
    with pytest.raises(ValueError, match="both"):
        vf.adf_example(shared, actions, chosen=1)


def test_hostile_values_survive_vw_learn_and_predict():
    """Every hostile string is one feature to VW: the example parses and learning changes predictions."""
    workspace = vowpalwabbit.Workspace("--cb_explore_adf --quiet -q UA --epsilon 0.0")
    try:
        shared = vf.shared_line([vf.Feature(t or "empty", t) for t in HOSTILE])
        actions = [vf.action_line([vf.Feature("arm", t), vf.Feature("k", 0.5)]) for t in HOSTILE[:3]]
        before = workspace.predict(vf.adf_example(shared, actions))
        assert len(before) == len(actions)
        for _ in range(50):
            label = vf.CBLabel.from_reward(1.0, 1.0 / 3)
            workspace.learn(vf.adf_example(shared, actions, chosen=2, label=label))
        after = workspace.predict(vf.adf_example(shared, actions))
        assert np.argmax(after) == 2
    finally:
        workspace.finish()


def test_shared_lines_matches_scalar_builder():
    columns = {"section": np.array(["a b", "c|d"]), "fresh": np.array([0.25, 1.0])}
    lines = vf.shared_lines(columns)
    for i in range(2):
        expected = vf.shared_line(
            [vf.Feature("section", str(columns["section"][i])), vf.Feature("fresh", columns["fresh"][i])]
        )
        assert lines[i] == expected


def test_shared_lines_refuses_non_finite():
    with pytest.raises(ValueError, match="finite"):
        vf.shared_lines({"x": np.array([1.0, np.nan])})


def test_labelled_blocks_matches_adf_example():
    action_sets = {
        "s1": [vf.action_line([vf.Feature("arm", str(i))]) for i in range(3)],
        "s2": [vf.action_line([vf.Feature("arm", f"b{i}")]) for i in range(2)],
    }
    shared = pd.Series([f"shared |U id={i}" for i in range(4)])
    keys = np.array(["s1", "s2", "s1", "s2"])
    chosen = np.array([0, 1, 2, 0])
    rewards = np.array([1.0, 0.0, 2.0, 0.5])
    props = np.array([0.5, 0.25, 1.0, 0.75])
    text = vf.labelled_blocks(shared, keys, chosen, rewards, props, action_sets)
    blocks = text.strip("\n").split("\n\n")
    for b in range(4):
        expected = vf.adf_example(
            shared[b],
            action_sets[keys[b]],
            chosen=int(chosen[b]),
            label=vf.CBLabel.from_reward(rewards[b], props[b]),
        )
        assert blocks[b].split("\n") == expected


@pytest.mark.parametrize(
    ("chosen", "props", "match"),
    # Invalid training rows: chosen action out of range, propensity 0 or above 1.
    [(np.array([3]), np.array([0.5]), "chosen action"), (np.array([0]), np.array([0.0]), "propensities")],
)
def test_labelled_blocks_invalid_refused(chosen, props, match):
    action_sets = {"s": [vf.action_line([vf.Feature("arm", str(i))]) for i in range(3)]}
    with pytest.raises(ValueError, match=match):
        vf.labelled_blocks(
            pd.Series(["shared |U x"]), np.array(["s"]), chosen, np.ones(1), props, action_sets
        )


def test_shared_lines_small_and_large_batches_agree(monkeypatch):
    rng = np.random.default_rng(0)
    columns = {
        "section": rng.choice(["discover", "a b", "x|y:z"], 200),
        "hour": rng.integers(0, 24, 200),
        "fresh": rng.random(200),
        "flag": rng.random(200) < 0.5,
    }
    large = vf.shared_lines(columns)
    monkeypatch.setattr(vf, "SMALL_BATCH", 10**6)
    small = vf.shared_lines(columns)
    assert list(large) == list(small)
