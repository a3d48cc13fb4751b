"""One seed of the design comparison: world, exploring log, designs and bandit, strategies on fresh requests.

For a seed s, `run_seed`:

1. builds the world with seed s and logs ``log_requests`` requests under uniform knob exploration (the legacy
   scorer, `simulator.logging_policy`) into a temporary decision log;
2. prepares the log (`ranker.dataset.prepare_log`: labels and the stats / train / validation / test windows);
3. trains every ranker design the strategies need (`ranker.train.train_design`), saves each as a model
   directory and loads it back as the service would (`RankerModel.load`): one independent model per section,
   the consolidated model with each union strategy, the base ranker, and the cross-learning curve's models
   with the curve section's lists subsampled;
4. learns the VW knob policy on the decisions before the test window (`bandits.learn.learn_policy`) and
   replays it, the default arms and the best fixed arms on the test window's decisions
   (`bandits.replay.replay_table`), with the exact truth of those very requests under the logging scorer
   (`simulator.policy_eval.arm_values`);
5. chooses the base ranker's best fixed arm per section on ``tune_requests`` fresh requests, then runs every
   strategy on ``eval_requests`` other fresh requests of the test window's period (`simulator.strategies`).

Everything random is seeded from s; the returned `SeedResult` holds per-seed means only.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bandits.base import KnobPolicy
from bandits.learn import LearnSettings, decisions_from_frame, learn_policy
from bandits.log import DecisionLog
from bandits.policies import FixedArmPolicy
from bandits.replay import replay_table
from bandits.vw_policy import VWKnobPolicy, VWSettings
from heuristics import SectionsConfig
from ranker.config import RankerConfig
from ranker.dataset import DROPPED, STATS, TRAIN, VALIDATION, PreparedLog, prepare_log
from ranker.model import RankerModel
from ranker.rerank.items import ItemAttributes
from ranker.train import train_design
from simulator.compare_settings import PRIMARY, CompareInputError, CompareSettings
from simulator.policy_eval import arm_values
from simulator.records import RequestBatch
from simulator.run import simulate
from simulator.strategies import (
    SLATE_METRICS,
    EvalSet,
    Strategy,
    StrategyRun,
    StrategyRunner,
    coverage,
    slate_metrics,
)
from simulator.world import World
from simulator.world_config import WorldConfig

#: The section and segment value of rows that cover every section or segment.
ALL = "all"
#: Strategies in report order; the bounds first and last.
MAIN_STRATEGIES = (
    "random",
    "independent",
    "consolidated",
    "base+default",
    "base+best_fixed",
    "base+bandit",
    "consolidated+bandit",
    "oracle",
)
#: Strategies that serve through a knob policy, whose arm choices are recorded.
POLICY_STRATEGIES = ("base+default", "base+best_fixed", "base+bandit", "consolidated+bandit")
#: Replay targets: name -> the strategy whose knob policy it is.
REPLAY_POLICIES = {"bandit": "base+bandit", "default": "base+default", "best_fixed": "base+best_fixed"}
#: The section the base ranker does not serve: the independent model of that section is paired with it.
BASE_PAIR_SECTION = "search"
#: The steps of a seed, in order (each announced to the `step` callback of `run_seed`).
STEPS = (
    "logging",
    "training",
    "cross-learning curve",
    "learning the bandit",
    "choosing the best fixed arm",
    "replaying",
    "evaluating",
)


def union_strategy(union: str) -> str:
    """The strategy name of the consolidated model trained with a union (``traffic`` is ``consolidated``)."""
    return "consolidated" if union == "traffic" else f"consolidated[{union}]"


def curve_strategy(design: str, share: float) -> str:
    """The strategy name of a curve model (at share 1 the main model of the design)."""
    return design if share >= 1.0 else f"{design}@{share:g}"


@dataclass(frozen=True)
class TrainedModel:
    """A trained and reloaded ranker with what it cost."""

    model: RankerModel
    seconds: float
    boosters: int
    artifact_bytes: int
    lists: dict[str, int]


@dataclass
class SeedResult:
    """Per-seed means of everything the report aggregates.

    Attributes
    ----------
    seed : int
    metrics : list of dict
        ``strategy, section, segment, metric, value, n``: the mean of a metric over the evaluation requests
        of a section (``"all"``: every request) and a user segment (``"all"``: every segment).
    arm_counts : list of dict
        ``strategy, section, segment, arm, count``: the knob arms served.
    best_fixed_arms : dict
        Section -> ``{"index", "id", "tuning_value"}``: the base ranker's best fixed arm on the tuning sample.
    curve : list of dict
        ``share, design, lists``: the curve section's training lists of each curve model.
    replay : list of dict
        ``policy, section, estimator, value, ci_low, ci_high, truth, n``.
    costs : dict
        Strategy -> ``{"models", "artifacts", "train_seconds", "artifact_bytes"}``.
    training_lists : dict
        Ranker strategy -> section -> the training lists its model(s) learned from.
    seconds : dict
        Wall time of each step.
    log : dict
        Decisions per window and per section of the log.
    """

    seed: int
    metrics: list[dict[str, Any]] = field(default_factory=list)
    arm_counts: list[dict[str, Any]] = field(default_factory=list)
    best_fixed_arms: dict[str, dict[str, Any]] = field(default_factory=dict)
    curve: list[dict[str, Any]] = field(default_factory=list)
    replay: list[dict[str, Any]] = field(default_factory=list)
    costs: dict[str, dict[str, Any]] = field(default_factory=dict)
    training_lists: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    log: dict[str, Any] = field(default_factory=dict)


# --- helpers ------------------------------------------------------------------------------------------------


def curve_section(world_config: WorldConfig, settings: CompareSettings) -> str:
    """The cross-learning curve's section: the configured one, or the world's least-trafficked section."""
    sections = world_config.sections
    if settings.curve_section is not None:
        if settings.curve_section not in sections:
            raise CompareInputError(
                f"Expected `curve_section` in {', '.join(sections)}, found {settings.curve_section!r}"
            )
        return settings.curve_section
    return min(sections, key=lambda s: (sections[s].traffic, list(sections).index(s)))


def sample_window(
    world: World, n: int, rng: np.random.Generator, since: float, until: float | None = None
) -> RequestBatch:
    """n fresh requests with times drawn as `World.sample_times` does, within ``[since, until)``."""
    until = world.config.end_time if until is None else until
    if not since < until:
        raise CompareInputError(f"Expected a non-empty time window, found [{since}, {until})")
    kept: list[np.ndarray] = []
    have = 0
    while have < n:
        times = world.sample_times(4 * n + 100, rng)
        times = times[(times >= since) & (times < until)]
        kept.append(times)
        have += len(times)
    pool = np.concatenate(kept)
    times = np.sort(rng.choice(pool, size=n, replace=False))
    return world.sample_requests(n, rng, times=times)


def logged_requests(world: World, frame: pd.DataFrame) -> RequestBatch:
    """The requests of logged decisions (a `DecisionLog` frame of a simulated world) as a RequestBatch."""
    contexts = frame["context"].tolist()
    vocabulary = {word: i for i, word in enumerate(world.vocabulary.tolist())}
    queries = [str(c.get("query", "")) for c in contexts]
    width = max([len(q.split()) for q in queries] + [1])
    tokens = np.full((len(frame), width), -1, dtype=np.int64)
    for i, query in enumerate(queries):
        for j, word in enumerate(query.split()):
            tokens[i, j] = vocabulary[word]
    candidates = frame["candidates"].tolist()
    return RequestBatch(
        section=frame["section"].to_numpy().astype(str),
        user_id=frame["user_id"].to_numpy(np.int64),
        time=frame["time"].to_numpy(np.float64),
        device=np.array([str(c["device"]) for c in contexts]),
        hour=np.array([int(c["hour"]) for c in contexts], dtype=np.int64),
        segment=np.array([str(c["segment"]) for c in contexts]),
        source_item=np.array([int(c.get("source_item", -1)) for c in contexts], dtype=np.int64),
        category=np.array([int(c.get("category", -1)) for c in contexts], dtype=np.int64),
        query=np.array(queries),
        query_tokens=tokens,
        candidates=np.stack(candidates).astype(np.int64) if candidates else np.zeros((0, 0), np.int64),
    )


def subsample_section(
    prepared: PreparedLog,
    section: str,
    share: float,
    rng: np.random.Generator,
    *,
    min_positive: int,
    max_position: int,
) -> PreparedLog:
    """The prepared log with only `share` of `section`'s lists in the stats, train and validation windows.

    The other sections keep all their lists; the test window is unchanged. The train and validation windows
    keep at least `min_positive` of the section's lists with a positive label in the first `max_position`
    positions (when it has that many), so that a model can still be trained.
    """
    lists = prepared.lists
    window = prepared.window.copy()
    in_section = np.asarray(lists.requests.section == section, dtype=bool)
    positive = lists.keep_rows(lists.position < max_position).has_positive
    for w in (STATS, TRAIN, VALIDATION):
        rows = rng.permutation(np.flatnonzero(in_section & (prepared.window == w)))
        n_keep = max(round(share * len(rows)), 1) if len(rows) else 0
        keep = np.zeros(len(rows), dtype=bool)
        keep[:n_keep] = True
        if w != STATS:
            short = min_positive - int(positive[rows[keep]].sum())
            if short > 0:
                extra = np.flatnonzero(~keep & positive[rows])[:short]
                keep[extra] = True
        window[rows[~keep]] = DROPPED
    return replace(prepared, window=window)


def _design_config(
    base: RankerConfig, *, threads: int, independent_section: str | None = None
) -> RankerConfig:
    data = base.to_dict()
    data["lightgbm"] = {**data.get("lightgbm", {}), "num_threads": threads}
    if independent_section is not None:
        data["designs"]["independent"] = {**data["designs"]["independent"], "sections": [independent_section]}
    return RankerConfig.from_dict(data, source=f"{base.source} (compare)")


def _directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class _Trainer:
    """Trains designs on a prepared log, saves each and loads it back (as deployed)."""

    def __init__(
        self, root: Path, catalog: pd.DataFrame, users: pd.DataFrame, config: RankerConfig, threads: int
    ):
        self.root = root
        self.catalog = catalog
        self.users = users
        self.config = config
        self.threads = threads
        self._count = 0

    def train(
        self, design: str, prepared: PreparedLog, *, union: str | None = None, section: str | None = None
    ) -> TrainedModel:
        config = _design_config(self.config, threads=self.threads, independent_section=section)
        result = train_design(design, prepared, self.catalog, self.users, config, union=union)
        seconds = result.timings["total_seconds"] - result.timings["evaluate_seconds"]
        self._count += 1
        directory = result.save(self.root / f"{self._count:03d}-{design}")
        model = RankerModel.load(directory, catalog=self.catalog, users=self.users, config=config)
        lists = {
            name: int(summary["lists"])
            for part in result.metadata["training"].values()
            for name, summary in part["lists_by_section"].items()
        }
        return TrainedModel(
            model=model,
            seconds=float(seconds),
            boosters=len(result.model.boosters),
            artifact_bytes=_directory_bytes(directory),
            lists=lists,
        )


# --- the run ------------------------------------------------------------------------------------------------


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
    notify = step or (lambda _name: None)
    out = SeedResult(seed=seed)
    clock = _Clock(out.seconds)
    world = World.build(world_config, seed)
    catalog, users = world.catalog(), world.users()
    items = ItemAttributes(catalog, users)
    names = list(world.sections)
    target = curve_section(world_config, settings)
    for name in names:
        if name not in sections.sections:
            raise CompareInputError(f"World section {name!r} is not in the sections config")
        if name not in ranker_config.sections:
            raise CompareInputError(f"World section {name!r} is not in the ranker config")

    with tempfile.TemporaryDirectory(prefix="sectionrank-compare-") as tmp:
        root = Path(tmp)
        log_path = root / "log.db"
        notify("logging")
        with clock("log"), DecisionLog.open(log_path, create=True) as log:
            simulate(world, settings.log_requests, seed=seed, sections_config=sections, sink=log.append)
        with clock("prepare"):
            prepared = prepare_log(log_path, ranker_config)
        cut = prepared.split.cutoffs[2]
        out.log = {
            "requests": settings.log_requests,
            "windows": {k: v["decisions"] for k, v in prepared.window_summary().items()},
            "sections": prepared.source["sections"],
            "test_window_start": cut,
        }

        notify("training")
        trainer = _Trainer(root / "models", catalog, users, ranker_config, settings.threads)
        with clock("train"):
            independent = {s: trainer.train("independent", prepared, section=s) for s in names}
            consolidated = {u: trainer.train("consolidated", prepared, union=u) for u in settings.unions}
            base = trainer.train("base", prepared)
        base_sections = base.model.sections
        out.training_lists["independent"] = {s: independent[s].lists.get(s, 0) for s in names}
        out.training_lists["base"] = dict(base.lists)
        for union, trained in consolidated.items():
            out.training_lists[union_strategy(union)] = dict(trained.lists)
        for s in names:
            if s not in base_sections and s != BASE_PAIR_SECTION:
                raise CompareInputError(
                    f"The base ranker does not serve section {s!r}, nor is it {BASE_PAIR_SECTION!r}"
                )

        notify("cross-learning curve")
        curve_models: dict[float, dict[str, TrainedModel]] = {
            1.0: {"consolidated": consolidated["traffic"], "independent": independent[target]}
        }
        with clock("curve"):
            for i, share in enumerate(s for s in settings.curve_shares if s < 1.0):
                sub = subsample_section(
                    prepared,
                    target,
                    share,
                    np.random.default_rng([seed, 7, i]),
                    min_positive=settings.min_curve_lists,
                    max_position=ranker_config.labels.max_position,
                )
                curve_models[share] = {
                    "consolidated": trainer.train("consolidated", sub),
                    "independent": trainer.train("independent", sub, section=target),
                }
        for share, pair in sorted(curve_models.items()):
            for design, trained in pair.items():
                out.curve.append({"share": share, "design": design, "lists": trained.lists.get(target, 0)})

        notify("learning the bandit")
        with clock("learn"):
            learn_settings = LearnSettings(reward=PRIMARY, until=cut, vw=VWSettings(seed=seed))
            with DecisionLog.open(log_path) as log:
                bandit, policy_path = learn_policy(log, sections, root / "policy", learn_settings)
        learn_seconds = out.seconds["learn"]

        # The base ranker serves its sections; the independent model of each other section serves that one.
        independent_rankers = {s: independent[s].model for s in names}
        base_rankers = {s: base.model if s in base_sections else independent[s].model for s in names}

        notify("choosing the best fixed arm")
        with clock("tune"):
            tune_requests = sample_window(
                world, settings.tune_requests, np.random.default_rng([seed, 2]), cut
            )
            best = _best_fixed_arms(world, tune_requests, sections, items, base_rankers, seed)
        out.best_fixed_arms = best
        best_policy = FixedArmPolicy(sections, {s: v["index"] for s, v in best.items()})
        default_policy = FixedArmPolicy(sections)

        notify("replaying")
        with clock("replay"):
            out.replay = _replay_rows(
                world,
                log_path,
                cut,
                sections,
                {"bandit": bandit, "default": default_policy, "best_fixed": best_policy},
                settings,
                seed,
            )

        notify("evaluating")
        with clock("evaluate"):
            eval_requests = sample_window(
                world, settings.eval_requests, np.random.default_rng([seed, 1]), cut
            )
            eval_set = EvalSet.build(world, eval_requests, sections)
            strategies = [
                Strategy("random", bound="random"),
                Strategy("oracle", bound="oracle"),
                Strategy("independent", rankers=independent_rankers),
                Strategy("base+default", rankers=base_rankers, policy=default_policy),
                Strategy("base+best_fixed", rankers=base_rankers, policy=best_policy),
                Strategy("base+bandit", rankers=base_rankers, policy=bandit),
            ]
            for union, trained in consolidated.items():
                rankers = {s: trained.model for s in names}
                strategies.append(Strategy(union_strategy(union), rankers=rankers))
                if union == "traffic":
                    strategies.append(Strategy("consolidated+bandit", rankers=rankers, policy=bandit))
            for share, pair in curve_models.items():
                if share >= 1.0:
                    continue
                strategies.append(
                    Strategy(
                        curve_strategy("consolidated", share),
                        rankers={s: pair["consolidated"].model for s in names},
                        sections=(target,),
                    )
                )
                strategies.append(
                    Strategy(
                        curve_strategy("independent", share),
                        rankers={**independent_rankers, target: pair["independent"].model},
                        sections=(target,),
                    )
                )
            runner = StrategyRunner(eval_set, sections, items, seed)
            for strategy in strategies:
                _record(out, world, eval_set, runner.run(strategy))
            if isinstance(bandit, VWKnobPolicy):
                bandit.close()
        policy_bytes = policy_path.stat().st_size + policy_path.with_suffix(".json").stat().st_size

    out.costs = _costs(
        independent=independent,
        consolidated=consolidated["traffic"],
        base=base,
        learn_seconds=learn_seconds,
        tune_seconds=out.seconds["tune"],
        policy_bytes=policy_bytes,
        base_sections=base_sections,
        names=names,
    )
    return out


class _Clock:
    """Times named steps into a dict."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into = into

    def __call__(self, name: str) -> _Timer:
        return _Timer(self.into, name)


