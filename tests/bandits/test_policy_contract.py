"""The contract every knob policy keeps, over one list of every `KnobPolicy` implementation in `bandits` and
its configurations (`POLICIES`): fixed arms, uniform, epsilon-greedy, and the VW bandit under each of its
explorations, fitted on a small decision batch.

- empty input: a context of 0 rows gives 0 distributions and 0 choices;
- valid distributions: one per request, as long as its section's arm list, non-negative, summing to 1; a
  choice's propensity is exactly the probability of the drawn arm, and positive;
- row order: the distribution of a permuted context is the permuted distribution. `choose` draws one uniform
  per request, in the order given: with the same seed, the request at position j gets the j-th uniform,
  whichever request stands there. So on a permuted context the probabilities and the draws' inverse-CDF rule
  carry over exactly, and the arms are those the permuted requests' distributions give at the same uniforms
  (not the original arms permuted);
- determinism: the same context and seed give the same arms, propensities and distributions;
- sections mixed in one batch get exactly the distributions each section's requests get alone;
- round trip: every policy is rebuilt from the spec the CLI and the service take (`parse_policy`): a name or
  parameters for the stateless ones, the saved file for VW, with identical distributions.
"""

from __future__ import annotations

import importlib
import pkgutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import bandits
from bandits.base import KnobPolicy
from bandits.policies import (
    EpsilonGreedyPolicy,
    ExploringPolicy,
    FixedArmPolicy,
    MixturePolicy,
    UniformPolicy,
)
from bandits.replay import parse_policy
from bandits.shipped import ShippedPolicy, publish_version
from bandits.vw_policy import EXPLORATIONS, VWKnobPolicy, VWSettings
from tests.bandits.policy_factories import CONFIG, fitted_vw, make_context


@dataclass(frozen=True)
class PolicyCase:
    """A configured policy: how to build it, and the spec that rebuilds it (given the built policy and a
    directory to save into)."""

    build: Callable[[], KnobPolicy]
    spec: Callable[[KnobPolicy, Path], str] | None


def _vw_case(exploration: str) -> PolicyCase:
    return PolicyCase(
        build=lambda: fitted_vw(VWSettings(exploration=exploration), n=3_000),
        spec=lambda policy, directory: str(policy.save(directory)),
    )


def _shipped() -> ShippedPolicy:
    """A shipped version: the VW bandit in discover and search, fixed arms elsewhere."""
    root = Path(tempfile.mkdtemp(prefix="shipped-contract-"))
    learned = fitted_vw(VWSettings(factored=True, cells=True), n=3_000)
    model = learned.save(root / "candidates")
    learned.close()
    sources = {
        s.name: {"kind": "vw", "model": "model-x.vw", "from": "candidate"}
        if s.name in ("discover", "search")
        else {"kind": "fixed", "arm": s.arms[-1].id, "from": "best_fixed_logged"}
        for s in CONFIG
    }
    (root / "candidates" / "model-x.vw").write_bytes(model.read_bytes())
    (root / "candidates" / "model-x.json").write_bytes(model.with_suffix(".json").read_bytes())
    publish_version(root / "policy", sources, {"model-x.vw": root / "candidates" / "model-x.vw"}, {})
    return ShippedPolicy.load(root / "policy", CONFIG)


