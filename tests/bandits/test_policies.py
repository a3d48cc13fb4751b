"""Knob policies: one contract suite over every policy, plus what only the VW bandit does."""

import json

import numpy as np
import pytest

from bandits.context import PolicyContext, candidate_summary
from bandits.errors import NotFittedError, PolicyContractError
from bandits.policies import EpsilonGreedyPolicy, FixedArmPolicy, UniformPolicy
from bandits.vw_policy import VWKnobPolicy, VWSettings
from heuristics import SectionsConfig

CONFIG = SectionsConfig.load()


def make_context(n: int, seed: int = 0) -> PolicyContext:
    rng = np.random.default_rng(seed)
    return PolicyContext(
        section=rng.choice([s.name for s in CONFIG], n),
        segment=rng.choice(["new", "casual", "heavy"], n),
        device=rng.choice(["mobile", "desktop"], n),
        hour=rng.integers(0, 24, n),
        fresh_share=rng.random(n),
        category_entropy=3 * rng.random(n),
    )


def best_arm(context: PolicyContext) -> np.ndarray:
    """A synthetic truth: the best arm depends on the section and the user's segment."""
    n_arms = np.array([len(CONFIG[s].arms) for s in context.section])
    return np.where(context.segment == "heavy", n_arms - 1, 0)


def fitted_vw(settings: VWSettings | None = None, n: int = 20_000) -> VWKnobPolicy:
    context = make_context(n, seed=1)
    logged = UniformPolicy(CONFIG).choose(context, np.random.default_rng(2))
    reward = (logged.arm_index == best_arm(context)).astype(float)
    return VWKnobPolicy(CONFIG, settings).fit(context, logged.arm_index, reward, logged.propensity)


@pytest.fixture(scope="module")
def vw_policy():
    policy = fitted_vw()
    yield policy
    policy.close()


POLICIES = {
    "fixed": lambda: FixedArmPolicy(CONFIG),
    "fixed-last": lambda: FixedArmPolicy(CONFIG, {s.name: -1 for s in CONFIG}),
    "uniform": lambda: UniformPolicy(CONFIG),
    "epsilon": lambda: EpsilonGreedyPolicy(CONFIG, epsilon=0.3),
}


@pytest.fixture(params=[*POLICIES, "vw"])
def policy(request, vw_policy):
    return vw_policy if request.param == "vw" else POLICIES[request.param]()


def test_policy_distribution_is_a_distribution_over_the_sections_arms(policy):
    context = make_context(300)
    for section, probs in zip(context.section, policy.distribution(context), strict=True):
        assert probs.shape == (len(CONFIG[section].arms),)
        assert (probs >= 0).all()
        assert probs.sum() == pytest.approx(1.0, abs=1e-9)


def test_policy_choose_logs_exact_propensity(policy):
    context = make_context(300)
    choice = policy.choose(context, np.random.default_rng(5))
    for b in range(len(context)):
        assert 0 <= choice.arm_index[b] < len(CONFIG[context.section[b]].arms)
        assert choice.propensity[b] == choice.probs[b][choice.arm_index[b]]
        assert 0 < choice.propensity[b] <= 1


def test_policy_same_seed_same_choices(policy):
    context = make_context(200)
    first = policy.choose(context, np.random.default_rng(9))
    second = policy.choose(context, np.random.default_rng(9))
    np.testing.assert_array_equal(first.arm_index, second.arm_index)
    np.testing.assert_array_equal(first.propensity, second.propensity)


def test_policy_choose_follows_distribution():
    """Drawn arm frequencies match the epsilon-greedy distribution (4 standard errors)."""
    cfg = CONFIG["search"]
    n = 40_000
    context = make_context(n)
    context = PolicyContext(**{**vars(context), "section": np.full(n, "search")})
    policy = EpsilonGreedyPolicy(CONFIG, epsilon=0.5)
    choice = policy.choose(context, np.random.default_rng(3))
    expected = np.full(len(cfg.arms), 0.5 / len(cfg.arms))
    expected[cfg.default_arm.index] += 0.5
    observed = np.bincount(choice.arm_index, minlength=len(cfg.arms)) / n
    tolerance = 4 * np.sqrt(expected * (1 - expected) / n)
    assert (np.abs(observed - expected) <= tolerance).all()


def test_epsilon_greedy_default_arm_probability():
    context = make_context(50)
    probs = EpsilonGreedyPolicy(CONFIG, epsilon=0.2).distribution(context)
    for section, p in zip(context.section, probs, strict=True):
        cfg = CONFIG[section]
        assert p[cfg.default_arm.index] == pytest.approx(0.8 + 0.2 / len(cfg.arms))


def test_vw_policy_learns_context_dependent_arms(vw_policy):
    context = make_context(2_000, seed=11)
    chosen = np.array([np.argmax(p) for p in vw_policy.distribution(context)])
    assert (chosen == best_arm(context)).mean() > 0.9