class _Timer:
    def __init__(self, into: dict[str, float], name: str) -> None:
        self.into, self.name = into, name

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.into[self.name] = self.into.get(self.name, 0.0) + time.perf_counter() - self.started


def _best_fixed_arms(
    world: World,
    requests: RequestBatch,
    sections: SectionsConfig,
    items: ItemAttributes,
    rankers: Mapping[str, RankerModel],
    seed: int,
) -> dict[str, dict[str, Any]]:
    """Each section's arm with the most exact expected clicks on `requests`, every arm served through the
    pipeline on the base ranker's scores."""
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
            best[s] = {
                "index": index,
                "id": sections[s].arms[index].id,
                "tuning_value": float(values[s][index]),
            }
    return best


def _replay_rows(
    world: World,
    log_path: Path,
    cut: float,
    sections: SectionsConfig,
    policies: Mapping[str, KnobPolicy],
    settings: CompareSettings,
    seed: int,
) -> list[dict[str, Any]]:
    """Replay estimates of `policies` on the log's decisions from `cut` on, each with the exact truth of those
    requests under the logging scorer."""
    learn = LearnSettings(reward=PRIMARY)
    with DecisionLog.open(log_path) as log:
        frame = log.joined(learn.wait_seconds, since=cut)
    frame = frame[frame["section"].isin(list(sections.sections))].reset_index(drop=True)
    decisions = decisions_from_frame(frame, sections, reward=PRIMARY, default_reward=learn.default_reward)
    table = replay_table(
        decisions,
        sections,
        dict(policies),
        estimators=settings.estimators,
        n_bootstrap=settings.n_bootstrap,
        seed=seed,
    )
    requests = logged_requests(world, frame)
    truth_values = arm_values(world, requests, sections, seed=seed)
    truth: dict[tuple[str, str], float] = {}
    for name, policy in policies.items():
        per_section = {s: truth_values.per_request(policy, s, PRIMARY) for s in truth_values.sections}
        for s, values in per_section.items():
            truth[(name, s)] = float(values.mean())
        truth[(name, "overall")] = float(np.concatenate(list(per_section.values())).mean())
    rows = []
    for record in table.to_dict("records"):
        section = str(record["group"])
        rows.append(
            {
                "policy": str(record["policy"]),
                "section": ALL if section == "overall" else section,
                "estimator": str(record["estimator"]),
                "value": float(record["value"]),
                "ci_low": float(record["ci_low"]),
                "ci_high": float(record["ci_high"]),
                "truth": truth[(str(record["policy"]), section)],
                "n": int(record["n"]),
            }
        )
    return rows


