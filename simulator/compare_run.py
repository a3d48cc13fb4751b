"""One seed of the design comparison: world, exploring log, designs and bandit, strategies on fresh requests.

For a seed s, `run_seed`:

1. builds the world with seed s and logs ``log_requests`` requests under uniform knob exploration (the legacy
   scorer, `simulator.logging_policy`) into a temporary decision log;
2. prepares the log (`ranker.dataset.prepare_log`: labels and the stats / train / validation / test windows);
3. trains every ranker design the strategies need (`simulator.compare_train`): one independent model per
   section, the consolidated model with each union strategy, the base ranker, and the cross-learning curve's
   models with the curve section's lists subsampled;
4. serves ``knob_requests`` fresh requests of the test window's period by the base ranker into a second log,
   the knob window (`simulator.compare_knobs`): its first `KNOB_LEARN_SHARE` with uniform knob exploration,
   on which the VW candidate learns and the best logged fixed arms are chosen; the rest as a canary served by
   both and uniform exploration, on which the promotion gate decides what ships
   (`simulator.compare_knobs.ship_bandit`); the same for candidates learned on the latest
   `KNOB_CURVE_SHARES` of the uniform part (the knobs' learning curve);
5. values every arm on ``tune_requests`` fresh requests: the base ranker's best fixed arm per section and the
   context oracle (`simulator.compare_oracle`);
6. replays the bandit, the default arms and the best fixed arms on the test window's decisions, with the exact
   truth of those very requests under the logging scorer (`simulator.compare_replay`);
7. runs every strategy on ``eval_requests`` other fresh requests of the test window's period
   (`simulator.compare_evaluate`);
8. with ``feature_check`` features, retrains the consolidated model and the carrying sections' independent
   models without each and serves them on the same evaluation requests (`simulator.feature_check`).

Every step is timed (`simulator.compare_timing`). Everything random is seeded from s; the returned
`SeedResult` holds per-seed means only.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bandits.log import DecisionLog
from bandits.shipped import ShippedPolicy
from heuristics import SectionsConfig
from ranker.config import RankerConfig
from ranker.dataset import PreparedLog, prepare_log
from ranker.rerank.items import ItemAttributes
from simulator.compare_evaluate import Evaluation, build_strategies, evaluate, sample_window
from simulator.compare_knobs import (
    KnobPolicies,
    ShippedBandit,
    canary_policy,
    learn_bandit,
    log_knob_window,
    logged_fixed_arms,
    ship_bandit,
    tuning_values,
)
from simulator.compare_replay import logged_requests, replay_estimates
from simulator.compare_seed import (
    BestFixedArm,
    KnobWindow,
    LogSummary,
    MetricMean,
    ReplayEstimate,
    SeedResult,
)
from simulator.compare_settings import (
    KNOB_CURVE_SHARES,
    KNOB_LEARN_SHARE,
    CompareSettings,
    curve_section,
    knob_curve_strategy,
)
from simulator.compare_timing import StepClock
from simulator.compare_train import (
    CurveModels,
    TrainedDesigns,
    Trainer,
    strategy_costs,
    subsample_section,
    train_curve,
    train_designs,
)
from simulator.errors import CompareInputError
from simulator.feature_check import evaluate_without, split_sections, train_without
from simulator.records import RequestBatch
from simulator.run import simulate
from simulator.world import World
from simulator.world_config import WorldConfig

#: The steps of a seed, in order (each announced to the `step` callback of `run_seed`).
STEPS = (
    "logging",
    "training",
    "cross-learning curve",
    "exploring the knobs",
    "learning the bandit",
    "choosing the best fixed arm",
    "replaying",
    "evaluating",
    "feature check",
)

# The request helpers, importable from here as well.
__all__ = ["STEPS", "logged_requests", "run_seed", "sample_window", "subsample_section"]


@dataclass(frozen=True)
class _Seed:
    """What every step of a seed shares: the world, the configs, the working directory and the clock."""

    world: World
    world_config: WorldConfig
    seed: int
    settings: CompareSettings
    sections: SectionsConfig
    ranker_config: RankerConfig
    catalog: pd.DataFrame
    users: pd.DataFrame
    items: ItemAttributes
    root: Path
    clock: StepClock
    notify: Callable[[str], None]

    def fresh_requests(self, n: int, stream: int, since: float) -> RequestBatch:
        """n fresh requests from `since` to the end of the period, drawn from the seed's `stream`."""
        return sample_window(self.world, n, np.random.default_rng([self.seed, stream]), since)


