"""Request contexts, a synthetic truth and fitted VW policies, shared by the knob-policy tests."""

from __future__ import annotations

import numpy as np

from bandits.context import PolicyContext
from bandits.policies import UniformPolicy
from bandits.vw_policy import VWKnobPolicy, VWSettings
from heuristics import SectionsConfig

CONFIG = SectionsConfig.load()


def make_context(n: int, seed: int = 0, *, section: str | None = None) -> PolicyContext:
    """n requests spread over every section of `CONFIG` (or all of one `section`)."""
    rng = np.random.default_rng(seed)
    sections = [s.name for s in CONFIG] if section is None else [section]
    return PolicyContext(
        section=rng.choice(sections, n),
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
    """A VW policy fitted on n uniformly logged decisions rewarded 1 for the `best_arm`."""
    context = make_context(n, seed=1)
    logged = UniformPolicy(CONFIG).choose(context, np.random.default_rng(2))
    reward = (logged.arm_index == best_arm(context)).astype(float)
    return VWKnobPolicy(CONFIG, settings).fit(context, logged.arm_index, reward, logged.propensity)