def _record(out: SeedResult, world: World, eval_set: EvalSet, run: StrategyRun) -> None:
    """Per-seed means of a strategy's slates: per section and overall, per segment and overall."""
    per_section: dict[str, dict[str, np.ndarray]] = {}
    segments: dict[str, np.ndarray] = {}
    for section, order in run.order.items():
        part, _ = eval_set.part(section)
        per_section[section] = slate_metrics(world, part, order, eval_set.relevance[section])
        segments[section] = part.segment
        out.metrics.append(
            {
                "strategy": run.name,
                "section": section,
                "segment": ALL,
                "metric": "coverage",
                "value": coverage(world, part, order),
                "n": len(part),
            }
        )
    groups = dict(per_section)
    if set(run.order) == set(eval_set.rows) and len(run.order) > 1:
        groups[ALL] = {m: np.concatenate([v[m] for v in per_section.values()]) for m in SLATE_METRICS}
        segments[ALL] = np.concatenate([segments[s] for s in per_section])
        every = np.unique(
            np.concatenate(
                [
                    np.take_along_axis(eval_set.part(s)[0].candidates, o, axis=1).ravel()
                    for s, o in run.order.items()
                ]
            )
        )
        out.metrics.append(
            {
                "strategy": run.name,
                "section": ALL,
                "segment": ALL,
                "metric": "coverage",
                "value": float(every.size / world.n_items),
                "n": len(segments[ALL]),
            }
        )
    for section, values in groups.items():
        seg = segments[section]
        for metric in SLATE_METRICS:
            column = values[metric]
            out.metrics.append(
                {
                    "strategy": run.name,
                    "section": section,
                    "segment": ALL,
                    "metric": metric,
                    "value": float(column.mean()),
                    "n": len(column),
                }
            )
        for name in np.unique(seg).tolist():
            mask = seg == name
            out.metrics.append(
                {
                    "strategy": run.name,
                    "section": section,
                    "segment": str(name),
                    "metric": PRIMARY,
                    "value": float(values[PRIMARY][mask].mean()),
                    "n": int(mask.sum()),
                }
            )
    if run.arm_index is not None and run.name in POLICY_STRATEGIES:
        for section, arms in run.arm_index.items():
            seg = segments[section]
            frame = pd.DataFrame({"segment": seg, "arm": arms}).value_counts().reset_index(name="count")
            for record in frame.to_dict("records"):
                out.arm_counts.append(
                    {
                        "strategy": run.name,
                        "section": section,
                        "segment": str(record["segment"]),
                        "arm": int(record["arm"]),
                        "count": int(record["count"]),
                    }
                )


