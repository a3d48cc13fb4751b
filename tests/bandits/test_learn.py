"""Learning from the decision log: the join, rewards, arm mapping, artifacts, and replay on the log."""

from pathlib import Path

import numpy as np
import pytest

from bandits.errors import LearnError, PolicySpecError
from bandits.learn import LearnSettings, context_matrix, learn_policy, read_decisions
from bandits.log import DecisionLog
from bandits.policies import FixedArmPolicy, UniformPolicy
from bandits.replay import parse_policy, replay_table, target_distribution
from bandits.vw_policy import VWKnobPolicy, VWSettings
from heuristics import ConfigError, SectionsConfig
from simulator.run import simulate

TINY = Path(__file__).parents[1] / "fixtures" / "world_tiny.toml"
CONFIG = SectionsConfig.load()


@pytest.fixture(scope="module")
def log_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("learn") / "log.db"
    with DecisionLog.open(path, create=True) as log:
        simulate(str(TINY), 3000, seed=4, sink=log.append)
    return path


@pytest.fixture(scope="module")
def decisions(log_path):
    with DecisionLog.open(log_path) as log:
        return read_decisions(log, CONFIG, LearnSettings(wait_seconds=None))


def test_read_decisions_rewards_are_click_counts(log_path, decisions):
    with DecisionLog.open(log_path) as log:
        joined = log.joined()
    np.testing.assert_array_equal(decisions.reward, [len(c) for c in joined["clicks"]])
    assert len(decisions) == len(joined)


def test_read_decisions_propensity_matches_reindexed_distribution(decisions):
    for b in range(len(decisions)):
        assert decisions.arm_probs[b][decisions.arm_index[b]] == decisions.propensity[b]
        assert decisions.arm_probs[b].sum() == pytest.approx(1.0)


def test_read_decisions_wait_window_drops_late_feedback(log_path):
    # The simulator's feedback arrives 30 s after each decision: a 10 s window admits none of it.
    with DecisionLog.open(log_path) as log:
        late = read_decisions(log, CONFIG, LearnSettings(wait_seconds=10.0, default_reward=-1.0))
        on_time = read_decisions(log, CONFIG, LearnSettings(wait_seconds=60.0))
    assert (late.reward == -1.0).all()
    assert not late.has_feedback.any()
    assert on_time.has_feedback.all()


def test_read_decisions_maps_arms_by_id_under_a_reordered_config(log_path, decisions):
    data = CONFIG.sections["search"]
    # A config of search alone with its knob values reversed: the same arms, at other indices.
    raw = {
        "sections": {
            "search": {
                "required_context": ["query"],
                "pipeline": ["freshness", "category_cap"],
                "knobs": {
                    "freshness": {"weight": [0.3, 0.1, 0.0], "half_life_days": [30.0]},
                    "category_cap": {"cap": [1000, 6, 3]},
                },
            }
        }
    }
    reordered = SectionsConfig.from_dict(raw)
    assert {a.id for a in reordered["search"].arms} == {a.id for a in data.arms}
    assert [a.id for a in reordered["search"].arms] != [a.id for a in data.arms]
    with DecisionLog.open(log_path) as log:
        mapped = read_decisions(log, reordered, LearnSettings(wait_seconds=None))
    search = decisions.context.section == "search"
    assert len(mapped) == search.sum()
    assert mapped.skipped["unknown_section"] == len(decisions) - search.sum()
    old_ids = np.array([data.arms[i].id for i in decisions.arm_index[search]])
    new_ids = np.array([reordered["search"].arms[i].id for i in mapped.arm_index])
    np.testing.assert_array_equal(old_ids, new_ids)
    for b in range(len(mapped)):
        assert mapped.arm_probs[b][mapped.arm_index[b]] == mapped.propensity[b]


def test_learn_policy_writes_versions_with_metadata(log_path, tmp_path):
    with DecisionLog.open(log_path) as log:
        first, path1 = learn_policy(log, CONFIG, tmp_path, LearnSettings(wait_seconds=None))
        second, path2 = learn_policy(
            log, CONFIG, tmp_path, LearnSettings(wait_seconds=None), warm_start=tmp_path
        )
    try:
        assert (path1.name, path2.name) == ("policy-0001.vw", "policy-0002.vw")
        meta = second.metadata_
        assert meta["parent"] == str(path1)
        assert meta["counts"]["decisions"] == 3000
        assert sum(meta["counts"]["by_section"].values()) == 3000
        assert meta["reward"] == "clicks"
        assert np.isfinite(meta["progressive_loss"])
        loaded = VWKnobPolicy.load(tmp_path, CONFIG)
        assert loaded.version == "vw-policy-0002"
        loaded.close()
    finally:
        first.close()
        second.close()