@dataclass(frozen=True)
class _Logged:
    """A seed's exploring log, prepared for training."""

    path: Path
    prepared: PreparedLog
    summary: LogSummary

    @property
    def test_window_start(self) -> float:
        return self.summary.test_window_start


def _check_sections(world: World, sections: SectionsConfig, ranker_config: RankerConfig) -> None:
    for name in world.sections:
        if name not in sections.sections:
            raise CompareInputError(f"World section {name!r} is not in the sections config")
        if name not in ranker_config.sections:
            raise CompareInputError(f"World section {name!r} is not in the ranker config")


def _log(run: _Seed) -> _Logged:
    """Log ``log_requests`` requests under uniform knob exploration and prepare the log."""
    run.notify("logging")
    path = run.root / "log.db"
    with run.clock("log"), DecisionLog.open(path, create=True) as log:
        simulate(
            run.world, run.settings.log_requests, seed=run.seed, sections_config=run.sections, sink=log.append
        )
    with run.clock("prepare"):
        prepared = prepare_log(path, run.ranker_config)
    summary = LogSummary(
        requests=run.settings.log_requests,
        windows={k: v["decisions"] for k, v in prepared.window_summary().items()},
        sections=prepared.source["sections"],
        test_window_start=prepared.split.cutoffs[2],
    )
    return _Logged(path=path, prepared=prepared, summary=summary)


def _train(run: _Seed, logged: _Logged) -> tuple[TrainedDesigns, CurveModels]:
    """Train every design, then the cross-learning curve's models."""
    trainer = Trainer(run.root / "models", run.catalog, run.users, run.ranker_config, run.settings.threads)
    run.notify("training")
    with run.clock("train"):
        designs = train_designs(trainer, logged.prepared, list(run.world.sections), run.settings.unions)
    run.notify("cross-learning curve")
    with run.clock("curve"):
        curve = train_curve(
            trainer,
            logged.prepared,
            designs,
            curve_section(run.world_config, run.settings),
            run.settings,
            seed=run.seed,
            max_position=run.ranker_config.labels.max_position,
        )
    return designs, curve


def _knobs(
    run: _Seed, logged: _Logged, designs: TrainedDesigns
) -> tuple[ShippedBandit, dict[str, BestFixedArm], KnobPolicies, KnobWindow]:
    """Log the knob window on the base ranker: its uniform part, then the candidate learned there and the
    best logged fixed arms, then the canary part served by both; ship what the gate passes on the canary
    (also for the learning curve's candidates, learned on shorter logs); choose the best fixed arms and the
    context oracle on fresh requests."""
    cut = logged.test_window_start
    rankers = designs.base_rankers()
    path = run.root / "knobs.db"
    run.notify("exploring the knobs")
    with run.clock("knob_log"):
        requests = run.fresh_requests(run.settings.knob_requests, 3, cut)
        gate_start = float(requests.time[int(KNOB_LEARN_SHARE * len(requests))])
        learn_rows = np.flatnonzero(requests.time < gate_start)
        gate_rows = np.flatnonzero(requests.time >= gate_start)
        log_knob_window(run.world, requests.take(learn_rows), run.sections, rankers, path, seed=run.seed)
    window = KnobWindow(
        requests=len(requests), learn=len(learn_rows), gate=len(gate_rows), start=cut, gate_start=gate_start
    )
    run.notify("learning the bandit")
    with run.clock("learn"):
        candidate = learn_bandit(
            path, run.sections, run.root / "policy" / "candidates", since=cut, until=gate_start, seed=run.seed
        )
        fixed = logged_fixed_arms(path, run.sections, since=cut, until=gate_start, seed=run.seed)
    with run.clock("knob_log"):
        log_knob_window(
            run.world,
            requests.take(gate_rows),
            run.sections,
            rankers,
            path,
            seed=int(np.random.SeedSequence([run.seed, 3]).generate_state(1)[0]),
            policy=canary_policy(run.sections, candidate.policy, fixed),
            first_event=len(learn_rows),
        )
    candidate.policy.close()
    with run.clock("learn"):
        bandit = ship_bandit(
            path, run.sections, run.root / "policy", candidate, cut=gate_start, seed=run.seed, since=cut
        )
        curve = {}
        for share in KNOB_CURVE_SHARES:
            since = gate_start - share * (gate_start - cut)
            directory = run.root / f"policy@{share:g}"
            shorter = learn_bandit(
                path, run.sections, directory / "candidates", since=since, until=gate_start, seed=run.seed
            )
            shorter.policy.close()
            shipped = ship_bandit(
                path, run.sections, directory, shorter, cut=gate_start, seed=run.seed, since=since
            )
            curve[knob_curve_strategy(share)] = shipped.policy
    run.notify("choosing the best fixed arm")
    with run.clock("tune"):
        tuning = run.fresh_requests(run.settings.tune_requests, 2, cut)
        values = tuning_values(run.world, tuning, run.sections, run.items, designs.base_rankers(), run.seed)
        best = values.best_fixed(run.sections)
    policies = KnobPolicies.build(
        bandit.policy,
        run.sections,
        best,
        fixed_logged=bandit.fixed_logged,
        context_oracle=values.context_oracle(run.sections),
        curve=curve,
    )
    return bandit, best, policies, window