POLICIES: dict[str, PolicyCase] = {
    "fixed-default": PolicyCase(lambda: FixedArmPolicy(CONFIG), lambda p, d: "default"),
    "fixed-last": PolicyCase(
        lambda: FixedArmPolicy(CONFIG, {s.name: -1 for s in CONFIG}),
        lambda p, d: "fixed:" + ",".join(f"{s.name}=-1" for s in CONFIG),
    ),
    "uniform": PolicyCase(lambda: UniformPolicy(CONFIG), lambda p, d: "uniform"),
    "epsilon-0.3": PolicyCase(lambda: EpsilonGreedyPolicy(CONFIG, epsilon=0.3), lambda p, d: "epsilon:0.3"),
    "epsilon-0": PolicyCase(lambda: EpsilonGreedyPolicy(CONFIG, epsilon=0.0), lambda p, d: "epsilon:0"),
    **{f"vw-{exploration}": _vw_case(exploration) for exploration in EXPLORATIONS},
    "vw-cells": PolicyCase(
        build=lambda: fitted_vw(VWSettings(factored=True, cells=True), n=3_000),
        spec=lambda policy, directory: str(policy.save(directory)),
    ),
    "vw-every-learner-setting": PolicyCase(
        build=lambda: fitted_vw(
            VWSettings(factored=True, section_interactions=True, passes=3, cb_type="dr", l2=1e-6), n=3_000
        ),
        spec=lambda policy, directory: str(policy.save(directory)),
    ),
    # A canary's mixture is built in code (simulator.compare_knobs), not from a spec.
    "mixture-canary": PolicyCase(
        lambda: MixturePolicy(
            {
                "fixed": FixedArmPolicy(CONFIG, {s.name: -1 for s in CONFIG}),
                "epsilon": EpsilonGreedyPolicy(CONFIG, epsilon=0.3),
                "uniform": UniformPolicy(CONFIG),
            },
            {"fixed": 0.45, "epsilon": 0.45, "uniform": 0.1},
        ),
        None,
    ),
    "shipped": PolicyCase(build=_shipped, spec=lambda policy, directory: str(policy.root.parents[1])),
    "explore-0.2-fixed-last": PolicyCase(
        lambda: ExploringPolicy(FixedArmPolicy(CONFIG, {s.name: -1 for s in CONFIG}), 0.2),
        lambda p, d: "explore:0.2:fixed:" + ",".join(f"{s.name}=-1" for s in CONFIG),
    ),
}


@pytest.fixture(scope="module")
def built():
    """Each configured policy, built once (VW fits take a moment)."""
    policies = {name: case.build() for name, case in POLICIES.items()}
    yield policies
    for policy in policies.values():
        if hasattr(policy, "close"):
            policy.close()


def naive_draw(probs: np.ndarray, uniform: float) -> int:
    """The inverse-CDF draw: the first arm whose cumulative probability exceeds `uniform` (the last arm
    closes the interval)."""
    total = 0.0
    for arm, p in enumerate(probs[:-1]):
        total += p
        if uniform < total:
            return arm
    return len(probs) - 1


def test_policy_list_holds_every_knob_policy_of_bandits(built) -> None:
    for module in pkgutil.walk_packages(bandits.__path__, "bandits."):
        importlib.import_module(module.name)
    implementations, pending = set(), [KnobPolicy]
    while pending:
        for cls in pending.pop().__subclasses__():
            pending.append(cls)
            if cls.__module__.startswith("bandits."):
                implementations.add(cls)
    assert {type(policy) for policy in built.values()} == implementations
    vw = {policy.settings.exploration for policy in built.values() if isinstance(policy, VWKnobPolicy)}
    assert vw == set(EXPLORATIONS)


# -- empty input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(POLICIES))
def test_policy_empty_context_gives_no_choices(built, name: str) -> None:
    policy, empty = built[name], make_context(0)
    assert policy.distribution(empty) == []
    choice = policy.choose(empty, np.random.default_rng(0))
    assert choice.arm_index.shape == choice.propensity.shape == (0,)
    assert choice.arm_index.dtype == np.int64
    assert choice.probs == []


# -- valid distributions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(POLICIES))
def test_policy_distribution_is_a_distribution_over_the_sections_arms(built, name: str) -> None:
    context = make_context(300)
    probs = built[name].distribution(context)
    assert len(probs) == len(context)
    for section, p in zip(context.section, probs, strict=True):
        assert p.shape == (len(CONFIG[section].arms),)
        assert (p >= 0).all()
        assert p.sum() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("name", list(POLICIES))
def test_policy_choose_logs_the_exact_propensity_of_the_drawn_arm(built, name: str) -> None:
    context = make_context(300)
    choice = built[name].choose(context, np.random.default_rng(5))
    for b, section in enumerate(context.section):
        assert 0 <= choice.arm_index[b] < len(CONFIG[section].arms)
        assert choice.propensity[b] == choice.probs[b][choice.arm_index[b]]
        assert 0 < choice.propensity[b] <= 1


