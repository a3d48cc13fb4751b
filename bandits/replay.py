"""Offline replay of knob policies on the decision log: target distributions and the replay table.

The logged decisions become a `bandits.ope.LoggedBandit` (action = arm index in the current config, group =
section, context = `bandits.learn.context_matrix`); a target policy gives its arm distribution at every logged
context, padded to the largest section's arm count (arms a section does not have get probability 0).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from bandits.base import KnobPolicy
from bandits.errors import PolicySpecError
from bandits.learn import LoggedDecisions, context_matrix
from bandits.ope import BaseRewardModel, LoggedBandit, evaluate
from bandits.policies import EpsilonGreedyPolicy, ExploringPolicy, FixedArmPolicy, UniformPolicy
from bandits.shipped import ShippedPolicy, is_policy_dir, is_version_dir
from bandits.vw_policy import VWKnobPolicy
from heuristics import SectionsConfig

POLICY_SPECS = (
    "uniform",
    "logging",
    "default",
    "epsilon:EPS (epsilon-greedy around the default arms)",
    "fixed:SECTION=ARM[,SECTION=ARM...]",
    "explore:EPS:SPEC (the policy of SPEC mixed with EPS uniform exploration)",
    "PATH (a policy directory or policy-NNNN.vw file, a directory of shipped versions, or one version of it: "
    "DIR/versions/NNNN)",
)


def logged_bandit(decisions: LoggedDecisions, sections: SectionsConfig) -> LoggedBandit:
    """The logged decisions as generic logged bandit data, grouped by section."""
    context, names = context_matrix(decisions.context)
    return LoggedBandit(
        action=decisions.arm_index,
        reward=decisions.reward,
        pscore=decisions.propensity,
        context=context,
        group=np.asarray(decisions.context.section, dtype=object),
        n_actions=max(len(s.arms) for s in sections),
        context_names=names,
    )


def _pad(probs: list[np.ndarray], width: int) -> np.ndarray:
    out = np.zeros((len(probs), width))
    for i, p in enumerate(probs):
        out[i, : len(p)] = p
    return out


def target_distribution(
    policy: KnobPolicy | str, decisions: LoggedDecisions, sections: SectionsConfig
) -> np.ndarray:
    """(B, A) the target's arm distribution at each logged context; ``"logging"`` is the logged one."""
    width = max(len(s.arms) for s in sections)
    if isinstance(policy, str):
        if policy != "logging":
            raise PolicySpecError(f"Expected a KnobPolicy or 'logging', found {policy!r}")
        return _pad(decisions.arm_probs, width)
    return _pad(policy.distribution(decisions.context), width)


def parse_policy(spec: str, sections: SectionsConfig) -> KnobPolicy | str:
    """A target policy from its spec (see `POLICY_SPECS`)."""
    if spec == "uniform":
        return UniformPolicy(sections)
    if spec == "logging":
        return "logging"
    if spec == "default":
        return FixedArmPolicy(sections)
    if spec.startswith("epsilon:"):
        try:
            return EpsilonGreedyPolicy(sections, float(spec[len("epsilon:") :]))
        except ValueError:
            raise PolicySpecError(f"policy {spec!r}: expected epsilon:EPS with EPS in [0, 1]") from None
    if spec.startswith("explore:"):
        share, _, inner = spec[len("explore:") :].partition(":")
        try:
            epsilon = float(share)
        except ValueError:
            raise PolicySpecError(f"policy {spec!r}: expected explore:EPS:SPEC with EPS in [0, 1]") from None
        base = parse_policy(inner, sections)
        if not isinstance(base, KnobPolicy):
            raise PolicySpecError(f"policy {spec!r}: {inner!r} cannot be mixed with exploration")
        return ExploringPolicy(base, epsilon)
    if spec.startswith("fixed:"):
        arms: dict[str, str | int] = {}
        for part in filter(None, spec[len("fixed:") :].split(",")):
            if "=" not in part:
                raise PolicySpecError(f"policy {spec!r}: expected SECTION=ARM, found {part!r}")
            section, ref = part.split("=", 1)
            sections[section]  # unknown sections raise ConfigError naming them
            arms[section] = int(ref) if ref.lstrip("-").isdigit() else ref
        return FixedArmPolicy(sections, arms)
    if is_policy_dir(spec):
        return ShippedPolicy.load(spec, sections)
    if is_version_dir(spec):
        path = Path(spec)
        return ShippedPolicy.load(path.parent.parent, sections, version=path.name)
    return VWKnobPolicy.load(spec, sections)


def replay_table(
    decisions: LoggedDecisions,
    sections: SectionsConfig,
    policies: Mapping[str, KnobPolicy | str],
    *,
    estimators: tuple[str, ...] = ("ips", "snips", "dm", "dr", "replay"),
    reward_model: BaseRewardModel | None = None,
    n_folds: int = 3,
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> pd.DataFrame:
    """Estimates of every policy's value per section and overall, with intervals and diagnostics.

    One `evaluate` per policy (its estimators share one cross-fitted reward model and the same resamples);
    each policy is one step of `progress` (e.g. a progress bar). Rows come policy by policy, each policy's
    as `evaluate` orders them, with a first column ``policy``.
    """
    logged = logged_bandit(decisions, sections)
    frames = []
    for name in progress(list(policies)) if progress else policies:
        table = evaluate(
            logged,
            target_distribution(policies[name], decisions, sections),
            estimators=estimators,
            reward_model=reward_model,
            n_folds=n_folds,
            n_bootstrap=n_bootstrap,
            alpha=alpha,
            seed=seed,
        )
        table.insert(0, "policy", name)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)