def _replay(run: _Seed, logged: _Logged, policies: KnobPolicies) -> tuple[ReplayEstimate, ...]:
    """Replay the knob policies on the test window's logged decisions, against their exact truth."""
    run.notify("replaying")
    with run.clock("replay"):
        return replay_estimates(
            run.world,
            logged.path,
            logged.test_window_start,
            run.sections,
            policies.by_replay_name(),
            run.settings,
            run.seed,
        )


def _evaluate(
    run: _Seed, logged: _Logged, designs: TrainedDesigns, curve: CurveModels, policies: KnobPolicies
) -> Evaluation:
    """Serve every strategy on the same fresh requests of the test window's period."""
    run.notify("evaluating")
    with run.clock("evaluate"):
        strategies = build_strategies(designs, curve, policies, list(run.world.sections))
        requests = run.fresh_requests(run.settings.eval_requests, 1, logged.test_window_start)
        return evaluate(run.world, requests, run.sections, run.items, strategies, run.seed)


def _feature_check(run: _Seed, logged: _Logged, designs: TrainedDesigns) -> tuple[MetricMean, ...]:
    """Question 7: each checked feature's models retrained without it, served on the evaluation requests."""
    features = run.settings.feature_check
    if not features:
        return ()
    run.notify("feature check")
    with run.clock("feature_check"):
        sections = list(run.world.sections)
        checks = [
            train_without(
                run.root / f"without-{feature}",
                logged.prepared,
                run.catalog,
                run.users,
                run.ranker_config,
                run.settings.threads,
                split_sections(feature, sections, run.ranker_config),
            )
            for feature in features
        ]
        # Stream 1, as in `_evaluate`: the very requests every strategy was valued on, so the pairs hold.
        requests = run.fresh_requests(run.settings.eval_requests, 1, logged.test_window_start)
        return evaluate_without(
            run.world,
            requests,
            run.sections,
            run.items,
            designs,
            checks,
            leak=run.settings.feature_leak,
            seed=run.seed,
        )


def run_seed(
    world_config: WorldConfig,
    seed: int,
    settings: CompareSettings,
    sections: SectionsConfig,
    ranker_config: RankerConfig,
    *,
    step: Callable[[str], None] | None = None,
) -> SeedResult:
    """Run every strategy of the comparison for one seed (see the module docstring).

    `step`, when given, is called with the name of each step as it starts (for progress display).
    """
    world = World.build(world_config, seed)
    _check_sections(world, sections, ranker_config)
    catalog, users = world.catalog(), world.users()
    with tempfile.TemporaryDirectory(prefix="sectionrank-compare-") as tmp:
        run = _Seed(
            world=world,
            world_config=world_config,
            seed=seed,
            settings=settings,
            sections=sections,
            ranker_config=ranker_config,
            catalog=catalog,
            users=users,
            items=ItemAttributes(catalog, users),
            root=Path(tmp),
            clock=StepClock(),
            notify=step or (lambda _name: None),
        )
        logged = _log(run)
        designs, curve = _train(run, logged)
        bandit, best, policies, knob_window = _knobs(run, logged, designs)
        replay = _replay(run, logged, policies)
        evaluation = _evaluate(run, logged, designs, curve, policies)
        checked = _feature_check(run, logged, designs)
        for policy in (bandit.policy, *policies.curve.values()):
            if isinstance(policy, ShippedPolicy):
                policy.close()
        policy_bytes = bandit.artifact_bytes
    seconds = run.clock.seconds
    costs = strategy_costs(
        designs, learn_seconds=seconds["learn"], tune_seconds=seconds["tune"], policy_bytes=policy_bytes
    )
    return SeedResult(
        seed=seed,
        metrics=evaluation.metrics + checked,
        arm_counts=evaluation.arm_counts,
        best_fixed_arms=best,
        curve=curve.lists(),
        replay=replay,
        costs=costs,
        training_lists=designs.training_lists(),
        seconds=dict(seconds),
        log=logged.summary,
        knob_window=knob_window,
        shipped=bandit.shipped(),
    )
