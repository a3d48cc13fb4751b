"""The knob policies of a comparison seed: the bandit the gate ships, the best fixed arms and the oracle.

The knobs learn from the *knob window* (`log_knob_window`): fresh requests of the test window's period,
served by the base ranker, as a team that has shipped its base ranker explores the knobs on top of it. (Arms
valued on the legacy scorer's log are the best arms for that scorer, not for the base ranker: on the default
world the arm DR picks there costs up to 0.07 clicks per request on the base ranker.) Its first part is
explored uniformly: `learn_bandit` learns the VW candidate there (reward = clicks, the shipped learn settings)
and `bandits.promote.best_logged_arms` picks each section's best *logged* fixed arm by DR. Its second part
is a *canary*: served by `CANARY_WEIGHTS` of the candidate, that fixed arm and uniform exploration, so that
the promotion gate (`ship_bandit`) values both on data close to their own. Valued on uniform data instead,
with importance weights of 9 to 16, the paired interval of ``candidate - fixed arm`` was about +-0.3 clicks
in category_explore at the quick size; on canary data about +-0.1 (docs/bandits.md).
`tuning_values` serves every arm of every section through the pipeline on the base ranker's scores of a
tuning sample and values each exactly: each section's best fixed arm (most exact expected clicks) and the
context oracle (`simulator.compare_oracle`) come from it. `KnobPolicies` holds the policies the strategies
and the replay use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bandits.base import KnobPolicy
from bandits.context import PolicyContext
from bandits.errors import GateError
from bandits.learn import LearnSettings, learn_policy, read_decisions
from bandits.log import DecisionLog
from bandits.policies import FixedArmPolicy, MixturePolicy, UniformPolicy
from bandits.promote import GateDecision, GateSettings, best_logged_arms, promote
from bandits.shipped import ShippedPolicy
from bandits.vw_policy import VWKnobPolicy, VWSettings
from heuristics import SectionsConfig
from ranker.model import RankerModel
from ranker.rerank.items import ItemAttributes
from ranker.rerank.pipeline import RerankPipeline
from simulator.compare_oracle import ContextOraclePolicy, fit_tables
from simulator.compare_seed import BestFixedArm
from simulator.compare_settings import PRIMARY
from simulator.logging_policy import LoggingPolicy
from simulator.records import RequestBatch
from simulator.strategies import EvalSet, Strategy, StrategyRunner
from simulator.world import World

#: Who serves the canary part of the knob window: the candidate, the best logged fixed arm, and uniform
#: exploration (which keeps every arm's propensity at least 0.1 / A).
CANARY_WEIGHTS = {"candidate": 0.45, "best_fixed_logged": 0.45, "uniform": 0.1}


def log_knob_window(
    world: World,
    requests: RequestBatch,
    sections: SectionsConfig,
    rankers: Mapping[str, RankerModel],
    path: Path,
    *,
    seed: int,
    policy: KnobPolicy | None = None,
    first_event: int = 0,
) -> Path:
    """Serve `requests` (in time order) through the pipeline on `rankers`, the knob arm drawn from `policy`
    (uniform exploration by default), draw their clicks from the world, and append decisions and feedback
    to the decision log at `path` (created when missing), numbering the events from `first_event`."""
    logging = LoggingPolicy(
        world, sections, exploration="uniform", seed=seed, rankers=rankers, knob_policy=policy
    )
    with DecisionLog.open(path, create=True) as log:
        for decisions, feedback in logging.log_requests(requests, first_event=first_event):
            log.append(decisions, feedback)
    return path


def canary_policy(sections: SectionsConfig, candidate: KnobPolicy, fixed: Mapping[str, int]) -> MixturePolicy:
    """The canary's logging policy (`CANARY_WEIGHTS`): the candidate, the fixed arms, uniform."""
    return MixturePolicy(
        {
            "candidate": candidate,
            "best_fixed_logged": FixedArmPolicy(sections, dict(fixed)),
            "uniform": UniformPolicy(sections),
        },
        CANARY_WEIGHTS,
    )


def logged_fixed_arms(
    log_path: Path, sections: SectionsConfig, *, since: float | None, until: float, seed: int
) -> dict[str, int]:
    """Each section's best fixed arm by DR on the logged decisions in ``[since, until)`` (its default arm
    when the section has none)."""
    with DecisionLog.open(log_path) as log:
        before = read_decisions(log, sections, LearnSettings(reward=PRIMARY, since=since, until=until))
    arms = best_logged_arms(before, sections, seed=seed)
    return {s.name: arms[s.name][0] if s.name in arms else s.default_arm.index for s in sections}


