"""A contextual bandit over each section's knob arms, built on Vowpal Wabbit ``--cb_explore_adf``.

One VW workspace serves every section: the shared namespace holds the request context (section, user segment,
device, hour bucket, the candidate set's fresh share and category entropy), each action line holds one arm
(its id and its numeric knob values), and ``-q UA`` crosses the two, so the learned choice depends on the
context. Exploration is VW's (epsilon-greedy, softmax or SquareCB); the arm is drawn from VW's distribution
with the caller's seeded generator (`KnobPolicy.choose`).

Learning follows scikit-learn's contract: `__init__` stores settings, `fit` learns from logged decisions and
returns self, learned state ends in ``_``; predicting before fitting raises `NotFittedError`.
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import vowpalwabbit

from bandits.base import KnobPolicy
from bandits.context import PolicyContext
from bandits.vw_format import (
    ACTION_NS,
    INTERACTIONS,
    Feature,
    action_line,
    labelled_blocks,
    shared_lines,
)
from heuristics import SectionsConfig

EXPLORATIONS = ("epsilon", "softmax", "squarecb")


class NotFittedError(RuntimeError):
    """The policy was asked to predict before it was fitted or loaded."""


@dataclass(frozen=True)
class VWSettings:
    """VW options of a knob policy; they are stored with the model and must agree at load."""

    exploration: str = "epsilon"
    epsilon: float = 0.05
    softmax_lambda: float = 10.0
    squarecb_gamma: float = 10.0
    bits: int = 18
    learning_rate: float = 0.5
    interactions: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.exploration not in EXPLORATIONS:
            raise ValueError(
                f"Expected `exploration` in {', '.join(EXPLORATIONS)}, found {self.exploration!r}"
            )
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"Expected `epsilon` in [0, 1], found {self.epsilon!r}")
        if not 1 <= self.bits <= 30:
            raise ValueError(f"Expected `bits` in [1, 30], found {self.bits!r}")

    def arguments(self) -> list[str]:
        args = [
            "--cb_explore_adf",
            "--quiet",
            f"--bit_precision={self.bits}",
            f"--random_seed={self.seed}",
            f"--learning_rate={self.learning_rate!r}",
        ]
        if self.interactions:
            args += [f"--quadratic={pair}" for pair in INTERACTIONS]
        if self.exploration == "epsilon":
            args.append(f"--epsilon={self.epsilon!r}")
        elif self.exploration == "softmax":
            args += ["--softmax", f"--lambda={self.softmax_lambda!r}"]
        else:
            args += ["--squarecb", f"--gamma_scale={self.squarecb_gamma!r}"]
        return args


def arm_action_lines(sections: SectionsConfig) -> dict[str, list[str]]:
    """Each section's action lines: the arm id as an indicator and every knob as a number."""
    return {
        s.name: [
            action_line([Feature("arm", arm.id)] + [Feature(name, float(v)) for name, v in arm.knobs.items()])
            for arm in s.arms
        ]
        for s in sections
    }


def context_lines(context: PolicyContext) -> pd.Series:
    """The shared lines of B requests."""
    return shared_lines(
        {
            "section": context.section,
            "segment": context.segment,
            "device": context.device,
            "hour": context.hour_bucket(),
            "fresh_share": np.asarray(context.fresh_share, dtype=np.float64),
            "category_entropy": np.asarray(context.category_entropy, dtype=np.float64),
        }
    )


class VWKnobPolicy(KnobPolicy):
    """Contextual bandit over knob arms; one VW workspace for all sections."""

    def __init__(self, sections: SectionsConfig, settings: VWSettings | None = None) -> None:
        super().__init__(sections)
        self.settings = settings or VWSettings()
        self.actions = arm_action_lines(sections)
        self._lock = threading.Lock()

    # -- learning ---------------------------------------------------------------------------------------
    def fit(
        self,
        context: PolicyContext,
        arm_index: np.ndarray,
        reward: np.ndarray,
        propensity: np.ndarray,
        *,
        warm_start: str | os.PathLike | None = None,
    ) -> VWKnobPolicy:
        """Learn from B logged decisions (one pass, VW's own file reader).

        Parameters
        ----------
        context : PolicyContext of B requests
        arm_index : (B,) int
            The logged arm of each decision.
        reward : (B,) float
            Its reward (cost = -reward is applied by `bandits.vw_format`).
        propensity : (B,) float in (0, 1]
            The probability the logging policy chose that arm with.
        warm_start : path, optional
            A model file to continue from (its options are used; they must match `settings`).
        """
        arm_index = np.asarray(arm_index, dtype=np.int64)
        for section in np.unique(context.section):
            n_arms = len(self.sections[str(section)].arms)
            rows = context.section == section
            if rows.any() and (arm_index[rows].min() < 0 or arm_index[rows].max() >= n_arms):
                raise ValueError(f"Expected arm indices in [0, {n_arms}) for section {section!r}")
        text = labelled_blocks(
            context_lines(context), context.section, arm_index, reward, propensity, self.actions
        )
        with tempfile.TemporaryDirectory(prefix="sectionrank-vw-") as tmp:
            data, model = os.path.join(tmp, "train.vw.txt"), os.path.join(tmp, "model.vw")
            with open(data, "w", encoding="utf-8") as handle:
                handle.write(text)
            if warm_start is not None:
                args = ["--quiet", f"--initial_regressor={os.fspath(warm_start)}", "--save_resume"]
            else:
                args = [*self.settings.arguments(), "--save_resume"]
            workspace = vowpalwabbit.Workspace(
                " ".join([*args, f"--data={data}", f"--final_regressor={model}", "--no_stdin"])
            )
            workspace.run_parser()
            examples = workspace.get_weighted_examples()
            self.progressive_loss_ = workspace.get_sum_loss() / examples if examples else float("nan")
            self.n_examples_ = int(examples)
            workspace.finish()
            with open(model, "rb") as handle:
                self.model_bytes_ = handle.read()
        self._open_workspace()
        return self

    def _open_workspace(self) -> None:
        old = getattr(self, "workspace_", None)
        fd, path = tempfile.mkstemp(prefix="sectionrank-policy-", suffix=".vw")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(self.model_bytes_)
            self.workspace_ = vowpalwabbit.Workspace(f"--quiet --initial_regressor={path}")
        finally:
            os.unlink(path)
        if old is not None:
            old.finish()

    def close(self) -> None:
        """Release the VW workspace."""
        workspace = getattr(self, "workspace_", None)
        if workspace is not None:
            workspace.finish()
            del self.workspace_

    # -- predicting -------------------------------------------------------------------------------------
    def _section_distribution(self, section: str, context: PolicyContext) -> np.ndarray:
        if not hasattr(self, "workspace_"):
            raise NotFittedError("This VWKnobPolicy is not fitted yet: call fit() or load() first")
        actions = self.actions[section]
        shared = context_lines(context)
        probs = np.empty((len(context), len(actions)))
        with self._lock:
            for i, line in enumerate(shared):
                probs[i] = self.workspace_.predict([line, *actions])
        return probs / probs.sum(axis=1, keepdims=True)

    def settings_dict(self) -> dict:
        return asdict(self.settings)


__all__ = ["ACTION_NS", "NotFittedError", "VWKnobPolicy", "VWSettings"]