def _costs(
    *,
    independent: Mapping[str, TrainedModel],
    consolidated: TrainedModel,
    base: TrainedModel,
    learn_seconds: float,
    tune_seconds: float,
    policy_bytes: int,
    base_sections: tuple[str, ...],
    names: list[str],
) -> dict[str, dict[str, Any]]:
    """Models trained, artifacts deployed, training seconds and artifact bytes of each strategy."""

    def total(parts: list[TrainedModel]) -> dict[str, Any]:
        return {
            "models": sum(p.boosters for p in parts),
            "artifacts": len(parts),
            "train_seconds": sum(p.seconds for p in parts),
            "artifact_bytes": sum(p.artifact_bytes for p in parts),
        }

    def plus_policy(cost: dict[str, Any], seconds: float, bytes_: int) -> dict[str, Any]:
        return {
            "models": cost["models"] + 1,
            "artifacts": cost["artifacts"] + 1,
            "train_seconds": cost["train_seconds"] + seconds,
            "artifact_bytes": cost["artifact_bytes"] + bytes_,
        }

    pair = [base] + [independent[s] for s in names if s not in base_sections]
    base_cost = total(pair)
    return {
        "independent": total(list(independent.values())),
        "consolidated": total([consolidated]),
        "base+default": base_cost,
        "base+best_fixed": {**base_cost, "train_seconds": base_cost["train_seconds"] + tune_seconds},
        "base+bandit": plus_policy(base_cost, learn_seconds, policy_bytes),
        "consolidated+bandit": plus_policy(total([consolidated]), learn_seconds, policy_bytes),
    }