@dataclass(frozen=True)
class LearnedBandit:
    """The VW knob policy learned from a seed's log, and its saved file (plus its ``.json`` sidecar)."""

    policy: VWKnobPolicy
    path: Path

    @property
    def artifact_bytes(self) -> int:
        return self.path.stat().st_size + self.path.with_suffix(".json").stat().st_size


def learn_bandit(
    log_path: Path,
    sections: SectionsConfig,
    directory: Path,
    *,
    until: float,
    seed: int,
    since: float | None = None,
) -> LearnedBandit:
    """Learn the VW knob policy on the logged decisions in ``[since, until)``, saved into `directory`."""
    settings = LearnSettings(
        reward=PRIMARY, since=since, until=until, vw=VWSettings(seed=seed, factored=True, cells=True)
    )
    with DecisionLog.open(log_path) as log:
        policy, path = learn_policy(log, sections, directory, settings)
    return LearnedBandit(policy=policy, path=path)


#: Fewest test-window decisions per section the comparison's gate decides on (the quick log has ~1,000).
GATE_MIN_DECISIONS = 30


@dataclass(frozen=True)
class ShippedBandit:
    """What the promotion gate shipped from a learned candidate, and the best logged fixed arms it found.

    Attributes
    ----------
    policy : KnobPolicy
        Served as ``base+bandit`` and ``consolidated+bandit``: the published `ShippedPolicy`, or the default
        arms when the gate refused to decide (nothing published: what served before keeps serving).
    decision : GateDecision or None
        None when the gate refused.
    fixed_logged : mapping section -> arm index
        Each section's best fixed arm by DR on the decisions before the window (``base+best_fixed_logged``).
    directory : Path
        The policy directory (``versions/``, ``current``, ``candidates/``).
    """

    policy: KnobPolicy
    decision: GateDecision | None
    fixed_logged: dict[str, int]
    directory: Path

    @property
    def artifact_bytes(self) -> int:
        if not isinstance(self.policy, ShippedPolicy) or self.policy.root is None:
            return 0
        return sum(p.stat().st_size for p in self.policy.root.iterdir())

    def shipped(self) -> dict[str, str]:
        """Section -> what ships (``refused`` everywhere when the gate refused)."""
        if self.decision is None:
            return {s: "refused" for s in self.fixed_logged}
        return self.decision.shipped()


def ship_bandit(
    log_path: Path,
    sections: SectionsConfig,
    directory: Path,
    candidate: LearnedBandit,
    *,
    cut: float,
    seed: int,
    since: float | None = None,
) -> ShippedBandit:
    """Run the promotion gate on the decisions from `cut` on (the canary) for a `candidate` learned on the
    decisions in ``[since, cut)``; the shipped version is published in `directory`. The best logged fixed
    arm is chosen on ``[since, cut)``, as the candidate learned."""
    settings = GateSettings(min_decisions=GATE_MIN_DECISIONS, seed=seed)
    with DecisionLog.open(log_path) as log:
        try:
            _, decision = promote(
                log, sections, directory, candidate=candidate.path, since=cut, settings=settings
            )
        except GateError:
            fixed = logged_fixed_arms(log_path, sections, since=since, until=cut, seed=seed)
            return ShippedBandit(FixedArmPolicy(sections), None, fixed, directory)
    fixed = {}
    for s in sections:
        arm = decision.sections[s.name].fixed_arm
        fixed[s.name] = s.arm(arm).index if arm is not None else s.default_arm.index
    policy = ShippedPolicy.load(directory, sections)
    return ShippedBandit(policy=policy, decision=decision, fixed_logged=fixed, directory=directory)


@dataclass(frozen=True)
class TuningValues:
    """Exact expected clicks of every arm on the tuning requests, per section, with what the policy sees.

    Attributes
    ----------
    values : mapping section -> (m, A) float
    context : mapping section -> PolicyContext of the m requests
    """

    values: dict[str, np.ndarray]
    context: dict[str, PolicyContext]

    def best_fixed(self, sections: SectionsConfig) -> dict[str, BestFixedArm]:
        """Each section's arm with the most exact expected clicks (mean over the tuning requests)."""
        best = {}
        for s in sections.sections:
            if s in self.values:
                means = self.values[s].mean(axis=0)
                index = int(np.argmax(means))
                best[s] = BestFixedArm(
                    index=index, id=sections[s].arms[index].id, tuning_value=float(means[index])
                )
        return best

    def context_oracle(self, sections: SectionsConfig) -> ContextOraclePolicy:
        """The best arm per observable context cell (`simulator.compare_oracle`)."""
        return ContextOraclePolicy(
            sections, {s: fit_tables(self.context[s], v) for s, v in self.values.items()}
        )