def test_learn_policy_empty_window_refused(log_path, tmp_path):
    with DecisionLog.open(log_path) as log, pytest.raises(LearnError, match="no decisions"):
        learn_policy(log, CONFIG, tmp_path, LearnSettings(since=4e9))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    # Invalid learn settings.
    [({"reward": "likes"}, "reward"), ({"wait_seconds": -1.0}, "wait_seconds")],
)
def test_learn_settings_invalid(kwargs, match):
    with pytest.raises(LearnError, match=match):
        LearnSettings(**kwargs)


def test_context_matrix_one_hot_and_numbers(decisions):
    matrix, names = context_matrix(decisions.context)
    assert matrix.shape == (len(decisions), len(names))
    for prefix in ("section=", "segment=", "device=", "hour="):
        block = [i for i, n in enumerate(names) if n.startswith(prefix)]
        np.testing.assert_array_equal(matrix[:, block].sum(axis=1), 1.0)
    np.testing.assert_array_equal(matrix[:, names.index("fresh_share")], decisions.context.fresh_share)


def test_replay_logging_target_ips_is_the_logged_mean(decisions):
    table = replay_table(
        decisions, CONFIG, {"logging": "logging"}, estimators=("ips", "snips"), n_bootstrap=20
    )
    overall = table[(table.group == "overall") & (table.estimator == "ips")].iloc[0]
    assert overall.value == pytest.approx(decisions.reward.mean())


def test_replay_uniform_target_on_uniform_log_is_the_logged_mean(decisions):
    # The simulated log explores uniformly, so a uniform target has every importance weight equal to 1.
    table = replay_table(decisions, CONFIG, {"u": UniformPolicy(CONFIG)}, estimators=("ips",), n_bootstrap=20)
    overall = table[table.group == "overall"].iloc[0]
    assert overall.value == pytest.approx(decisions.reward.mean())
    assert overall.max_weight == pytest.approx(1.0)


def test_target_distribution_pads_to_the_widest_section(decisions):
    dist = target_distribution(FixedArmPolicy(CONFIG), decisions, CONFIG)
    width = max(len(s.arms) for s in CONFIG)
    assert dist.shape == (len(decisions), width)
    np.testing.assert_array_equal(dist.sum(axis=1), 1.0)
    for b in range(0, len(decisions), 97):
        section = decisions.context.section[b]
        assert dist[b, CONFIG[section].default_arm.index] == 1.0


@pytest.mark.parametrize(
    ("spec", "kind"),
    [("uniform", UniformPolicy), ("default", FixedArmPolicy), ("fixed:search=0,discover=-1", FixedArmPolicy)],
)
def test_parse_policy_specs(spec, kind):
    assert isinstance(parse_policy(spec, CONFIG), kind)


def test_parse_policy_fixed_arms_resolve():
    policy = parse_policy("fixed:search=2", CONFIG)
    assert policy.arm_index["search"] == 2
    assert policy.arm_index["discover"] == CONFIG["discover"].default_arm.index


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    # Invalid policy specs: a malformed spec, or a section the config does not have.
    [
        ("fixed:search", PolicySpecError, r"policy 'fixed:search': expected SECTION=ARM, found 'search'"),
        ("epsilon:2", PolicySpecError, r"policy 'epsilon:2': expected epsilon:EPS with EPS in \[0, 1\]"),
        ("epsilon:x", PolicySpecError, r"policy 'epsilon:x': expected epsilon:EPS"),
        ("fixed:nope=1", ConfigError, "unknown section"),
    ],
)
def test_parse_policy_invalid(spec, error, match):
    with pytest.raises(error, match=match):
        parse_policy(spec, CONFIG)


def test_learn_policy_cells_chooses_fields_on_a_first_pass_and_a_warm_start_keeps_them(
    log_path, decisions, tmp_path
):
    settings = LearnSettings(wait_seconds=None, vw=VWSettings(cells=True, seed=3))
    with DecisionLog.open(log_path) as log:
        # Chunks smaller than the log: the first pass tallies them one by one.
        first, _ = learn_policy(log, CONFIG, tmp_path, settings, chunk_size=700)
        second, _ = learn_policy(log, CONFIG, tmp_path, settings, warm_start=tmp_path)
    in_memory = VWKnobPolicy(CONFIG, settings.vw).fit(
        decisions.context, decisions.arm_index, decisions.reward, decisions.propensity
    )
    try:
        # The streamed choice is the in-memory one: the same decisions in the same order, the same folds.
        assert first.cell_choice.fields == in_memory.cell_choice.fields
        for section, steps in in_memory.cell_choice.steps.items():
            streamed = first.metadata_["cells"]["steps"][section]
            assert [s["field"] for s in streamed] == [s["field"] for s in steps]
            assert [s["gain"] for s in streamed] == pytest.approx([s["gain"] for s in steps], rel=1e-6)
        assert second.cell_choice.fields == first.cell_choice.fields
        assert first.metadata_["feature_format"] == second.metadata_["feature_format"]
    finally:
        first.close()
        second.close()
        in_memory.close()
