"""The promotion gate: paired DR valuation, per-section decisions, refusal, and atomic shipped versions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bandits.errors import GateError, InvalidArgumentError, PolicyContractError
from bandits.learn import LearnSettings, learn_policy, read_decisions
from bandits.log import DecisionLog
from bandits.ope import DoublyRobust, cross_fit_qhat, prepare
from bandits.policies import EpsilonGreedyPolicy, FixedArmPolicy, UniformPolicy
from bandits.promote import (
    Estimate,
    GateSettings,
    best_logged_arms,
    choose_shipped,
    fixed_arm_dr_values,
    promote,
    publish_decision,
    run_gate,
)
from bandits.replay import logged_bandit, parse_policy, target_distribution
from bandits.shipped import ShippedPolicy, current_version, publish_version, read_version
from bandits.vw_policy import VWKnobPolicy, VWSettings
from tests.bandits.gate_factories import GATE_SECTIONS, T0, write_gate_log
from tests.bandits.policy_factories import CONFIG

N_LEARN, N_WINDOW = 8_000, 3_000
CUT = T0 + N_LEARN


@pytest.fixture(scope="module")
def gate_log(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gate") / "log.db"
    write_gate_log(path, N_LEARN, seed=1)
    write_gate_log(path, N_WINDOW, seed=2, start=CUT, first_id=N_LEARN)
    return path


def _learn(log_path: Path, out: Path, *, negate: bool = False) -> Path:
    """A candidate learned before the window; with `negate`, on negated rewards (a deliberately bad one)."""
    settings = LearnSettings(until=CUT)
    with DecisionLog.open(log_path) as log:
        if not negate:
            policy, path = learn_policy(log, CONFIG, out, settings)
            policy.close()
            return path
        data = read_decisions(log, CONFIG, settings)
    policy = VWKnobPolicy(CONFIG, VWSettings()).fit(
        data.context, data.arm_index, -data.reward, data.propensity
    )
    meta = {"training_window": {"since": None, "until": CUT}, "reward": "clicks", "wait_seconds": 3600.0}
    path = policy.save(out, meta)
    policy.close()
    return path


def _promote(log_path: Path, policy_dir: Path, candidate: Path, *, fallback=None, **settings):
    with DecisionLog.open(log_path) as log:
        return promote(
            log,
            CONFIG,
            policy_dir,
            candidate=candidate,
            settings=GateSettings(n_bootstrap=100, **settings),
            fallback=fallback,
        )


def test_gate_ships_a_good_candidate(gate_log, tmp_path):
    candidate = _learn(gate_log, tmp_path / "policy" / "candidates")
    version, decision = _promote(gate_log, tmp_path / "policy", candidate)
    assert version == "0001"
    assert current_version(tmp_path / "policy") == "0001"
    for section in GATE_SECTIONS:
        verdict = decision.sections[section]
        assert verdict.shipped == "candidate", verdict.reason
        assert verdict.best_alternative == "best_fixed_logged"
        assert verdict.difference.low > 0  # context matters here: the candidate clearly beats any fixed arm
        assert verdict.decisions > 1000
    shipped = ShippedPolicy.load(tmp_path / "policy", CONFIG)
    learned = VWKnobPolicy.load(candidate, CONFIG)
    with DecisionLog.open(gate_log) as log:
        context = read_decisions(log, CONFIG, LearnSettings(since=CUT)).context
    context = context.take(np.flatnonzero(context.section == "discover")[:50])
    served, own = shipped.distribution(context), learned.distribution(context)
    np.testing.assert_allclose(np.stack(served), np.stack(own))
    shipped.close()
    learned.close()
    meta = read_version(tmp_path / "policy")
    assert meta["decision"]["window"]["since"] == CUT
    assert meta["decision"]["margin"] == 0.0
    assert meta["sections"]["discover"]["kind"] == "vw"


def test_gate_ships_the_alternative_for_a_bad_candidate(gate_log, tmp_path):
    bad = _learn(gate_log, tmp_path / "bad", negate=True)
    _, decision = _promote(gate_log, tmp_path / "policy", bad, margin=0.01)
    for section in GATE_SECTIONS:
        verdict = decision.sections[section]
        assert verdict.shipped == "best_fixed_logged", verdict.reason
        assert verdict.difference.high < 0
        # Two thirds of the users are not heavy: arm 0 is the best fixed arm (0.6 vs 0.4 for the last).
        assert verdict.fixed_arm == CONFIG[section].arms[0].id
    shipped = ShippedPolicy.load(tmp_path / "policy", CONFIG)
    assert shipped.specs["discover"] == {
        "kind": "fixed",
        "arm": CONFIG["discover"].arms[0].id,
        "from": "best_fixed_logged",
    }
    # Sections without a decision in the log keep their default arm.
    assert shipped.specs["similar_items"]["from"] == "default"


def test_gate_keeps_the_incumbent_against_a_bad_candidate(gate_log, tmp_path):
    good = _learn(gate_log, tmp_path / "good")
    bad = _learn(gate_log, tmp_path / "bad", negate=True)
    _promote(gate_log, tmp_path / "policy", good)
    version, decision = _promote(gate_log, tmp_path / "policy", bad)
    assert version == "0002"
    for section in GATE_SECTIONS:
        assert decision.sections[section].best_alternative == "incumbent"
        assert decision.sections[section].shipped == "incumbent"
    first, second = read_version(tmp_path / "policy", "0001"), read_version(tmp_path / "policy")
    assert second["sections"]["discover"]["model"] == first["sections"]["discover"]["model"]
    assert second["decision"]["incumbent"] == "0001"
    # The carried-over model file is in the new version's own directory.
    assert (tmp_path / "policy" / "versions" / "0002" / second["sections"]["discover"]["model"]).is_file()
    ShippedPolicy.load(tmp_path / "policy", CONFIG).close()


def test_gate_refuses_a_window_with_too_few_decisions(gate_log, tmp_path):
    candidate = _learn(gate_log, tmp_path / "candidates")
    with DecisionLog.open(gate_log) as log, pytest.raises(GateError, match="too few decisions in the window"):
        promote(log, CONFIG, tmp_path / "policy", candidate=candidate, until=CUT + 100)
    assert current_version(tmp_path / "policy") is None


def test_fixed_arm_dr_values_match_doubly_robust_of_a_fixed_policy(gate_log):
    with DecisionLog.open(gate_log) as log:
        data = read_decisions(log, CONFIG, LearnSettings(until=T0 + 2000))
    logged = logged_bandit(data, CONFIG)
    qhat = cross_fit_qhat(logged, n_actions=logged.n_actions)
    values = fixed_arm_dr_values(logged, qhat)
    section = np.asarray(data.context.section) == "discover"
    for arm in (0, 5, 11):
        policy = FixedArmPolicy(CONFIG, {"discover": arm, "search": min(arm, 8)})
        reference = DoublyRobust().round_values(
            prepare(logged, target_distribution(policy, data, CONFIG), qhat=qhat)
        )
        np.testing.assert_allclose(values[section, arm], reference.value[section])
    best = best_logged_arms(data, CONFIG)
    assert set(best) == set(GATE_SECTIONS)
    for index, estimates in best.values():
        assert index == int(np.argmax(estimates))


def test_publish_version_is_atomic_and_numbered(tmp_path):
    specs = {s.name: {"kind": "fixed", "arm": s.default_arm.id, "from": "default"} for s in CONFIG}
    (tmp_path / "versions" / ".tmp-0001-99").mkdir(parents=True)  # a crashed write: never read
    assert publish_version(tmp_path, specs, {}, {"note": 1}) == "0001"
    assert publish_version(tmp_path, specs, {}, {"note": 2}) == "0002"
    assert (tmp_path / "current").read_text() == "0002\n"
    assert not (tmp_path / "current.tmp").exists()
    first = json.loads((tmp_path / "versions" / "0001" / "version.json").read_text())
    assert first["decision"] == {"note": 1}
    policy = parse_policy(str(tmp_path), CONFIG)
    assert isinstance(policy, ShippedPolicy)
    assert policy.version == "shipped-0002"


def test_shipped_policy_refuses_a_dangling_pointer(tmp_path):
    (tmp_path / "current").write_text("0007\n")
    with pytest.raises(PolicyContractError, match="not a complete version"):
        ShippedPolicy.load(tmp_path, CONFIG)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    # Invalid gate settings.
    [
        ({"margin": -0.1}, "margin"),
        ({"margin": float("nan")}, "margin"),
        ({"min_decisions": 0}, "min_decisions"),
        ({"n_bootstrap": 5}, "n_bootstrap"),
        ({"alpha": 1.0}, "alpha"),
    ],
)
def test_gate_settings_invalid(kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        GateSettings(**kwargs)


def test_gate_compares_with_the_fallback_before_any_version(gate_log, tmp_path):
    """With no version published, the served fallback is a contender; a section without decisions keeps it."""
    bad = _learn(gate_log, tmp_path / "bad", negate=True)
    _, decision = _promote(gate_log, tmp_path / "policy", bad, fallback=UniformPolicy(CONFIG))
    with DecisionLog.open(gate_log) as log:
        window = read_decisions(log, CONFIG, LearnSettings(since=CUT))
    for section in GATE_SECTIONS:
        verdict = decision.sections[section]
        # The uniform fallback's DR estimate is the mean of the arms' estimates, below the best arm's.
        rows = window.context.section == section
        logged = logged_bandit(window.take(np.flatnonzero(rows)), CONFIG)
        assert verdict.estimates["fallback"].value < verdict.estimates["best_fixed_logged"].value
        assert verdict.estimates["fallback"].value == pytest.approx(logged.reward.mean(), abs=0.03)
        assert verdict.shipped == "best_fixed_logged"
    shipped = ShippedPolicy.load(tmp_path / "policy", CONFIG)
    assert shipped.specs["similar_items"] == {"kind": "uniform", "from": "fallback"}
    context = window.context.take(np.arange(5))
    n_arms = len(CONFIG["similar_items"].arms)
    probs = shipped._section_distribution("similar_items", context)
    np.testing.assert_allclose(probs, np.full((5, n_arms), 1 / n_arms))
    shipped.close()


def test_gate_keeps_the_fallback_when_the_fixed_arm_loses_to_it(gate_log, tmp_path):
    """A fixed arm picked badly (the worst arm) and a bad candidate: the exploring fallback ships, and the
    version serves it (epsilon-greedy around the default arm, with its epsilon)."""
    bad_path = _learn(gate_log, tmp_path / "bad", negate=True)
    bad = VWKnobPolicy.load(bad_path, CONFIG)
    fallback = EpsilonGreedyPolicy(CONFIG, 0.9)
    with DecisionLog.open(gate_log) as log:
        window = read_decisions(log, CONFIG, LearnSettings(since=CUT))
    # The arm with the lowest DR estimate on the window itself, other than the default arm.
    arms = best_logged_arms(window, CONFIG)
    worst = {}
    for s in GATE_SECTIONS:
        values = arms[s][1].copy()
        values[CONFIG[s].default_arm.index] = np.inf
        worst[s] = int(np.argmin(values))
    decision = run_gate(
        window,
        CONFIG,
        bad,
        incumbent=None,
        fixed_arms=worst,
        settings=GateSettings(n_bootstrap=100),
        fallback=fallback,
    )
    for section in GATE_SECTIONS:
        verdict = decision.sections[section]
        assert verdict.best_alternative == "fallback", verdict.estimates
        assert verdict.shipped == "fallback", verdict.reason
    publish_decision(tmp_path / "policy", CONFIG, decision, bad_path, None, {}, fallback=fallback)
    bad.close()
    shipped = ShippedPolicy.load(tmp_path / "policy", CONFIG)
    assert shipped.specs["discover"] == {"kind": "epsilon", "epsilon": 0.9, "from": "fallback"}
    context = window.context.take(np.arange(4))
    served = shipped._section_distribution("discover", context)
    np.testing.assert_allclose(served, fallback._section_distribution("discover", context))
    shipped.close()


def test_gate_with_a_status_quo_ships_the_passing_challenger_with_the_higher_estimate(gate_log, tmp_path):
    """Both challengers beat the uniform fallback; the good candidate has the higher estimate and ships."""
    good = _learn(gate_log, tmp_path / "good")
    _, decision = _promote(gate_log, tmp_path / "policy", good, fallback=UniformPolicy(CONFIG))
    for section in GATE_SECTIONS:
        verdict = decision.sections[section]
        assert set(verdict.differences) == {"candidate - fallback", "best_fixed_logged - fallback"}
        assert all(d.low > 0 for d in verdict.differences.values()), verdict.reason
        assert verdict.estimates["candidate"].value > verdict.estimates["best_fixed_logged"].value
        assert verdict.shipped == "candidate"
        assert verdict.best_alternative == "fallback"
        assert verdict.difference == verdict.differences["candidate - fallback"]
        assert "candidate and best_fixed_logged above" in verdict.reason


def _diff(low: float, high: float) -> Estimate:
    return Estimate((low + high) / 2, low, high)


@pytest.mark.parametrize(
    ("status", "versus", "means", "shipped"),
    [
        # No status quo: the candidate against the fixed arm alone.
        (None, {"candidate": _diff(0.01, 0.2)}, {"candidate": 0.7}, "candidate"),
        (None, {"candidate": _diff(-0.01, 0.2)}, {"candidate": 0.7}, "best_fixed_logged"),
        # Both pass: the higher estimate ships, whatever the status quo.
        (
            "incumbent",
            {"candidate": _diff(0.01, 0.2), "best_fixed_logged": _diff(0.02, 0.3)},
            {"candidate": 0.5, "best_fixed_logged": 0.6, "incumbent": 0.4},
            "best_fixed_logged",
        ),
        (
            "fallback",
            {"candidate": _diff(0.01, 0.2), "best_fixed_logged": _diff(-0.1, 0.3)},
            {"candidate": 0.5, "best_fixed_logged": 0.6, "fallback": 0.4},
            "candidate",
        ),
        # None passes: an incumbent stays, even below the others' estimates.
        (
            "incumbent",
            {"candidate": _diff(-0.01, 0.5), "best_fixed_logged": _diff(-0.01, 0.4)},
            {"candidate": 0.7, "best_fixed_logged": 0.6, "incumbent": 0.4},
            "incumbent",
        ),
        # None passes before a first version: the fixed arm unless the window shows it below the fallback
        # (even with a lower estimate than the fallback's); never the uncertified candidate.
        (
            "fallback",
            {"candidate": _diff(-0.01, 0.5), "best_fixed_logged": _diff(-0.3, 0.1)},
            {"candidate": 0.7, "best_fixed_logged": 0.3, "fallback": 0.4},
            "best_fixed_logged",
        ),
        (
            "fallback",
            {"candidate": _diff(-0.01, 0.5), "best_fixed_logged": _diff(-0.3, -0.01)},
            {"candidate": 0.7, "best_fixed_logged": 0.25, "fallback": 0.4},
            "fallback",
        ),
    ],
)
def test_choose_shipped_rule(status, versus, means, shipped):
    assert choose_shipped(status, means, versus, margin=0.0)[0] == shipped


def test_choose_shipped_margin_lets_a_small_loss_pass():
    versus = {
        "candidate": _diff(-0.02, 0.2),
        "best_fixed_logged": _diff(-0.3, -0.1),
    }
    means = {"candidate": 0.5, "best_fixed_logged": 0.2, "fallback": 0.4}
    assert choose_shipped("fallback", means, versus, margin=0.0) == ("fallback", [])
    assert choose_shipped("fallback", means, versus, margin=0.03) == ("candidate", ["candidate"])


def test_gate_before_a_first_version_ships_the_fixed_arm_when_nothing_clears_the_fallback(gate_log, tmp_path):
    """A window too small to certify any challenger against the uniform fallback: with no version yet, the
    fixed arm (not shown below the fallback) ships rather than exploration, and the uncertified
    candidate does not."""
    bad_path = _learn(gate_log, tmp_path / "bad", negate=True)
    bad = VWKnobPolicy.load(bad_path, CONFIG)
    with DecisionLog.open(gate_log) as log:
        window = read_decisions(log, CONFIG, LearnSettings(since=CUT))
    # The first 1,000 decisions (about 500 in discover, over its 12 uniformly logged arms) and discover's
    # last arm: best for a third of the contexts, worth about 0.2 + 0.6 / 3 = 0.40 against uniform's 0.25.
    fixed = {s: CONFIG[s].default_arm.index for s in GATE_SECTIONS}
    fixed["discover"] = len(CONFIG["discover"].arms) - 1
    decision = run_gate(
        window.take(np.arange(1_000)),
        CONFIG,
        bad,
        incumbent=None,
        fixed_arms=fixed,
        settings=GateSettings(n_bootstrap=100, min_decisions=100),
        fallback=UniformPolicy(CONFIG),
    )
    verdict = decision.sections["discover"]
    # What the test is about: neither challenger's lower bound clears the fallback.
    assert all(d.low <= 0 for d in verdict.differences.values()), verdict.reason
    assert verdict.estimates["best_fixed_logged"].value > verdict.estimates["fallback"].value
    assert verdict.estimates["candidate"].value < verdict.estimates["best_fixed_logged"].value
    assert verdict.shipped == "best_fixed_logged", verdict.reason
    assert verdict.best_alternative == "fallback"
    assert "no version yet and the fixed arm not shown below the fallback" in verdict.reason
    bad.close()