def tuning_values(
    world: World,
    requests: RequestBatch,
    sections: SectionsConfig,
    items: ItemAttributes,
    rankers: Mapping[str, RankerModel],
    seed: int,
) -> TuningValues:
    """Every arm of every section served through the pipeline on the rankers' scores of `requests` (a model
    scores a section once for every arm), valued exactly by the world."""
    eval_set = EvalSet.build(world, requests, sections)
    runner = StrategyRunner(eval_set, sections, items, seed)
    present = list(eval_set.rows)
    n_arms = {s: len(sections[s].arms) for s in present}
    values = {s: np.full((len(eval_set.rows[s]), n_arms[s]), -np.inf) for s in present}
    for arm in range(max(n_arms.values(), default=0)):
        covered = tuple(s for s in present if arm < n_arms[s])
        policy = FixedArmPolicy(sections, {s: arm for s in covered})
        run = runner.run(Strategy(f"arm-{arm}", rankers=rankers, policy=policy, sections=covered))
        for s in covered:
            part, _ = eval_set.part(s)
            slates = np.take_along_axis(part.candidates, run.order[s], axis=1)
            values[s][:, arm] = world.expected_outcomes(part, slates).clicks
    pipeline = RerankPipeline(sections, rankers, items, FixedArmPolicy(sections), seed=seed)
    context = {s: pipeline.policy_context(eval_set.part(s)[1]) for s in present}
    return TuningValues(values=values, context=context)


def best_fixed_arms(
    world: World,
    requests: RequestBatch,
    sections: SectionsConfig,
    items: ItemAttributes,
    rankers: Mapping[str, RankerModel],
    seed: int,
) -> dict[str, BestFixedArm]:
    """Each section's arm with the most exact expected clicks on `requests`, every arm served through the
    pipeline on the rankers' scores (`tuning_values`)."""
    return tuning_values(world, requests, sections, items, rankers, seed).best_fixed(sections)


@dataclass(frozen=True)
class KnobPolicies:
    """The knob policies of the ``base+*`` and ``consolidated+bandit`` strategies.

    Attributes
    ----------
    bandit : KnobPolicy
        What the promotion gate shipped (``base+bandit``, ``consolidated+bandit``).
    default : FixedArmPolicy
        Each section's hand-set default arm (``base+default``).
    best_fixed : FixedArmPolicy
        Each section's best fixed arm on the tuning sample, by the truth (``base+best_fixed``).
    best_fixed_logged : FixedArmPolicy or None
        Each section's best fixed arm by DR on the log's learning window (``base+best_fixed_logged``).
    context_oracle : KnobPolicy or None
        The best arm per observable context cell, by the truth on the tuning sample
        (``base+context_oracle``).
    curve : mapping label -> KnobPolicy
        The gate's shipped policy learned on part of the log (``base+bandit@<share>``).
    """

    bandit: KnobPolicy
    default: FixedArmPolicy
    best_fixed: FixedArmPolicy
    best_fixed_logged: FixedArmPolicy | None = None
    context_oracle: KnobPolicy | None = None
    curve: Mapping[str, KnobPolicy] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        bandit: KnobPolicy,
        sections: SectionsConfig,
        best: Mapping[str, BestFixedArm],
        *,
        fixed_logged: Mapping[str, int] | None = None,
        context_oracle: KnobPolicy | None = None,
        curve: Mapping[str, KnobPolicy] | None = None,
    ) -> KnobPolicies:
        best_fixed = FixedArmPolicy(sections, {s: arm.index for s, arm in best.items()})
        return cls(
            bandit=bandit,
            default=FixedArmPolicy(sections),
            best_fixed=best_fixed,
            best_fixed_logged=FixedArmPolicy(sections, dict(fixed_logged))
            if fixed_logged is not None
            else None,
            context_oracle=context_oracle,
            curve=dict(curve or {}),
        )

    def by_replay_name(self) -> dict[str, KnobPolicy]:
        """The policies under their names of `simulator.compare_settings.REPLAY_POLICIES`."""
        return {"bandit": self.bandit, "default": self.default, "best_fixed": self.best_fixed}
