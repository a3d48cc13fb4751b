"""Fixed knob policies: one arm always, uniform random, and epsilon-greedy around a default arm; and
`ExploringPolicy`, any policy mixed with uniform exploration.

They serve as logging policies (the simulator explores with them), as baselines, and as replay targets.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bandits.base import KnobPolicy
from bandits.context import PolicyContext
from bandits.errors import InvalidArgumentError
from heuristics import SectionsConfig


class FixedArmPolicy(KnobPolicy):
    """Always the given arm of each section (the section's default arm where none is given)."""

    def __init__(self, sections: SectionsConfig, arms: Mapping[str, str | int] | None = None) -> None:
        super().__init__(sections)
        arms = dict(arms or {})
        self.arm_index = {
            s.name: s.arm(arms[s.name]).index if s.name in arms else s.default_arm.index for s in sections
        }

    def _section_distribution(self, section: str, context: PolicyContext) -> np.ndarray:
        n_arms = len(self.sections[section].arms)
        probs = np.zeros((len(context), n_arms))
        probs[:, self.arm_index[section]] = 1.0
        return probs


class UniformPolicy(KnobPolicy):
    """Every arm of the section with the same probability."""

    def _section_distribution(self, section: str, context: PolicyContext) -> np.ndarray:
        n_arms = len(self.sections[section].arms)
        return np.full((len(context), n_arms), 1.0 / n_arms)


class EpsilonGreedyPolicy(KnobPolicy):
    """The default arm with probability 1 - epsilon + epsilon / A, every other arm epsilon / A."""

    def __init__(self, sections: SectionsConfig, epsilon: float = 0.2) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise InvalidArgumentError(f"Expected `epsilon` in [0, 1], found {epsilon!r}")
        super().__init__(sections)
        self.epsilon = float(epsilon)

    def _section_distribution(self, section: str, context: PolicyContext) -> np.ndarray:
        cfg = self.sections[section]
        n_arms = len(cfg.arms)
        probs = np.full((len(context), n_arms), self.epsilon / n_arms)
        probs[:, cfg.default_arm.index] += 1.0 - self.epsilon
        return probs


class ExploringPolicy(KnobPolicy):
    """Another policy mixed with uniform exploration: ``(1 - epsilon) * inner + epsilon / A`` on each arm.

    A served policy that ships a fixed arm logs decisions of propensity 1, from which no other arm can be
    learned or valued; the mixture keeps every arm's propensity at least ``epsilon / A``.
    """

    def __init__(self, inner: KnobPolicy, epsilon: float) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise InvalidArgumentError(f"Expected `epsilon` in [0, 1], found {epsilon!r}")
        super().__init__(inner.sections)
        self.inner = inner
        self.epsilon = float(epsilon)

    @property
    def version(self) -> str:
        """The inner policy's version with ``+explore=EPS``."""
        inner = str(getattr(self.inner, "version", type(self.inner).__name__))
        return f"{inner}+explore={self.epsilon:g}"

    def _section_distribution(self, section: str, context: PolicyContext) -> np.ndarray:
        probs = self.inner._section_distribution(section, context)
        return (1.0 - self.epsilon) * probs + self.epsilon / probs.shape[1]

    def close(self) -> None:
        """Release the inner policy's resources (a VW workspace)."""
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()


class MixturePolicy(KnobPolicy):
    """Several policies mixed with fixed weights: each arm's probability is ``sum_k w_k * pi_k(arm)``.

    A canary split served as one logging policy: for example a candidate and the arm it must beat on most of
    the traffic, with uniform exploration on the rest, so that both are valued on data close to their own
    (importance weights near 1 / w_k) instead of on uniform data (weights A).
    """

    def __init__(self, policies: Mapping[str, KnobPolicy], weights: Mapping[str, float]) -> None:
        if not policies or set(policies) != set(weights):
            raise InvalidArgumentError(
                f"Expected one weight per policy, found policies {sorted(policies)} and weights "
                f"{sorted(weights)}"
            )
        values = np.array([float(weights[k]) for k in policies])
        if not (np.all(values >= 0) and abs(values.sum() - 1.0) < 1e-9):
            raise InvalidArgumentError(f"Expected weights >= 0 that sum to 1, found {dict(weights)}")
        first = next(iter(policies.values()))
        super().__init__(first.sections)
        self.policies = dict(policies)
        self.weights = {k: float(weights[k]) for k in policies}

    @property
    def version(self) -> str:
        """``mix(name=weight,...)``."""
        return "mix(" + ",".join(f"{k}={w:g}" for k, w in self.weights.items()) + ")"

    def _section_distribution(self, section: str, context: PolicyContext) -> np.ndarray:
        return sum(
            w * self.policies[k]._section_distribution(section, context) for k, w in self.weights.items()
        )