@pytest.mark.parametrize("name", list(POLICIES))
def test_policy_choose_draws_by_inverse_cdf_one_uniform_per_request_in_order(built, name: str) -> None:
    context = make_context(200, seed=1)
    choice = built[name].choose(context, np.random.default_rng(7))
    uniforms = np.random.default_rng(7).random(len(context))
    expected = [naive_draw(p, u) for p, u in zip(choice.probs, uniforms, strict=True)]
    assert choice.arm_index.tolist() == expected


@pytest.mark.parametrize("name", list(POLICIES))
def test_policy_choose_frequencies_follow_the_distribution(built, name: str) -> None:
    """One request repeated: drawn arm frequencies within 4 standard errors of its distribution."""
    n = 20_000
    one = make_context(1, seed=3, section="search")
    context = one.take(np.zeros(n, dtype=np.int64))
    choice = built[name].choose(context, np.random.default_rng(3))
    expected = built[name].distribution(one)[0]
    observed = np.bincount(choice.arm_index, minlength=len(expected)) / n
    tolerance = 4 * np.sqrt(expected * (1 - expected) / n)
    assert (np.abs(observed - expected) <= tolerance + 1e-12).all()


# -- row order ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(POLICIES))
def test_policy_distribution_of_permuted_context_is_permuted(built, name: str) -> None:
    context = make_context(120, seed=2)
    perm = np.random.default_rng(4).permutation(len(context))
    before = built[name].distribution(context)
    after = built[name].distribution(context.take(perm))
    for j, row in enumerate(perm):
        np.testing.assert_array_equal(after[j], before[row])


@pytest.mark.parametrize("name", list(POLICIES))
def test_policy_choose_on_permuted_context_permutes_probabilities_and_keeps_the_uniforms(
    built, name: str
) -> None:
    context = make_context(120, seed=2)
    perm = np.random.default_rng(4).permutation(len(context))
    before = built[name].choose(context, np.random.default_rng(11))
    after = built[name].choose(context.take(perm), np.random.default_rng(11))
    uniforms = np.random.default_rng(11).random(len(context))
    for j, row in enumerate(perm):
        np.testing.assert_array_equal(after.probs[j], before.probs[row])
        # Position j draws with the j-th uniform, from the distribution of the request now standing there.
        assert after.arm_index[j] == naive_draw(before.probs[row], uniforms[j])
        assert after.propensity[j] == before.probs[row][after.arm_index[j]]


# -- determinism --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(POLICIES))
def test_policy_same_context_same_seed_same_choice(built, name: str) -> None:
    context = make_context(200)
    first = built[name].choose(context, np.random.default_rng(9))
    second = built[name].choose(context, np.random.default_rng(9))
    np.testing.assert_array_equal(first.arm_index, second.arm_index)
    np.testing.assert_array_equal(first.propensity, second.propensity)
    for a, b in zip(first.probs, second.probs, strict=True):
        np.testing.assert_array_equal(a, b)


# -- sections mixed in one batch ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(POLICIES))
def test_policy_mixed_sections_batch_equals_each_section_alone(built, name: str) -> None:
    context = make_context(240, seed=6)
    together = built[name].distribution(context)
    assert len(set(context.section)) == len(CONFIG.sections)
    for section in CONFIG.sections:
        rows = np.flatnonzero(context.section == section)
        alone = built[name].distribution(context.take(rows))
        for row, p in zip(rows, alone, strict=True):
            np.testing.assert_array_equal(together[row], p)


# -- round trip ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n, case in POLICIES.items() if case.spec is not None])
def test_policy_rebuilt_from_its_spec_gives_identical_distributions(built, name: str, tmp_path) -> None:
    policy = built[name]
    spec = POLICIES[name].spec
    assert spec is not None
    rebuilt = parse_policy(spec(policy, tmp_path), CONFIG)
    try:
        assert type(rebuilt) is type(policy)
        context = make_context(150, seed=8)
        for a, b in zip(policy.distribution(context), rebuilt.distribution(context), strict=True):
            np.testing.assert_array_equal(a, b)
    finally:
        if hasattr(rebuilt, "close"):
            rebuilt.close()
