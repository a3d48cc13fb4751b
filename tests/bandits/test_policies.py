"""What each knob policy does beyond the shared contract (test_policy_contract.py): epsilon-greedy's closed
form, and the VW bandit's learning, exploration floor, versions, warm start and refused artifacts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bandits.errors import InvalidArgumentError, NotFittedError, PolicyContractError
from bandits.policies import EpsilonGreedyPolicy, ExploringPolicy, MixturePolicy, UniformPolicy
from bandits.vw_policy import VWKnobPolicy, VWSettings, arm_action_lines
from tests.bandits.policy_factories import CONFIG, best_arm, fitted_vw, make_context


@pytest.fixture(scope="module")
def vw_policy():
    policy = fitted_vw()
    yield policy
    policy.close()


def test_epsilon_greedy_default_arm_probability() -> None:
    context = make_context(50)
    probs = EpsilonGreedyPolicy(CONFIG, epsilon=0.2).distribution(context)
    for section, p in zip(context.section, probs, strict=True):
        cfg = CONFIG[section]
        assert p[cfg.default_arm.index] == pytest.approx(0.8 + 0.2 / len(cfg.arms))
        others = np.delete(p, cfg.default_arm.index)
        np.testing.assert_allclose(others, 0.2 / len(cfg.arms))


# Invalid policy options: out of their domain.
INVALID_OPTIONS = [
    (lambda: EpsilonGreedyPolicy(CONFIG, epsilon=1.5), r"Expected `epsilon` in \[0, 1\], found 1.5"),
    (lambda: VWSettings(exploration="bagging"), r"Expected `exploration` in epsilon, softmax, squarecb"),
    (lambda: VWSettings(epsilon=-0.1), r"Expected `epsilon` in \[0, 1\], found -0.1"),
    (lambda: VWSettings(bits=31), r"Expected `bits` in \[1, 30\], found 31"),
    (lambda: VWSettings(cb_type="dm"), r"Expected `cb_type` in mtr, dr, ips, found 'dm'"),
    (lambda: VWSettings(passes=0), r"Expected `passes` in \[1, 100\], found 0"),
    (lambda: VWSettings(l2=-1.0), r"Expected `l2` >= 0, found -1.0"),
]


@pytest.mark.parametrize(("build", "match"), INVALID_OPTIONS)
def test_policy_options_out_of_domain_raise(build: Callable[[], object], match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        build()


def test_vw_policy_fit_refuses_arm_outside_the_section() -> None:
    context = make_context(20, section="search")
    arms = np.full(20, len(CONFIG["search"].arms))
    with pytest.raises(
        InvalidArgumentError, match=r"Expected `arm_index` in \[0, \d+\) for section 'search'"
    ):
        VWKnobPolicy(CONFIG).fit(context, arms, np.ones(20), np.full(20, 0.5))


def test_vw_policy_learns_context_dependent_arms(vw_policy) -> None:
    context = make_context(2_000, seed=11)
    chosen = np.array([np.argmax(p) for p in vw_policy.distribution(context)])
    assert (chosen == best_arm(context)).mean() > 0.9


def test_vw_policy_epsilon_floor(vw_policy) -> None:
    context = make_context(100, seed=12)
    for section, p in zip(context.section, vw_policy.distribution(context), strict=True):
        assert p.min() >= 0.05 / len(CONFIG[section].arms) - 1e-6


def test_vw_policy_not_fitted_raises(tmp_path: Path) -> None:
    with pytest.raises(NotFittedError, match=r"VWKnobPolicy: call fit or load before distribution"):
        VWKnobPolicy(CONFIG).distribution(make_context(3))
    with pytest.raises(NotFittedError, match=r"VWKnobPolicy: call fit or load before save"):
        VWKnobPolicy(CONFIG).save(tmp_path)


def test_vw_policy_save_numbers_versions_and_keeps_metadata(vw_policy, tmp_path: Path) -> None:
    path = vw_policy.save(tmp_path, {"reward": "clicks"})
    assert path.name == "policy-0001.vw"
    loaded = VWKnobPolicy.load(tmp_path, CONFIG)
    try:
        assert loaded.metadata_["reward"] == "clicks"
        assert loaded.version == "vw-policy-0001"
        assert loaded.settings == vw_policy.settings
    finally:
        loaded.close()
    assert vw_policy.save(tmp_path).name == "policy-0002.vw"
    assert VWKnobPolicy(CONFIG).version == "vw-policy-unsaved"


def test_vw_policy_continues_from_previous_model(vw_policy, tmp_path: Path) -> None:
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


def _edit_metadata(path: Path, change: Callable[[dict], None]) -> None:
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    change(meta)
    meta_path.write_text(json.dumps(meta))


# Saved policies that must be refused at load: (what to do to the saved file, expected message).
INVALID_ARTIFACTS = [
    (lambda path: path.write_bytes(path.read_bytes()[:-1] + b"\x00"), r"content hash does not match"),
    (
        lambda path: _edit_metadata(path, lambda m: m["arms"].update(search=m["arms"]["search"][:-1])),
        r"arms of section 'search' differ from the sections config",
    ),
    (
        lambda path: _edit_metadata(path, lambda m: m.update(feature_format="older-format")),
        r"written in feature format 'older-format'",
    ),
    (
        # A model learned with factored knob features, whose settings were edited to claim the plain format.
        lambda path: _edit_metadata(path, lambda m: m["settings"].update(factored=True)),
        r"written in feature format 'context-v1\+arm-id-knob-values-v1', this code writes "
        r"'context-v1\+arm-id-knob-indicators-v1'",
    ),
    (
        lambda path: _edit_metadata(path, lambda m: m.update(vowpalwabbit="8.11.0")),
        r"saved with vowpalwabbit 8.11.0, installed 9\.",
    ),
    (lambda path: path.with_suffix(".json").unlink(), r"no policy-NNNN\.vw with its metadata"),
]


@pytest.mark.parametrize(("damage", "match"), INVALID_ARTIFACTS)
def test_vw_policy_load_refuses_damaged_artifact(vw_policy, tmp_path: Path, damage, match: str) -> None:
    damage(vw_policy.save(tmp_path))
    with pytest.raises(PolicyContractError, match=match):
        VWKnobPolicy.load(tmp_path, CONFIG)


def test_vw_policy_load_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(PolicyContractError, match=r"no policy-NNNN\.vw with its metadata"):
        VWKnobPolicy.load(tmp_path, CONFIG)
    with pytest.raises(PolicyContractError, match=r"nowhere: no such policy file or directory"):
        VWKnobPolicy.load(tmp_path / "nowhere", CONFIG)


def test_vw_factored_action_lines_share_knob_value_indicators() -> None:
    plain = arm_action_lines(CONFIG)
    factored = arm_action_lines(CONFIG, factored=True)
    for section in CONFIG:
        for arm, line, other in zip(section.arms, plain[section.name], factored[section.name], strict=True):
            ident = f"arm={arm.id}"
            assert line.split()[1:] == [ident] + [f"{name}:{float(v)!r}" for name, v in arm.knobs.items()]
            assert other.split()[1:] == [ident] + [f"{name}={float(v)!r}" for name, v in arm.knobs.items()]
    # The indicator of one knob value is the same feature in every arm (and section) that has it.
    lines = [line for section_lines in factored.values() for line in section_lines]
    with_zero = [line for line in lines if "freshness.weight=0.0" in line.split()]
    arms = [arm for section in CONFIG for arm in section.arms if arm.knobs.get("freshness.weight") == 0]
    assert len(with_zero) == len(arms) > len(CONFIG.sections)


def test_exploring_policy_mixes_uniform_exploration_into_the_inner_distribution():
    context = make_context(50, seed=3)
    inner = EpsilonGreedyPolicy(CONFIG, epsilon=0.1)
    mixed = ExploringPolicy(inner, 0.3)
    for p_in, p_out in zip(inner.distribution(context), mixed.distribution(context), strict=True):
        # A naive reference: every arm's probability, one at a time.
        expected = [0.7 * p + 0.3 / len(p_in) for p in p_in.tolist()]
        np.testing.assert_allclose(p_out, expected, rtol=1e-12)
        assert p_out.min() >= 0.3 / len(p_in) - 1e-12
    assert mixed.version == "EpsilonGreedyPolicy+explore=0.3"
    with pytest.raises(InvalidArgumentError, match="epsilon"):
        ExploringPolicy(inner, 1.5)


def test_mixture_policy_is_the_weighted_sum_of_its_policies():
    context = make_context(40, seed=5)
    parts = {"a": EpsilonGreedyPolicy(CONFIG, epsilon=0.1), "b": UniformPolicy(CONFIG)}
    mixed = MixturePolicy(parts, {"a": 0.75, "b": 0.25})
    first, second = parts["a"].distribution(context), parts["b"].distribution(context)
    for p_a, p_b, p_out in zip(first, second, mixed.distribution(context), strict=True):
        expected = [0.75 * x + 0.25 * y for x, y in zip(p_a.tolist(), p_b.tolist(), strict=True)]
        np.testing.assert_allclose(p_out, expected, rtol=1e-12)
        assert p_out.sum() == pytest.approx(1.0)
    assert mixed.version == "mix(a=0.75,b=0.25)"
    with pytest.raises(InvalidArgumentError, match="sum to 1"):
        MixturePolicy(parts, {"a": 0.5, "b": 0.4})
    with pytest.raises(InvalidArgumentError, match="one weight per policy"):
        MixturePolicy(parts, {"a": 1.0})