def test_vw_policy_epsilon_floor(vw_policy):
    context = make_context(100, seed=12)
    for section, p in zip(context.section, vw_policy.distribution(context), strict=True):
        assert p.min() >= 0.05 / len(CONFIG[section].arms) - 1e-6


@pytest.mark.parametrize("exploration", ["softmax", "squarecb"])
def test_vw_policy_other_explorations_run(exploration):
    policy = fitted_vw(VWSettings(exploration=exploration), n=3_000)
    try:
        probs = policy.distribution(make_context(20))
        assert all(p.sum() == pytest.approx(1.0) for p in probs)
    finally:
        policy.close()


def test_vw_policy_not_fitted_raises(tmp_path):
    with pytest.raises(NotFittedError, match=r"VWKnobPolicy: call fit or load before distribution"):
        VWKnobPolicy(CONFIG).distribution(make_context(3))
    with pytest.raises(NotFittedError, match=r"VWKnobPolicy: call fit or load before save"):
        VWKnobPolicy(CONFIG).save(tmp_path)


def test_vw_policy_save_load_same_predictions(vw_policy, tmp_path):
    path = vw_policy.save(tmp_path, {"reward": "clicks"})
    assert path.name == "policy-0001.vw"
    loaded = VWKnobPolicy.load(tmp_path, CONFIG)
    try:
        context = make_context(100, seed=4)
        for a, b in zip(vw_policy.distribution(context), loaded.distribution(context), strict=True):
            np.testing.assert_array_equal(a, b)
        assert loaded.metadata_["reward"] == "clicks"
        assert loaded.version == "vw-policy-0001"
    finally:
        loaded.close()
    assert vw_policy.save(tmp_path).name == "policy-0002.vw"


def test_vw_policy_continues_from_previous_model(vw_policy, tmp_path):
    path = vw_policy.save(tmp_path)
    context = make_context(2_000, seed=21)
    logged = UniformPolicy(CONFIG).choose(context, np.random.default_rng(22))
    reward = (logged.arm_index == best_arm(context)).astype(float)
    more = VWKnobPolicy(CONFIG, vw_policy.settings).fit(
        context, logged.arm_index, reward, logged.propensity, warm_start=path
    )
    try:
        test = make_context(1_000, seed=23)
        chosen = np.array([np.argmax(p) for p in more.distribution(test)])
        assert (chosen == best_arm(test)).mean() > 0.9
    finally:
        more.close()


def test_vw_policy_load_refuses_tampered_model(vw_policy, tmp_path):
    path = vw_policy.save(tmp_path)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(PolicyContractError, match="hash"):
        VWKnobPolicy.load(tmp_path, CONFIG)


def test_vw_policy_load_refuses_other_arms(vw_policy, tmp_path):
    path = vw_policy.save(tmp_path)
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["arms"]["search"] = meta["arms"]["search"][:-1]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(PolicyContractError, match="search"):
        VWKnobPolicy.load(tmp_path, CONFIG)


def test_vw_policy_load_missing_directory(tmp_path):
    with pytest.raises(PolicyContractError, match="no policy"):
        VWKnobPolicy.load(tmp_path, CONFIG)


def naive_summary(ages, categories, fresh_days=7.0):
    fresh, entropy = [], []
    for age_row, cat_row in zip(ages, categories, strict=True):
        fresh.append(sum(a < fresh_days for a in age_row) / len(age_row))
        h = 0.0
        for c in set(cat_row):
            p = list(cat_row).count(c) / len(cat_row)
            h -= p * np.log(p)
        entropy.append(h)
    return np.array(fresh), np.array(entropy)


@pytest.mark.parametrize("spacing", [3, 100_003])  # small ids counted directly; sparse ids densified
def test_candidate_summary_matches_naive_reference(spacing):
    rng = np.random.default_rng(0)
    ages = rng.exponential(10, size=(50, 30))
    categories = rng.integers(0, 7, size=(50, 30)) * spacing
    fresh, entropy = candidate_summary(ages, categories)
    ref_fresh, ref_entropy = naive_summary(ages, categories)
    np.testing.assert_allclose(fresh, ref_fresh)
    np.testing.assert_allclose(entropy, ref_entropy)


def test_candidate_summary_closed_forms():
    fresh, entropy = candidate_summary(np.zeros((2, 4)), np.array([[1, 1, 1, 1], [0, 1, 2, 3]]))
    np.testing.assert_allclose(fresh, [1.0, 1.0])
    np.testing.assert_allclose(entropy, [0.0, np.log(4)])
    fresh, entropy = candidate_summary(np.zeros((3, 0)), np.zeros((3, 0), dtype=int))
    assert fresh.shape == entropy.shape == (3,)


def test_vw_policy_load_refuses_another_feature_format(vw_policy, tmp_path):
    path = vw_policy.save(tmp_path)
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["feature_format"] = "older-format"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(PolicyContractError, match="feature format"):
        VWKnobPolicy.load(tmp_path, CONFIG)
