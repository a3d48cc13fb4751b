"""The knob policies of a comparison seed: the VW bandit learned from the log, and the best fixed arms.

`learn_bandit` learns the VW policy on the log's decisions before the test window (reward = clicks, the
shipped learn settings); `best_fixed_arms` serves every arm of every section through the pipeline on the
base ranker's scores of a tuning sample and keeps each section's arm with the most exact expected clicks.
`KnobPolicies` holds the three policies the strategies and the replay use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bandits.base import KnobPolicy
from bandits.learn import LearnSettings, learn_policy
from bandits.log import DecisionLog
from bandits.policies import FixedArmPolicy
from bandits.vw_policy import VWKnobPolicy, VWSettings
from heuristics import SectionsConfig
from ranker.model import RankerModel
from ranker.rerank.items import ItemAttributes
from simulator.compare_seed import BestFixedArm
from simulator.compare_settings import PRIMARY
from simulator.records import RequestBatch
from simulator.strategies import EvalSet, Strategy, StrategyRunner
from simulator.world import World


@dataclass(frozen=True)
class LearnedBandit:
    """The VW knob policy learned from a seed's log, and its saved file (plus its ``.json`` sidecar)."""

    policy: VWKnobPolicy
    path: Path

    @property
    def artifact_bytes(self) -> int:
        return self.path.stat().st_size + self.path.with_suffix(".json").stat().st_size


def learn_bandit(
    log_path: Path, sections: SectionsConfig, directory: Path, *, until: float, seed: int
) -> LearnedBandit:
    """Learn the VW knob policy on the logged decisions before `until`, saved into `directory`."""
    settings = LearnSettings(reward=PRIMARY, until=until, vw=VWSettings(seed=seed))
    with DecisionLog.open(log_path) as log:
        policy, path = learn_policy(log, sections, directory, settings)
    return LearnedBandit(policy=policy, path=path)


def best_fixed_arms(
    world: World,
    requests: RequestBatch,
    sections: SectionsConfig,
    items: ItemAttributes,
    rankers: Mapping[str, RankerModel],
    seed: int,
) -> dict[str, BestFixedArm]:
    """Each section's arm with the most exact expected clicks on `requests`, every arm served through the
    pipeline on the rankers' scores (a model scores a section once for every arm)."""
    eval_set = EvalSet.build(world, requests, sections)
    runner = StrategyRunner(eval_set, sections, items, seed)
    present = list(eval_set.rows)
    n_arms = {s: len(sections[s].arms) for s in present}
    values = {s: np.full(n_arms[s], -np.inf) for s in present}
    for arm in range(max(n_arms.values(), default=0)):
        covered = tuple(s for s in present if arm < n_arms[s])
        policy = FixedArmPolicy(sections, {s: arm for s in covered})
        run = runner.run(Strategy(f"arm-{arm}", rankers=rankers, policy=policy, sections=covered))
        for s in covered:
            part, _ = eval_set.part(s)
            slates = np.take_along_axis(part.candidates, run.order[s], axis=1)
            values[s][arm] = world.expected_outcomes(part, slates).clicks.mean()
    best = {}
    for s in sections.sections:
        if s in values:
            index = int(np.argmax(values[s]))
            best[s] = BestFixedArm(
                index=index, id=sections[s].arms[index].id, tuning_value=float(values[s][index])
            )
    return best


@dataclass(frozen=True)
class KnobPolicies:
    """The knob policies of the ``base+*`` and ``consolidated+bandit`` strategies.

    Attributes
    ----------
    bandit : KnobPolicy
        The learned VW policy (``base+bandit``, ``consolidated+bandit``).
    default : FixedArmPolicy
        Each section's hand-set default arm (``base+default``).
    best_fixed : FixedArmPolicy
        Each section's best fixed arm on the tuning sample (``base+best_fixed``).
    """

    bandit: KnobPolicy
    default: FixedArmPolicy
    best_fixed: FixedArmPolicy

    @classmethod
    def build(
        cls, bandit: KnobPolicy, sections: SectionsConfig, best: Mapping[str, BestFixedArm]
    ) -> KnobPolicies:
        best_fixed = FixedArmPolicy(sections, {s: arm.index for s, arm in best.items()})
        return cls(bandit=bandit, default=FixedArmPolicy(sections), best_fixed=best_fixed)

    def by_replay_name(self) -> dict[str, KnobPolicy]:
        """The policies under their names of `simulator.compare_settings.REPLAY_POLICIES`."""
        return {"bandit": self.bandit, "default": self.default, "best_fixed": self.best_fixed}
